//! The reads both engines share: the same SQL, the same decoding. Lists filter on the columns of the order's
//! projection row (see DESIGN.md, Storage); the health filter is the SQL form of `ordertrail_domain::progress`.

use crate::engine::Sql;
use crate::projection::{Head, from_json};
use crate::rows::{Kind, Row, Statement, cells};
use crate::{IssueQuery, OrderQuery, StoreError, StoredEvent, Visibility};
use ordertrail_domain::customer::{Customer, User};
use ordertrail_domain::follow_up::FollowUp;
use ordertrail_domain::ids::{CustomerId, OrderId, UserId};
use ordertrail_domain::issue::Issue;
use ordertrail_domain::order::Order;
use ordertrail_domain::progress::Health;
use uuid::Uuid;

const USER: &str = "SELECT u.id, u.email, u.name, u.roles, u.customer_id, u.created_at FROM users u";
const USER_KINDS: &[Kind] = &[Kind::Id, Kind::Text, Kind::Text, Kind::Text, Kind::Id, Kind::Time];

fn user_from(row: &Row) -> Result<User, StoreError> {
    let c = cells(row);
    Ok(User {
        id: UserId(c.id(0)?),
        email: c.text(1)?,
        name: c.text(2)?,
        roles: from_json(&c.text(3)?)?,
        customer_id: c.opt_id(4)?.map(CustomerId),
        created_at: c.time(5)?,
    })
}

async fn one_user(sql: &mut dyn Sql, statement: Statement) -> Result<Option<User>, StoreError> {
    let rows = sql.fetch(statement, USER_KINDS).await?;
    rows.first().map(user_from).transpose()
}

pub(crate) async fn user(sql: &mut dyn Sql, id: UserId) -> Result<Option<User>, StoreError> {
    let mut s = Statement::new(format!("{USER} WHERE u.id = ?"));
    s.id(id.0);
    one_user(sql, s).await
}

pub(crate) async fn user_by_email(sql: &mut dyn Sql, email: &str) -> Result<Option<User>, StoreError> {
    let mut s = Statement::new(format!("{USER} WHERE u.email = ?"));
    s.text(email.trim().to_ascii_lowercase());
    one_user(sql, s).await
}

pub(crate) async fn user_by_token_hash(sql: &mut dyn Sql, token_hash: &str) -> Result<Option<User>, StoreError> {
    let mut s = Statement::new(format!(
        "{USER} JOIN tokens t ON t.user_id = u.id WHERE t.token_hash = ?"
    ));
    s.text(token_hash);
    one_user(sql, s).await
}

pub(crate) async fn users(sql: &mut dyn Sql, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let marks = vec!["?"; ids.len()].join(", ");
    let mut s = Statement::new(format!("{USER} WHERE u.id IN ({marks}) ORDER BY u.id"));
    for id in ids {
        s.id(id.0);
    }
    sql.fetch(s, USER_KINDS).await?.iter().map(user_from).collect()
}

/// Every user (the organisation's people and its customers' users), by id.
pub(crate) async fn all_users(sql: &mut dyn Sql) -> Result<Vec<User>, StoreError> {
    let s = Statement::new(format!("{USER} ORDER BY u.id"));
    sql.fetch(s, USER_KINDS).await?.iter().map(user_from).collect()
}

async fn body<T: serde::de::DeserializeOwned>(
    sql: &mut dyn Sql,
    statement: Statement,
) -> Result<Option<T>, StoreError> {
    let rows = sql.fetch(statement, &[Kind::Text]).await?;
    rows.first().map(|row| from_json(&cells(row).text(0)?)).transpose()
}

pub(crate) async fn customer(sql: &mut dyn Sql, id: CustomerId) -> Result<Option<Customer>, StoreError> {
    let mut s = Statement::new("SELECT body FROM customers WHERE id = ?");
    s.id(id.0);
    body(sql, s).await
}

pub(crate) async fn order(sql: &mut dyn Sql, id: OrderId) -> Result<Option<Order>, StoreError> {
    let mut s = Statement::new("SELECT body FROM orders WHERE id = ?");
    s.id(id.0);
    body(sql, s).await
}

/// The order and the hash at the end of its chain, as a write loads it. `suffix` is appended to the query
/// (PostgreSQL locks the row with `FOR UPDATE`).
pub(crate) async fn order_for_write(
    sql: &mut dyn Sql,
    id: OrderId,
    suffix: &str,
) -> Result<Option<(Order, String)>, StoreError> {
    let mut s = Statement::new(format!("SELECT body, head_hash FROM orders WHERE id = ?{suffix}"));
    s.id(id.0);
    let rows = sql.fetch(s, &[Kind::Text, Kind::Text]).await?;
    rows.first()
        .map(|row| {
            let c = cells(row);
            Ok((from_json(&c.text(0)?)?, c.text(1)?))
        })
        .transpose()
}

pub(crate) async fn follow_ups(sql: &mut dyn Sql, order: OrderId) -> Result<Vec<FollowUp>, StoreError> {
    let mut s = Statement::new("SELECT body FROM follow_ups WHERE order_id = ? ORDER BY occurred_at DESC, id DESC");
    s.id(order.0);
    let rows = sql.fetch(s, &[Kind::Text]).await?;
    rows.iter().map(|row| from_json(&cells(row).text(0)?)).collect()
}

/// The head of a stream, read from the log itself.
pub(crate) async fn head(sql: &mut dyn Sql, stream: Uuid) -> Result<Head, StoreError> {
    let mut s = Statement::new("SELECT seq, hash FROM events WHERE stream_id = ? ORDER BY seq DESC LIMIT 1");
    s.id(stream);
    let rows = sql.fetch(s, &[Kind::Int, Kind::Text]).await?;
    match rows.first() {
        Some(row) => Ok(Head {
            seq: cells(row).int(0)?,
            hash: cells(row).text(1)?,
        }),
        None => Ok(Head::genesis()),
    }
}

pub(crate) const EVENT_COLUMNS: &str =
    "id, stream_id, seq, occurred_at, actor_id, acting_role, kind, reason, payload, prev_hash, hash";
pub(crate) const EVENT_KINDS: &[Kind] = &[
    Kind::Id,
    Kind::Id,
    Kind::Int,
    Kind::Time,
    Kind::Id,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
];

/// An event as stored, and its payload's exact text (what its hash covers).
pub(crate) fn stored_event(row: &Row) -> Result<(StoredEvent, String), StoreError> {
    let c = cells(row);
    let payload = c.text(8)?;
    let event = StoredEvent {
        id: c.id(0)?,
        stream_id: c.id(1)?,
        seq: c.int(2)?,
        occurred_at: c.time(3)?,
        actor_id: c.opt_id(4)?,
        acting_role: c.text(5)?,
        kind: c.text(6)?,
        reason: c.opt_text(7)?,
        data: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
        prev_hash: c.text(9)?,
        hash: c.text(10)?,
    };
    Ok((event, payload))
}

pub(crate) async fn events(sql: &mut dyn Sql, stream: Uuid) -> Result<Vec<StoredEvent>, StoreError> {
    let mut s = Statement::new(format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ? ORDER BY seq"
    ));
    s.id(stream);
    let rows = sql.fetch(s, EVENT_KINDS).await?;
    rows.iter().map(|r| stored_event(r).map(|(e, _)| e)).collect()
}

pub(crate) async fn count(sql: &mut dyn Sql, table: &'static str) -> Result<i64, StoreError> {
    let rows = sql
        .fetch(
            Statement::new(format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table}")),
            &[Kind::Int],
        )
        .await?;
    rows.first().map_or(Ok(0), |row| cells(row).int(0))
}

/// The SQL of the health rule in `ordertrail_domain::progress`; `{today}` and `{cutoff}` are bound dates.
const LATE: &str =
    "(o.awaits_delivery = TRUE AND (o.promised_date < {today} OR COALESCE(o.next_due_on, '9999-12-31') < {cutoff}))";
const AT_RISK_OR_WORSE: &str = "(o.awaits_delivery = TRUE AND (COALESCE(o.next_due_on, '9999-12-31') < {today} OR COALESCE(o.last_planned_on, '0001-01-01') > o.promised_date OR o.open_exceptions > 0))";

fn push_rule(s: &mut Statement, rule: &str, today: chrono::NaiveDate, cutoff: chrono::NaiveDate) {
    let mut rest = rule;
    while let Some(pos) = rest.find('{') {
        s.sql(&rest[..pos]).sql("?");
        let end = rest[pos..].find('}').map_or(rest.len(), |e| pos + e);
        s.date(if &rest[pos + 1..end] == "today" { today } else { cutoff });
        rest = &rest[end + 1..];
    }
    s.sql(rest);
}

/// Adds the condition that the order `order_id` (an SQL expression) is one the caller may see.
fn push_visibility(s: &mut Statement, visibility: Visibility, order_id: &str) {
    match visibility {
        Visibility::All => {}
        Visibility::Customer(user) => {
            s.sql(&format!(" AND EXISTS (SELECT 1 FROM order_people p WHERE p.order_id = {order_id} AND p.relation = 'customer' AND p.user_id = ?)"))
                .id(user.0);
        }
        Visibility::InvolvedStaff(user) => {
            s.sql(&format!(" AND (EXISTS (SELECT 1 FROM order_people p WHERE p.order_id = {order_id} AND p.relation <> 'customer' AND p.user_id = ?)"))
                .id(user.0)
                .sql(&format!(" OR EXISTS (SELECT 1 FROM milestones m WHERE m.order_id = {order_id} AND m.owner_id = ?))"))
                .id(user.0);
        }
    }
}

/// The issues `q` asks for, newest first. A breach is the SQL form of `ordertrail_domain::issue::breaches`.
pub(crate) async fn list_issues(sql: &mut dyn Sql, q: &IssueQuery) -> Result<Vec<Issue>, StoreError> {
    let mut s = Statement::new("SELECT i.body FROM issues i WHERE 1 = 1");
    push_visibility(&mut s, q.visibility, "i.order_id");
    if let Some(order) = q.order {
        s.sql(" AND i.order_id = ?").id(order.0);
    }
    match q.open {
        Some(true) => {
            s.sql(" AND i.status <> 'resolved'");
        }
        Some(false) => {
            s.sql(" AND i.status = 'resolved'");
        }
        None => {}
    }
    if let Some(limits) = q.breached {
        let notice_seconds = limits.client_notice_hours * 3600;
        s.sql(" AND (i.opened_after_seconds > ?")
            .int(limits.open_within_minutes * 60)
            .sql(" OR i.told_after_seconds > ?")
            .int(notice_seconds)
            .sql(" OR (i.client_told_at IS NULL AND i.opened_at < ?)")
            .time(limits.now - chrono::TimeDelta::seconds(notice_seconds))
            .sql(" OR (i.status <> 'resolved' AND i.expected_resolution_at < ?))")
            .time(limits.now);
    }
    s.sql(" ORDER BY i.opened_at DESC, i.id DESC LIMIT ?")
        .int(i64::from(q.limit));
    let rows = sql.fetch(s, &[Kind::Text]).await?;
    rows.iter().map(|row| from_json(&cells(row).text(0)?)).collect()
}

/// The order list's query: the bodies of the orders `q` asks for, newest first.
pub(crate) fn list_query(q: &OrderQuery) -> Statement {
    let mut s = Statement::new("SELECT o.body FROM orders o WHERE 1 = 1");
    push_visibility(&mut s, q.visibility, "o.id");
    if let Some(status) = &q.status {
        s.sql(" AND o.status = ?").text(status.clone());
    }
    if let Some(owner) = q.owner {
        s.sql(" AND o.owner_id = ?").id(owner.0);
    }
    if let Some(customer) = q.customer {
        s.sql(" AND o.customer_id = ?").id(customer.0);
    }
    if let Some(order_type) = q.order_type {
        s.sql(" AND o.order_type = ?").text(order_type.as_str());
    }
    if let Some(due) = q.due_before {
        s.sql(" AND o.promised_date < ?").date(due);
    }
    if let Some(text) = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        // search_text is stored lower-cased, so LIKE behaves the same on both engines.
        let escaped = text
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        s.sql(" AND o.search_text LIKE ? ESCAPE '\\'")
            .text(format!("%{escaped}%"));
    }
    if let Some(health) = q.health {
        let cutoff = q.today - chrono::TimeDelta::days(q.late_after_days);
        let (late, at_risk) = match health {
            Health::Late => (" AND ", None),
            Health::AtRisk => (" AND NOT ", Some(" AND ")),
            Health::OnTrack => (" AND NOT ", Some(" AND NOT ")),
        };
        s.sql(late);
        push_rule(&mut s, LATE, q.today, cutoff);
        if let Some(at_risk) = at_risk {
            s.sql(at_risk);
            push_rule(&mut s, AT_RISK_OR_WORSE, q.today, cutoff);
        }
    }
    if let Some(before) = q.before {
        s.sql(" AND o.id < ?").id(before.0);
    }
    s.sql(" ORDER BY o.id DESC LIMIT ?").int(i64::from(q.limit));
    s
}

pub(crate) async fn list_orders(sql: &mut dyn Sql, q: &OrderQuery) -> Result<Vec<Order>, StoreError> {
    let rows = sql.fetch(list_query(q), &[Kind::Text]).await?;
    rows.iter().map(|row| from_json(&cells(row).text(0)?)).collect()
}
