//! The PostgreSQL engine, for several `ordertrail serve` instances on one database. Every write is its own
//! transaction: an order change locks the order's row (`FOR UPDATE`), so writers of one order queue in the
//! database whichever instance they come from; the log's UNIQUE (stream, seq) and the row's version are the
//! last line. Order numbers come from a counter row incremented in the creating transaction, unique across
//! instances. The pool connects lazily: the server starts while the database is down, answers its health
//! check with 503, and recovers when the database comes back.

mod sql;

use crate::copy::{self, CopyPage, CopyReport};
use crate::engine::{unique_as_conflict, write};
use crate::projection::{change_order, create_order};
use crate::rows::{Kind, Statement, Writes, cells};
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
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per server. Two cores serve 16 concurrent transactions well; several servers share the
/// database's `max_connections` (100 by default).
pub const POOL_SIZE: u32 = 16;

pub struct PostgresStore {
    pool: PgPool,
    workflows: Arc<Workflows>,
}

impl PostgresStore {
    /// A store for the database at `url` (`postgres://...`). Connects lazily: this succeeds while the database
    /// is down, and every call fails with `Unavailable` until it is back.
    pub fn open(url: &str, workflows: Arc<Workflows>) -> Result<PostgresStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("bad PostgreSQL URL: {e}")))?
            .application_name("ordertrail");
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options);
        Ok(PostgresStore { pool, workflows })
    }

    /// The schema versions this program knows and the database has (none before the first migration).
    pub async fn schema_versions(&self) -> Result<(i64, Option<i64>), StoreError> {
        let newest_known = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let exists: Option<String> = sqlx::query_scalar("SELECT CAST(to_regclass('_sqlx_migrations') AS TEXT)")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        if exists.is_none() {
            return Ok((newest_known, None));
        }
        let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&self.pool)
            .await?;
        Ok((newest_known, applied))
    }

    /// The pool, for tests and tools that must reach behind the product (e.g. to tamper with a row).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        self.pool.begin().await.map_err(unavailable)
    }
}

/// A failure to get a connection: the database is not there (whatever sqlx calls it).
fn unavailable(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(_) => StoreError::Database(e),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Commits, reporting a failed commit as "not written": the caller must never report it as done.
async fn commit(tx: sqlx::Transaction<'static, sqlx::Postgres>) -> Result<(), StoreError> {
    tx.commit()
        .await
        .map_err(|e| StoreError::Unavailable(format!("the write was not committed: {e}")))
}

#[async_trait]
impl Store for PostgresStore {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let (newest_known, applied) = self.schema_versions().await?;
        crate::refuse_newer_schema(newest_known, applied)?;
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn schema_versions(&self) -> Result<(i64, Option<i64>), StoreError> {
        PostgresStore::schema_versions(self).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(())
    }

    async fn record_org_event(&self, event: NewEvent<OrgEvent>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        // The organisation's chain has one writer at a time across instances.
        sqlx::query("SELECT pg_advisory_xact_lock(7231)")
            .execute(&mut *tx)
            .await?;
        people::record_org_event(&mut *tx, &event).await?;
        commit(tx).await
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        reads::user(&mut *self.pool.acquire().await.map_err(unavailable)?, id).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        reads::user_by_email(&mut *self.pool.acquire().await.map_err(unavailable)?, email).await
    }

    async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        reads::user_by_token_hash(&mut *self.pool.acquire().await.map_err(unavailable)?, token_hash).await
    }

    async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        reads::users(&mut *self.pool.acquire().await.map_err(unavailable)?, ids).await
    }

    async fn create_customer(&self, event: NewEvent<CustomerEvent>) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        people::create_customer(&mut *tx, &event).await?;
        commit(tx).await
    }

    async fn customer(&self, id: CustomerId) -> Result<Option<Customer>, StoreError> {
        reads::customer(&mut *self.pool.acquire().await.map_err(unavailable)?, id).await
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
        let scope = pattern.scope(planned.order_date());
        let mut tx = self.begin().await?;
        // The counter row stays locked until this transaction ends: numbers are unique across instances.
        let mut next = Statement::new(
            "INSERT INTO order_number_counters (scope, last) VALUES (?, 1)
             ON CONFLICT (scope) DO UPDATE SET last = order_number_counters.last + 1 RETURNING last",
        );
        next.text(scope);
        let rows = crate::engine::Sql::fetch(&mut *tx, next, &[Kind::Int]).await?;
        let seq = rows.first().map_or(Ok(1), |row| cells(row).int(0))?;
        let mut writes = Writes::default();
        let number = pattern.render(planned.order_date(), seq);
        let (order, _head) = create_order(&mut writes, &planned, number, meta, &self.workflows)?;
        write(&mut *tx, writes, || {
            format!("order {} could not be written", order.number)
        })
        .await
        .map_err(|e| unique_as_conflict(e, || format!("order number {} is taken", order.number)))?;
        commit(tx).await?;
        Ok(order)
    }

    async fn change_order(&self, id: OrderId, meta: Meta, decide: Box<Decide>) -> Result<Order, WriteError> {
        let meta = Meta {
            at: truncate_to_micros(meta.at),
            ..meta
        };
        let mut tx = self.begin().await?;
        let Some((before, head_hash)) = reads::order_for_write(&mut *tx, id, " FOR UPDATE").await? else {
            return Err(ordertrail_domain::DomainError::NotFound { what: "order".into() }.into());
        };
        let mut writes = Writes::default();
        let Some((after, _head)) =
            change_order(&mut writes, &before, head_hash, decide.as_ref(), meta, &self.workflows)?
        else {
            return Ok(before);
        };
        write(&mut *tx, writes, || {
            format!("order {} changed while it was being written", after.number)
        })
        .await
        .map_err(|e| {
            unique_as_conflict(e, || {
                format!("order {} changed while it was being written", after.number)
            })
        })?;
        commit(tx).await?;
        Ok(after)
    }

    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        reads::order(&mut *self.pool.acquire().await.map_err(unavailable)?, id).await
    }

    async fn list_orders(&self, query: &OrderQuery) -> Result<Vec<Order>, StoreError> {
        reads::list_orders(&mut *self.pool.acquire().await.map_err(unavailable)?, query).await
    }

    async fn follow_ups(&self, order: OrderId) -> Result<Vec<FollowUp>, StoreError> {
        reads::follow_ups(&mut *self.pool.acquire().await.map_err(unavailable)?, order).await
    }

    async fn issues(&self, query: &IssueQuery) -> Result<Vec<Issue>, StoreError> {
        reads::list_issues(&mut *self.pool.acquire().await.map_err(unavailable)?, query).await
    }

    async fn events(&self, stream: Uuid) -> Result<Vec<StoredEvent>, StoreError> {
        reads::events(&mut *self.pool.acquire().await.map_err(unavailable)?, stream).await
    }

    async fn count_events(&self) -> Result<i64, StoreError> {
        reads::count(&mut *self.pool.acquire().await.map_err(unavailable)?, "events").await
    }

    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        // One snapshot for the whole check, so concurrent writes do not look like broken chains.
        let mut tx = self.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
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
        commit(tx).await?;
        Ok(claim)
    }

    async fn finish_idempotency_key(&self, user: UserId, key: &str, status: u16, body: &str) -> Result<(), StoreError> {
        idempotency::finish(
            &mut *self.pool.acquire().await.map_err(unavailable)?,
            user,
            key,
            status,
            body,
        )
        .await
    }

    async fn release_idempotency_key(&self, user: UserId, key: &str) -> Result<(), StoreError> {
        idempotency::release(&mut *self.pool.acquire().await.map_err(unavailable)?, user, key).await
    }

    async fn claim_outbox(
        &self,
        worker: &str,
        limit: u32,
        now: DateTime<Utc>,
        lease: chrono::TimeDelta,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let mut tx = self.begin().await?;
        let claimed = outbox::claim(&mut *tx, worker, limit, now, now + lease, " FOR UPDATE SKIP LOCKED").await?;
        commit(tx).await?;
        Ok(claimed)
    }

    async fn finish_outbox(&self, id: Uuid, worker: &str, outcome: OutboxOutcome) -> Result<bool, StoreError> {
        outbox::finish(
            &mut *self.pool.acquire().await.map_err(unavailable)?,
            id,
            worker,
            outcome,
        )
        .await
    }

    async fn all_users(&self) -> Result<Vec<User>, StoreError> {
        reads::all_users(&mut *self.pool.acquire().await.map_err(unavailable)?).await
    }

    async fn outbox(
        &self,
        state: Option<&str>,
        stream: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        outbox::list(
            &mut *self.pool.acquire().await.map_err(unavailable)?,
            state,
            stream,
            limit,
        )
        .await
    }

    async fn release_outbox(&self, id: Uuid, from: &[&str], now: DateTime<Utc>) -> Result<bool, StoreError> {
        outbox::release(&mut *self.pool.acquire().await.map_err(unavailable)?, id, from, now).await
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
            &mut *self.pool.acquire().await.map_err(unavailable)?,
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
        outbox::dunning_candidates(&mut *self.pool.acquire().await.map_err(unavailable)?, from, to).await
    }

    async fn follow_through_candidates(
        &self,
        milestones: &crate::MilestoneWindow,
        client_updates: &[(ordertrail_domain::order::OrderType, chrono::NaiveDate)],
    ) -> Result<Vec<Uuid>, StoreError> {
        outbox::follow_through_candidates(
            &mut *self.pool.acquire().await.map_err(unavailable)?,
            milestones,
            client_updates,
        )
        .await
    }

    async fn export_page(&self, table: usize, after: Option<&CopyPage>) -> Result<CopyPage, StoreError> {
        copy::export_page(&mut *self.pool.acquire().await.map_err(unavailable)?, table, after).await
    }

    async fn copy_from(&self, source: &dyn Store, replace: bool) -> Result<CopyReport, StoreError> {
        let mut tx = self.begin().await?;
        copy::import(&mut *tx, source, replace).await?;
        // Rows came with their positions: the identity sequences go on after the highest.
        for table in ["events", "outbox"] {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'position'), GREATEST(COALESCE(MAX(position), 0), 1), MAX(position) IS NOT NULL) FROM {table}"
            )))
            .execute(&mut *tx)
            .await?;
        }
        let tables = copy::counts(&mut *tx).await?;
        commit(tx).await?;
        Ok(CopyReport { tables })
    }

    async fn table_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        copy::counts(&mut *self.pool.acquire().await.map_err(unavailable)?).await
    }
}
