//! Claiming background work from the outbox, the same on both engines: a claim takes due messages that are
//! pending (or whose earlier claim ran out, its worker having died) and marks them claimed by one worker until
//! a deadline. On PostgreSQL the candidates are locked with `FOR UPDATE SKIP LOCKED`, so servers claiming at
//! the same moment take disjoint messages without waiting for each other; SQLite has a single writer.

use crate::engine::Sql;
use crate::rows::{Kind, Statement, cells};
use crate::{OutboxMessage, OutboxOutcome, StoreError};
use chrono::{DateTime, Utc};
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
        OutboxOutcome::Sent => Statement::new("UPDATE outbox SET state = 'sent', claimed_until = NULL"),
        OutboxOutcome::Failed => Statement::new("UPDATE outbox SET state = 'failed', claimed_until = NULL"),
        OutboxOutcome::RetryAt(at) => {
            let mut s = Statement::new(
                "UPDATE outbox SET state = 'pending', claimed_by = NULL, claimed_until = NULL, due_at = ?",
            );
            s.time(at);
            s
        }
    };
    s.sql(" WHERE id = ? AND state = 'claimed' AND claimed_by = ?")
        .id(id)
        .text(worker);
    Ok(sql.execute(s).await? == 1)
}
