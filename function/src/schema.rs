//! The check of the `items` table the function needs, run when the pool is built (the first request of an
//! execution environment, and again on each request while it fails).
//!
//! Why: with migrations an operator's step, the table the function finds may be missing, older, someone else's
//! (`CREATE TABLE IF NOT EXISTS` is a no-op on a conflicting table), or not granted to the function's role. Each of
//! those used to surface as a 500 on the first query while `/health` said ok; the check turns them into one
//! [`SchemaProblem`] that names what is wrong, which `error.rs` answers with a 503.
//!
//! Parts:
//! - [`Column`] and [`check_columns`]: the pure rules, the same for both databases, unit-tested below;
//! - [`check_postgres`]: reads the columns from `pg_attribute` and the role's privileges with `has_*_privilege`;
//! - [`check_sqlite`]: reads the columns from `pragma_table_info` (SQLite has no privileges).

use sqlx::{PgPool, SqlitePool};

/// The table the function reads and writes.
pub(crate) const TABLE: &str = "items";

/// What the function needs of each column, by name.
const NEEDED: [(&str, ColumnKind); 3] = [
    ("id", ColumnKind::BigInt),
    ("name", ColumnKind::Text),
    ("description", ColumnKind::Text),
];

/// The column types the function can read, as far as it cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    /// A 64-bit integer (`bigint`; SQLite's `INTEGER`).
    BigInt,
    /// Text (`text`, `character varying`; SQLite's `TEXT`).
    Text,
    /// Anything else.
    Other,
}

/// One column of the table, as the database describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    /// Its name.
    pub name: String,
    /// Its type, as the database spells it (for the message).
    pub sql_type: String,
    /// What that type is to us.
    pub kind: ColumnKind,
    /// `NOT NULL`.
    pub not_null: bool,
    /// Whether an insert may leave it out (a default, an identity, SQLite's rowid).
    pub has_default: bool,
}

/// What is wrong with the table, in words that name tables, columns and privileges (never a value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}; run the migrations as an administrator (function/README.md, \"Migrations\")")]
pub(crate) struct SchemaProblem(pub String);

/// The rules: the table exists, has `id bigint` with a default, `name` and `description` as text, `description`
/// nullable, and no other column an insert must fill.
pub(crate) fn check_columns(columns: &[Column]) -> Result<(), SchemaProblem> {
    if columns.is_empty() {
        return Err(SchemaProblem(format!("the table {TABLE} does not exist")));
    }
    let mut problems = Vec::new();
    for (name, kind) in NEEDED {
        match columns.iter().find(|c| c.name == name) {
            None => problems.push(format!("{TABLE}.{name} is missing")),
            Some(c) if c.kind != kind => problems.push(format!(
                "{TABLE}.{name} is {}, not {}",
                c.sql_type,
                match kind {
                    ColumnKind::BigInt => "bigint",
                    _ => "text",
                }
            )),
            Some(_) => {}
        }
    }
    if let Some(id) = columns.iter().find(|c| c.name == "id") {
        if !id.has_default {
            problems.push(format!(
                "{TABLE}.id has no default, so no insert can fill it"
            ));
        }
    }
    if let Some(d) = columns.iter().find(|c| c.name == "description") {
        if d.not_null {
            problems.push(format!(
                "{TABLE}.description is NOT NULL, but it is optional"
            ));
        }
    }
    for c in columns {
        if !NEEDED.iter().any(|(n, _)| *n == c.name) && c.not_null && !c.has_default {
            problems.push(format!(
                "{TABLE}.{} is NOT NULL without a default, and the function does not fill it",
                c.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SchemaProblem(problems.join("; ")))
    }
}

/// Checks the table and the connected role's privileges on PostgreSQL. `Ok(Err(..))` is a mismatch; `Err` is the
/// database failing to answer.
pub(crate) async fn check_postgres(
    pool: &PgPool,
) -> Result<Result<(), SchemaProblem>, sqlx::Error> {
    // `to_regclass` resolves `items` through the search path, exactly as the queries will.
    let rows: Vec<(String, String, bool, bool)> = sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                (a.atthasdef OR a.attidentity <> '') \
         FROM pg_attribute a \
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
    )
    .bind(TABLE)
    .fetch_all(pool)
    .await?;
    let columns: Vec<Column> = rows
        .into_iter()
        .map(|(name, sql_type, not_null, has_default)| Column {
            kind: match sql_type.as_str() {
                "bigint" => ColumnKind::BigInt,
                "text" => ColumnKind::Text,
                t if t.starts_with("character varying") => ColumnKind::Text,
                _ => ColumnKind::Other,
            },
            name,
            sql_type,
            not_null,
            has_default,
        })
        .collect();
    if let Err(problem) = check_columns(&columns) {
        return Ok(Err(problem));
    }
    let (schema_usage, select, insert, delete, sequence): (bool, bool, bool, bool, bool) =
        sqlx::query_as(
            "SELECT has_schema_privilege(c.relnamespace, 'USAGE'), \
                    has_table_privilege(c.oid, 'SELECT'), \
                    has_table_privilege(c.oid, 'INSERT'), \
                    has_table_privilege(c.oid, 'DELETE'), \
                    COALESCE(has_sequence_privilege(pg_get_serial_sequence(c.oid::regclass::text, 'id'), 'USAGE'), \
                             true) \
             FROM pg_class c WHERE c.oid = to_regclass($1)",
        )
        .bind(TABLE)
        .fetch_one(pool)
        .await?;
    let missing: Vec<&str> = [
        (schema_usage, "USAGE on its schema"),
        (select, "SELECT"),
        (insert, "INSERT"),
        (delete, "DELETE"),
        (sequence, "USAGE on the sequence of items.id"),
    ]
    .into_iter()
    .filter(|(granted, _)| !granted)
    .map(|(_, what)| what)
    .collect();
    if missing.is_empty() {
        Ok(Ok(()))
    } else {
        Ok(Err(SchemaProblem(format!(
            "the database role lacks {} on the table {TABLE}",
            missing.join(", ")
        ))))
    }
}

/// Checks the table on SQLite.
pub(crate) async fn check_sqlite(
    pool: &SqlitePool,
) -> Result<Result<(), SchemaProblem>, sqlx::Error> {
    let rows: Vec<(String, String, bool, bool, i64)> = sqlx::query_as(
        "SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk FROM pragma_table_info($1)",
    )
    .bind(TABLE)
    .fetch_all(pool)
    .await?;
    let columns: Vec<Column> = rows
        .into_iter()
        .map(|(name, sql_type, not_null, has_default, pk)| Column {
            kind: match sql_type.to_ascii_uppercase().as_str() {
                "INTEGER" | "BIGINT" => ColumnKind::BigInt,
                "TEXT" => ColumnKind::Text,
                t if t.starts_with("VARCHAR") => ColumnKind::Text,
                _ => ColumnKind::Other,
            },
            // An INTEGER PRIMARY KEY is the rowid: SQLite fills it.
            has_default: has_default || (pk == 1 && sql_type.eq_ignore_ascii_case("INTEGER")),
            name,
            sql_type,
            not_null,
        })
        .collect();
    Ok(check_columns(&columns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, kind: ColumnKind, not_null: bool, has_default: bool) -> Column {
        Column {
            name: name.to_owned(),
            sql_type: match kind {
                ColumnKind::BigInt => "bigint",
                ColumnKind::Text => "text",
                ColumnKind::Other => "uuid",
            }
            .to_owned(),
            kind,
            not_null,
            has_default,
        }
    }

    fn ours() -> Vec<Column> {
        vec![
            col("id", ColumnKind::BigInt, true, true),
            col("name", ColumnKind::Text, true, false),
            col("description", ColumnKind::Text, false, false),
        ]
    }

    #[test]
    fn our_own_migration_passes() {
        assert_eq!(check_columns(&ours()), Ok(()));
        let mut extra = ours();
        extra.push(col("created_at", ColumnKind::Other, true, true));
        extra.push(col("note", ColumnKind::Text, false, false));
        assert_eq!(
            check_columns(&extra),
            Ok(()),
            "columns an insert may leave out are fine"
        );
    }

    #[test]
    fn a_missing_table_is_named() {
        let e = check_columns(&[]).expect_err("missing");
        assert!(
            e.to_string().contains("the table items does not exist"),
            "{e}"
        );
    }

    #[test]
    fn a_conflicting_table_names_every_problem() {
        let theirs = vec![
            col("item_id", ColumnKind::Other, true, true),
            col("title", ColumnKind::Text, true, false),
            col("id", ColumnKind::Other, true, false),
            col("description", ColumnKind::Text, true, false),
        ];
        let e = check_columns(&theirs).expect_err("conflict").to_string();
        for needle in [
            "items.id is uuid, not bigint",
            "items.name is missing",
            "items.id has no default",
            "items.description is NOT NULL",
            "items.title is NOT NULL without a default",
            "run the migrations",
        ] {
            assert!(e.contains(needle), "{needle:?} not in {e}");
        }
    }
}
