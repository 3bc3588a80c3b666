//! Engine-neutral SQL: a statement's text with anonymous `?` parameters and its values, typed as the domain
//! knows them (an id, a time, a date). Each engine binds a value its own way: SQLite as text (fixed-width
//! RFC 3339 for times, so text order is time order), PostgreSQL natively (uuid, timestamptz, date, boolean).
//! What a write changes is built once, here and in `projection`, and run by either engine.

use chrono::{DateTime, NaiveDate, Utc};
use std::borrow::Cow;
use uuid::Uuid;

/// One value of a statement or a row. The `Option`s are SQL NULLs of their type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Id(Option<Uuid>),
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
    Time(Option<DateTime<Utc>>),
    Date(Option<NaiveDate>),
}

/// The type of a column, to read it back as a [`Value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Id,
    Text,
    Int,
    Bool,
    Time,
    Date,
}

/// One SQL statement with `?` parameters, and how many rows it must change (when run as a write).
#[derive(Debug, Clone)]
pub(crate) struct Statement {
    pub sql: Cow<'static, str>,
    pub values: Vec<Value>,
    pub rows: u64,
}

impl Statement {
    pub fn new(sql: impl Into<Cow<'static, str>>) -> Statement {
        Statement {
            sql: sql.into(),
            values: Vec::new(),
            rows: 0,
        }
    }

    pub fn id(&mut self, v: Uuid) -> &mut Self {
        self.values.push(Value::Id(Some(v)));
        self
    }
    pub fn opt_id(&mut self, v: Option<Uuid>) -> &mut Self {
        self.values.push(Value::Id(v));
        self
    }
    pub fn text(&mut self, v: impl Into<String>) -> &mut Self {
        self.values.push(Value::Text(Some(v.into())));
        self
    }
    pub fn opt_text(&mut self, v: Option<impl Into<String>>) -> &mut Self {
        self.values.push(Value::Text(v.map(Into::into)));
        self
    }
    pub fn int(&mut self, v: i64) -> &mut Self {
        self.values.push(Value::Int(Some(v)));
        self
    }
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.values.push(Value::Bool(v));
        self
    }
    pub fn time(&mut self, v: DateTime<Utc>) -> &mut Self {
        self.values.push(Value::Time(Some(v)));
        self
    }
    pub fn opt_time(&mut self, v: Option<DateTime<Utc>>) -> &mut Self {
        self.values.push(Value::Time(v));
        self
    }
    pub fn date(&mut self, v: NaiveDate) -> &mut Self {
        self.values.push(Value::Date(Some(v)));
        self
    }
    pub fn opt_date(&mut self, v: Option<NaiveDate>) -> &mut Self {
        self.values.push(Value::Date(v));
        self
    }
    pub fn value(&mut self, v: Value) -> &mut Self {
        self.values.push(v);
        self
    }
    /// Appends SQL text (for statements built piece by piece).
    pub fn sql(&mut self, text: &str) -> &mut Self {
        self.sql.to_mut().push_str(text);
        self
    }
}

/// The statements of one write, in order. Together they must change exactly [`Writes::expected_rows`] rows;
/// fewer means an optimistic check (a version, a counter) failed and the write must not commit.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    pub statements: Vec<Statement>,
}

impl Writes {
    /// Adds a statement that must change exactly `rows` rows.
    pub fn push(&mut self, sql: impl Into<Cow<'static, str>>, rows: u64) -> &mut Statement {
        let mut statement = Statement::new(sql);
        statement.rows = rows;
        self.statements.push(statement);
        self.statements.last_mut().expect("just pushed")
    }

    pub fn expected_rows(&self) -> u64 {
        self.statements.iter().map(|s| s.rows).sum()
    }
}

/// A row read back: its values in the order of the kinds asked for.
pub(crate) type Row = Vec<Value>;

/// Typed access to a row's cells, with a `Corrupt` error when the database holds what it should not.
pub(crate) struct Cells<'a> {
    row: &'a [Value],
}

pub(crate) fn cells(row: &[Value]) -> Cells<'_> {
    Cells { row }
}

fn corrupt(what: &str, index: usize) -> crate::StoreError {
    crate::StoreError::Corrupt(format!("column {index} is not a {what}"))
}

impl Cells<'_> {
    pub fn opt_id(&self, i: usize) -> Result<Option<Uuid>, crate::StoreError> {
        match self.row.get(i) {
            Some(Value::Id(v)) => Ok(*v),
            _ => Err(corrupt("id", i)),
        }
    }
    pub fn id(&self, i: usize) -> Result<Uuid, crate::StoreError> {
        self.opt_id(i)?.ok_or_else(|| corrupt("id", i))
    }
    pub fn opt_text(&self, i: usize) -> Result<Option<String>, crate::StoreError> {
        match self.row.get(i) {
            Some(Value::Text(v)) => Ok(v.clone()),
            _ => Err(corrupt("text", i)),
        }
    }
    pub fn text(&self, i: usize) -> Result<String, crate::StoreError> {
        self.opt_text(i)?.ok_or_else(|| corrupt("text", i))
    }
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>, crate::StoreError> {
        match self.row.get(i) {
            Some(Value::Int(v)) => Ok(*v),
            _ => Err(corrupt("number", i)),
        }
    }
    pub fn int(&self, i: usize) -> Result<i64, crate::StoreError> {
        self.opt_int(i)?.ok_or_else(|| corrupt("number", i))
    }
    pub fn time(&self, i: usize) -> Result<DateTime<Utc>, crate::StoreError> {
        self.opt_time(i)?.ok_or_else(|| corrupt("time", i))
    }
    pub fn opt_time(&self, i: usize) -> Result<Option<DateTime<Utc>>, crate::StoreError> {
        match self.row.get(i) {
            Some(Value::Time(v)) => Ok(*v),
            _ => Err(corrupt("time", i)),
        }
    }
}
