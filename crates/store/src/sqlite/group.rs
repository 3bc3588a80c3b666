//! Group commit for order writes. One writer task owns the order write path: it takes every job waiting in its
//! queue, runs them one after another inside ONE SQLite transaction, commits once, and only then answers each
//! caller. Under load this writes shared pages (indexes, the log's last page) once per group instead of once
//! per request, which is where a SQLite write spends its time; alone, a job is a group of one.
//!
//! A refusal by the domain writes nothing and the group goes on. A job that fails on the database may have
//! written part of itself, so the group is rolled back and each of its jobs re-run in a transaction of its own
//! (a decision is a pure function of the loaded order, so running it again is safe).
//!
//! The writer remembers the orders and number counters it committed ([`Memory`]), so that a change need not
//! read its order back and a new order need not read its counter. The database stays the judge: a change
//! appends its first event with the next sequence number, which the log's UNIQUE (stream, seq) refuses if
//! another process wrote that order meanwhile, and a counter only advances from the value remembered. Either
//! refusal is a database failure: the group is rolled back, the memory forgotten, and each job re-run reading
//! afresh.

use crate::engine::{Sql, unique_as_conflict, write};
use crate::projection::{change_order, create_order};
use crate::rows::{Kind, Statement, Writes, cells};
use crate::{Decide, Meta, StoreError, WriteError, reads};
use ordertrail_domain::decide::PlannedOrder;
use ordertrail_domain::ids::OrderId;
use ordertrail_domain::number::NumberPattern;
use ordertrail_domain::order::Order;
use ordertrail_domain::workflow::Workflows;
use sqlx::{SqliteConnection, SqlitePool};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most jobs in one transaction.
const MAX_GROUP: usize = 64;
/// Most orders the writer remembers.
const MAX_REMEMBERED: usize = 1024;

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

/// Orders (with their chain's head hash) and counters as committed.
#[derive(Default)]
struct Memory {
    orders: HashMap<OrderId, (Order, String)>,
    counters: HashMap<String, i64>,
}

impl Memory {
    fn forget(&mut self) {
        self.orders.clear();
        self.counters.clear();
    }

    fn keep(&mut self, learned: Memory) {
        if self.orders.len() + learned.orders.len() > MAX_REMEMBERED {
            self.orders.clear();
        }
        self.orders.extend(learned.orders);
        self.counters.extend(learned.counters);
    }
}

/// What a job reads: what this group wrote so far, then what earlier groups committed.
struct Known<'a> {
    committed: &'a Memory,
    learned: &'a mut Memory,
}

impl Known<'_> {
    fn order(&self, id: OrderId) -> Option<(Order, String)> {
        self.learned
            .orders
            .get(&id)
            .or_else(|| self.committed.orders.get(&id))
            .cloned()
    }

    fn counter(&self, scope: &str) -> Option<i64> {
        self.learned
            .counters
            .get(scope)
            .or_else(|| self.committed.counters.get(scope))
            .copied()
    }
}

/// Starts the writer task; it ends when every sender is dropped.
pub(crate) fn spawn(pool: SqlitePool, workflows: Arc<Workflows>) -> mpsc::Sender<Job> {
    let (sender, mut receiver) = mpsc::channel::<Job>(1024);
    tokio::spawn(async move {
        let mut memory = Memory::default();
        while let Some(first) = receiver.recv().await {
            let mut jobs = vec![first];
            while jobs.len() < MAX_GROUP {
                match receiver.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            run_group(&pool, &workflows, &mut memory, jobs).await;
        }
    });
    sender
}

async fn run_group(pool: &SqlitePool, workflows: &Workflows, memory: &mut Memory, jobs: Vec<Job>) {
    let mut learned = Memory::default();
    match try_group(pool, workflows, memory, &mut learned, &jobs).await {
        Some(Ok(results)) => {
            memory.keep(learned);
            for (job, result) in jobs.into_iter().zip(results) {
                let _ = job.reply.send(result);
            }
        }
        Some(Err(commit_error)) => {
            // Nothing of the group is written: never report a write that did not commit.
            memory.forget();
            for job in jobs {
                let error = StoreError::Unavailable(format!("the write was not committed: {commit_error}"));
                let _ = job.reply.send(Err(error.into()));
            }
        }
        None => {
            // A job failed on the database and the group was rolled back: each job on its own, reading afresh.
            memory.forget();
            for job in jobs {
                let result = alone(pool, workflows, &job.work).await;
                let _ = job.reply.send(result);
            }
        }
    }
}

/// Runs every job in one transaction. `None` when a job failed on the database (the group is rolled back);
/// otherwise each job's result, or the commit's error.
async fn try_group(
    pool: &SqlitePool,
    workflows: &Workflows,
    committed: &Memory,
    learned: &mut Memory,
    jobs: &[Job],
) -> Option<Result<Vec<Result<Order, WriteError>>, String>> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.ok()?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let result = run(
            &mut tx,
            workflows,
            &mut Known {
                committed,
                learned: &mut *learned,
            },
            &job.work,
        )
        .await;
        if matches!(result, Err(WriteError::Store(_))) {
            return None;
        }
        results.push(result);
    }
    Some(tx.commit().await.map(|()| results).map_err(|e| e.to_string()))
}

/// Runs one job in its own transaction, reading everything from the database.
async fn alone(pool: &SqlitePool, workflows: &Workflows, work: &Work) -> Result<Order, WriteError> {
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let (nothing, mut learned) = (Memory::default(), Memory::default());
    let order = run(
        &mut tx,
        workflows,
        &mut Known {
            committed: &nothing,
            learned: &mut learned,
        },
        work,
    )
    .await?;
    tx.commit()
        .await
        .map_err(|e| StoreError::Unavailable(format!("the write was not committed: {e}")))?;
    Ok(order)
}

async fn run(
    conn: &mut SqliteConnection,
    workflows: &Workflows,
    known: &mut Known<'_>,
    work: &Work,
) -> Result<Order, WriteError> {
    match work {
        Work::Create { planned, pattern, meta } => create(conn, workflows, known, planned, pattern, *meta).await,
        Work::Change { id, meta, decide } => change(conn, workflows, known, *id, *meta, decide.as_ref()).await,
    }
}

async fn create(
    conn: &mut SqliteConnection,
    workflows: &Workflows,
    known: &mut Known<'_>,
    planned: &PlannedOrder,
    pattern: &NumberPattern,
    meta: Meta,
) -> Result<Order, WriteError> {
    let scope = pattern.scope(planned.order_date());
    let last = match known.counter(&scope) {
        Some(last) => last,
        None => {
            let mut read = Statement::new("SELECT last FROM order_number_counters WHERE scope = ?");
            read.text(scope.clone());
            let rows = conn.fetch(read, &[Kind::Int]).await?;
            rows.first().map_or(Ok(0), |row| cells(row).int(0))?
        }
    };
    let seq = last + 1;
    let mut writes = Writes::default();
    // Advances the counter only from the value read: if another writer moved it, this changes no row.
    writes
        .push(
            "INSERT INTO order_number_counters (scope, last) VALUES (?, ?)
             ON CONFLICT (scope) DO UPDATE SET last = excluded.last WHERE order_number_counters.last = ?",
            1,
        )
        .text(scope.clone())
        .int(seq)
        .int(last);
    let (order, head) = create_order(
        &mut writes,
        planned,
        pattern.render(planned.order_date(), seq),
        meta,
        workflows,
    )?;
    write(conn, writes, || {
        format!(
            "the number counter {scope} moved while order {} was written",
            order.number
        )
    })
    .await
    .map_err(|e| unique_as_conflict(e, || format!("order number {} is taken", order.number)))?;
    known.learned.counters.insert(scope, seq);
    known.learned.orders.insert(order.id, (order.clone(), head.hash));
    Ok(order)
}

async fn change(
    conn: &mut SqliteConnection,
    workflows: &Workflows,
    known: &mut Known<'_>,
    id: OrderId,
    meta: Meta,
    decide: &Decide,
) -> Result<Order, WriteError> {
    let (before, head_hash) = match known.order(id) {
        Some(remembered) => remembered,
        None => match reads::order_for_write(conn, id, "").await? {
            Some(loaded) => loaded,
            None => return Err(ordertrail_domain::DomainError::NotFound { what: "order".into() }.into()),
        },
    };
    // The first statement appends the next event: the log refuses it if the order moved on elsewhere.
    let mut writes = Writes::default();
    let Some((after, head)) = change_order(&mut writes, &before, head_hash, decide, meta, workflows)? else {
        return Ok(before);
    };
    write(conn, writes, || {
        format!("order {} changed while it was being written", after.number)
    })
    .await?;
    known.learned.orders.insert(after.id, (after.clone(), head.hash));
    Ok(after)
}
