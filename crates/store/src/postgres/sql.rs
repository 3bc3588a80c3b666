//! Running engine-neutral statements on PostgreSQL: `?` becomes `$1, $2, ...` and values bind natively (uuid,
//! timestamptz, date, boolean, bigint). A write's statements become ONE statement of data-modifying CTEs, so
//! a write is one round trip here too; its row count is the sum of what each part changed. (Parts of one
//! statement do not see each other's changes, so a write never touches the same row twice: see
//! `projection::append_order_events`.) The shared SQL never has a `?` inside a literal.

use crate::StoreError;
use crate::engine::Sql;
use crate::rows::{Kind, Row, Statement, Value, Writes};
use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Arguments, AssertSqlSafe, PgConnection, Row as _};

/// Appends `sql` to `out` with each `?` numbered from `next`; returns the next free number.
fn number_placeholders(sql: &str, out: &mut String, mut next: usize) -> usize {
    for c in sql.chars() {
        if c == '?' {
            out.push('$');
            out.push_str(&next.to_string());
            next += 1;
        } else {
            out.push(c);
        }
    }
    next
}

fn bind(args: &mut PgArguments, value: Value) -> Result<(), StoreError> {
    let added = match value {
        Value::Id(v) => args.add(v),
        Value::Text(v) => args.add(v),
        Value::Int(v) => args.add(v),
        Value::Bool(v) => args.add(v),
        Value::Time(v) => args.add(v),
        Value::Date(v) => args.add(v),
    };
    added.map_err(|e| StoreError::Corrupt(format!("cannot encode a value: {e}")))
}

fn prepare(statement: Statement) -> Result<(String, PgArguments), StoreError> {
    let mut text = String::with_capacity(statement.sql.len() + 16);
    number_placeholders(&statement.sql, &mut text, 1);
    let mut args = PgArguments::default();
    for value in statement.values {
        bind(&mut args, value)?;
    }
    Ok((text, args))
}

fn read(row: &PgRow, kinds: &[Kind]) -> Result<Row, StoreError> {
    kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            Ok(match kind {
                Kind::Id => Value::Id(row.try_get(i)?),
                Kind::Text => Value::Text(row.try_get(i)?),
                Kind::Int => Value::Int(row.try_get(i)?),
                Kind::Bool => Value::Bool(row.try_get(i)?),
                Kind::Time => Value::Time(row.try_get(i)?),
                Kind::Date => Value::Date(row.try_get(i)?),
            })
        })
        .collect()
}

#[async_trait]
impl Sql for PgConnection {
    async fn run(&mut self, writes: Writes) -> Result<u64, StoreError> {
        let mut statements = writes.statements;
        if statements.len() == 1 {
            let only = statements.remove(0);
            return self.execute(only).await;
        }
        let parts = statements.len();
        let mut text = String::from("WITH ");
        let mut args = PgArguments::default();
        let mut next = 1;
        for (i, statement) in statements.into_iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str(&format!("w{i} AS ("));
            next = number_placeholders(&statement.sql, &mut text, next);
            text.push_str(" RETURNING 1)");
            for value in statement.values {
                bind(&mut args, value)?;
            }
        }
        let count = (0..parts)
            .map(|i| format!("(SELECT COUNT(*) FROM w{i})"))
            .collect::<Vec<_>>()
            .join(" + ");
        text.push_str(&format!(" SELECT CAST({count} AS BIGINT)"));
        let changed: i64 = sqlx::query_scalar_with(AssertSqlSafe(text), args)
            .fetch_one(self)
            .await?;
        Ok(u64::try_from(changed).unwrap_or(0))
    }

    async fn execute(&mut self, statement: Statement) -> Result<u64, StoreError> {
        let (text, args) = prepare(statement)?;
        let done = sqlx::query_with(AssertSqlSafe(text), args).execute(self).await?;
        Ok(done.rows_affected())
    }

    async fn fetch(&mut self, statement: Statement, kinds: &[Kind]) -> Result<Vec<Row>, StoreError> {
        let (text, args) = prepare(statement)?;
        let rows = sqlx::query_with(AssertSqlSafe(text), args).fetch_all(self).await?;
        rows.iter().map(|row| read(row, kinds)).collect()
    }
}
