//! Idempotency keys, the same on both engines: the first request with a key claims it, its answer is kept,
//! and a retry with the same key gets that answer again instead of doing the work twice.

use crate::engine::Sql;
use crate::rows::{Kind, Statement, cells};
use crate::{IdempotencyClaim, StoreError};
use chrono::{DateTime, Utc};
use ordertrail_domain::ids::UserId;

/// Claims an idempotency key inside the caller's transaction (see [`IdempotencyClaim`]).
pub(crate) async fn claim(
    sql: &mut dyn Sql,
    user: UserId,
    key: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> Result<IdempotencyClaim, StoreError> {
    let mut insert = Statement::new(
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, state, created_at) VALUES (?, ?, ?, 'pending', ?)
         ON CONFLICT (user_id, key) DO NOTHING",
    );
    insert.id(user.0).text(key).text(fingerprint).time(now);
    if sql.execute(insert).await? == 1 {
        return Ok(IdempotencyClaim::Claimed);
    }
    // A key left pending for 5 minutes belongs to a request that died before it answered: take it over.
    let mut take_over = Statement::new(
        "UPDATE idempotency_keys SET fingerprint = ?, created_at = ?
         WHERE user_id = ? AND key = ? AND state = 'pending' AND created_at < ?",
    );
    take_over
        .text(fingerprint)
        .time(now)
        .id(user.0)
        .text(key)
        .time(now - chrono::TimeDelta::minutes(5));
    if sql.execute(take_over).await? == 1 {
        return Ok(IdempotencyClaim::Claimed);
    }
    let mut read = Statement::new(
        "SELECT fingerprint, state, status_code, body FROM idempotency_keys WHERE user_id = ? AND key = ?",
    );
    read.id(user.0).text(key);
    let rows = sql
        .fetch(read, &[Kind::Text, Kind::Text, Kind::Int, Kind::Text])
        .await?;
    let Some(row) = rows.first() else {
        // Released between our insert and this read: the caller may try again.
        return Ok(IdempotencyClaim::InProgress);
    };
    let c = cells(row);
    Ok(if c.text(1)? == "done" {
        IdempotencyClaim::Done {
            fingerprint: c.text(0)?,
            status: c.opt_int(2)?.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
            body: c.opt_text(3)?.unwrap_or_default(),
        }
    } else {
        IdempotencyClaim::InProgress
    })
}

pub(crate) async fn finish(
    sql: &mut dyn Sql,
    user: UserId,
    key: &str,
    status: u16,
    body: &str,
) -> Result<(), StoreError> {
    let mut s = Statement::new(
        "UPDATE idempotency_keys SET state = 'done', status_code = ?, body = ? WHERE user_id = ? AND key = ?",
    );
    s.int(i64::from(status)).text(body).id(user.0).text(key);
    sql.execute(s).await?;
    Ok(())
}

pub(crate) async fn release(sql: &mut dyn Sql, user: UserId, key: &str) -> Result<(), StoreError> {
    let mut s = Statement::new("DELETE FROM idempotency_keys WHERE user_id = ? AND key = ? AND state = 'pending'");
    s.id(user.0).text(key);
    sql.execute(s).await?;
    Ok(())
}
