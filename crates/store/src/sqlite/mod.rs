//! The SQLite engine: one file, WAL mode, a single writer connection (so writes queue in the process instead
//! of failing on a busy database), a small pool of readers, and a background checkpointer. Order writes go
//! through the writer task of [`group`], which commits them in groups.

mod group;
mod sql;

use crate::copy::{self, CopyPage, CopyReport};
use crate::{
    Decide, IdempotencyClaim, IssueQuery, Meta, OrderQuery, OutboxEntry, OutboxMessage, OutboxOutcome, Store,
    StoreError, StoredEvent, VerifyReport, WriteError, idempotency, outbox, people, reads, verify,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use ordertrail_domain::customer::{Customer, User};
use ordertrail_domain::decide::PlannedOrder;
use ordertrail_domain::event::{CustomerEvent, NewEvent, OrgEvent, truncate_to_micros};
use ordertrail_domain::follow_up::FollowUp;
use ordertrail_domain::ids::{CustomerId, OrderId, UserId};
use ordertrail_domain::issue::Issue;
use ordertrail_domain::number::NumberPattern;
use ordertrail_domain::order::Order;
use ordertrail_domain::workflow::Workflows;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How durable a commit is. `Full` syncs the WAL on every commit; `Normal` (the default) syncs at checkpoints:
/// a commit survives a crash of the process, and a power loss may drop the last commits but never corrupts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    #[default]
    Normal,
    Full,
}

pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
    /// Order writes, group-committed by the writer task (see `group`).
    jobs: tokio::sync::mpsc::Sender<group::Job>,
    /// Background tasks of this store stop when it is dropped.
    _alive: Arc<()>,
}

/// The connect options every connection uses (the bench's bare transaction uses the same).
pub fn connect_options(url: &str, durability: Durability) -> Result<SqliteConnectOptions, StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Unavailable(format!("bad SQLite URL '{url}': {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(match durability {
            Durability::Normal => SqliteSynchronous::Normal,
            Durability::Full => SqliteSynchronous::Full,
        })
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
        .pragma("cache_size", "-16000")
        .pragma("temp_store", "memory")
        // Checkpoints run in the background (see `spawn_checkpointer`), not inside a commit.
        .pragma("wal_autocheckpoint", "0");
    Ok(options)
}

/// Copies the WAL back into the database file every 200 ms, on its own connection, so that no commit waits for
/// a checkpoint (and its fsync). PASSIVE never blocks the writer or readers. The task ends with its owner.
pub fn spawn_checkpointer(pool: SqlitePool, owner: std::sync::Weak<()>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if owner.upgrade().is_none() {
                pool.close().await;
                return;
            }
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
                tracing::debug!(error = %e, "background checkpoint");
            }
        }
    });
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH`). Does not migrate.
    pub async fn open(url: &str, durability: Durability, workflows: Arc<Workflows>) -> Result<SqliteStore, StoreError> {
        let options = connect_options(url, durability)?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open {url}: {e}")))?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open {url}: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .connect_with(options.read_only(true))
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot open {url}: {e}")))?;
        let alive = Arc::new(());
        spawn_checkpointer(checkpointer, Arc::downgrade(&alive));
        let jobs = group::spawn(writer.clone(), workflows);
        Ok(SqliteStore {
            reader,
            writer,
            jobs,
            _alive: alive,
        })
    }

    /// Brings the schema up to date. Refuses a database whose schema is newer than this program.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let (newest_known, applied) = self.schema_versions().await?;
        crate::refuse_newer_schema(newest_known, applied)?;
        MIGRATOR.run(&self.writer).await?;
        Ok(())
    }

    /// The schema versions this program knows and the database has (none before the first migration).
    pub async fn schema_versions(&self) -> Result<(i64, Option<i64>), StoreError> {
        let newest_known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_optional(&self.writer)
            .await
            .ok()
            .flatten();
        Ok((newest_known, applied))
    }

    /// The writer pool, for tests and tools that must reach behind the product (e.g. to tamper with a row).
    pub fn writer_pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// Hands an order write to the writer task and waits for its committed answer.
    async fn submit(&self, work: group::Work) -> Result<Order, WriteError> {
        let stopped = || WriteError::Store(StoreError::Unavailable("the writer has stopped".into()));
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(group::Job { work, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn engine(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        SqliteStore::migrate(self).await
    }

    async fn schema_versions(&self) -> Result<(i64, Option<i64>), StoreError> {
        SqliteStore::schema_versions(self).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(())
    }

    async fn record_org_event(&self, event: NewEvent<OrgEvent>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        people::record_org_event(&mut *tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        reads::user(&mut *self.reader.acquire().await?, id).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        reads::user_by_email(&mut *self.reader.acquire().await?, email).await
    }

    async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        reads::user_by_token_hash(&mut *self.reader.acquire().await?, token_hash).await
    }

    async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        reads::users(&mut *self.reader.acquire().await?, ids).await
    }

    async fn create_customer(&self, event: NewEvent<CustomerEvent>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        people::create_customer(&mut *tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn customer(&self, id: CustomerId) -> Result<Option<Customer>, StoreError> {
        reads::customer(&mut *self.reader.acquire().await?, id).await
    }

    async fn create_order(
        &self,
        planned: PlannedOrder,
        pattern: NumberPattern,
        meta: Meta,
    ) -> Result<Order, WriteError> {
        let meta = Meta {
            at: truncate_to_micros(meta.at),
            ..meta
        };
        self.submit(group::Work::Create {
            planned: Box::new(planned),
            pattern,
            meta,
        })
        .await
    }

    async fn change_order(&self, id: OrderId, meta: Meta, decide: Box<Decide>) -> Result<Order, WriteError> {
        let meta = Meta {
            at: truncate_to_micros(meta.at),
            ..meta
        };
        self.submit(group::Work::Change { id, meta, decide }).await
    }

    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        reads::order(&mut *self.reader.acquire().await?, id).await
    }

    async fn list_orders(&self, query: &OrderQuery) -> Result<Vec<Order>, StoreError> {
        reads::list_orders(&mut *self.reader.acquire().await?, query).await
    }

    async fn follow_ups(&self, order: OrderId) -> Result<Vec<FollowUp>, StoreError> {
        reads::follow_ups(&mut *self.reader.acquire().await?, order).await
    }

    async fn issues(&self, query: &IssueQuery) -> Result<Vec<Issue>, StoreError> {
        reads::list_issues(&mut *self.reader.acquire().await?, query).await
    }

    async fn events(&self, stream: Uuid) -> Result<Vec<StoredEvent>, StoreError> {
        reads::events(&mut *self.reader.acquire().await?, stream).await
    }

    async fn count_events(&self) -> Result<i64, StoreError> {
        reads::count(&mut *self.reader.acquire().await?, "events").await
    }

    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        // One read transaction: one snapshot for the whole check, whatever is written meanwhile.
        let mut tx = self.reader.begin().await?;
        let report = verify::verify(&mut *tx).await?;
        tx.rollback().await?;
        Ok(report)
    }

    async fn claim_idempotency_key(
        &self,
        user: UserId,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<IdempotencyClaim, StoreError> {
        let mut tx = self.begin().await?;
        let claim = idempotency::claim(&mut *tx, user, key, fingerprint, now).await?;
        tx.commit().await?;
        Ok(claim)
    }

    async fn finish_idempotency_key(&self, user: UserId, key: &str, status: u16, body: &str) -> Result<(), StoreError> {
        idempotency::finish(&mut *self.writer.acquire().await?, user, key, status, body).await
    }

    async fn release_idempotency_key(&self, user: UserId, key: &str) -> Result<(), StoreError> {
        idempotency::release(&mut *self.writer.acquire().await?, user, key).await
    }

    async fn claim_outbox(
        &self,
        worker: &str,
        limit: u32,
        now: DateTime<Utc>,
        lease: chrono::TimeDelta,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut tx = self.begin().await?;
        let claimed = outbox::claim(&mut *tx, worker, limit, now, now + lease, "").await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn finish_outbox(&self, id: Uuid, worker: &str, outcome: OutboxOutcome) -> Result<bool, StoreError> {
        outbox::finish(&mut *self.writer.acquire().await?, id, worker, outcome).await
    }

    async fn all_users(&self) -> Result<Vec<User>, StoreError> {
        reads::all_users(&mut *self.reader.acquire().await?).await
    }

    async fn outbox(
        &self,
        state: Option<&str>,
        stream: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        outbox::list(&mut *self.reader.acquire().await?, state, stream, limit).await
    }

    async fn release_outbox(&self, id: Uuid, from: &[&str], now: DateTime<Utc>) -> Result<bool, StoreError> {
        outbox::release(&mut *self.writer.acquire().await?, id, from, now).await
    }

    async fn enqueue_once(
        &self,
        stream_id: Uuid,
        kind: &str,
        dedupe_key: &str,
        payload: &str,
        due_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        outbox::enqueue_once(
            &mut *self.writer.acquire().await?,
            stream_id,
            kind,
            dedupe_key,
            payload,
            due_at,
        )
        .await
    }

    async fn dunning_candidates(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<Uuid>, StoreError> {
        outbox::dunning_candidates(&mut *self.reader.acquire().await?, from, to).await
    }

    async fn follow_through_candidates(
        &self,
        milestones: &crate::MilestoneWindow,
        client_updates: &[(ordertrail_domain::order::OrderType, chrono::NaiveDate)],
    ) -> Result<Vec<Uuid>, StoreError> {
        outbox::follow_through_candidates(&mut *self.reader.acquire().await?, milestones, client_updates).await
    }

    async fn export_page(&self, table: usize, after: Option<&CopyPage>) -> Result<CopyPage, StoreError> {
        copy::export_page(&mut *self.reader.acquire().await?, table, after).await
    }

    async fn copy_from(&self, source: &dyn Store, replace: bool) -> Result<CopyReport, StoreError> {
        let mut tx = self.begin().await?;
        copy::import(&mut *tx, source, replace).await?;
        let tables = copy::counts(&mut *tx).await?;
        tx.commit().await?;
        Ok(CopyReport { tables })
    }

    async fn table_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        copy::counts(&mut *self.reader.acquire().await?).await
    }
}
