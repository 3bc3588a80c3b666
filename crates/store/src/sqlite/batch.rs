//! One round trip for a whole write. sqlx runs each SQLite connection on its own worker thread, so every
//! statement costs a hand-off between threads; a write's statements are therefore collected here and sent as
//! one multi-statement query. Anonymous `?` parameters are bound in order across all its statements.

use crate::StoreError;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, AssertSqlSafe, Encode, Sqlite, SqliteConnection, Type};

#[derive(Default)]
pub(crate) struct Batch {
    sql: String,
    args: SqliteArguments,
    /// Rows the statements must change in all; fewer means an optimistic check failed.
    expected_rows: u64,
    bind_error: Option<String>,
}

impl Batch {
    /// Adds a statement that must change exactly `rows` rows.
    pub fn push(&mut self, sql: &str, rows: u64) -> &mut Self {
        self.sql.push_str(sql);
        self.sql.push_str(";\n");
        self.expected_rows += rows;
        self
    }

    pub fn bind<'q, T: Encode<'q, Sqlite> + Type<Sqlite> + 'q>(&mut self, value: T) -> &mut Self {
        if let Err(e) = self.args.add(value) {
            self.bind_error.get_or_insert(e.to_string());
        }
        self
    }

    /// Runs every statement; `Conflict(on_mismatch)` when they changed fewer rows than expected.
    pub async fn run(
        self,
        conn: &mut SqliteConnection,
        on_mismatch: impl FnOnce() -> String,
    ) -> Result<(), StoreError> {
        if let Some(e) = self.bind_error {
            return Err(StoreError::Corrupt(format!("cannot encode a value: {e}")));
        }
        if self.sql.is_empty() {
            return Ok(());
        }
        let done = sqlx::query_with(AssertSqlSafe(self.sql), self.args)
            .execute(conn)
            .await?;
        if done.rows_affected() != self.expected_rows {
            return Err(StoreError::Conflict(on_mismatch()));
        }
        Ok(())
    }
}
