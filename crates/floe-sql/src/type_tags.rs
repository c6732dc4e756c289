//! Type tags survive `CASE`.
//!
//! `uuid`, `jsonb`, `varchar(n)`, … are Arrow strings whose field carries the PostgreSQL type
//! ([`crate::types::PG_TYPE_KEY`]). DataFusion's `CASE` computes its field from the data
//! type alone, so `CASE WHEN … THEN u END` over a `uuid` column was
//! described to clients as `text` (PostgreSQL: `uuid`), and a driver decoded a string instead
//! of a UUID or a JSON value. After planning, such an expression whose results share one tag
//! (NULL and string literals take the others' type, as PostgreSQL's `unknown`) is wrapped in a
//! pass-through function whose field carries the tag.
//!
//! A cast's own field (a type with a name or tag: `text`, `varchar(5)`) is nullable while
//! its operand may be NOT NULL; DataFusion then takes the cast's nullability from the operand
//! in the logical plan and from the field in the physical one, and refuses the plan where the
//! two must agree (`SELECT DISTINCT k::text FROM t`: "Physical input schema should be the same
//! …"). [`Nullability`], an analyzer rule, makes such a field as nullable as its operand, and
//! refreshes the schemas of projections (and unions and nodes above them) whose expressions
//! earlier rules made nullable.
//!
//! Correlated scalar subqueries lose the tag too: `(SELECT u FROM t WHERE t.k = o.k)` collects
//! its rows with `array_agg` (see `crate::subquery`), whose field has none; the call that takes
//! the one row is wrapped the same way (around it, so DataFusion still turns the subquery
//! into a join).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::{Cast, ScalarFunction};
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::types::PG_TYPE_KEY;

/// The name of the pass-through function.
const TYPE_TAG: &str = "floe_type_tag";

/// `expr`'s field when evaluated against `schema`.
fn field_of(expr: &Expr, schema: &DFSchema) -> Option<FieldRef> {
    expr.to_field(schema).ok().map(|(_, field)| field)
}

/// The tag of the rows a correlated scalar subquery collects, if `expr` is one that loses it:
/// `floe_single_row((SELECT array_agg(e) …))` or `(SELECT first_value(e …) …)`, rewritten so
/// by `pg_catalog::rewrite` (the aggregate's field has no tag).
fn subquery_tag(expr: &Expr) -> Option<HashMap<String, String>> {
    let (subquery, collects) = match expr {
        Expr::ScalarFunction(f) if f.name() == crate::subquery::SINGLE_ROW => match &f.args[..] {
            [Expr::ScalarSubquery(s)] => (s, "array_agg"),
            _ => return None,
        },
        Expr::ScalarSubquery(s) => (s, "first_value"),
        _ => return None,
    };
    let mut plan = subquery.subquery.as_ref();
    if plan.schema().fields().first().is_none_or(|f| {
        // `array_agg` says `uuid[]`: its element's tag is still to be found.
        f.metadata()
            .get(PG_TYPE_KEY)
            .is_some_and(|tag| !tag.ends_with("[]"))
    }) {
        return None;
    }
    let aggregate = loop {
        match plan {
            LogicalPlan::Projection(p) => plan = p.input.as_ref(),
            LogicalPlan::SubqueryAlias(a) => plan = a.input.as_ref(),
            LogicalPlan::Aggregate(a) => break a,
            _ => return None,
        }
    };
    let [Expr::AggregateFunction(function)] = &aggregate.aggr_expr[..] else {
        return None;
    };
    if function.func.name() != collects {
        return None;
    }
    let field = field_of(function.params.args.first()?, aggregate.input.schema())?;
    field
        .metadata()
        .contains_key(PG_TYPE_KEY)
        .then(|| field.metadata().clone())
}

/// The tag the results of `expr` share, if `expr` is a `CASE` that loses it, or a correlated
/// scalar subquery that does ([`subquery_tag`]).
fn lost_tag(expr: &Expr, schema: &DFSchema) -> Option<HashMap<String, String>> {
    let case = match expr {
        Expr::Case(case) => case,
        Expr::Cast(cast) => return cast_tag(cast, schema),
        Expr::ScalarFunction(f) if f.name() == "make_array" => return array_tag(f, expr, schema),
        _ => return subquery_tag(expr),
    };
    // PostgreSQL resolves the ELSE first (its type wins among text, varchar and bpchar).
    let (fields, literals) = fields_and_literals(
        case.else_expr
            .as_deref()
            .into_iter()
            .chain(case.when_then_expr.iter().map(|(_, then)| then.as_ref())),
        schema,
    )?;
    let own = field_of(expr, schema)?;
    if own.metadata().contains_key(PG_TYPE_KEY) {
        return None;
    }
    let tag = crate::numeric::functions::shared_type_tag(&fields, &literals)?;
    let array_tag = tag.get(PG_TYPE_KEY).is_some_and(|t| t.ends_with("[]"));
    match own.data_type() {
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => Some(tag),
        // `array_agg` of a tagged type (`oid[]`): the tag is on the list's field.
        DataType::List(_) | DataType::LargeList(_) if array_tag => Some(tag),
        _ => None,
    }
}

/// The fields of `exprs` and, for each, its value if it is a literal (what
/// `shared_type_tag` takes); `None` if a field is not known.
fn fields_and_literals<'a>(
    exprs: impl Iterator<Item = &'a Expr>,
    schema: &DFSchema,
) -> Option<(Vec<FieldRef>, Vec<Option<&'a ScalarValue>>)> {
    let pairs = exprs
        .map(|e| {
            let literal = match e {
                Expr::Literal(value, _) => Some(value),
                _ => None,
            };
            field_of(e, schema).map(|f| (f, literal))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(pairs.into_iter().unzip())
}

/// `ARRAY[u, v]` of elements sharing a tag (`uuid`, `varchar`, …) is an array of that type
/// (`uuid[]`, on the list's field); DataFusion's `make_array` has no tag.
fn array_tag(
    array: &ScalarFunction,
    expr: &Expr,
    schema: &DFSchema,
) -> Option<HashMap<String, String>> {
    let own = field_of(expr, schema)?;
    if !own.metadata().is_empty() || !matches!(own.data_type(), DataType::List(_)) {
        return None;
    }
    let (fields, literals) = fields_and_literals(array.args.iter(), schema)?;
    let tag = crate::numeric::functions::shared_type_tag(&fields, &literals)?;
    let element = tag.get(PG_TYPE_KEY).filter(|t| !t.ends_with("[]"))?;
    Some(HashMap::from([(
        PG_TYPE_KEY.to_string(),
        format!("{element}[]"),
    )]))
}

/// `unnest`'s output fields (DataFusion's have no metadata) of the element type of a tagged
/// array (`uuid[]` → `uuid`); the other fields keep their input's.
fn unnest_with_input_tags(unnest: datafusion::logical_expr::Unnest) -> DfResult<LogicalPlan> {
    let input = unnest.input.schema();
    let mut changed = false;
    let fields: Vec<_> = unnest
        .schema
        .iter()
        .zip(unnest.dependency_indices.iter())
        .map(|((qualifier, field), &from)| {
            let source = input.field(from);
            let element = source
                .metadata()
                .get(PG_TYPE_KEY)
                .and_then(|t| t.strip_suffix("[]"));
            let unnested = match source.data_type() {
                DataType::List(inner) | DataType::LargeList(inner) => {
                    inner.data_type() == field.data_type()
                }
                _ => false,
            };
            let field = match element {
                Some(element) if unnested && field.metadata().is_empty() => {
                    changed = true;
                    Arc::new(field.as_ref().clone().with_metadata(HashMap::from([(
                        PG_TYPE_KEY.to_string(),
                        element.to_string(),
                    )])))
                }
                _ => Arc::clone(field),
            };
            (qualifier.cloned(), field)
        })
        .collect();
    if !changed {
        return Ok(LogicalPlan::Unnest(unnest));
    }
    let schema = DFSchema::new_with_metadata(fields, unnest.schema.metadata().clone())?;
    Ok(LogicalPlan::Unnest(datafusion::logical_expr::Unnest {
        schema: Arc::new(schema),
        ..unnest
    }))
}

/// No tag (an empty map) for a cast whose source is tagged but whose result is not of the
/// tag's type: DataFusion's type-only cast (to a type Floe plans without a field of its own,
/// `int4`, `date`, …) keeps the source's metadata, so `CAST(varchar_col AS int4)` was
/// described to clients as `varchar` and `oid::int8` as `oid`. A cast to the same Arrow type
/// keeps the tag (a coercion, which changes nothing), except from `oid`, whose `int4`
/// shares its Arrow type.
fn cast_tag(cast: &Cast, schema: &DFSchema) -> Option<HashMap<String, String>> {
    let source = field_of(&cast.expr, schema)?;
    let untyped_target = cast.field.metadata().is_empty();
    let string =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8);
    let (from, to) = (source.data_type(), cast.field.data_type());
    let same_type = from == to || (string(from) && string(to));
    // A type modifier alone (`numeric(20,6)` cast to `int8`) goes the same way: the physical
    // cast's field has none, and a plan that compares the two failed ("Physical input schema
    // should be the same …" under a UNION or EXCEPT).
    let Some(tag) = source.metadata().get(PG_TYPE_KEY) else {
        let typmod = source.metadata().contains_key(crate::types::PG_TYPMOD_KEY);
        return (typmod && untyped_target && !same_type).then(HashMap::new);
    };
    let from_oid = tag == "oid" || tag == "oid[]";
    (untyped_target && (from_oid || !same_type)).then(HashMap::new)
}

/// Makes the field of every cast with a field of its own as nullable as its operand, and
/// stale schemas follow their expressions' nullability (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Nullability;

impl datafusion::optimizer::AnalyzerRule for Nullability {
    fn analyze(
        &self,
        plan: LogicalPlan,
        _config: &datafusion::common::config::ConfigOptions,
    ) -> DfResult<LogicalPlan> {
        // Schemas were computed when the statement was planned; rules since may have made a
        // column nullable (a checked operator is a function, nullable to DataFusion, where the
        // operator was not) without the projection's schema saying so, and the physical plan
        // then disagrees ("Physical input schema should be the same …" under DISTINCT or
        // GROUP BY). Such a projection, a union over it and the nodes above take their schemas
        // from their inputs again.
        let mut unions_changed = false;
        plan.transform_up_with_subqueries(|node| {
            let node = match node {
                LogicalPlan::Union(union) => {
                    // Only nullability follows the inputs; the planned names and types stay.
                    let fixed = crate::set_operations::with_inputs_nullability(union)?;
                    unions_changed |= fixed.transformed;
                    LogicalPlan::Union(fixed.data)
                }
                LogicalPlan::Projection(projection) => {
                    let input = projection.input.schema();
                    let stale = projection
                        .expr
                        .iter()
                        .zip(projection.schema.fields().iter())
                        .any(|(e, f)| e.nullable(input).is_ok_and(|n| n != f.is_nullable()));
                    if stale || unions_changed {
                        unions_changed = true;
                        LogicalPlan::Projection(projection).recompute_schema()?
                    } else {
                        LogicalPlan::Projection(projection)
                    }
                }
                LogicalPlan::Values(_) | LogicalPlan::TableScan(_) => node,
                other if unions_changed => other.recompute_schema()?,
                other => other,
            };
            let mut schema = merge_schema(&node.inputs());
            if let LogicalPlan::TableScan(scan) = &node {
                schema.merge(scan.projected_schema.as_ref());
            }
            let names = datafusion::logical_expr::expr_rewriter::NamePreserver::new(&node);
            node.map_expressions(|expr| {
                let saved = names.save(&expr);
                let nullable = |e: &Expr| !matches!(e.nullable(&schema), Ok(false));
                // `x IS TRUE` & co. of a nullable `x` are never NULL, but DataFusion's physical
                // form (`x IS NOT DISTINCT FROM true`) says nullable: as the coalesce they are,
                // both plans agree.
                let never_null = |e: Expr, negate: bool, otherwise: bool| {
                    let e = if negate { Expr::Not(Box::new(e)) } else { e };
                    datafusion::functions::expr_fn::coalesce(vec![
                        e,
                        datafusion::logical_expr::lit(otherwise),
                    ])
                };
                let rewritten = expr.transform_up(|e| match e {
                    Expr::Cast(Cast { expr, field })
                        if field.is_nullable()
                            && (!field.name().is_empty() || !field.metadata().is_empty())
                            && matches!(expr.nullable(&schema), Ok(false)) =>
                    {
                        let field = Arc::new(field.as_ref().clone().with_nullable(false));
                        Ok(Transformed::yes(Expr::Cast(Cast { expr, field })))
                    }
                    Expr::IsTrue(e) if nullable(&e) => {
                        Ok(Transformed::yes(never_null(*e, false, false)))
                    }
                    Expr::IsFalse(e) if nullable(&e) => {
                        Ok(Transformed::yes(never_null(*e, true, false)))
                    }
                    Expr::IsNotTrue(e) if nullable(&e) => {
                        Ok(Transformed::yes(never_null(*e, true, true)))
                    }
                    Expr::IsNotFalse(e) if nullable(&e) => {
                        Ok(Transformed::yes(never_null(*e, false, true)))
                    }
                    other => Ok(Transformed::no(other)),
                })?;
                Ok(rewritten.update_data(|e| saved.restore(e)))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "floe_nullability"
    }
}

/// Wraps every `CASE` of `plan` that loses its results' shared type tag.
pub(crate) fn keep_type_tags(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        let schema = merge_schema(&node.inputs());
        let names = datafusion::logical_expr::expr_rewriter::NamePreserver::new(&node);
        let node = node.map_expressions(|expr| {
            let saved = names.save(&expr);
            let rewritten = expr.transform_up(|e| match lost_tag(&e, &schema) {
                Some(tag) => Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(Arc::new(udf(tag)), vec![e]),
                ))),
                None => Ok(Transformed::no(e)),
            })?;
            Ok(rewritten.update_data(|e| saved.restore(e)))
        })?;
        // Children may have changed their fields: refresh this node's schema (a union's
        // fields take its first input's metadata, as the physical union's do; DataFusion's
        // recompute keeps a union's schema as it was).
        node.map_data(|n| match n {
            LogicalPlan::Values(_) => Ok(n),
            LogicalPlan::Union(union) => union_with_input_tags(union),
            LogicalPlan::Join(join)
                if matches!(
                    join.join_type,
                    datafusion::common::JoinType::LeftSemi | datafusion::common::JoinType::LeftAnti
                ) =>
            {
                set_operation_tags(LogicalPlan::Join(join).recompute_schema()?)
            }
            LogicalPlan::Unnest(_) => match n.recompute_schema()? {
                LogicalPlan::Unnest(unnest) => unnest_with_input_tags(unnest),
                other => Ok(other),
            },
            other => other.recompute_schema(),
        })
    })
    .map(|t| t.data)
}

/// `union` with each field's metadata taken from its first input's field, skipping inputs
/// whose column is an untyped literal (`SELECT 'x' UNION SELECT v`: PostgreSQL reads `'x'`
/// as `unknown` and the column is `v`'s type).
fn union_with_input_tags(union: datafusion::logical_expr::Union) -> DfResult<LogicalPlan> {
    let width = union.schema.fields().len();
    if union.inputs.is_empty()
        || union
            .inputs
            .iter()
            .any(|input| input.schema().fields().len() != width)
    {
        return Ok(LogicalPlan::Union(union));
    }
    let tags: Vec<_> = (0..width)
        .map(|i| {
            let typed = union
                .inputs
                .iter()
                .find(|input| !is_untyped_literal_column(input, i))
                .unwrap_or(&union.inputs[0]);
            typed.schema().field(i).metadata().clone()
        })
        .collect();
    if tags
        .iter()
        .zip(union.schema.fields().iter())
        .all(|(tag, field)| tag == field.metadata())
    {
        return Ok(LogicalPlan::Union(union));
    }
    let fields: Vec<_> = union
        .schema
        .iter()
        .zip(tags)
        .map(|((qualifier, field), tag)| {
            (
                qualifier.cloned(),
                Arc::new(field.as_ref().clone().with_metadata(tag)),
            )
        })
        .collect();
    let schema = DFSchema::new_with_metadata(fields, union.schema.metadata().clone())?;
    Ok(LogicalPlan::Union(datafusion::logical_expr::Union {
        inputs: union.inputs,
        schema: Arc::new(schema),
    }))
}

/// INTERSECT or EXCEPT (planned as a semi or anti join of its two sides, with the left side's
/// schema): a column whose left side is an untyped literal takes the right side's tag, as
/// PostgreSQL reads the literal as `unknown` (`SELECT 'a' EXCEPT SELECT v` is `v`'s type).
fn set_operation_tags(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    let LogicalPlan::Join(mut join) = plan else {
        return Ok(plan);
    };
    let width = join.schema.fields().len();
    // Without ALL, DataFusion made the left side distinct (a DISTINCT of the query's own
    // reads its literals as text, as PostgreSQL's does).
    let left = match join.left.as_ref() {
        LogicalPlan::Distinct(datafusion::logical_expr::Distinct::All(input)) => input.as_ref(),
        other => other,
    };
    if join.right.schema().fields().len() != width
        || !(0..width).any(|i| is_untyped_literal_column(left, i))
    {
        return Ok(LogicalPlan::Join(join));
    }
    let fields: Vec<_> = join
        .schema
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            let field = if is_untyped_literal_column(left, i) {
                field
                    .as_ref()
                    .clone()
                    .with_metadata(join.right.schema().field(i).metadata().clone())
            } else {
                field.as_ref().clone()
            };
            (qualifier.cloned(), Arc::new(field))
        })
        .collect();
    join.schema = Arc::new(DFSchema::new_with_metadata(
        fields,
        join.schema.metadata().clone(),
    )?);
    Ok(LogicalPlan::Join(join))
}

/// Whether column `i` of a union input is a string literal or NULL without a type of its own
/// (PostgreSQL's `unknown`), seen through the nodes that keep a column as it is.
fn is_untyped_literal_column(input: &LogicalPlan, i: usize) -> bool {
    match input {
        LogicalPlan::Projection(projection) => projection.expr.get(i).is_some_and(|e| {
            matches!(
                e.clone().unalias_nested().data,
                Expr::Literal(ScalarValue::Utf8(_) | ScalarValue::Null, None)
            )
        }),
        LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Filter(_) => input
            .inputs()
            .first()
            .is_some_and(|child| is_untyped_literal_column(child, i)),
        _ => false,
    }
}

/// `expr` whose field carries exactly `metadata` (none if it is empty), in the logical plan
/// and in the physical one alike.
pub(crate) fn with_metadata(expr: Expr, metadata: HashMap<String, String>) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(udf(metadata)), vec![expr]))
}

fn udf(metadata: HashMap<String, String>) -> ScalarUDF {
    ScalarUDF::new_from_impl(TypeTag {
        rule: FieldRule::Tag(metadata),
        signature: Signature::any(1, Volatility::Immutable),
    })
}

/// What [`TypeTag`] makes of its operand's field.
#[derive(Debug, PartialEq, Eq)]
enum FieldRule {
    /// Exactly this metadata.
    Tag(HashMap<String, String>),
    /// Nullable, metadata kept.
    Nullable,
}

/// `floe_type_tag(value)` (`floe_nullable(value)`): `value`, its field changed by `rule`.
#[derive(Debug, PartialEq, Eq)]
struct TypeTag {
    rule: FieldRule,
    signature: Signature,
}

impl Hash for TypeTag {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match &self.rule {
            FieldRule::Tag(metadata) => {
                let mut entries: Vec<_> = metadata.iter().collect();
                entries.sort();
                entries.hash(state);
            }
            FieldRule::Nullable => "nullable".hash(state),
        }
    }
}

impl ScalarUDFImpl for TypeTag {
    fn name(&self) -> &str {
        match self.rule {
            FieldRule::Tag(_) => TYPE_TAG,
            FieldRule::Nullable => "floe_nullable",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(arg_types.first().cloned().unwrap_or(DataType::Null))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let field = match args.arg_fields.first() {
            Some(field) => field.as_ref().clone(),
            None => Field::new(TYPE_TAG, DataType::Null, true),
        };
        Ok(Arc::new(match &self.rule {
            FieldRule::Tag(metadata) => field.with_metadata(metadata.clone()),
            FieldRule::Nullable => field.with_nullable(true),
        }))
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(args.args.swap_remove(0))
    }
}

/// Derived tables (`FROM (SELECT …) AS d`) and CTEs get their type tags as soon as they are planned, so
/// the statement around them sees them: `d.c ->> 'k'` over `CASE … THEN '{}'::jsonb END AS c`
/// was planned against a plain `text` column ("operator does not exist: text ->> unknown");
/// [`keep_type_tags`] runs over the whole statement only once it is planned.
#[derive(Debug, Default)]
pub(crate) struct DerivedTableTags;

thread_local! {
    /// Set while this planner asks DataFusion to plan a derived table: DataFusion offers that
    /// same table to the relation planners first, and this one then lets it through.
    static PLANNING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl datafusion::logical_expr::planner::RelationPlanner for DerivedTableTags {
    fn plan_relation(
        &self,
        relation: datafusion::sql::sqlparser::ast::TableFactor,
        context: &mut dyn datafusion::logical_expr::planner::RelationPlannerContext,
    ) -> DfResult<datafusion::logical_expr::planner::RelationPlanning> {
        use datafusion::logical_expr::planner::{PlannedRelation, RelationPlanning};
        use datafusion::sql::sqlparser::ast::TableFactor;
        // A table named in FROM may be a CTE, planned like a derived table.
        let ours = matches!(
            relation,
            TableFactor::Derived { .. } | TableFactor::Table { args: None, .. }
        ) && !PLANNING.get();
        if !ours {
            PLANNING.set(false);
            return Ok(RelationPlanning::Original(Box::new(relation)));
        }
        PLANNING.set(true);
        let plan = context.plan(relation);
        PLANNING.set(false);
        let plan = keep_type_tags(plan?)?;
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan, None,
        ))))
    }
}

/// `expr` as a nullable field (its tags kept), in the logical plan and in the physical one
/// alike.
pub(crate) fn nullable(expr: Expr) -> Expr {
    static UDF: std::sync::LazyLock<Arc<ScalarUDF>> = std::sync::LazyLock::new(|| {
        Arc::new(ScalarUDF::new_from_impl(TypeTag {
            rule: FieldRule::Nullable,
            signature: Signature::any(1, Volatility::Immutable),
        }))
    });
    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(&UDF), vec![expr]))
}
