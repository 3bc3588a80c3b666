//! Group commit for order writes. One writer task owns the order write path: it takes every job waiting in its
//! queue, runs them one after another inside ONE SQLite transaction (each in its own savepoint, so a job that
//! fails leaves the others intact), commits once, and only then answers each caller. Under load this writes
//! shared pages (indexes, the log's last page) once per group instead of once per request, which is where a
//! SQLite write spends its time; alone, a job is a group of one.

use super::batch::Batch;
use super::log::Head;
use super::{append_order_events, from_json, orders, unique_violation};
use crate::{Decide, Meta, StoreError, WriteError};
use ordertrail_domain::decide::PlannedOrder;
use ordertrail_domain::event::OrderEvent;
use ordertrail_domain::ids::OrderId;
use ordertrail_domain::number::NumberPattern;
use ordertrail_domain::order::Order;
use ordertrail_domain::workflow::Workflows;
use sqlx::{Row, SqliteConnection, SqlitePool};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most jobs in one transaction.
const MAX_GROUP: usize = 64;

pub(crate) enum Job {
    Create {
        planned: Box<PlannedOrder>,
        pattern: NumberPattern,
        meta: Meta,
        reply: oneshot::Sender<Result<Order, WriteError>>,
    },
    Change {
        id: OrderId,
        meta: Meta,
        decide: Box<Decide>,
        reply: oneshot::Sender<Result<Order, WriteError>>,
    },
}

/// A job's answer, held back until the group is committed.
struct Pending {
    reply: oneshot::Sender<Result<Order, WriteError>>,
    result: Result<Order, WriteError>,
}

/// Starts the writer task; it ends when every sender is dropped.
pub(crate) fn spawn(pool: SqlitePool, workflows: Arc<Workflows>) -> mpsc::Sender<Job> {
    let (sender, mut receiver) = mpsc::channel::<Job>(1024);
    tokio::spawn(async move {
        while let Some(first) = receiver.recv().await {
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP {
                match receiver.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            run_group(&pool, &workflows, jobs).await;
        }
    });
    sender
}

async fn run_group(pool: &SqlitePool, workflows: &Workflows, jobs: Vec<Job>) {
    let mut tx = match pool.begin_with("BEGIN IMMEDIATE").await {
        Ok(tx) => tx,
        Err(e) => {
            let message = e.to_string();
            for job in jobs {
                let reply = match job {
                    Job::Create { reply, .. } | Job::Change { reply, .. } => reply,
                };
                let _ = reply.send(Err(StoreError::Unavailable(message.clone()).into()));
            }
            return;
        }
    };
    let mut pending = Vec::with_capacity(jobs.len());
    for job in jobs {
        pending.push(match job {
            Job::Create {
                planned,
                pattern,
                meta,
                reply,
            } => Pending {
                reply,
                result: create(&mut tx, workflows, &planned, &pattern, meta).await,
            },
            Job::Change {
                id,
                meta,
                decide,
                reply,
            } => Pending {
                reply,
                result: change(&mut tx, workflows, id, meta, decide.as_ref()).await,
            },
        });
    }
    match tx.commit().await {
        Ok(()) => {
            for p in pending {
                let _ = p.reply.send(p.result);
            }
        }
        Err(e) => {
            // Nothing of the group is written: say so to every caller, never report a write that did not commit.
            let message = format!("the write was not committed: {e}");
            for p in pending {
                let result = match p.result {
                    Ok(_) => Err(StoreError::Unavailable(message.clone()).into()),
                    refused => refused,
                };
                let _ = p.reply.send(result);
            }
        }
    }
}

/// Runs `batch`; on failure undoes this job's part of the group.
async fn run_or_undo(
    conn: &mut SqliteConnection,
    batch: Batch,
    on_mismatch: impl FnOnce() -> String,
) -> Result<(), StoreError> {
    let result = batch.run(conn, on_mismatch).await;
    if result.is_err() {
        sqlx::query("ROLLBACK TO job").execute(&mut *conn).await?;
    }
    result
}

async fn create(
    conn: &mut SqliteConnection,
    workflows: &Workflows,
    planned: &PlannedOrder,
    pattern: &NumberPattern,
    meta: Meta,
) -> Result<Order, WriteError> {
    let seq: i64 = sqlx::query_scalar(
        "SAVEPOINT job;
         INSERT INTO order_number_counters (scope, last) VALUES ($1, 1)
         ON CONFLICT (scope) DO UPDATE SET last = order_number_counters.last + 1 RETURNING last",
    )
    .bind(pattern.scope(planned.order_date()))
    .fetch_one(&mut *conn)
    .await
    .map_err(StoreError::from)?;
    let created = planned.created(pattern.render(planned.order_date(), seq));
    let OrderEvent::OrderCreated { order } = &created else {
        return Err(StoreError::Corrupt("a planned order must start with its creation".into()).into());
    };
    let mut order = (**order).clone();
    order.version = 0;
    let mut batch = Batch::default();
    let mut head = Head::genesis();
    append_order_events(&mut batch, &mut order, &mut head, meta, &[(created, None)])?;
    orders::insert(&mut batch, &order, workflows, &head.hash)?;
    run_or_undo(conn, batch, || format!("order {} could not be written", order.number))
        .await
        .map_err(|e| match e {
            StoreError::Database(ref db) if unique_violation(db) => {
                StoreError::Conflict(format!("order number {} is taken", order.number))
            }
            other => other,
        })?;
    Ok(order)
}

async fn change(
    conn: &mut SqliteConnection,
    workflows: &Workflows,
    id: OrderId,
    meta: Meta,
    decide: &Decide,
) -> Result<Order, WriteError> {
    let row = sqlx::query("SAVEPOINT job; SELECT body, head_hash FROM orders WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(StoreError::from)?;
    let Some(row) = row else {
        return Err(ordertrail_domain::DomainError::NotFound { what: "order".into() }.into());
    };
    let before: Order = from_json(row.try_get::<&str, _>("body").map_err(StoreError::from)?)?;
    let head_hash: String = row.try_get("head_hash").map_err(StoreError::from)?;
    drop(row);
    // A refusal has written nothing; its empty savepoint is released with the group's commit.
    let decision = decide(&before)?;
    let mut after = before.clone();
    let mut head = Head {
        seq: before.version,
        hash: head_hash,
    };
    let mut batch = Batch::default();
    append_order_events(&mut batch, &mut after, &mut head, meta, &decision)?;
    orders::update(&mut batch, &after, before.version, workflows, &head.hash)?;
    run_or_undo(conn, batch, || {
        format!("order {} changed while it was being written", after.number)
    })
    .await?;
    Ok(after)
}
