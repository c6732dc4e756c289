//! Where JSON enters a statement: operators planned as function calls, casts of computed text
//! to `json`/`jsonb`, and set-returning functions in FROM.
//!
//! [`JsonOperators`] is an expression planner: DataFusion asks it about every binary operator
//! with both operands planned, so it sees their types. `->`, `->>`, `#>`, `#>>`, `?`, `?|`,
//! `?&` and `#-` exist only for JSON here; `@>` and `<@` are taken when an operand is JSON text
//! (arrays keep DataFusion's meaning); `||`, `-` and comparisons only when the left operand
//! (for `||` and comparisons, either operand) is `jsonb` and the other `jsonb` or an untyped
//! literal, as PostgreSQL resolves them. [`JsonbOrder`] makes `ORDER BY` sort `jsonb` values
//! in `jsonb`'s order.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{lit, Expr, ExprSchemable, LogicalPlan, ScalarUDF};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::sqlparser::ast::{self, BinaryOperator};

use super::{operator_name, Op};
use crate::types::SqlType;

/// Plans JSON operators as calls of this module's functions (see the module doc).
#[derive(Debug, Default)]
pub struct JsonOperators;

fn field_of(expr: &Expr, schema: &DFSchema) -> Option<FieldRef> {
    expr.to_field(schema).ok().map(|(_, f)| f)
}

/// What an operand is, as far as choosing an operator goes.
#[derive(Clone, Copy, PartialEq)]
enum Operand {
    Json,
    Jsonb,
    /// A string literal, or NULL: PostgreSQL's `unknown`, which takes the other side's type.
    Unknown,
    Text,
    Other,
}

/// The operand `expr` of `projection` is, looking through a column that only passes on what a
/// projection below computed (an ORDER BY in a subquery puts its projection under a Sort).
fn projected_operand(expr: &Expr, projection: &datafusion::logical_expr::Projection) -> Operand {
    let direct = operand(expr, projection.input.schema());
    let Expr::Column(column) = expr else {
        return direct;
    };
    if matches!(direct, Operand::Json | Operand::Jsonb) {
        return direct;
    }
    let mut plan = projection.input.as_ref();
    while let LogicalPlan::SubqueryAlias(_)
    | LogicalPlan::Limit(_)
    | LogicalPlan::Sort(_)
    | LogicalPlan::Filter(_) = plan
    {
        plan = plan.inputs()[0];
    }
    let LogicalPlan::Projection(below) = plan else {
        return direct;
    };
    below
        .expr
        .iter()
        .find(|e| e.schema_name().to_string() == column.name)
        .map(|e| {
            let e = match e {
                Expr::Alias(alias) => alias.expr.as_ref(),
                other => other,
            };
            projected_operand(e, below)
        })
        .unwrap_or(direct)
}

fn operand(expr: &Expr, schema: &DFSchema) -> Operand {
    // A CASE (or coalesce) is of its branches' type; DataFusion's field of it has no tag
    // while the statement is planned (`'{}'::jsonb || CASE … THEN j END` is jsonb's `||`).
    let branches: Option<Vec<&Expr>> = match expr {
        Expr::Case(case) => Some(
            case.when_then_expr
                .iter()
                .map(|(_, then)| then.as_ref())
                .chain(case.else_expr.as_deref())
                .collect(),
        ),
        Expr::ScalarFunction(f) if f.name() == "coalesce" => Some(f.args.iter().collect()),
        _ => None,
    };
    if let Some(branches) = branches {
        let typed: Vec<Operand> = branches
            .into_iter()
            .map(|b| operand(b, schema))
            .filter(|o| *o != Operand::Unknown)
            .collect();
        if let Some(first) = typed.first() {
            if matches!(first, Operand::Json | Operand::Jsonb) && typed.iter().all(|o| o == first) {
                return *first;
            }
        }
    }
    // A scalar subquery is of its column's type, which a CASE there has no tag of yet
    // (`'{}'::jsonb || (SELECT CASE … THEN '{}'::jsonb END)`).
    if let Expr::ScalarSubquery(subquery) = expr {
        let mut plan = subquery.subquery.as_ref();
        while let LogicalPlan::SubqueryAlias(_) | LogicalPlan::Limit(_) | LogicalPlan::Sort(_) =
            plan
        {
            plan = plan.inputs()[0];
        }
        if let LogicalPlan::Projection(projection) = plan {
            if let [only] = projection.expr.as_slice() {
                let only = match only {
                    Expr::Alias(alias) => alias.expr.as_ref(),
                    other => other,
                };
                let inner = projected_operand(only, projection);
                if matches!(inner, Operand::Json | Operand::Jsonb) {
                    return inner;
                }
            }
        }
    }
    if let Expr::Literal(value, None) = expr {
        if matches!(
            value,
            ScalarValue::Utf8(_) | ScalarValue::Utf8View(_) | ScalarValue::LargeUtf8(_)
        ) || value.is_null()
        {
            return Operand::Unknown;
        }
    }
    let Some(field) = field_of(expr, schema) else {
        return Operand::Other;
    };
    match SqlType::from_arrow_field(&field) {
        SqlType::Json => Operand::Json,
        SqlType::Jsonb => Operand::Jsonb,
        _ if matches!(
            field.data_type(),
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
        ) =>
        {
            Operand::Text
        }
        _ => Operand::Other,
    }
}

fn is_comparison(op: &BinaryOperator) -> bool {
    matches!(
        op,
        BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
    )
}

/// PostgreSQL's error for an operator its operand types do not have (42883), or have too
/// many of (42725, two untyped literals).
fn no_operator(
    op: &BinaryOperator,
    left: &Expr,
    right: &Expr,
    schema: &DFSchema,
    l: Operand,
    r: Operand,
) -> crate::SqlError {
    let name = |expr: &Expr, o: Operand| match o {
        Operand::Unknown => "unknown".to_string(),
        _ => field_of(expr, schema)
            .map(|f| SqlType::from_arrow_field(&f).name())
            .unwrap_or_else(|| "unknown".into()),
    };
    let (left, right) = (name(left, l), name(right, r));
    if l == Operand::Unknown && r == Operand::Unknown {
        return crate::SqlError::new(
            "42725",
            format!("operator is not unique: {left} {op} {right}"),
        );
    }
    crate::SqlError::new(
        crate::sqlstate::UNDEFINED_FUNCTION,
        format!("operator does not exist: {left} {op} {right}"),
    )
}

/// The function implementing `op`.
fn udf(op: Op) -> Arc<ScalarUDF> {
    let name = operator_name(op);
    Arc::new(ScalarUDF::new_from_impl(super::JsonFunction {
        name: name.to_string(),
        display: name,
        op,
        flavour: super::Flavour::OfOperand,
        signature: datafusion::logical_expr::Signature::user_defined(
            datafusion::logical_expr::Volatility::Immutable,
        ),
    }))
}

fn call(op: Op, left: Expr, right: Expr) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(udf(op), vec![left, right]))
}

impl ExprPlanner for JsonOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> DfResult<PlannerResult<RawBinaryExpr>> {
        let RawBinaryExpr { op, left, right } = expr;
        let (l, r) = (operand(&left, schema), operand(&right, schema));
        let json_like = |o: Operand| matches!(o, Operand::Json | Operand::Jsonb);
        let jsonb_pair = (l == Operand::Jsonb && matches!(r, Operand::Jsonb | Operand::Unknown))
            || (r == Operand::Jsonb && l == Operand::Unknown);
        let left_textual = json_like(l) || matches!(l, Operand::Unknown | Operand::Text);
        let json_only = matches!(
            op,
            BinaryOperator::Arrow
                | BinaryOperator::LongArrow
                | BinaryOperator::HashArrow
                | BinaryOperator::HashLongArrow
                | BinaryOperator::Question
                | BinaryOperator::QuestionPipe
                | BinaryOperator::QuestionAnd
                | BinaryOperator::HashMinus
        );
        // Text is not JSON to PostgreSQL; two literals could be json or jsonb.
        let both_types = matches!(
            op,
            BinaryOperator::Arrow
                | BinaryOperator::LongArrow
                | BinaryOperator::HashArrow
                | BinaryOperator::HashLongArrow
        );
        // Only where the text is surely text: DataFusion's CASE and subqueries drop the JSON
        // types' tags while planning (`crate::type_tags`).
        let surely_text = l == Operand::Text
            && match &left {
                Expr::Column(_) | Expr::Cast(_) => true,
                Expr::ScalarFunction(f) => f.name().ends_with("_text"),
                _ => false,
            };
        if json_only && surely_text
            || both_types && l == Operand::Unknown && r == Operand::Unknown
            || l == Operand::Json && r == Operand::Json && is_comparison(&op)
        {
            return Err(no_operator(&op, &left, &right, schema, l, r).into());
        }
        let function = match op {
            BinaryOperator::Arrow if left_textual => Op::Field,
            BinaryOperator::LongArrow if left_textual => Op::FieldText,
            BinaryOperator::HashArrow if left_textual => Op::Path,
            BinaryOperator::HashLongArrow if left_textual => Op::PathText,
            BinaryOperator::Question if left_textual => Op::Exists,
            BinaryOperator::QuestionPipe if left_textual => Op::ExistsAny,
            BinaryOperator::QuestionAnd if left_textual => Op::ExistsAll,
            BinaryOperator::HashMinus if left_textual => Op::DeletePath,
            BinaryOperator::AtArrow if json_like(l) || json_like(r) => Op::Contains,
            BinaryOperator::ArrowAt if json_like(l) || json_like(r) => Op::ContainedBy,
            BinaryOperator::StringConcat if jsonb_pair => Op::Concat,
            BinaryOperator::Minus if l == Operand::Jsonb => Op::Delete,
            BinaryOperator::Eq
            | BinaryOperator::NotEq
            | BinaryOperator::Lt
            | BinaryOperator::LtEq
            | BinaryOperator::Gt
            | BinaryOperator::GtEq
                if jsonb_pair =>
            {
                Op::Compare
            }
            _ => return Ok(PlannerResult::Original(RawBinaryExpr { op, left, right })),
        };
        let planned = call(function, left, right);
        if function != Op::Compare {
            return Ok(PlannerResult::Planned(planned));
        }
        let zero = lit(0i32);
        Ok(PlannerResult::Planned(match op {
            BinaryOperator::Eq => planned.eq(zero),
            BinaryOperator::NotEq => planned.not_eq(zero),
            BinaryOperator::Lt => planned.lt(zero),
            BinaryOperator::LtEq => planned.lt_eq(zero),
            BinaryOperator::Gt => planned.gt(zero),
            _ => planned.gt_eq(zero),
        }))
    }
}

/// The JSON type a SQL type names (`Some(true)` for `jsonb`).
fn json_type(data_type: &ast::DataType) -> Option<bool> {
    match data_type {
        ast::DataType::JSON => Some(false),
        ast::DataType::JSONB => Some(true),
        ast::DataType::Custom(name, _) => match name.to_string().to_ascii_lowercase().as_str() {
            "json" => Some(false),
            "jsonb" => Some(true),
            _ => None,
        },
        _ => None,
    }
}

/// `x::jsonb` of a computed `x` as a call that reads the text as JSON (DataFusion's cast
/// would take any text as is). Literals are read while rewriting (`crate::rewrite`), and
/// placeholders and NULL need no reading.
pub(crate) fn cast_input(expr: &ast::Expr) -> Option<ast::Expr> {
    let ast::Expr::Cast {
        expr: inner,
        data_type,
        array: false,
        format: None,
        ..
    } = expr
    else {
        return None;
    };
    let binary = json_type(data_type)?;
    if let ast::Expr::Value(_) = inner.as_ref() {
        return None;
    }
    let name = if binary { "jsonb" } else { "json" };
    Some(crate::rewrite::call(
        &format!("floe_{name}_in"),
        vec![inner.as_ref().clone()],
    ))
}

/// A JSON set-returning function in FROM as `unnest(…)` of the lists this module's functions
/// return, with PostgreSQL's column names (`value`; `key, value`; the function's name).
pub(crate) fn table_function(factor: &ast::TableFactor) -> Option<ast::TableFactor> {
    let ast::TableFactor::Table {
        name,
        args: Some(args),
        alias,
        with_ordinality: false,
        ..
    } = factor
    else {
        return None;
    };
    if name.0.len() != 1 {
        return None;
    }
    let function = name.0[0].as_ident()?.value.to_ascii_lowercase();
    let arguments: Vec<ast::Expr> = args
        .args
        .iter()
        .map(|a| match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let (calls, columns): (Vec<ast::Expr>, Vec<&str>) = match function.as_str() {
        "jsonb_array_elements"
        | "json_array_elements"
        | "jsonb_array_elements_text"
        | "json_array_elements_text" => (
            vec![crate::rewrite::call(&function, arguments)],
            vec!["value"],
        ),
        "jsonb_object_keys" | "json_object_keys" => (
            vec![crate::rewrite::call(&function, arguments)],
            vec![function.as_str()],
        ),
        "jsonb_each" | "json_each" | "jsonb_each_text" | "json_each_text" => (
            vec![
                crate::rewrite::call(&format!("floe_{function}_keys"), arguments.clone()),
                crate::rewrite::call(&format!("floe_{function}_values"), arguments),
            ],
            vec!["key", "value"],
        ),
        _ => return None,
    };
    let mut alias = alias.clone().unwrap_or_else(|| ast::TableAlias {
        explicit: true,
        name: ast::Ident::new(function.clone()),
        columns: vec![],
        at: None,
    });
    if alias.columns.is_empty() {
        // A function without an OUT parameter (`jsonb_object_keys`) names its column after
        // the alias.
        alias.columns = if columns == [function.as_str()] {
            vec![ast::TableAliasColumnDef::from_name(
                alias.name.value.clone(),
            )]
        } else {
            columns
                .into_iter()
                .map(ast::TableAliasColumnDef::from_name)
                .collect()
        };
    }
    let unnest = ast::TableFactor::UNNEST {
        alias: Some(alias.clone()),
        array_exprs: calls,
        with_offset: false,
        with_offset_alias: None,
        with_ordinality: false,
    };
    let Some(tag) = super::element_tag(&function) else {
        return Some(unnest);
    };
    // `unnest` drops the elements' type tag: `(SELECT key, tag(value) AS value FROM unnest(…)
    // AS srf (key, value)) AS alias`.
    let names: Vec<&str> = alias
        .columns
        .iter()
        .map(|c| c.name.value.as_str())
        .collect();
    let last = names.len().checked_sub(1)?;
    let items: Vec<String> = (0..names.len())
        .map(|i| {
            let column = format!("c{i}");
            if i == last {
                format!("{tag}({column}) AS {column}")
            } else {
                column
            }
        })
        .collect();
    let columns: Vec<String> = (0..names.len()).map(|i| format!("c{i}")).collect();
    let mut query = crate::sqlbuild::template_query(&format!(
        "SELECT {} FROM unnest(NULL) AS floe_srf ({})",
        items.join(", "),
        columns.join(", ")
    ))
    .ok()?;
    let select = crate::sqlbuild::select_mut(&mut query).ok()?;
    let ast::TableFactor::UNNEST { array_exprs, .. } = &mut select.from.first_mut()?.relation
    else {
        return None;
    };
    let ast::TableFactor::UNNEST {
        array_exprs: calls, ..
    } = unnest
    else {
        return None;
    };
    *array_exprs = calls;
    Some(ast::TableFactor::Derived {
        lateral: false,
        subquery: Box::new(query),
        alias: Some(alias),
        sample: None,
    })
}

/// `ORDER BY` of `jsonb` values in `jsonb`'s order (`[] < null < "a" < 1 < true < [1] < {}`,
/// numbers by value), not in the order of their text: an analyzer rule that sorts by
/// [`super::value::Jsonb::sort_key`].
#[derive(Debug, Default)]
pub struct JsonbOrder;

impl AnalyzerRule for JsonbOrder {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            if let LogicalPlan::Window(_) = &node {
                return window_order(node);
            }
            let LogicalPlan::Sort(mut sort) = node else {
                return Ok(Transformed::no(node));
            };
            let schema = Arc::clone(sort.input.schema());
            let changed = jsonb_sort_keys(&mut sort.expr, &schema);
            let node = LogicalPlan::Sort(sort);
            Ok(if changed {
                Transformed::yes(node)
            } else {
                Transformed::no(node)
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "floe_jsonb_order"
    }
}

/// Sorts the `jsonb` keys of `keys` by [`super::value::Jsonb::sort_key`]; whether any was.
fn jsonb_sort_keys(keys: &mut [datafusion::logical_expr::SortExpr], schema: &DFSchema) -> bool {
    let mut changed = false;
    for key in keys.iter_mut() {
        if operand(&key.expr, schema) == Operand::Jsonb {
            let value = std::mem::replace(&mut key.expr, lit(0i32));
            key.expr = Expr::ScalarFunction(ScalarFunction::new_udf(udf(Op::SortKey), vec![value]));
            changed = true;
        }
    }
    changed
}

/// The `ORDER BY` of window functions (`rank() OVER (ORDER BY j)`) in `jsonb`'s order too.
fn window_order(node: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    let schema = datafusion::logical_expr::utils::merge_schema(&node.inputs());
    let names = datafusion::logical_expr::expr_rewriter::NamePreserver::new(&node);
    node.map_expressions(|expr| {
        let saved = names.save(&expr);
        let rewritten = expr.transform_up(|e| {
            let Expr::WindowFunction(mut window) = e else {
                return Ok(Transformed::no(e));
            };
            let changed = jsonb_sort_keys(&mut window.params.order_by, &schema);
            Ok(Transformed::new_transformed(
                Expr::WindowFunction(window),
                changed,
            ))
        })?;
        Ok(rewritten.update_data(|e| saved.restore(e)))
    })
}

/// `jsonb` cast to a number or a boolean (`(j -> 'n')::int`) as PostgreSQL casts it: only a
/// JSON number becomes a number (integers rounded from it, `'1.5'::jsonb::int` is 2) and only
/// a JSON boolean a boolean; anything else is 22023 ("cannot cast jsonb string to type
/// integer"). The cast's operand becomes the scalar's text, checked; the cast itself stays.
/// Runs before type coercion, so numeric targets get Floe's numeric casts.
#[derive(Debug, Default)]
pub struct JsonbCasts;

/// PostgreSQL's name of a cast target `jsonb` converts to, if it is one.
fn scalar_target(field: &datafusion::arrow::datatypes::Field) -> Option<&'static str> {
    Some(match field.data_type() {
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        DataType::Int64 => "bigint",
        DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Boolean => "boolean",
        DataType::Decimal128(..) | DataType::LargeBinary => "numeric",
        _ => return None,
    })
}

impl AnalyzerRule for JsonbCasts {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            let schema = datafusion::logical_expr::utils::merge_schema(&node.inputs());
            let names = datafusion::logical_expr::expr_rewriter::NamePreserver::new(&node);
            node.map_expressions(|expr| {
                let saved = names.save(&expr);
                let rewritten = expr.transform_up(|e| {
                    let Expr::Cast(cast) = &e else {
                        return Ok(Transformed::no(e));
                    };
                    let Some(target) = scalar_target(&cast.field) else {
                        return Ok(Transformed::no(e));
                    };
                    if operand(&cast.expr, &schema) != Operand::Jsonb {
                        return Ok(Transformed::no(e));
                    }
                    let Expr::Cast(cast) = e else {
                        return Ok(Transformed::no(e));
                    };
                    let scalar = Expr::ScalarFunction(ScalarFunction::new_udf(
                        udf(Op::ScalarText),
                        vec![*cast.expr, lit(target)],
                    ));
                    Ok(Transformed::yes(Expr::Cast(
                        datafusion::logical_expr::expr::Cast::new_from_field(
                            Box::new(scalar),
                            cast.field,
                        ),
                    )))
                })?;
                Ok(rewritten.update_data(|e| saved.restore(e)))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "floe_jsonb_casts"
    }
}
