//! Running engine-neutral statements on SQLite. Values are bound as text where SQLite has no type (ids as
//! hyphenated UUIDs, times as fixed-width RFC 3339, dates as `YYYY-MM-DD`), so text order is their order.
//!
//! sqlx runs each SQLite connection on its own worker thread, so every statement costs a hand-off between
//! threads; a write's statements are therefore sent as one multi-statement query, its `?` parameters bound in
//! order across all of them.

use crate::engine::Sql;
use crate::rows::{Kind, Row, Statement, Value, Writes};
use crate::{StoreError, format_time, parse_time};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Arguments, AssertSqlSafe, Row as _, SqliteConnection};
use uuid::Uuid;

fn bind(args: &mut SqliteArguments, value: Value) -> Result<(), StoreError> {
    let added = match value {
        Value::Id(v) => args.add(v.map(|id| id.hyphenated().to_string())),
        Value::Text(v) => args.add(v),
        Value::Int(v) => args.add(v),
        Value::Bool(v) => args.add(v),
        Value::Time(v) => args.add(v.map(format_time)),
        Value::Date(v) => args.add(v.map(|d| d.to_string())),
    };
    added.map_err(|e| StoreError::Corrupt(format!("cannot encode a value: {e}")))
}

fn arguments(values: Vec<Value>) -> Result<SqliteArguments, StoreError> {
    let mut args = SqliteArguments::default();
    for value in values {
        bind(&mut args, value)?;
    }
    Ok(args)
}

fn read(row: &SqliteRow, kinds: &[Kind]) -> Result<Row, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(e);
    kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            Ok(match kind {
                Kind::Id => Value::Id(
                    row.try_get::<Option<String>, _>(i)?
                        .map(|t| Uuid::parse_str(&t).map_err(|e| corrupt(format!("bad id '{t}': {e}"))))
                        .transpose()?,
                ),
                Kind::Text => Value::Text(row.try_get(i)?),
                Kind::Int => Value::Int(row.try_get(i)?),
                Kind::Bool => Value::Bool(row.try_get(i)?),
                Kind::Time => Value::Time(
                    row.try_get::<Option<String>, _>(i)?
                        .map(|t| parse_time(&t))
                        .transpose()?,
                ),
                Kind::Date => Value::Date(
                    row.try_get::<Option<String>, _>(i)?
                        .map(|t| t.parse().map_err(|e| corrupt(format!("bad date '{t}': {e}"))))
                        .transpose()?,
                ),
            })
        })
        .collect()
}

#[async_trait]
impl Sql for SqliteConnection {
    async fn run(&mut self, writes: Writes) -> Result<u64, StoreError> {
        let mut text = String::new();
        let mut args = SqliteArguments::default();
        for statement in writes.statements {
            text.push_str(&statement.sql);
            text.push_str(";\n");
            for value in statement.values {
                bind(&mut args, value)?;
            }
        }
        let done = sqlx::query_with(AssertSqlSafe(text), args).execute(self).await?;
        Ok(done.rows_affected())
    }

    async fn execute(&mut self, statement: Statement) -> Result<u64, StoreError> {
        let args = arguments(statement.values)?;
        let done = sqlx::query_with(AssertSqlSafe(statement.sql.into_owned()), args)
            .execute(self)
            .await?;
        Ok(done.rows_affected())
    }

    async fn fetch(&mut self, statement: Statement, kinds: &[Kind]) -> Result<Vec<Row>, StoreError> {
        let args = arguments(statement.values)?;
        let rows = sqlx::query_with(AssertSqlSafe(statement.sql.into_owned()), args)
            .fetch_all(self)
            .await?;
        rows.iter().map(|row| read(row, kinds)).collect()
    }
}
