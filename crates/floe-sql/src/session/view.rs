//! Views and CREATE TABLE AS.
//!
//! A view is a catalog relation ([`RelationKind::View`]) holding its query as SQL text, its
//! columns (names and types fixed at creation, so `SELECT *` means the columns that existed
//! then, as in PostgreSQL) and the OIDs of the relations it reads. Views have no rows: before a
//! statement is planned, every reference to a view is replaced by its query as a derived table
//! aliased with the view's name and column names ([`Session::expand_views`]), recursively for
//! views over views. The dependencies make `DROP TABLE` of a table a view reads fail with
//! 2BP01 unless CASCADE, which drops the views too.
//!
//! CREATE TABLE AS (and `SELECT … INTO`) plans the query, derives column types from its result
//! as CREATE TABLE would store them, and writes the definition and the rows in one commit.
//!
//! Departures from PostgreSQL, for now: views are not automatically updatable (INSERT, UPDATE
//! and DELETE on a view fail with 55000); view text is resolved again at every use, so renaming
//! or dropping a column of a table a view reads breaks the view instead of being refused.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::Field;
use datafusion::sql::sqlparser::ast::{
    self, AlterTable, AlterTableOperation, CreateTable, Ident, ObjectName, Query, Statement,
    TableAlias, TableAliasColumnDef, TableFactor, Visit, VisitMut, Visitor, VisitorMut,
};
use floe_storage::{
    CatalogChange, ColumnDef, Persistence, RelationKind, TableCodec, TableData, TableDef,
};

use super::ddl::ident_name;
use super::{Notice, Session, StatementResult};
use crate::error::{sqlstate, SqlError, SqlResult};
use crate::types::{SqlType, PG_TYPMOD_KEY};

/// How deep views may nest before we call it a cycle (PostgreSQL reports infinite recursion).
const MAX_VIEW_DEPTH: usize = 64;

/// The field a result column is stored as: its PostgreSQL type's storage form, nullable.
fn stored_field(name: &str, field: &Field) -> Field {
    let sql_type = match field.data_type() {
        datafusion::arrow::datatypes::DataType::Null => SqlType::Text,
        _ => SqlType::from_arrow_field(field),
    };
    let canonical = sql_type.to_arrow_field(name);
    let same_type = canonical.data_type() == field.data_type();
    let decimal = matches!(
        field.data_type(),
        datafusion::arrow::datatypes::DataType::Decimal128(..)
    );
    if same_type || decimal {
        // Keep type tags and typmods (varchar(20), numeric(10,2)) of passed-through columns.
        let mut metadata = canonical.metadata().clone();
        for (k, v) in field.metadata() {
            if k == PG_TYPMOD_KEY || !metadata.contains_key(k) {
                metadata.insert(k.clone(), v.clone());
            }
        }
        Field::new(name, field.data_type().clone(), true).with_metadata(metadata)
    } else {
        canonical.with_nullable(true)
    }
}

/// Column definitions for a query's result, with `names` replacing the first names.
fn result_columns(
    schema: &datafusion::arrow::datatypes::Schema,
    names: &[String],
    too_many: &str,
) -> SqlResult<Vec<ColumnDef>> {
    if names.len() > schema.fields().len() {
        return Err(SqlError::syntax(too_many.to_string()));
    }
    let mut seen = HashSet::new();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let name = names
            .get(i)
            .cloned()
            .unwrap_or_else(|| crate::colnames::display_name(field.name()).to_string());
        if !seen.insert(name.clone()) {
            return Err(SqlError::new(
                sqlstate::DUPLICATE_COLUMN,
                format!("column \"{name}\" specified more than once"),
            ));
        }
        columns.push(ColumnDef {
            id: i as u32 + 1,
            field: stored_field(&name, field),
            name,
            default: None,
            identity: None,
        });
    }
    Ok(columns)
}

pub(super) fn kind_word(def: &TableDef) -> &'static str {
    match def.kind {
        RelationKind::Table => "table",
        RelationKind::View { .. } => "view",
        RelationKind::MaterializedView { .. } => "materialized view",
        RelationKind::Sequence(_) => "sequence",
    }
}

impl Session {
    /// `CREATE [OR REPLACE] VIEW name [(columns)] AS query`.
    pub(super) async fn create_view(
        &mut self,
        create: ast::CreateView,
    ) -> SqlResult<StatementResult> {
        if create.materialized {
            return self.create_materialized_view(create).await;
        }
        // A view that reads a temporary relation is temporary itself, as in PostgreSQL.
        let depends_on = self.referenced_relations(&create.query)?;
        let temporary = create.temporary || self.reads_temporary(&depends_on);
        let (schema, name, persistence) =
            self.creation_target(&create.name, temporary, None).await?;
        if temporary && !create.temporary {
            self.notice(format!("view \"{name}\" will be a temporary view"));
        }
        let existing = self
            .db()
            .catalog()
            .relation_by_name(&self.database, &schema, &name)
            .cloned();
        if let Some(existing) = &existing {
            let is_view = matches!(existing.kind, RelationKind::View { .. });
            if create.if_not_exists {
                self.notice(format!("relation \"{name}\" already exists, skipping"));
                return Ok(StatementResult::Command("CREATE VIEW".into()));
            }
            if !create.or_replace {
                return Err(SqlError::new(
                    sqlstate::DUPLICATE_TABLE,
                    format!("relation \"{name}\" already exists"),
                ));
            }
            if !is_view {
                return Err(SqlError::new(
                    sqlstate::WRONG_OBJECT_TYPE,
                    format!("\"{name}\" is not a view"),
                ));
            }
        }
        let columns = self
            .view_columns(
                &Statement::Query(create.query.clone()),
                &create.columns,
                "CREATE VIEW specifies more column names than columns",
            )
            .await?;
        if let Some(existing) = &existing {
            check_replacement(existing, &columns)?;
        }
        let id = match &existing {
            Some(existing) => existing.id,
            None => self.db().allocate_oid(),
        };
        let next_column_id = columns.len() as u32 + 1;
        let def = TableDef {
            id,
            database: self.database.clone(),
            schema,
            name,
            kind: RelationKind::View {
                query: create.query.to_string(),
                depends_on,
            },
            columns,
            primary_key: None,
            constraints: vec![],
            indexes: vec![],
            next_column_id,
            persistence,
        };
        self.commit_ddl(vec![CatalogChange::PutRelation(Arc::new(def))])
            .await?;
        Ok(StatementResult::Command("CREATE VIEW".into()))
    }

    /// The columns of a view defined by `statement` (a query without parameters), named by
    /// `names` first.
    pub(super) async fn view_columns(
        &self,
        statement: &Statement,
        names: &[ast::ViewColumnDef],
        too_many: &str,
    ) -> SqlResult<Vec<ColumnDef>> {
        let plan = self.plan_query(statement, &[]).await?;
        if !plan.get_parameter_fields()?.is_empty() {
            return Err(SqlError::new(
                sqlstate::UNDEFINED_PARAMETER,
                "there is no parameter $1",
            ));
        }
        let output = super::plan_output_schema(&plan);
        let names: Vec<String> = names.iter().map(|c| ident_name(&c.name)).collect();
        result_columns(&output, &names, too_many)
    }

    /// The catalog relations a query names (not its CTEs), by OID.
    pub(super) fn referenced_relations(&self, query: &Query) -> SqlResult<Vec<u32>> {
        struct Names {
            ctes: HashSet<String>,
            relations: Vec<ObjectName>,
        }
        impl Visitor for Names {
            type Break = ();
            fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
                if let Some(with) = &query.with {
                    for cte in &with.cte_tables {
                        self.ctes.insert(ident_name(&cte.alias.name));
                    }
                }
                ControlFlow::Continue(())
            }
            fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
                self.relations.push(relation.clone());
                ControlFlow::Continue(())
            }
        }
        let mut names = Names {
            ctes: HashSet::new(),
            relations: vec![],
        };
        let _ = query.visit(&mut names);
        let mut ids = Vec::new();
        for relation in &names.relations {
            if relation.0.len() == 1 {
                if let Some(ident) = relation.0[0].as_ident() {
                    if names.ctes.contains(&ident_name(ident)) {
                        continue;
                    }
                }
            }
            if let Ok(Some(def)) = self.find_relation(relation) {
                if !ids.contains(&def.id) {
                    ids.push(def.id);
                }
            }
        }
        Ok(ids)
    }

    /// Views that read any of `ids`, directly or through other views, not counting `ids`.
    pub(super) fn dependent_views(&self, ids: &[u32]) -> Vec<Arc<TableDef>> {
        let catalog = self.db().catalog();
        let mut found: Vec<Arc<TableDef>> = Vec::new();
        let mut frontier: Vec<u32> = ids.to_vec();
        while let Some(id) = frontier.pop() {
            for relation in catalog.relations() {
                if relation.kind.depends_on().contains(&id)
                    && !ids.contains(&relation.id)
                    && !found.iter().any(|f| f.id == relation.id)
                {
                    found.push(relation.clone());
                    frontier.push(relation.id);
                }
            }
        }
        found
    }

    /// Dropping `def` (and `also_dropped`): the views that go with it under CASCADE, or the
    /// 2BP01 error without it.
    pub(super) fn drop_dependents(
        &mut self,
        def: &TableDef,
        also_dropped: &[u32],
        cascade: bool,
    ) -> SqlResult<Vec<Arc<TableDef>>> {
        let mut ids = vec![def.id];
        ids.extend_from_slice(also_dropped);
        let dependents = self.dependent_views(&ids);
        if dependents.is_empty() {
            return Ok(dependents);
        }
        if !cascade {
            let detail: Vec<String> = dependents
                .iter()
                .map(|v| {
                    format!(
                        "{} {} depends on {} {}",
                        kind_word(v),
                        v.name,
                        if def.is_materialized_view() {
                            "materialized view"
                        } else if v.kind == def.kind || !def.is_table() {
                            "view"
                        } else {
                            kind_word(def)
                        },
                        def.name
                    )
                })
                .collect();
            return Err(SqlError::new(
                sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
                format!(
                    "cannot drop {} {} because other objects depend on it",
                    kind_word(def),
                    def.name
                ),
            )
            .with_detail(detail.join("\n"))
            .with_hint("Use DROP ... CASCADE to drop the dependent objects too."));
        }
        for view in &dependents {
            self.notices.push(Notice {
                severity: "NOTICE",
                code: sqlstate::SUCCESSFUL_COMPLETION,
                message: format!("drop cascades to {} {}", kind_word(view), view.name),
            });
        }
        Ok(dependents)
    }

    /// `ALTER VIEW v RENAME TO w` (also `ALTER TABLE v RENAME TO w`).
    pub(super) async fn alter_view(
        &mut self,
        def: Arc<TableDef>,
        alter: AlterTable,
    ) -> SqlResult<StatementResult> {
        let mut new_def = (*def).clone();
        for operation in alter.operations {
            match operation {
                AlterTableOperation::RenameTable { table_name } => {
                    new_def.name = self.renamed_relation(&def, table_name)?;
                }
                AlterTableOperation::RenameColumn {
                    old_column_name,
                    new_column_name,
                } => {
                    super::alter::rename_column(
                        &mut new_def,
                        &ident_name(&old_column_name),
                        &ident_name(&new_column_name),
                    )?;
                }
                _ => {
                    return Err(SqlError::new(
                        sqlstate::WRONG_OBJECT_TYPE,
                        format!("\"{}\" is not a table", def.name),
                    ))
                }
            }
        }
        self.commit_ddl(vec![CatalogChange::PutRelation(Arc::new(new_def))])
            .await?;
        Ok(StatementResult::Command(
            if def.is_materialized_view() {
                "ALTER MATERIALIZED VIEW"
            } else {
                "ALTER VIEW"
            }
            .into(),
        ))
    }

    /// Replaces every reference to a view in `statement` by the view's query.
    /// A materialized view is expanded too when it has no running maintenance (see
    /// [`crate::matview`]); otherwise it is read as a relation.
    pub(super) fn expand_views(&self, statement: &mut Statement) -> SqlResult<()> {
        self.expand_views_at(statement, 0, true, false)
    }

    /// [`Session::expand_views`], materialized views always expanded: a materialized view's
    /// maintenance reads the base tables under the views it reads.
    pub(super) fn expand_all_views(&self, statement: &mut Statement) -> SqlResult<()> {
        self.expand_views_at(statement, 0, false, true)
    }

    /// Expands the views `statement` reads, `depth` views deep; `temporary`: whether its bare
    /// names may mean temporary relations (not in a permanent view's query).
    fn expand_views_at(
        &self,
        statement: &mut Statement,
        depth: usize,
        temporary: bool,
        materialized: bool,
    ) -> SqlResult<()> {
        let mut expander = ViewExpander {
            session: self,
            default_schema: self.search_path().into_iter().next(),
            ctes: HashSet::new(),
            depth,
            temporary,
            materialized,
            qualify_only: false,
            error: None,
        };
        let _ = statement.visit(&mut expander);
        match expander.error {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Names every relation `query` reads by its schema too (keeping the bare name as the
    /// range variable), so the text means the same relations under any `search_path`; views
    /// stay as they are.
    pub(super) fn qualify_relations(&self, query: &mut Query) -> SqlResult<()> {
        let mut qualifier = ViewExpander {
            session: self,
            default_schema: None,
            ctes: HashSet::new(),
            depth: 0,
            temporary: true,
            materialized: false,
            qualify_only: true,
            error: None,
        };
        let _ = query.visit(&mut qualifier);
        match qualifier.error {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// The query of view `def`, with the views it reads expanded.
    fn view_query(
        &self,
        def: &TableDef,
        query: &str,
        depth: usize,
        materialized: bool,
    ) -> SqlResult<Box<Query>> {
        if depth >= MAX_VIEW_DEPTH {
            return Err(SqlError::new(
                sqlstate::INVALID_OBJECT_DEFINITION,
                format!(
                    "infinite recursion detected in rules for relation \"{}\"",
                    def.name
                ),
            ));
        }
        let mut statement = self
            .parse(query)?
            .pop()
            .ok_or_else(|| SqlError::internal("view has no query"))?;
        self.expand_views_at(&mut statement, depth + 1, def.is_temporary(), materialized)?;
        match statement {
            Statement::Query(query) => Ok(query),
            _ => Err(SqlError::internal("view definition is not a query")),
        }
    }

    /// `CREATE TABLE t [(names)] AS query`.
    pub(super) async fn create_table_as(
        &mut self,
        create: CreateTable,
    ) -> SqlResult<StatementResult> {
        let Some(query) = create.query.clone() else {
            return Err(SqlError::internal("CREATE TABLE AS without a query"));
        };
        let names: Vec<String> = create.columns.iter().map(|c| ident_name(&c.name)).collect();
        let (schema, name, persistence) = self
            .creation_target(&create.name, create.temporary, create.on_commit)
            .await?;
        self.create_table_from_query(
            (schema, name, persistence),
            &names,
            *query,
            create.if_not_exists,
        )
        .await
    }

    /// `SELECT … INTO t FROM …`.
    pub(super) async fn select_into(&mut self, mut query: Query) -> SqlResult<StatementResult> {
        let into = match query.body.as_mut() {
            ast::SetExpr::Select(select) => select.into.take(),
            _ => None,
        };
        let Some(into) = into else {
            return Err(SqlError::internal("SELECT INTO without INTO"));
        };
        let target = self
            .creation_target(&into.name, into.temporary, None)
            .await?;
        self.create_table_from_query(target, &[], query, false)
            .await
    }

    /// Creates table `target` (schema, name, persistence) with `query`'s rows.
    async fn create_table_from_query(
        &mut self,
        target: (String, String, Persistence),
        names: &[String],
        query: Query,
        if_not_exists: bool,
    ) -> SqlResult<StatementResult> {
        let (schema, table_name, persistence) = target;
        if self
            .db()
            .catalog()
            .relation_by_name(&self.database, &schema, &table_name)
            .is_some()
        {
            if if_not_exists {
                self.notice(format!(
                    "relation \"{table_name}\" already exists, skipping"
                ));
                return Ok(StatementResult::Command("CREATE TABLE AS".into()));
            }
            return Err(SqlError::new(
                sqlstate::DUPLICATE_TABLE,
                format!("relation \"{table_name}\" already exists"),
            ));
        }
        let statement = Statement::Query(Box::new(query));
        let plan = self.plan_query(&statement, &[]).await?;
        if !plan.get_parameter_fields()?.is_empty() {
            return Err(SqlError::new(
                sqlstate::UNDEFINED_PARAMETER,
                "there is no parameter $1",
            ));
        }
        let output = super::plan_output_schema(&plan);
        let mut columns = result_columns(&output, names, "too many column names were specified")?;
        for column in &mut columns {
            // An expression's fixed-point type (`price * 2`, `1.5 * 2`) is DataFusion's, not
            // a typmod PostgreSQL gives the column: it is an unconstrained numeric (stored as
            // `Decimal128(p, s)`, `1.23456` would become `1.2`). Columns and casts carry
            // their typmod and stay fixed-point.
            let fixed = matches!(
                column.field.data_type(),
                datafusion::arrow::datatypes::DataType::Decimal128(..)
            );
            if fixed && !column.field.metadata().contains_key(PG_TYPMOD_KEY) {
                column.field = crate::numeric::numeric_field(&column.name, None);
            }
        }
        let next_column_id = columns.len() as u32 + 1;
        let def = Arc::new(TableDef {
            id: self.db().allocate_oid(),
            database: self.database.clone(),
            schema,
            name: table_name,
            kind: RelationKind::Table,
            columns,
            primary_key: None,
            constraints: vec![],
            indexes: vec![],
            next_column_id,
            persistence,
        });
        let data = Arc::new(TableData::new(def.clone())?);

        let view = self.read_view().await;
        let batches = self.collect_plan(&plan, view).await?;

        let mut txn = self.statement_txn().await?;
        let result = fill_created(&mut txn, def, data, batches).await;
        let count = self.finish_statement_txn(txn, result).await?;
        Ok(StatementResult::Command(format!("SELECT {count}")))
    }
}

/// Writes a new table's rows and its definition into `txn`; the number of rows.
async fn fill_created(
    txn: &mut floe_storage::Txn,
    def: Arc<TableDef>,
    data: Arc<TableData>,
    batches: Vec<datafusion::arrow::array::RecordBatch>,
) -> SqlResult<usize> {
    let storage_schema = data.codec.schema().clone();
    {
        let mut count = 0usize;
        for batch in batches {
            let mut arrays: Vec<ArrayRef> = Vec::with_capacity(storage_schema.fields().len());
            for (i, field) in storage_schema.fields().iter().enumerate() {
                let column = batch.column(i);
                arrays.push(if column.data_type() == field.data_type() {
                    column.clone()
                } else if crate::numeric::is_numeric_field_type(field.data_type()) {
                    crate::numeric::functions::to_wide(column)?
                } else {
                    cast(column, field.data_type())?
                });
            }
            let rows = data.codec.encode_rows(&arrays)?;
            for i in 0..batch.num_rows() {
                let key = TableCodec::rowid_key(data.next_rowid());
                txn.write(&data, key, Some(Arc::from(rows.row(i).data())))
                    .await?;
                count += 1;
            }
        }
        txn.change_catalog(CatalogChange::PutRelation(def))?;
        Ok(count)
    }
}

/// CREATE OR REPLACE VIEW may only add columns at the end, as in PostgreSQL.
fn check_replacement(existing: &TableDef, columns: &[ColumnDef]) -> SqlResult<()> {
    if columns.len() < existing.columns.len() {
        return Err(SqlError::new(
            sqlstate::INVALID_TABLE_DEFINITION,
            "cannot drop columns from view",
        ));
    }
    for (old, new) in existing.columns.iter().zip(columns) {
        if old.name != new.name {
            return Err(SqlError::new(
                sqlstate::INVALID_TABLE_DEFINITION,
                format!(
                    "cannot change name of view column \"{}\" to \"{}\"",
                    old.name, new.name
                ),
            )
            .with_hint(
                "Use ALTER VIEW ... RENAME COLUMN ... to change name of view column instead.",
            ));
        }
        let (old_type, new_type) = (
            SqlType::from_arrow_field(&old.field),
            SqlType::from_arrow_field(&new.field),
        );
        if old_type != new_type {
            return Err(SqlError::new(
                sqlstate::INVALID_TABLE_DEFINITION,
                format!(
                    "cannot change data type of view column \"{}\" from {} to {}",
                    old.name,
                    old_type.name(),
                    new_type.name()
                ),
            ));
        }
    }
    Ok(())
}

/// Replaces views by their queries and qualifies bare names of relations outside the first
/// schema of `search_path`, temporary ones included (which DataFusion, resolving bare names in
/// one default schema, would not find or would resolve to a relation they hide).
struct ViewExpander<'a> {
    session: &'a Session,
    /// The schema DataFusion resolves bare names in (the first existing one of search_path).
    default_schema: Option<String>,
    ctes: HashSet<String>,
    depth: usize,
    /// Whether bare names may mean temporary relations.
    temporary: bool,
    /// Whether materialized views are expanded even when maintained.
    materialized: bool,
    /// Only name every relation by its schema, expanding nothing ([`Session::qualify_relations`]).
    qualify_only: bool,
    error: Option<SqlError>,
}

impl VisitorMut for ViewExpander<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(ident_name(&cte.alias.name));
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        if let [part] = name.0.as_slice() {
            if part
                .as_ident()
                .is_some_and(|i| self.ctes.contains(&ident_name(i)))
            {
                return ControlFlow::Continue(());
            }
        }
        // Another session's temporary schema is refused here (DataFusion would read it).
        if let [.., schema, _] = name.0.as_slice() {
            if let Some(schema) = schema.as_ident() {
                if let Err(err) = self.session.check_schema_access(&ident_name(schema)) {
                    self.error = Some(err);
                    return ControlFlow::Break(());
                }
            }
        }
        // Unknown names are left for the planner to report.
        let Ok(Some(def)) = self.session.find_relation_with(name, self.temporary) else {
            return ControlFlow::Continue(());
        };
        if self.qualify_only {
            if let [bare] = name.0.as_slice() {
                if let Some(bare) = bare.as_ident().cloned() {
                    if alias.is_none() {
                        *alias = Some(TableAlias {
                            explicit: true,
                            name: bare,
                            columns: vec![],
                            at: None,
                        });
                    }
                    *name = ObjectName::from(vec![
                        super::matview::name_ident(&def.schema),
                        super::matview::name_ident(&def.name),
                    ]);
                }
            }
            return ControlFlow::Continue(());
        }
        let query = match &def.kind {
            RelationKind::View { query, .. } => Some(query),
            RelationKind::MaterializedView { query, .. }
                if self.materialized || self.session.engine.matviews().get(def.id).is_none() =>
            {
                Some(query)
            }
            _ => None,
        };
        let Some(query) = query else {
            // DataFusion resolves a bare name in the first schema of search_path only: a
            // relation found further along the path (or in the temporary schema) is named
            // with its schema, keeping the bare name as the range variable.
            let bare = name.0.len() == 1;
            let elsewhere = bare && self.default_schema.as_deref() != Some(def.schema.as_str());
            if def.is_temporary() || elsewhere {
                if alias.is_none() {
                    *alias = Some(TableAlias {
                        explicit: true,
                        name: Ident::with_quote('"', def.name.clone()),
                        columns: vec![],
                        at: None,
                    });
                }
                *name = Session::temp_qualified(&def);
            }
            return ControlFlow::Continue(());
        };
        let subquery = match self
            .session
            .view_query(&def, query, self.depth, self.materialized)
        {
            Ok(q) => q,
            Err(err) => {
                self.error = Some(err);
                return ControlFlow::Break(());
            }
        };
        let (alias_name, mut alias_columns) = match alias.take() {
            Some(a) => (a.name, a.columns),
            None => (Ident::with_quote('"', def.name.clone()), vec![]),
        };
        for column in def.columns.iter().skip(alias_columns.len()) {
            alias_columns.push(TableAliasColumnDef {
                name: Ident::with_quote('"', column.name.clone()),
                data_type: None,
            });
        }
        *factor = TableFactor::Derived {
            lateral: false,
            subquery,
            alias: Some(TableAlias {
                explicit: true,
                name: alias_name,
                columns: alias_columns,
                at: None,
            }),
            sample: None,
        };
        ControlFlow::Continue(())
    }
}

/// Whether a query is `SELECT … INTO table`.
pub(super) fn has_into(query: &Query) -> bool {
    matches!(query.body.as_ref(), ast::SetExpr::Select(select) if select.into.is_some())
}
