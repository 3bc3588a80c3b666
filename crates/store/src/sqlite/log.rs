//! The event log on SQLite: appending to a stream's hash chain, reading a stream, verifying every chain.

use super::batch::Batch;
use crate::{BrokenLink, StoreError, StoredEvent, VerifyReport, format_time, parse_time};
use chrono::{DateTime, Utc};
use ordertrail_domain::event::{Actor, ChainLink, GENESIS_HASH, chain_hash};
use sqlx::{Row, SqliteConnection, SqlitePool};
use uuid::Uuid;

/// The end of a stream's chain: the last sequence number and hash (0 and the genesis hash when empty).
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub seq: i64,
    pub hash: String,
}

impl Head {
    pub fn genesis() -> Head {
        Head {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        }
    }
}

/// An event ready to append: payload already serialised (the hash covers these exact bytes).
pub(crate) struct Append<'a> {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub reason: Option<&'a str>,
    pub kind: &'a str,
    pub payload: &'a str,
}

/// The head of a stream, read from the log itself.
pub(crate) async fn head(conn: &mut SqliteConnection, stream: Uuid) -> Result<Head, StoreError> {
    let row = sqlx::query("SELECT seq, hash FROM events WHERE stream_id = $1 ORDER BY seq DESC LIMIT 1")
        .bind(stream.to_string())
        .fetch_optional(conn)
        .await?;
    Ok(match row {
        Some(row) => Head {
            seq: row.try_get("seq")?,
            hash: row.try_get("hash")?,
        },
        None => Head::genesis(),
    })
}

/// Adds one event after `head` to `batch` and moves `head` on.
pub(crate) fn append(batch: &mut Batch, stream: Uuid, head: &mut Head, e: Append<'_>) {
    let seq = head.seq + 1;
    let actor_id = e.actor.user_id().map(|u| u.0);
    let link = ChainLink {
        stream_id: stream,
        seq,
        event_id: e.id,
        at: e.at,
        actor_id,
        acting_role: e.actor.role_name(),
        kind: e.kind,
        reason: e.reason,
        payload: e.payload,
    };
    let hash = chain_hash(&head.hash, &link);
    batch
        .push(
            "INSERT INTO events (id, stream_id, seq, occurred_at, actor_id, acting_role, kind, reason, payload, prev_hash, hash)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            1,
        )
        .bind(e.id.to_string())
        .bind(stream.to_string())
        .bind(seq)
        .bind(format_time(e.at))
        .bind(actor_id.map(|a| a.to_string()))
        .bind(e.actor.role_name())
        .bind(e.kind.to_string())
        .bind(e.reason.map(str::to_string))
        .bind(e.payload.to_string())
        .bind(head.hash.clone())
        .bind(hash.clone());
    *head = Head { seq, hash };
}

fn uuid(text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|e| StoreError::Corrupt(format!("bad id '{text}': {e}")))
}

fn stored_event(row: &sqlx::sqlite::SqliteRow) -> Result<(StoredEvent, String), StoreError> {
    let payload: String = row.try_get("payload")?;
    let actor: Option<String> = row.try_get("actor_id")?;
    let event = StoredEvent {
        id: uuid(row.try_get("id")?)?,
        stream_id: uuid(row.try_get("stream_id")?)?,
        seq: row.try_get("seq")?,
        occurred_at: parse_time(row.try_get("occurred_at")?)?,
        actor_id: actor.as_deref().map(uuid).transpose()?,
        acting_role: row.try_get("acting_role")?,
        kind: row.try_get("kind")?,
        reason: row.try_get("reason")?,
        data: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    };
    Ok((event, payload))
}

pub(crate) async fn events(pool: &SqlitePool, stream: Uuid) -> Result<Vec<StoredEvent>, StoreError> {
    let rows = sqlx::query("SELECT * FROM events WHERE stream_id = $1 ORDER BY seq")
        .bind(stream.to_string())
        .fetch_all(pool)
        .await?;
    rows.iter().map(|r| stored_event(r).map(|(e, _)| e)).collect()
}

/// Recomputes every chain and compares with the order rows' heads. Reads in pages so memory stays flat.
pub(crate) async fn verify(pool: &SqlitePool) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    let mut after: (String, i64) = (String::new(), 0);
    let mut current: Option<(Uuid, Head, bool)> = None;
    let mut finished: Vec<(Uuid, Head)> = Vec::new();
    loop {
        let rows = sqlx::query(
            "SELECT * FROM events WHERE stream_id > $1 OR (stream_id = $1 AND seq > $2) ORDER BY stream_id, seq LIMIT 2000",
        )
        .bind(&after.0)
        .bind(after.1)
        .fetch_all(pool)
        .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let stream_text: String = row.try_get("stream_id")?;
            let seq: i64 = row.try_get("seq")?;
            after = (stream_text, seq);
            report.events += 1;
            let (event, payload) = match stored_event(row) {
                Ok(parsed) => parsed,
                Err(e) => {
                    report.broken.push(BrokenLink {
                        stream_id: Uuid::nil(),
                        order_number: None,
                        seq,
                        problem: e.to_string(),
                    });
                    continue;
                }
            };
            if current.as_ref().is_none_or(|(s, _, _)| *s != event.stream_id) {
                if let Some((stream, head, _)) = current.take() {
                    finished.push((stream, head));
                }
                report.streams += 1;
                current = Some((event.stream_id, Head::genesis(), false));
            }
            let Some((stream, head, broken)) = current.as_mut() else {
                continue;
            };
            if *broken {
                continue;
            }
            let link = ChainLink {
                stream_id: *stream,
                seq: event.seq,
                event_id: event.id,
                at: event.occurred_at,
                actor_id: event.actor_id,
                acting_role: &event.acting_role,
                kind: &event.kind,
                reason: event.reason.as_deref(),
                payload: &payload,
            };
            let problem = if event.seq != head.seq + 1 {
                Some(format!("sequence jumps from {} to {}", head.seq, event.seq))
            } else if event.prev_hash != head.hash {
                Some("prev_hash does not match the previous event's hash (an event was removed or altered)".to_string())
            } else if chain_hash(&head.hash, &link) != event.hash {
                Some("hash does not match the event's content (the event was altered)".to_string())
            } else {
                None
            };
            match problem {
                Some(problem) => {
                    *broken = true;
                    report.broken.push(BrokenLink {
                        stream_id: *stream,
                        order_number: None,
                        seq: event.seq,
                        problem,
                    });
                }
                None => {
                    *head = Head {
                        seq: event.seq,
                        hash: event.hash.clone(),
                    }
                }
            }
        }
    }
    if let Some((stream, head, _)) = current.take() {
        finished.push((stream, head));
    }
    // Each order row must point at the end of its chain (a deleted last event shows here).
    let heads: std::collections::HashMap<Uuid, Head> = finished.into_iter().collect();
    let orders = sqlx::query("SELECT id, number, version, head_hash FROM orders")
        .fetch_all(pool)
        .await?;
    for row in &orders {
        let id = uuid(row.try_get("id")?)?;
        let version: i64 = row.try_get("version")?;
        let head_hash: String = row.try_get("head_hash")?;
        let already = report.broken.iter().any(|b| b.stream_id == id);
        let ok = heads.get(&id).is_some_and(|h| h.seq == version && h.hash == head_hash);
        if !ok && !already {
            report.broken.push(BrokenLink {
                stream_id: id,
                order_number: None,
                seq: version,
                problem: "the order's version and head hash do not match the end of its event chain".into(),
            });
        }
    }
    for link in &mut report.broken {
        link.order_number = orders.iter().find_map(|row| {
            let id: String = row.try_get("id").ok()?;
            (id == link.stream_id.to_string())
                .then(|| row.try_get("number").ok())
                .flatten()
        });
    }
    Ok(report)
}
