//! The SQLite engine: one file, WAL mode, a single writer connection (so writes queue in the process instead
//! of failing on a busy database), a small pool of readers, and a background checkpointer. Order writes go
//! through the writer task of [`group`], which commits them in groups.

mod batch;
mod group;
mod log;
mod orders;

use crate::{
    Decide, IdempotencyClaim, Meta, OrderQuery, Store, StoreError, StoredEvent, VerifyReport, WriteError, format_time,
    parse_time,
};
use async_trait::async_trait;
use batch::Batch;
use chrono::{DateTime, Utc};
use log::{Append, Head};

use ordertrail_domain::customer::{Customer, User};
use ordertrail_domain::decide::PlannedOrder;
use ordertrail_domain::event::{CustomerEvent, NewEvent, ORG_STREAM, OrderEvent, OrgEvent, truncate_to_micros};
use ordertrail_domain::follow_up::FollowUp;
use ordertrail_domain::ids::{CustomerId, OrderId, UserId};
use ordertrail_domain::number::NumberPattern;
use ordertrail_domain::order::Order;
use ordertrail_domain::workflow::Workflows;
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
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
        if let Some(version) = applied
            && version > newest_known
        {
            return Err(StoreError::Conflict(format!(
                "the database schema is at version {version}, newer than this ordertrail knows ({newest_known}): upgrade ordertrail"
            )));
        }
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

fn json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Adds an order's events after `head` to `batch`, applying each to `order`, with the side-table writes each
/// implies and one outbox row per event (offered to outbound webhooks).
fn append_order_events(
    batch: &mut Batch,
    order: &mut Order,
    head: &mut Head,
    meta: Meta,
    decision: &[(OrderEvent, Option<String>)],
) -> Result<(), StoreError> {
    for (event, reason) in decision {
        let id = Uuid::now_v7();
        order.apply(event, meta.at);
        let payload = json(event)?;
        let append = Append {
            id,
            at: meta.at,
            actor: meta.actor,
            reason: reason.as_deref(),
            kind: event.kind(),
            payload: &payload,
        };
        log::append(batch, order.id.0, head, append);
        orders::project_event(batch, order, event)?;
        let message = serde_json::json!({ "event_id": id, "order_id": order.id, "order_number": order.number, "kind": event.kind() });
        batch
            .push(
                "INSERT INTO outbox (id, stream_id, event_id, kind, dedupe_key, payload, due_at, state, attempts, created_at)
                 VALUES (?, ?, ?, 'webhook.order_event', ?, ?, ?, 'pending', 0, ?)",
                1,
            )
            .bind(Uuid::now_v7().to_string())
            .bind(order.id.to_string())
            .bind(id.to_string())
            .bind(format!("order_event:{id}"))
            .bind(message.to_string())
            .bind(format_time(meta.at))
            .bind(format_time(meta.at));
    }
    Ok(())
}

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<User, StoreError> {
    let id: String = row.try_get("id")?;
    let roles: String = row.try_get("roles")?;
    let customer: Option<String> = row.try_get("customer_id")?;
    Ok(User {
        id: UserId(Uuid::parse_str(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?),
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        roles: from_json(&roles)?,
        customer_id: customer
            .map(|c| Uuid::parse_str(&c).map(CustomerId))
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: parse_time(row.try_get("created_at")?)?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(())
    }

    async fn record_org_event(&self, event: NewEvent<OrgEvent>) -> Result<(), StoreError> {
        let at = truncate_to_micros(event.at);
        let mut tx = self.begin().await?;
        let mut head = log::head(&mut tx, ORG_STREAM).await?;
        let mut batch = Batch::default();
        let kind = match &event.payload {
            OrgEvent::UserAdded { user } => {
                batch
                    .push(
                        "INSERT INTO users (id, email, name, roles, customer_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                        1,
                    )
                    .bind(user.id.to_string())
                    .bind(user.email.clone())
                    .bind(user.name.clone())
                    .bind(json(&user.roles)?)
                    .bind(user.customer_id.map(|c| c.to_string()))
                    .bind(format_time(user.created_at));
                "user_added"
            }
            OrgEvent::TokenIssued {
                token_id,
                user_id,
                token_hash,
            } => {
                batch
                    .push(
                        "INSERT INTO tokens (id, user_id, token_hash, created_at) VALUES (?, ?, ?, ?)",
                        1,
                    )
                    .bind(token_id.to_string())
                    .bind(user_id.to_string())
                    .bind(token_hash.clone())
                    .bind(format_time(at));
                "token_issued"
            }
        };
        let payload = json(&event.payload)?;
        let append = Append {
            id: event.id.0,
            at,
            actor: event.actor,
            reason: event.reason.as_deref(),
            kind,
            payload: &payload,
        };
        log::append(&mut batch, ORG_STREAM, &mut head, append);
        batch
            .run(&mut tx, || "the organisation's log moved on".into())
            .await
            .map_err(|e| match (e, &event.payload) {
                (StoreError::Database(db), OrgEvent::UserAdded { user }) if unique_violation(&db) => {
                    StoreError::Conflict(format!("a user with email {} already exists", user.email))
                }
                (e, _) => e,
            })?;
        tx.commit().await?;
        Ok(())
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT * FROM users WHERE email = $1")
            .bind(email.trim().to_ascii_lowercase())
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query("SELECT u.* FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(user) = self.user(*id).await? {
                found.push(user);
            }
        }
        Ok(found)
    }

    async fn create_customer(&self, event: NewEvent<CustomerEvent>) -> Result<(), StoreError> {
        let at = truncate_to_micros(event.at);
        let CustomerEvent::CustomerCreated { customer } = &event.payload;
        let payload = json(&event.payload)?;
        let mut batch = Batch::default();
        let mut head = Head::genesis();
        let append = Append {
            id: event.id.0,
            at,
            actor: event.actor,
            reason: event.reason.as_deref(),
            kind: "customer_created",
            payload: &payload,
        };
        log::append(&mut batch, customer.id.0, &mut head, append);
        batch
            .push(
                "INSERT INTO customers (id, name, body, version, head_hash, created_at) VALUES (?, ?, ?, 1, ?, ?)",
                1,
            )
            .bind(customer.id.to_string())
            .bind(customer.name.clone())
            .bind(json(customer)?)
            .bind(head.hash.clone())
            .bind(format_time(customer.created_at));
        let mut tx = self.begin().await?;
        batch.run(&mut tx, || "the customer already exists".into()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn customer(&self, id: CustomerId) -> Result<Option<Customer>, StoreError> {
        let body: Option<String> = sqlx::query_scalar("SELECT body FROM customers WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        body.as_deref().map(from_json).transpose()
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
        let body: Option<String> = sqlx::query_scalar("SELECT body FROM orders WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        body.as_deref().map(from_json).transpose()
    }

    async fn list_orders(&self, query: &OrderQuery) -> Result<Vec<Order>, StoreError> {
        let mut qb = orders::list_query(query);
        let rows = qb.build().fetch_all(&self.reader).await?;
        rows.iter()
            .map(|row| from_json(row.try_get::<&str, _>("body")?))
            .collect()
    }

    async fn follow_ups(&self, order: OrderId) -> Result<Vec<FollowUp>, StoreError> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT body FROM follow_ups WHERE order_id = $1 ORDER BY occurred_at DESC, id DESC")
                .bind(order.to_string())
                .fetch_all(&self.reader)
                .await?;
        rows.iter().map(|body| from_json(body)).collect()
    }

    async fn events(&self, stream: Uuid) -> Result<Vec<StoredEvent>, StoreError> {
        log::events(&self.reader, stream).await
    }

    async fn count_events(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(&self.reader)
            .await?)
    }

    async fn verify(&self) -> Result<VerifyReport, StoreError> {
        log::verify(&self.reader).await
    }

    async fn claim_idempotency_key(
        &self,
        user: UserId,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<IdempotencyClaim, StoreError> {
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (user_id, key, fingerprint, state, created_at) VALUES ($1, $2, $3, 'pending', $4)
             ON CONFLICT (user_id, key) DO NOTHING",
        )
        .bind(user.to_string())
        .bind(key)
        .bind(fingerprint)
        .bind(format_time(now))
        .execute(&mut *tx)
        .await?;
        // A key left pending for 5 minutes belongs to a request that died before it answered: take it over.
        let abandoned = if inserted.rows_affected() == 1 {
            false
        } else {
            sqlx::query(
                "UPDATE idempotency_keys SET fingerprint = $1, created_at = $2
                 WHERE user_id = $3 AND key = $4 AND state = 'pending' AND created_at < $5",
            )
            .bind(fingerprint)
            .bind(format_time(now))
            .bind(user.to_string())
            .bind(key)
            .bind(format_time(now - chrono::TimeDelta::minutes(5)))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1
        };
        let claim = if inserted.rows_affected() == 1 || abandoned {
            IdempotencyClaim::Claimed
        } else {
            let row = sqlx::query(
                "SELECT fingerprint, state, status_code, body FROM idempotency_keys WHERE user_id = $1 AND key = $2",
            )
            .bind(user.to_string())
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
            let state: String = row.try_get("state")?;
            if state == "done" {
                let status: Option<i64> = row.try_get("status_code")?;
                let body: Option<String> = row.try_get("body")?;
                IdempotencyClaim::Done {
                    fingerprint: row.try_get("fingerprint")?,
                    status: status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
                    body: body.unwrap_or_default(),
                }
            } else {
                IdempotencyClaim::InProgress
            }
        };
        tx.commit().await?;
        Ok(claim)
    }

    async fn finish_idempotency_key(&self, user: UserId, key: &str, status: u16, body: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', status_code = $1, body = $2 WHERE user_id = $3 AND key = $4",
        )
        .bind(i64::from(status))
        .bind(body)
        .bind(user.to_string())
        .bind(key)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn release_idempotency_key(&self, user: UserId, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND state = 'pending'")
            .bind(user.to_string())
            .bind(key)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
