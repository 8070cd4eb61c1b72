//! The items store: list (with limit/offset paging), get, create and delete, on PostgreSQL and SQLite alike.
//!
//! Parts:
//! - [`Item`], [`NewItem`] and [`Page`]: the rows and what the API returns;
//! - one function per operation, each taking a [`Backend`]. The SQL is the same text on both databases (SQLite
//!   accepts PostgreSQL's `$1` placeholders and `RETURNING`), and [`on_backend!`] runs it on whichever pool is live,
//!   so the two cannot drift apart.
//!
//! Every value is bound, never formatted into the SQL.

use serde::Serialize;

use crate::db::Backend;

/// Runs the same expression against whichever pool `$backend` holds, with `$pool` bound to it.
macro_rules! on_backend {
    ($backend:expr, $pool:ident => $body:expr) => {
        match $backend {
            Backend::Postgres($pool) => $body,
            Backend::Sqlite($pool) => $body,
        }
    };
}

/// One stored item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub(crate) struct Item {
    /// Assigned by the database.
    pub id: i64,
    /// 1-200 characters.
    pub name: String,
    /// At most 2000 characters.
    pub description: Option<String>,
}

/// A validated item to create (the handler validates; the schema checks the same bounds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewItem {
    /// 1-200 characters, trimmed.
    pub name: String,
    /// At most 2000 characters.
    pub description: Option<String>,
}

/// One page of items, with what a client needs to ask for the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Page {
    /// The items, by ascending id.
    pub items: Vec<Item>,
    /// The limit used.
    pub limit: i64,
    /// The offset used.
    pub offset: i64,
    /// How many items exist in all.
    pub total: i64,
    /// The offset of the next page, or `null` on the last one.
    pub next_offset: Option<i64>,
}

const COLUMNS: &str = "id, name, description";

/// A page of items by ascending id.
pub(crate) async fn list(backend: Backend, limit: i64, offset: i64) -> Result<Page, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM items ORDER BY id LIMIT $1 OFFSET $2");
    let (items, total): (Vec<Item>, i64) = on_backend!(backend, pool => {
        let items = sqlx::query_as::<_, Item>(&sql)
            .bind(limit)
            .bind(offset)
            .fetch_all(&pool)
            .await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM items")
            .fetch_one(&pool)
            .await?;
        (items, total)
    });
    let end = offset.saturating_add(items.len() as i64);
    Ok(Page {
        next_offset: (end < total && !items.is_empty()).then_some(end),
        items,
        limit,
        offset,
        total,
    })
}

/// One item, if it exists.
pub(crate) async fn get(backend: Backend, id: i64) -> Result<Option<Item>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM items WHERE id = $1");
    on_backend!(backend, pool => {
        sqlx::query_as::<_, Item>(&sql).bind(id).fetch_optional(&pool).await
    })
}

/// Stores a new item and returns it with its id.
pub(crate) async fn create(backend: Backend, item: NewItem) -> Result<Item, sqlx::Error> {
    let sql = format!("INSERT INTO items (name, description) VALUES ($1, $2) RETURNING {COLUMNS}");
    on_backend!(backend, pool => {
        sqlx::query_as::<_, Item>(&sql)
            .bind(&item.name)
            .bind(&item.description)
            .fetch_one(&pool)
            .await
    })
}

/// Deletes an item; `false` when there was none.
pub(crate) async fn delete(backend: Backend, id: i64) -> Result<bool, sqlx::Error> {
    on_backend!(backend, pool => {
        sqlx::query("DELETE FROM items WHERE id = $1")
            .bind(id)
            .execute(&pool)
            .await
            .map(|r| r.rows_affected() > 0)
    })
}

/// A round trip to the database, for `/health`.
pub(crate) async fn ping(backend: Backend) -> Result<(), sqlx::Error> {
    on_backend!(backend, pool => {
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&pool).await.map(|_| ())
    })
}
