//! `verify`: recomputes every hash chain in the log and checks that each order row points at the end of its
//! chain. Reads the log in pages so memory stays flat; the same on both engines.

use crate::engine::Sql;
use crate::projection::Head;
use crate::reads::{EVENT_COLUMNS, EVENT_KINDS, stored_event};
use crate::rows::{Kind, Statement, cells};
use crate::{BrokenLink, StoreError, VerifyReport};
use ordertrail_domain::event::{ChainLink, chain_hash};
use std::collections::HashMap;
use uuid::Uuid;

const PAGE: i64 = 2000;

/// The chain being checked: its stream, its head so far, and whether it is already broken.
struct Chain {
    stream: Uuid,
    head: Head,
    broken: bool,
}

pub(crate) async fn verify(sql: &mut dyn Sql) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    let mut after: Option<(Uuid, i64)> = None;
    let mut current: Option<Chain> = None;
    let mut heads: HashMap<Uuid, Head> = HashMap::new();
    loop {
        let mut page = Statement::new(format!("SELECT {EVENT_COLUMNS} FROM events"));
        if let Some((stream, seq)) = after {
            page.sql(" WHERE stream_id > ? OR (stream_id = ? AND seq > ?)")
                .id(stream)
                .id(stream)
                .int(seq);
        }
        page.sql(" ORDER BY stream_id, seq LIMIT ?").int(PAGE);
        let rows = sql.fetch(page, EVENT_KINDS).await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let c = cells(row);
            let (stream, seq) = (c.id(1)?, c.int(2)?);
            after = Some((stream, seq));
            report.events += 1;
            if current.as_ref().is_none_or(|chain| chain.stream != stream) {
                if let Some(done) = current.take() {
                    heads.insert(done.stream, done.head);
                }
                report.streams += 1;
                current = Some(Chain {
                    stream,
                    head: Head::genesis(),
                    broken: false,
                });
            }
            let Some(chain) = current.as_mut().filter(|chain| !chain.broken) else {
                continue;
            };
            let problem = match stored_event(row) {
                Err(e) => Some(e.to_string()),
                Ok((event, payload)) => {
                    let link = ChainLink {
                        stream_id: stream,
                        seq,
                        event_id: event.id,
                        at: event.occurred_at,
                        actor_id: event.actor_id,
                        acting_role: &event.acting_role,
                        kind: &event.kind,
                        reason: event.reason.as_deref(),
                        payload: &payload,
                    };
                    if seq != chain.head.seq + 1 {
                        Some(format!("sequence jumps from {} to {seq}", chain.head.seq))
                    } else if event.prev_hash != chain.head.hash {
                        Some(
                            "prev_hash does not match the previous event's hash (an event was removed or altered)"
                                .to_string(),
                        )
                    } else if chain_hash(&chain.head.hash, &link) != event.hash {
                        Some("hash does not match the event's content (the event was altered)".to_string())
                    } else {
                        chain.head = Head { seq, hash: event.hash };
                        None
                    }
                }
            };
            if let Some(problem) = problem {
                chain.broken = true;
                report.broken.push(BrokenLink {
                    stream_id: stream,
                    order_number: None,
                    seq,
                    problem,
                });
            }
        }
    }
    if let Some(done) = current.take() {
        heads.insert(done.stream, done.head);
    }
    // Each order row must point at the end of its chain (a deleted last event shows here).
    let orders = sql
        .fetch(
            Statement::new("SELECT id, number, version, head_hash FROM orders"),
            &[Kind::Id, Kind::Text, Kind::Int, Kind::Text],
        )
        .await?;
    let mut numbers = HashMap::new();
    for row in &orders {
        let c = cells(row);
        let (id, number, version, head_hash) = (c.id(0)?, c.text(1)?, c.int(2)?, c.text(3)?);
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
        numbers.insert(id, number);
    }
    for link in &mut report.broken {
        link.order_number = numbers.get(&link.stream_id).cloned();
    }
    Ok(report)
}
