//! The catalog: databases, schemas and relations (tables, views, sequences), with stable OIDs.
//!
//! Definitions are plain data persisted as JSON in RocksDB's `catalog` column family, written
//! in the same atomic batch as the commit that changes them, so the catalog on disk always
//! matches the commit log. SQL-level details (default expressions, CHECK expressions, view
//! text) are stored as SQL text: storage keeps them but never interprets them.
//!
//! Invariants: an OID is never reused; a column's `id` never changes (renames keep it), and the
//! commit log names columns by id, so old log records still decode after ALTER TABLE.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::error::{StorageError, StorageResult};

/// The first OID handed to user objects (as in PostgreSQL).
pub const FIRST_USER_OID: u32 = 16384;

/// A database: an isolated namespace of schemas.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatabaseDef {
    /// `pg_database.oid`.
    pub oid: u32,
    /// The database's name.
    pub name: String,
}

/// A schema inside a database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SchemaDef {
    /// `pg_namespace.oid`.
    pub oid: u32,
    /// The database it belongs to.
    pub database: String,
    /// The schema's name.
    pub name: String,
    /// A session's temporary schema (`pg_temp_N`): in memory only, never written to disk.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
}

/// One column of a table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnDef {
    /// Stable id (PostgreSQL's attnum never reused); names the column in the commit log.
    pub id: u32,
    /// The column's name.
    pub name: String,
    /// Arrow field: type and PostgreSQL type tag; nullable unless NOT NULL.
    #[serde(with = "field_json")]
    pub field: Field,
    /// The DEFAULT expression as SQL text.
    pub default: Option<String>,
    /// `GENERATED … AS IDENTITY`: `Some(true)` for ALWAYS, `Some(false)` for BY DEFAULT.
    #[serde(default)]
    pub identity: Option<bool>,
}

impl ColumnDef {
    /// Whether the column rejects NULL.
    pub fn not_null(&self) -> bool {
        !self.field.is_nullable()
    }
}

/// The primary key: its constraint name and columns (positions in `columns`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PrimaryKey {
    /// Constraint name, e.g. `t_pkey`.
    pub name: String,
    /// Positions of the key columns in the table's column list.
    pub columns: Vec<usize>,
}

/// A table constraint other than the primary key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum ConstraintDef {
    /// UNIQUE over column ids.
    Unique {
        /// Constraint (and index) name.
        name: String,
        /// Ids of the columns.
        columns: Vec<u32>,
    },
    /// CHECK (expr), as SQL text.
    Check {
        /// Constraint name.
        name: String,
        /// The boolean expression.
        expr: String,
    },
}

impl ConstraintDef {
    /// The constraint's name.
    pub fn name(&self) -> &str {
        match self {
            ConstraintDef::Unique { name, .. } | ConstraintDef::Check { name, .. } => name,
        }
    }
}

/// A sequence's parameters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SequenceDef {
    /// First value.
    pub start: i64,
    /// Step.
    pub increment: i64,
    /// Lowest value.
    pub min: i64,
    /// Highest value.
    pub max: i64,
    /// Wrap around at the end.
    pub cycle: bool,
    /// `OWNED BY table.column`: dropped with the table.
    pub owned_by: Option<(u32, u32)>,
}

/// What happens to a temporary table at the end of each transaction (`ON COMMIT …`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum OnCommit {
    /// Rows stay (the default).
    #[default]
    PreserveRows,
    /// Every commit leaves the table empty.
    DeleteRows,
    /// The table is dropped when the transaction that created it commits.
    Drop,
}

/// Whether a relation outlives its session (PostgreSQL's `relpersistence`).
///
/// A temporary relation lives in its session's temporary schema and in memory only: storage
/// never writes its definition to the catalog on disk, its rows to the commit log or to a
/// checkpoint, nor its sequence values; so nothing of it survives a restart. The session that
/// owns it drops it when it ends.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum Persistence {
    /// An ordinary, durable relation.
    #[default]
    Permanent,
    /// A temporary relation, with its `ON COMMIT` action (tables only; views and sequences
    /// have [`OnCommit::PreserveRows`]).
    Temporary(OnCommit),
}

impl Persistence {
    /// Whether this is [`Persistence::Permanent`].
    pub fn is_permanent(&self) -> bool {
        matches!(self, Persistence::Permanent)
    }
}

/// What a relation is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum RelationKind {
    /// A base table with rows.
    Table,
    /// A view: its defining query (SQL text).
    View {
        /// The SELECT, as SQL text (wildcards as written; the view's columns are fixed at
        /// creation in [`TableDef::columns`]).
        query: String,
        /// OIDs of the relations the query reads directly (tables and views): they cannot be
        /// dropped without CASCADE while the view exists.
        #[serde(default)]
        depends_on: Vec<u32>,
    },
    /// A sequence.
    Sequence(SequenceDef),
    /// A materialized view: its defining query, kept up to date by the view engine
    /// (`floe-views`) after every commit; it holds no rows in storage.
    MaterializedView {
        /// The SELECT, as SQL text with every relation name qualified by its schema (so it
        /// means the same whatever `search_path` is when the view is planned again).
        query: String,
        /// OIDs of the relations the query reads directly (tables, views and materialized
        /// views): they cannot be dropped without CASCADE while the view exists.
        #[serde(default)]
        depends_on: Vec<u32>,
    },
}

impl RelationKind {
    /// The relations a view or materialized view reads directly (none for other kinds).
    pub fn depends_on(&self) -> &[u32] {
        match self {
            RelationKind::View { depends_on, .. }
            | RelationKind::MaterializedView { depends_on, .. } => depends_on,
            RelationKind::Table | RelationKind::Sequence(_) => &[],
        }
    }
}

/// A relation (PostgreSQL's `pg_class` row): a table, a view or a sequence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableDef {
    /// `pg_class.oid`; also the table's id in the commit log.
    pub id: u32,
    /// Database name.
    pub database: String,
    /// Schema name.
    pub schema: String,
    /// Relation name.
    pub name: String,
    /// Table, view or sequence.
    pub kind: RelationKind,
    /// Columns in order (empty for sequences).
    pub columns: Vec<ColumnDef>,
    /// The primary key; `None`: rows are keyed by a hidden row id.
    pub primary_key: Option<PrimaryKey>,
    /// UNIQUE and CHECK constraints.
    pub constraints: Vec<ConstraintDef>,
    /// Secondary indexes: one per UNIQUE constraint (same name) plus `CREATE INDEX`es.
    #[serde(default)]
    pub indexes: Vec<IndexDef>,
    /// Next column id to hand out.
    pub next_column_id: u32,
    /// Permanent or temporary (never serialised for temporary relations: they are not
    /// persisted at all).
    #[serde(default, skip_serializing_if = "Persistence::is_permanent")]
    pub persistence: Persistence,
}

/// A secondary index of a table (PostgreSQL's `pg_index` row other than the primary key's).
///
/// A UNIQUE constraint owns the index of the same name (`constraint`); storage adds and
/// removes those itself when a definition is committed ([`TableDef::with_constraint_indexes`]),
/// so DDL only edits `constraints`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndexDef {
    /// Stable OID from the catalog's sequence; also names the index's row locks.
    pub oid: u32,
    /// Index name (unique among the schema's relations and indexes).
    pub name: String,
    /// Ids of the indexed columns, in index order.
    pub columns: Vec<u32>,
    /// Rejects two rows with equal non-NULL keys.
    pub unique: bool,
    /// Backs the UNIQUE constraint of the same name.
    pub constraint: bool,
}

impl TableDef {
    /// The Arrow schema of the table's rows (column names, types, nullability).
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| c.field.clone().with_name(c.name.clone()))
                .collect::<Vec<_>>(),
        ))
    }

    /// The position of the column named `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Whether this relation holds rows.
    pub fn is_table(&self) -> bool {
        matches!(self.kind, RelationKind::Table)
    }

    /// Whether this is a materialized view.
    pub fn is_materialized_view(&self) -> bool {
        matches!(self.kind, RelationKind::MaterializedView { .. })
    }

    /// Whether this is a temporary relation (see [`Persistence`]).
    pub fn is_temporary(&self) -> bool {
        !self.persistence.is_permanent()
    }

    /// The `ON COMMIT` action of a temporary table (`None` for permanent relations).
    pub fn on_commit(&self) -> Option<OnCommit> {
        match self.persistence {
            Persistence::Permanent => None,
            Persistence::Temporary(action) => Some(action),
        }
    }

    /// The index named `name`.
    pub fn index(&self, name: &str) -> Option<&IndexDef> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// This definition with exactly one index per UNIQUE constraint (new ones get OIDs from
    /// `allocate`), and without indexes over columns that no longer exist.
    pub fn with_constraint_indexes(&self, mut allocate: impl FnMut() -> u32) -> TableDef {
        let mut def = self.clone();
        let column_ids: Vec<u32> = def.columns.iter().map(|c| c.id).collect();
        let unique: Vec<(String, Vec<u32>)> = def
            .constraints
            .iter()
            .filter_map(|c| match c {
                ConstraintDef::Unique { name, columns } => Some((name.clone(), columns.clone())),
                ConstraintDef::Check { .. } => None,
            })
            .collect();
        def.indexes.retain(|index| {
            index.columns.iter().all(|c| column_ids.contains(c))
                && (!index.constraint
                    || unique
                        .iter()
                        .any(|(name, columns)| *name == index.name && *columns == index.columns))
        });
        for (name, columns) in unique {
            if !def.indexes.iter().any(|i| i.constraint && i.name == name) {
                def.indexes.push(IndexDef {
                    oid: allocate(),
                    name,
                    columns,
                    unique: true,
                    constraint: true,
                });
            }
        }
        def
    }
}

/// A change to the catalog, applied in commit order.
#[derive(Debug, Clone)]
pub enum CatalogChange {
    /// Create (or replace) a database.
    PutDatabase(DatabaseDef),
    /// Drop a database by name (its relations are dropped by separate changes).
    DropDatabase(String),
    /// Create a schema.
    PutSchema(SchemaDef),
    /// Drop a schema: (database, name).
    DropSchema(String, String),
    /// Create or replace a relation.
    PutRelation(Arc<TableDef>),
    /// Drop a relation by id.
    DropRelation(u32),
}

/// Keys of the catalog column family.
pub(crate) mod keys {
    pub const NEXT_OID: &[u8] = b"meta/next_oid";

    pub fn database(name: &str) -> Vec<u8> {
        format!("db/{name}").into_bytes()
    }
    pub fn schema(database: &str, name: &str) -> Vec<u8> {
        format!("schema/{database}/{name}").into_bytes()
    }
    pub fn relation(id: u32) -> Vec<u8> {
        format!("rel/{id:010}").into_bytes()
    }
}

/// The whole catalog in memory.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    databases: BTreeMap<String, DatabaseDef>,
    schemas: BTreeMap<(String, String), SchemaDef>,
    relations: BTreeMap<u32, Arc<TableDef>>,
    by_name: HashMap<(String, String, String), u32>,
    pub(crate) next_oid: u32,
}

impl Catalog {
    /// Loads the catalog from the `catalog` column family's entries.
    pub(crate) fn load(
        entries: impl Iterator<Item = (Box<[u8]>, Box<[u8]>)>,
    ) -> StorageResult<Catalog> {
        let mut catalog = Catalog {
            next_oid: FIRST_USER_OID,
            ..Catalog::default()
        };
        for (key, value) in entries {
            let key = String::from_utf8_lossy(&key).into_owned();
            let decode_err = |e: serde_json::Error| StorageError::corrupt("catalog entry", e);
            if key.as_bytes() == keys::NEXT_OID {
                catalog.next_oid = String::from_utf8_lossy(&value)
                    .parse()
                    .map_err(|e| StorageError::corrupt("catalog next_oid", e))?;
            } else if key.starts_with("db/") {
                catalog.apply(&CatalogChange::PutDatabase(
                    serde_json::from_slice(&value).map_err(decode_err)?,
                ));
            } else if key.starts_with("schema/") {
                catalog.apply(&CatalogChange::PutSchema(
                    serde_json::from_slice(&value).map_err(decode_err)?,
                ));
            } else if key.starts_with("rel/") {
                catalog.apply(&CatalogChange::PutRelation(Arc::new(
                    serde_json::from_slice(&value).map_err(decode_err)?,
                )));
            }
        }
        Ok(catalog)
    }

    /// The persisted form of a change: catalog keys to put (`Some`) or delete (`None`).
    pub(crate) fn persist(change: &CatalogChange) -> StorageResult<(Vec<u8>, Option<Vec<u8>>)> {
        let json = |v: &dyn erased::Json| v.to_json();
        Ok(match change {
            CatalogChange::PutDatabase(d) => (keys::database(&d.name), Some(json(d)?)),
            CatalogChange::DropDatabase(name) => (keys::database(name), None),
            CatalogChange::PutSchema(s) => (keys::schema(&s.database, &s.name), Some(json(s)?)),
            CatalogChange::DropSchema(db, name) => (keys::schema(db, name), None),
            CatalogChange::PutRelation(t) => (keys::relation(t.id), Some(json(t.as_ref())?)),
            CatalogChange::DropRelation(id) => (keys::relation(*id), None),
        })
    }

    /// Applies a change in memory.
    pub(crate) fn apply(&mut self, change: &CatalogChange) {
        match change {
            CatalogChange::PutDatabase(d) => {
                self.databases.insert(d.name.clone(), d.clone());
            }
            CatalogChange::DropDatabase(name) => {
                self.databases.remove(name);
            }
            CatalogChange::PutSchema(s) => {
                self.schemas
                    .insert((s.database.clone(), s.name.clone()), s.clone());
            }
            CatalogChange::DropSchema(db, name) => {
                self.schemas.remove(&(db.clone(), name.clone()));
            }
            CatalogChange::PutRelation(t) => {
                if let Some(old) = self.relations.get(&t.id) {
                    self.by_name.remove(&(
                        old.database.clone(),
                        old.schema.clone(),
                        old.name.clone(),
                    ));
                }
                self.by_name
                    .insert((t.database.clone(), t.schema.clone(), t.name.clone()), t.id);
                self.relations.insert(t.id, t.clone());
            }
            CatalogChange::DropRelation(id) => {
                if let Some(old) = self.relations.remove(id) {
                    self.by_name.remove(&(
                        old.database.clone(),
                        old.schema.clone(),
                        old.name.clone(),
                    ));
                }
            }
        }
    }

    /// All databases, by name.
    pub fn databases(&self) -> impl Iterator<Item = &DatabaseDef> {
        self.databases.values()
    }

    /// The database named `name`.
    pub fn database(&self, name: &str) -> Option<&DatabaseDef> {
        self.databases.get(name)
    }

    /// The schemas of `database`.
    pub fn schemas<'a>(&'a self, database: &'a str) -> impl Iterator<Item = &'a SchemaDef> + 'a {
        self.schemas
            .values()
            .filter(move |s| s.database == database)
    }

    /// The schema `database.name`.
    pub fn schema(&self, database: &str, name: &str) -> Option<&SchemaDef> {
        self.schemas.get(&(database.to_string(), name.to_string()))
    }

    /// Every relation.
    pub fn relations(&self) -> impl Iterator<Item = &Arc<TableDef>> {
        self.relations.values()
    }

    /// The relations of one schema.
    pub fn relations_in<'a>(
        &'a self,
        database: &'a str,
        schema: &'a str,
    ) -> impl Iterator<Item = &'a Arc<TableDef>> + 'a {
        self.relations
            .values()
            .filter(move |t| t.database == database && t.schema == schema)
    }

    /// The relation with OID `id`.
    pub fn relation(&self, id: u32) -> Option<&Arc<TableDef>> {
        self.relations.get(&id)
    }

    /// The relation `database.schema.name`.
    pub fn relation_by_name(
        &self,
        database: &str,
        schema: &str,
        name: &str,
    ) -> Option<&Arc<TableDef>> {
        self.by_name
            .get(&(database.to_string(), schema.to_string(), name.to_string()))
            .and_then(|id| self.relations.get(id))
    }
}

/// JSON encoding for the catalog's value types, behind one object-safe trait.
mod erased {
    use crate::error::{StorageError, StorageResult};

    pub trait Json {
        fn to_json(&self) -> StorageResult<Vec<u8>>;
    }

    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> StorageResult<Vec<u8>> {
            serde_json::to_vec(self).map_err(|e| StorageError::Internal(e.to_string()))
        }
    }
}

/// Arrow fields as JSON: the type by its Arrow name (`Int32`, `Decimal128(10, 2)`), lists by
/// their element field, so field metadata (PostgreSQL type tags) survives at every level.
mod field_json {
    use std::collections::HashMap;
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct FieldRepr {
        name: String,
        data_type: TypeRepr,
        nullable: bool,
        #[serde(default)]
        metadata: HashMap<String, String>,
    }

    #[derive(Serialize, Deserialize)]
    enum TypeRepr {
        Simple(String),
        List(Box<FieldRepr>),
    }

    fn to_repr(field: &Field) -> FieldRepr {
        FieldRepr {
            name: field.name().clone(),
            data_type: match field.data_type() {
                DataType::List(inner) => TypeRepr::List(Box::new(to_repr(inner))),
                other => TypeRepr::Simple(other.to_string()),
            },
            nullable: field.is_nullable(),
            metadata: field.metadata().clone(),
        }
    }

    fn from_repr(repr: FieldRepr) -> Result<Field, String> {
        let data_type = match repr.data_type {
            TypeRepr::List(inner) => DataType::List(Arc::new(from_repr(*inner)?)),
            TypeRepr::Simple(name) => name
                .parse::<DataType>()
                .map_err(|e| format!("unknown type {name}: {e}"))?,
        };
        Ok(Field::new(repr.name, data_type, repr.nullable).with_metadata(repr.metadata))
    }

    pub fn serialize<S: Serializer>(field: &Field, serializer: S) -> Result<S::Ok, S::Error> {
        to_repr(field).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Field, D::Error> {
        from_repr(FieldRepr::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::DataType;
    use std::collections::HashMap;

    #[test]
    fn definitions_round_trip_through_json_with_type_tags() {
        let tagged = Field::new("item", DataType::Utf8, true)
            .with_metadata(HashMap::from([("floe.pg_type".into(), "uuid".into())]));
        let def = TableDef {
            id: 16400,
            database: "postgres".into(),
            schema: "public".into(),
            name: "t".into(),
            kind: RelationKind::Table,
            columns: vec![
                ColumnDef {
                    id: 1,
                    name: "ids".into(),
                    field: Field::new("ids", DataType::List(Arc::new(tagged)), true),
                    default: None,
                    identity: None,
                },
                ColumnDef {
                    id: 2,
                    name: "amount".into(),
                    field: Field::new("amount", DataType::Decimal128(12, 2), false),
                    default: Some("0".into()),
                    identity: Some(false),
                },
            ],
            primary_key: Some(PrimaryKey {
                name: "t_pkey".into(),
                columns: vec![1],
            }),
            constraints: vec![ConstraintDef::Check {
                name: "t_amount_check".into(),
                expr: "amount >= 0".into(),
            }],
            indexes: vec![IndexDef {
                oid: 16401,
                name: "t_amount_idx".into(),
                columns: vec![2],
                unique: false,
                constraint: false,
            }],
            next_column_id: 3,
            persistence: Persistence::Permanent,
        };
        let change = CatalogChange::PutRelation(Arc::new(def.clone()));
        let (key, value) = Catalog::persist(&change).unwrap();
        let catalog = Catalog::load(std::iter::once((
            key.into_boxed_slice(),
            value.unwrap().into_boxed_slice(),
        )))
        .unwrap();
        assert_eq!(catalog.relation(16400).map(|t| t.as_ref()), Some(&def));
        assert_eq!(
            catalog
                .relation_by_name("postgres", "public", "t")
                .map(|t| t.id),
            Some(16400)
        );
    }
}
