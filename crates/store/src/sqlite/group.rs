//! Group commit for order writes. One writer task owns the order write path: it takes every job waiting in its
//! queue, runs them one after another inside ONE SQLite transaction, commits once, and only then answers each
//! caller. Under load this writes shared pages (indexes, the log's last page) once per group instead of once
//! per request, which is where a SQLite write spends its time; alone, a job is a group of one.
//!
//! A refusal by the domain writes nothing and the group goes on. A job that fails on the database may have
//! written part of itself, so the group is rolled back and each of its jobs re-run in a transaction of its own
//! (a decision is a pure function of the loaded order, so running it again is safe).

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

pub(crate) struct Job {
    pub work: Work,
    pub reply: oneshot::Sender<Result<Order, WriteError>>,
}

pub(crate) enum Work {
    Create {
        planned: Box<PlannedOrder>,
        pattern: NumberPattern,
        meta: Meta,
    },
    Change {
        id: OrderId,
        meta: Meta,
        decide: Box<Decide>,
    },
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
    if jobs.len() > 1 {
        match try_group(pool, workflows, &jobs).await {
            Some(Ok(results)) => {
                for (job, result) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
                return;
            }
            Some(Err(commit_error)) => {
                // Nothing of the group is written: never report a write that did not commit.
                for job in jobs {
                    let error = StoreError::Unavailable(format!("the write was not committed: {commit_error}"));
                    let _ = job.reply.send(Err(error.into()));
                }
                return;
            }
            // A job failed half-way and the group was rolled back: run each job on its own.
            None => {}
        }
    }
    for job in jobs {
        let result = alone(pool, workflows, &job.work).await;
        let _ = job.reply.send(result);
    }
}

/// Runs every job in one transaction. `None` when a job failed on the database (the group is rolled back);
/// otherwise each job's result, or the commit's error.
async fn try_group(
    pool: &SqlitePool,
    workflows: &Workflows,
    jobs: &[Job],
) -> Option<Result<Vec<Result<Order, WriteError>>, String>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.ok()?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let result = run(&mut tx, workflows, &job.work).await;
        if matches!(result, Err(WriteError::Store(_))) {
            return None;
        }
        results.push(result);
    }
    Some(tx.commit().await.map(|()| results).map_err(|e| e.to_string()))
}

/// Runs one job in its own transaction.
async fn alone(pool: &SqlitePool, workflows: &Workflows, work: &Work) -> Result<Order, WriteError> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let order = run(&mut tx, workflows, work).await?;
    tx.commit()
        .await
        .map_err(|e| StoreError::Unavailable(format!("the write was not committed: {e}")))?;
    Ok(order)
}

async fn run(conn: &mut SqliteConnection, workflows: &Workflows, work: &Work) -> Result<Order, WriteError> {
    match work {
        Work::Create { planned, pattern, meta } => create(conn, workflows, planned, pattern, *meta).await,
        Work::Change { id, meta, decide } => change(conn, workflows, *id, *meta, decide.as_ref()).await,
    }
}

async fn create(
    conn: &mut SqliteConnection,
    workflows: &Workflows,
    planned: &PlannedOrder,
    pattern: &NumberPattern,
    meta: Meta,
) -> Result<Order, WriteError> {
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO order_number_counters (scope, last) VALUES ($1, 1)
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
    batch
        .run(conn, || format!("order {} could not be written", order.number))
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
    let row = sqlx::query("SELECT body, head_hash FROM orders WHERE id = $1")
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
    let decision = decide(&before)?;
    let mut after = before.clone();
    let mut head = Head {
        seq: before.version,
        hash: head_hash,
    };
    let mut batch = Batch::default();
    append_order_events(&mut batch, &mut after, &mut head, meta, &decision)?;
    orders::update(&mut batch, &after, before.version, workflows, &head.hash)?;
    batch
        .run(conn, || {
            format!("order {} changed while it was being written", after.number)
        })
        .await?;
    Ok(after)
}
