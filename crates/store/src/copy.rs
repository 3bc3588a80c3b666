//! Moving a whole organisation from one database to another (`ordertrail copy`), whatever the engines: every
//! table row for row, events with their hashes untouched, in the order foreign keys need. The tables and
//! their columns are listed once here; a test checks that both engines' migrated schemas have exactly these.
//! The target is written in one transaction, so a copy that fails leaves it as it was.

use crate::engine::Sql;
use crate::rows::{Kind, Row, Statement, Value};
use crate::{Store, StoreError};
use serde::Serialize;

/// A table as both engines have it: its columns (in order) and the columns of its key (for paging).
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
    pub key: &'static [&'static str],
}

use Kind::{Bool, Date, Id, Int, Text, Time};

/// Every table of the current schema, parents before children.
pub const TABLES: &[Table] = &[
    Table {
        name: "users",
        columns: &[
            ("id", Id),
            ("email", Text),
            ("name", Text),
            ("roles", Text),
            ("customer_id", Id),
            ("created_at", Time),
        ],
        key: &["id"],
    },
    Table {
        name: "tokens",
        columns: &[("id", Id), ("user_id", Id), ("token_hash", Text), ("created_at", Time)],
        key: &["id"],
    },
    Table {
        name: "customers",
        columns: &[
            ("id", Id),
            ("name", Text),
            ("body", Text),
            ("version", Int),
            ("head_hash", Text),
            ("created_at", Time),
        ],
        key: &["id"],
    },
    Table {
        name: "orders",
        columns: &[
            ("id", Id),
            ("number", Text),
            ("workflow", Text),
            ("status", Text),
            ("customer_id", Id),
            ("owner_id", Id),
            ("order_type", Text),
            ("amount_minor", Int),
            ("currency", Text),
            ("order_date", Date),
            ("promised_date", Date),
            ("awaits_delivery", Bool),
            ("next_due_on", Date),
            ("last_planned_on", Date),
            ("open_exceptions", Int),
            ("search_text", Text),
            ("body", Text),
            ("version", Int),
            ("head_hash", Text),
            ("created_at", Time),
            ("updated_at", Time),
            ("client_update_on", Date),
            ("unpaid_due_on", Date),
        ],
        key: &["id"],
    },
    Table {
        name: "order_people",
        columns: &[("order_id", Id), ("user_id", Id), ("relation", Text)],
        key: &["order_id", "user_id", "relation"],
    },
    Table {
        name: "milestones",
        columns: &[
            ("id", Id),
            ("order_id", Id),
            ("key", Text),
            ("name", Text),
            ("position", Int),
            ("planned_on", Date),
            ("owner_role", Text),
            ("owner_id", Id),
            ("client_action", Bool),
            ("completed_at", Time),
            ("follow_through_stage", Int),
        ],
        key: &["order_id", "key"],
    },
    Table {
        name: "follow_ups",
        columns: &[
            ("id", Id),
            ("order_id", Id),
            ("occurred_at", Time),
            ("status", Text),
            ("body", Text),
        ],
        key: &["id"],
    },
    Table {
        name: "issues",
        columns: &[
            ("id", Id),
            ("order_id", Id),
            ("kind", Text),
            ("severity", Text),
            ("status", Text),
            ("owner_id", Id),
            ("discovered_at", Time),
            ("opened_at", Time),
            ("opened_after_seconds", Int),
            ("client_told_at", Time),
            ("told_after_seconds", Int),
            ("expected_resolution_at", Time),
            ("body", Text),
        ],
        key: &["id"],
    },
    Table {
        name: "events",
        columns: &[
            ("position", Int),
            ("id", Id),
            ("stream_id", Id),
            ("seq", Int),
            ("occurred_at", Time),
            ("actor_id", Id),
            ("acting_role", Text),
            ("kind", Text),
            ("reason", Text),
            ("payload", Text),
            ("prev_hash", Text),
            ("hash", Text),
        ],
        key: &["position"],
    },
    Table {
        name: "outbox",
        columns: &[
            ("position", Int),
            ("id", Id),
            ("stream_id", Id),
            ("event_id", Id),
            ("kind", Text),
            ("dedupe_key", Text),
            ("payload", Text),
            ("due_at", Time),
            ("state", Text),
            ("attempts", Int),
            ("created_at", Time),
            ("claimed_by", Text),
            ("claimed_until", Time),
            ("last_error", Text),
            ("finished_at", Time),
        ],
        key: &["position"],
    },
    Table {
        name: "order_number_counters",
        columns: &[("scope", Text), ("last", Int)],
        key: &["scope"],
    },
    Table {
        name: "idempotency_keys",
        columns: &[
            ("user_id", Id),
            ("key", Text),
            ("fingerprint", Text),
            ("state", Text),
            ("status_code", Int),
            ("body", Text),
            ("created_at", Time),
        ],
        key: &["user_id", "key"],
    },
];

/// Rows of one table, read for a copy (opaque outside this crate).
pub struct CopyPage {
    pub(crate) rows: Vec<Row>,
}

impl CopyPage {
    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// What a copy moved: rows per table, as counted in the target after the copy.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CopyReport {
    pub tables: Vec<(String, i64)>,
}

const PAGE: u32 = 1000;

fn table(index: usize) -> Result<&'static Table, StoreError> {
    TABLES
        .get(index)
        .ok_or_else(|| StoreError::Corrupt(format!("no table number {index}")))
}

fn key_values(table: &Table, row: &Row) -> Vec<Value> {
    table
        .key
        .iter()
        .filter_map(|k| table.columns.iter().position(|(c, _)| c == k))
        .filter_map(|i| row.get(i).cloned())
        .collect()
}

/// The rows of table `index` after the key of `after`'s last row (keyset paging: each page is an index seek).
pub(crate) async fn export_page(
    sql: &mut dyn Sql,
    index: usize,
    after: Option<&CopyPage>,
) -> Result<CopyPage, StoreError> {
    let table = table(index)?;
    let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
    let key = table.key.join(", ");
    let mut s = Statement::new(format!("SELECT {} FROM {}", columns.join(", "), table.name));
    if let Some(last) = after.and_then(|page| page.rows.last()) {
        let marks = vec!["?"; table.key.len()].join(", ");
        s.sql(&format!(" WHERE ({key}) > ({marks})"));
        for value in key_values(table, last) {
            s.value(value);
        }
    }
    s.sql(&format!(" ORDER BY {key} LIMIT ?")).int(i64::from(PAGE));
    let kinds: Vec<Kind> = table.columns.iter().map(|(_, k)| *k).collect();
    Ok(CopyPage {
        rows: sql.fetch(s, &kinds).await?,
    })
}

/// Rows in every table, in [`TABLES`] order.
pub(crate) async fn counts(sql: &mut dyn Sql) -> Result<Vec<(String, i64)>, StoreError> {
    let mut counts = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        counts.push((table.name.to_string(), crate::reads::count(sql, table.name).await?));
    }
    Ok(counts)
}

/// Copies everything from `source` into the target behind `sql` (inside the caller's transaction). Refuses a
/// target that holds anything unless `replace`, which empties it first.
pub(crate) async fn import(sql: &mut dyn Sql, source: &dyn Store, replace: bool) -> Result<(), StoreError> {
    let held: i64 = counts(sql).await?.iter().map(|(_, n)| n).sum();
    if held > 0 && !replace {
        return Err(StoreError::Conflict(format!(
            "the target database is not empty ({held} rows); copy into an empty database, or pass --replace to empty it first"
        )));
    }
    for table in TABLES.iter().rev() {
        sql.execute(Statement::new(format!("DELETE FROM {}", table.name)))
            .await?;
    }
    for (index, table) in TABLES.iter().enumerate() {
        let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
        let one = format!("({})", vec!["?"; columns.len()].join(", "));
        let mut page: Option<CopyPage> = None;
        loop {
            let next = source.export_page(index, page.as_ref()).await?;
            if next.is_empty() {
                break;
            }
            // Several rows per INSERT, within both engines' limits on parameters.
            for chunk in next.rows.chunks((4000 / columns.len()).max(1)) {
                let mut s = Statement::new(format!(
                    "INSERT INTO {} ({}) VALUES {}",
                    table.name,
                    columns.join(", "),
                    vec![one.as_str(); chunk.len()].join(", ")
                ));
                for row in chunk {
                    for value in row {
                        s.value(value.clone());
                    }
                }
                sql.execute(s).await?;
            }
            page = Some(next);
        }
    }
    Ok(())
}
