//! Claiming background work from the outbox, the same on both engines: a claim takes due messages that are
//! pending (or whose earlier claim ran out, its worker having died) and marks them claimed by one worker until
//! a deadline. On PostgreSQL the candidates are locked with `FOR UPDATE SKIP LOCKED`, so servers claiming at
//! the same moment take disjoint messages without waiting for each other; SQLite has a single writer.

use crate::engine::Sql;
use crate::rows::{Kind, Statement, cells};
use crate::{MilestoneWindow, OutboxEntry, OutboxMessage, OutboxOutcome, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use ordertrail_domain::order::OrderType;
use uuid::Uuid;

/// Claims up to `limit` messages due at `now` for `worker` until `until`. `lock` is appended to the query
/// that picks the candidates (PostgreSQL: `FOR UPDATE SKIP LOCKED`).
pub(crate) async fn claim(
    sql: &mut dyn Sql,
    worker: &str,
    limit: u32,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    lock: &str,
) -> Result<Vec<OutboxMessage>, StoreError> {
    let mut s = Statement::new(format!(
        "UPDATE outbox SET state = 'claimed', claimed_by = ?, claimed_until = ?, attempts = attempts + 1
         WHERE position IN (
             SELECT position FROM outbox
             WHERE (state = 'pending' OR (state = 'claimed' AND claimed_until < ?)) AND due_at <= ?
             ORDER BY due_at, position LIMIT ?{lock})
         RETURNING id, stream_id, kind, dedupe_key, payload, due_at, attempts"
    ));
    s.text(worker).time(until).time(now).time(now).int(i64::from(limit));
    let kinds = [
        Kind::Id,
        Kind::Id,
        Kind::Text,
        Kind::Text,
        Kind::Text,
        Kind::Time,
        Kind::Int,
    ];
    let rows = sql.fetch(s, &kinds).await?;
    let mut claimed = rows
        .iter()
        .map(|row| {
            let c = cells(row);
            Ok(OutboxMessage {
                id: c.id(0)?,
                stream_id: c.id(1)?,
                kind: c.text(2)?,
                dedupe_key: c.text(3)?,
                payload: c.text(4)?,
                due_at: c.time(5)?,
                attempts: c.int(6)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    claimed.sort_by_key(|m| (m.due_at, m.id));
    Ok(claimed)
}

/// Records what became of a claimed message. `false` when `worker` no longer holds the claim (it ran out and
/// another worker took the message): the outcome is then not recorded.
pub(crate) async fn finish(
    sql: &mut dyn Sql,
    id: Uuid,
    worker: &str,
    outcome: OutboxOutcome,
) -> Result<bool, StoreError> {
    let mut s = match outcome {
        OutboxOutcome::Sent { at } => {
            let mut s = Statement::new("UPDATE outbox SET state = 'sent', claimed_until = NULL, finished_at = ?");
            s.time(at);
            s
        }
        OutboxOutcome::Failed { at, error } => {
            let mut s = Statement::new(
                "UPDATE outbox SET state = 'failed', claimed_until = NULL, finished_at = ?, last_error = ?",
            );
            s.time(at).text(error);
            s
        }
        OutboxOutcome::RetryAt { at, error } => {
            let mut s = Statement::new(
                "UPDATE outbox SET state = 'pending', claimed_by = NULL, claimed_until = NULL, due_at = ?, last_error = ?",
            );
            s.time(at).text(error);
            s
        }
    };
    s.sql(" WHERE id = ? AND state = 'claimed' AND claimed_by = ?")
        .id(id)
        .text(worker);
    Ok(sql.execute(s).await? == 1)
}

/// The orders the follow-through rules may have something for (by index, not by scanning every order): those
/// with an open milestone in the window whose next step (chase, reminder, overdue notice) is not queued yet,
/// and, per order type, those still awaiting delivery whose last client update was queued before the current
/// period's first day.
pub(crate) async fn follow_through_candidates(
    sql: &mut dyn Sql,
    milestones: &MilestoneWindow,
    client_updates: &[(OrderType, NaiveDate)],
) -> Result<Vec<Uuid>, StoreError> {
    let mut s = Statement::new(
        "SELECT order_id FROM milestones WHERE completed_at IS NULL AND planned_on >= ? AND planned_on <= ? AND (
             (planned_on <= ? AND follow_through_stage < 1) OR (planned_on <= ? AND follow_through_stage < 2)
             OR (planned_on <= ? AND follow_through_stage < 3))",
    );
    let to = milestones.chase_to.max(milestones.remind_to).max(milestones.overdue_to);
    s.date(milestones.from)
        .date(to)
        .date(milestones.chase_to)
        .date(milestones.remind_to)
        .date(milestones.overdue_to);
    for (order_type, since) in client_updates {
        s.sql(" UNION SELECT id FROM orders WHERE awaits_delivery = ? AND order_type = ? AND client_update_on < ?")
            .bool(true)
            .text(order_type.as_str())
            .date(*since);
    }
    let rows = sql.fetch(s, &[Kind::Id]).await?;
    rows.iter().map(|row| cells(row).id(0)).collect()
}

/// Messages in `state` (any when none), optionally of one stream, newest first.
pub(crate) async fn list(
    sql: &mut dyn Sql,
    state: Option<&str>,
    stream: Option<Uuid>,
    limit: u32,
) -> Result<Vec<OutboxEntry>, StoreError> {
    let mut s = Statement::new(
        "SELECT id, stream_id, kind, dedupe_key, state, attempts, due_at, created_at, finished_at, last_error, payload
         FROM outbox WHERE 1 = 1",
    );
    if let Some(state) = state {
        s.sql(" AND state = ?").text(state);
    }
    if let Some(stream) = stream {
        s.sql(" AND stream_id = ?").id(stream);
    }
    s.sql(" ORDER BY position DESC LIMIT ?").int(i64::from(limit));
    let kinds = [
        Kind::Id,
        Kind::Id,
        Kind::Text,
        Kind::Text,
        Kind::Text,
        Kind::Int,
        Kind::Time,
        Kind::Time,
        Kind::Time,
        Kind::Text,
        Kind::Text,
    ];
    let rows = sql.fetch(s, &kinds).await?;
    rows.iter()
        .map(|row| {
            let c = cells(row);
            Ok(OutboxEntry {
                id: c.id(0)?,
                stream_id: c.id(1)?,
                kind: c.text(2)?,
                dedupe_key: c.text(3)?,
                state: c.text(4)?,
                attempts: c.int(5)?,
                due_at: c.time(6)?,
                created_at: c.time(7)?,
                finished_at: c.opt_time(8)?,
                last_error: c.opt_text(9)?,
                payload: c.text(10)?,
            })
        })
        .collect()
}

/// Puts a message in one of `from` (a dead letter, a draft) back in line to be sent at `now`, its attempts
/// counted afresh. `false` when it is not in one of those states.
pub(crate) async fn release(
    sql: &mut dyn Sql,
    id: Uuid,
    from: &[&str],
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let marks = vec!["?"; from.len()].join(", ");
    let mut s = Statement::new(format!(
        "UPDATE outbox SET state = 'pending', due_at = ?, attempts = 0, claimed_by = NULL, claimed_until = NULL
         WHERE id = ? AND state IN ({marks})"
    ));
    s.time(now).id(id);
    for state in from {
        s.text(*state);
    }
    Ok(sql.execute(s).await? == 1)
}

/// Queues a message that belongs to no order's log (the daily digest): once per dedupe key; `false` when the
/// key was queued before.
pub(crate) async fn enqueue_once(
    sql: &mut dyn Sql,
    stream_id: Uuid,
    kind: &str,
    dedupe_key: &str,
    payload: &str,
    due_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut s = Statement::new(
        "INSERT INTO outbox (id, stream_id, event_id, kind, dedupe_key, payload, due_at, state, attempts, created_at)
         VALUES (?, ?, NULL, ?, ?, ?, ?, 'pending', 0, ?) ON CONFLICT (dedupe_key) DO NOTHING",
    );
    s.id(Uuid::now_v7())
        .id(stream_id)
        .text(kind)
        .text(dedupe_key)
        .text(payload)
        .time(due_at)
        .time(due_at);
    Ok(sql.execute(s).await? == 1)
}

/// The orders dunning may concern between two dates: an unpaid installment fell or falls due in between.
pub(crate) async fn dunning_candidates(
    sql: &mut dyn Sql,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Uuid>, StoreError> {
    let mut s = Statement::new("SELECT id FROM orders WHERE unpaid_due_on >= ? AND unpaid_due_on <= ? ORDER BY id");
    s.date(from).date(to);
    let rows = sql.fetch(s, &[Kind::Id]).await?;
    rows.iter().map(|row| cells(row).id(0)).collect()
}
