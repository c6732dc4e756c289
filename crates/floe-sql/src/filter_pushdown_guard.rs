//! DataFusion's physical filter pushdown is skipped for plans with duplicate column names.
//!
//! DataFusion 55 moves a filter (and the dynamic filters of TopK and hash joins) into a node's
//! input by looking its columns up by name, and the first column of that name wins: above
//! `t3 LEFT JOIN t0 … FULL JOIN t2`, a projection `[t0.k, t0.f8, t2.k, t2.s]` turned
//! `lcm(t0.k, t2.k)` into `lcm(t2.k, t2.k)` and pushed it below the join, so a row PostgreSQL
//! filters out was returned (fixed upstream by apache/datafusion#25259, not in the version we
//! use). [`GuardedFilterPushdown`] runs the rule only when no node forwards filters through a
//! schema with two columns of one name; such plans keep their filters where the logical
//! optimizer put them (it resolves qualified names, so its pushdown is sound).

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::Result as DfResult;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;

/// The names of DataFusion's filter pushdown rules (before and after the other rules).
const FILTER_PUSHDOWN_RULES: [&str; 2] = ["FilterPushdown", "FilterPushdown(Post)"];

/// DataFusion's physical optimizer rules with its filter pushdown rules guarded.
pub(crate) fn guarded(
    rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>,
) -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    rules
        .into_iter()
        .map(|rule| {
            if FILTER_PUSHDOWN_RULES.contains(&rule.name()) {
                Arc::new(GuardedFilterPushdown { inner: rule }) as _
            } else {
                rule
            }
        })
        .collect()
}

/// See the module doc.
#[derive(Debug)]
pub(crate) struct GuardedFilterPushdown {
    inner: Arc<dyn PhysicalOptimizerRule + Send + Sync>,
}

impl PhysicalOptimizerRule for GuardedFilterPushdown {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if has_duplicate_names(&plan)? {
            return Ok(plan);
        }
        self.inner.optimize(plan, config)
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn schema_check(&self) -> bool {
        self.inner.schema_check()
    }
}

/// Whether some node's input has two columns of one name (every node below the root passes
/// filters on through its own schema, the input of its parent).
fn has_duplicate_names(plan: &Arc<dyn ExecutionPlan>) -> DfResult<bool> {
    let mut found = false;
    plan.apply(|node| {
        found = node
            .children()
            .iter()
            .any(|child| duplicate_names(&child.schema()));
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    Ok(found)
}

fn duplicate_names(schema: &Schema) -> bool {
    let mut seen = HashSet::with_capacity(schema.fields().len());
    schema.fields().iter().any(|f| !seen.insert(f.name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field};

    #[test]
    fn duplicate_names_are_found() {
        let schema = |names: &[&str]| {
            Schema::new(
                names
                    .iter()
                    .map(|n| Field::new(*n, DataType::Int32, true))
                    .collect::<Vec<_>>(),
            )
        };
        assert!(duplicate_names(&schema(&["k", "f8", "k", "s"])));
        assert!(!duplicate_names(&schema(&["k", "f8", "s"])));
    }
}
