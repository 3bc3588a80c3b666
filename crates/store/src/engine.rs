//! What an engine provides to the shared code: run a write's statements as one unit and fetch rows as typed
//! values. Implemented by a SQLite connection and a PostgreSQL connection (a transaction derefs to one).

use crate::StoreError;
use crate::rows::{Kind, Row, Statement, Writes};
use async_trait::async_trait;

#[async_trait]
pub(crate) trait Sql: Send {
    /// Runs every statement of `writes` in one round trip; returns the rows they changed in all.
    async fn run(&mut self, writes: Writes) -> Result<u64, StoreError>;

    /// Runs one statement; returns the rows it changed.
    async fn execute(&mut self, statement: Statement) -> Result<u64, StoreError>;

    /// Runs one query; each row's columns are read as `kinds` says, in order.
    async fn fetch(&mut self, statement: Statement, kinds: &[Kind]) -> Result<Vec<Row>, StoreError>;
}

/// Runs `writes`; `Conflict(on_mismatch)` when they changed fewer rows than they must (an optimistic check
/// failed: the caller's transaction must not commit).
pub(crate) async fn write(
    sql: &mut dyn Sql,
    writes: Writes,
    on_mismatch: impl FnOnce() -> String,
) -> Result<(), StoreError> {
    let expected = writes.expected_rows();
    if writes.statements.is_empty() {
        return Ok(());
    }
    if sql.run(writes).await? != expected {
        return Err(StoreError::Conflict(on_mismatch()));
    }
    Ok(())
}

/// Maps a unique violation to `Conflict(message)`, any other error to itself.
pub(crate) fn unique_as_conflict(e: StoreError, message: impl FnOnce() -> String) -> StoreError {
    match e {
        StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => StoreError::Conflict(message()),
        other => other,
    }
}
