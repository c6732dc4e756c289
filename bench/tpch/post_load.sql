-- Run on Floe and PostgreSQL after COPY (not timed with the load). Secondary indexes a
-- PostgreSQL user would add for TPC-H's correlated subqueries (Q17, Q20) and the anti-join of
-- Q22; without them PostgreSQL runs Q17/Q20 for hours. Then fresh planner statistics.
CREATE INDEX lineitem_part_supp ON lineitem (l_partkey, l_suppkey);
CREATE INDEX orders_cust ON orders (o_custkey);
ANALYZE;
