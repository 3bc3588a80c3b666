//! Ordertrail's persistence: the event log with its hash chains, the projections read by the API, the outbox,
//! idempotency keys and order-number counters.
//!
//! [`Store`] is shaped like the domain, not like tables: `create_order`, `change_order`, `list_orders`,
//! `verify`... Every change to an order goes through [`Store::change_order`]: load the order, let the caller's
//! domain decision turn it into events, then in ONE transaction append the events to the order's chain, update
//! the projections from the order as the events left it, and enqueue the outbox rows. There is no other way
//! to write an order. (On SQLite, changes queued at the same moment share one transaction: group commit.)
//!
//! Engines: [`sqlite::SqliteStore`] (embedded default) and [`postgres::PostgresStore`], each with its own
//! migrations (mirrored file names, the same tables and columns). What a write changes is built once, engine
//! neutral (`projection`, `rows`), and so are the reads (`reads`, `verify`, `outbox`); an engine supplies
//! connections, transactions and the binding of values (`engine::Sql`).

pub mod copy;
mod engine;
mod idempotency;
mod outbox;
mod people;
pub mod postgres;
mod projection;
mod reads;
mod rows;
pub mod sqlite;
pub mod testing;
mod time;
mod verify;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use ordertrail_domain::DomainError;
use ordertrail_domain::customer::{Customer, User};
use ordertrail_domain::decide::PlannedOrder;
use ordertrail_domain::event::{Actor, CustomerEvent, NewEvent, OrderEvent, OrgEvent};
use ordertrail_domain::follow_up::FollowUp;
use ordertrail_domain::ids::{CustomerId, OrderId, UserId};
use ordertrail_domain::issue::Issue;
use ordertrail_domain::number::NumberPattern;
use ordertrail_domain::order::{Order, OrderType};
use ordertrail_domain::progress::Health;
use serde::Serialize;
use uuid::Uuid;

pub use copy::{CopyPage, CopyReport};
pub use rows::Kind;
pub use time::{format_time, parse_time};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("{0}")]
    Conflict(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    /// A database that cannot be reached (connection refused or lost, pool exhausted) is `Unavailable`, which
    /// the API answers with 503; anything the database itself refused stays a `Database` error.
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
            other => StoreError::Database(other),
        }
    }
}

/// A write that the domain refused or the database failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for WriteError {
    fn from(e: sqlx::Error) -> Self {
        WriteError::Store(StoreError::from(e))
    }
}

/// Who makes a change, when. The reason of each event comes with the decision.
#[derive(Debug, Clone, Copy)]
pub struct Meta {
    pub actor: Actor,
    pub at: DateTime<Utc>,
}

/// A domain decision on an order: events with their reasons.
pub type Decision = Vec<(OrderEvent, Option<String>)>;

/// The caller's decision about a loaded order (authorise and decide, in the domain). It runs inside the write
/// transaction, on the writer task, so it owns what it needs.
pub type Decide = dyn Fn(&Order) -> Result<Decision, DomainError> + Send + Sync + 'static;

/// One event as stored, for the audit log view and verification.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredEvent {
    pub id: Uuid,
    pub stream_id: Uuid,
    pub seq: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    /// The role the actor acted in (R18), or `system`.
    pub acting_role: String,
    pub kind: String,
    /// Why, in the actor's words.
    pub reason: Option<String>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// What `verify` found: every stream checked, and the first broken link of each broken one.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub streams: u64,
    pub events: u64,
    pub broken: Vec<BrokenLink>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BrokenLink {
    pub stream_id: Uuid,
    /// The order's number when the stream is an order.
    pub order_number: Option<String>,
    pub seq: i64,
    pub problem: String,
}

/// Who is asking for a list: decides which orders it may contain.
#[derive(Debug, Clone, Copy)]
pub enum Visibility {
    All,
    /// Orders the user is on (as a person or a milestone owner).
    InvolvedStaff(UserId),
    /// Orders where the user is the customer.
    Customer(UserId),
}

/// Filters of the order list. All are optional and combine with AND.
#[derive(Debug, Clone)]
pub struct OrderQuery {
    pub visibility: Visibility,
    pub status: Option<String>,
    pub health: Option<Health>,
    pub owner: Option<UserId>,
    pub customer: Option<CustomerId>,
    pub order_type: Option<OrderType>,
    /// Promised before this date.
    pub due_before: Option<NaiveDate>,
    /// Text in the number, title or customer name (case-insensitive).
    pub text: Option<String>,
    /// Orders older than this one (cursor pagination, newest first).
    pub before: Option<OrderId>,
    pub limit: u32,
    /// Health is judged at this date with this many days of grace (see `progress`).
    pub today: NaiveDate,
    pub late_after_days: i64,
}

/// Filters of the issue list (`GET /api/v1/issues`). All optional, combined with AND; newest first.
#[derive(Debug, Clone)]
pub struct IssueQuery {
    pub visibility: Visibility,
    /// Only open (true) or only resolved (false) issues.
    pub open: Option<bool>,
    /// Only issues with a clock that ran out at this time, under these limits (see [`BreachLimits`]).
    pub breached: Option<BreachLimits>,
    pub order: Option<OrderId>,
    pub limit: u32,
}

/// The issue clocks as the policy sets them, judged at `now`: opened within `open_within_minutes` of
/// discovery (R36), client told within `client_notice_hours` of opening (R10), resolved by the expected time.
#[derive(Debug, Clone, Copy)]
pub struct BreachLimits {
    pub now: DateTime<Utc>,
    pub open_within_minutes: i64,
    pub client_notice_hours: i64,
}

/// The state of an idempotency key when a request presents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// First use: go ahead, then `finish` or `release` it.
    Claimed,
    /// A request with this key is being handled right now.
    InProgress,
    /// Done before: replay this response (if the fingerprint matches).
    Done {
        fingerprint: String,
        status: u16,
        body: String,
    },
}

/// A message waiting in the outbox, as a worker claimed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: Uuid,
    /// The stream (order, customer) the message is about.
    pub stream_id: Uuid,
    pub kind: String,
    /// Unique per message: a rule that fires twice for the same thing writes one message.
    pub dedupe_key: String,
    pub payload: String,
    pub due_at: DateTime<Utc>,
    /// Claims so far, this one included.
    pub attempts: i64,
}

/// What became of a claimed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxOutcome {
    Sent {
        at: DateTime<Utc>,
    },
    /// Try again at this time (back-off), after this error.
    RetryAt {
        at: DateTime<Utc>,
        error: String,
    },
    /// Given up (a dead letter): kept for the record, retried only when a person asks.
    Failed {
        at: DateTime<Utc>,
        error: String,
    },
}

/// The milestones the follow-through pass asks about: open, planned on or after `from`, and with a step due by
/// its cut-off and not queued yet (chase up to `chase_to`, reminder up to `remind_to`, overdue notice up to
/// `overdue_to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MilestoneWindow {
    pub from: chrono::NaiveDate,
    pub chase_to: chrono::NaiveDate,
    pub remind_to: chrono::NaiveDate,
    pub overdue_to: chrono::NaiveDate,
}

/// A message in the outbox as people inspect it (dead letters, drafts, what was sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: Uuid,
    pub stream_id: Uuid,
    pub kind: String,
    pub dedupe_key: String,
    /// pending, claimed, sent, failed (a dead letter), draft (waits for review).
    pub state: String,
    pub attempts: i64,
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub payload: String,
}

/// Refuses a database whose schema is newer than this program knows.
pub(crate) fn refuse_newer_schema(newest_known: i64, applied: Option<i64>) -> Result<(), StoreError> {
    match applied {
        Some(version) if version > newest_known => Err(StoreError::Conflict(format!(
            "the database schema is at version {version}, newer than this ordertrail knows ({newest_known}): upgrade ordertrail"
        ))),
        _ => Ok(()),
    }
}

/// Opens the store the URL names: `sqlite://PATH` (created if missing) or `postgres://...` (connected lazily,
/// so this succeeds while the database is down). Does not migrate.
pub async fn open(
    url: &str,
    durability: sqlite::Durability,
    workflows: std::sync::Arc<ordertrail_domain::workflow::Workflows>,
) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(postgres::PostgresStore::open(url, workflows)?))
    } else if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(
            sqlite::SqliteStore::open(url, durability, workflows).await?,
        ))
    } else {
        Err(StoreError::Unavailable(format!(
            "unknown database URL '{url}': use sqlite://PATH or postgres://USER@HOST/DATABASE"
        )))
    }
}

/// Persistence of everything Ordertrail records. One implementation per engine.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn engine(&self) -> &'static str;

    /// Brings the schema up to date. Refuses a database whose schema is newer than this program.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// The newest schema version this program knows, and the database's (none before the first migration).
    async fn schema_versions(&self) -> Result<(i64, Option<i64>), StoreError>;

    /// A cheap round trip, for the health check.
    async fn ping(&self) -> Result<(), StoreError>;

    // People and access.
    /// Appends an organisation event (user added, token issued) and updates the people tables from it.
    async fn record_org_event(&self, event: NewEvent<OrgEvent>) -> Result<(), StoreError>;
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;
    async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<User>, StoreError>;
    /// The users with these ids (unknown ids are left out).
    async fn users(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError>;
    /// Every user (for the digest and for messages to a role).
    async fn all_users(&self) -> Result<Vec<User>, StoreError>;

    // Customers.
    async fn create_customer(&self, event: NewEvent<CustomerEvent>) -> Result<(), StoreError>;
    async fn customer(&self, id: CustomerId) -> Result<Option<Customer>, StoreError>;

    // Orders: the one write path, and reads.
    async fn create_order(
        &self,
        planned: PlannedOrder,
        pattern: NumberPattern,
        meta: Meta,
    ) -> Result<Order, WriteError>;
    async fn change_order(&self, id: OrderId, meta: Meta, decide: Box<Decide>) -> Result<Order, WriteError>;
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError>;
    async fn list_orders(&self, query: &OrderQuery) -> Result<Vec<Order>, StoreError>;
    async fn follow_ups(&self, order: OrderId) -> Result<Vec<FollowUp>, StoreError>;
    async fn issues(&self, query: &IssueQuery) -> Result<Vec<Issue>, StoreError>;

    // The audit log.
    async fn events(&self, stream: Uuid) -> Result<Vec<StoredEvent>, StoreError>;
    async fn count_events(&self) -> Result<i64, StoreError>;
    async fn verify(&self) -> Result<VerifyReport, StoreError>;

    // Idempotency keys.
    async fn claim_idempotency_key(
        &self,
        user: UserId,
        key: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<IdempotencyClaim, StoreError>;
    async fn finish_idempotency_key(&self, user: UserId, key: &str, status: u16, body: &str) -> Result<(), StoreError>;
    async fn release_idempotency_key(&self, user: UserId, key: &str) -> Result<(), StoreError>;

    // Background work.
    /// Claims up to `limit` outbox messages due at `now` for `worker`, for `lease`: no other worker (on any
    /// server) gets them until the lease runs out. Oldest first.
    async fn claim_outbox(
        &self,
        worker: &str,
        limit: u32,
        now: DateTime<Utc>,
        lease: chrono::TimeDelta,
    ) -> Result<Vec<OutboxMessage>, StoreError>;
    /// Records the outcome of a claimed message; `false` when the worker's claim had run out.
    async fn finish_outbox(&self, id: Uuid, worker: &str, outcome: OutboxOutcome) -> Result<bool, StoreError>;
    /// Outbox messages in `state` (any when none), of one stream when given, newest first.
    async fn outbox(
        &self,
        state: Option<&str>,
        stream: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError>;
    /// Puts a message that is in one of `from` back in line at `now` (retry a dead letter, send a draft).
    async fn release_outbox(&self, id: Uuid, from: &[&str], now: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Queues a message outside any order's log (the daily digest), once per dedupe key.
    async fn enqueue_once(
        &self,
        stream_id: Uuid,
        kind: &str,
        dedupe_key: &str,
        payload: &str,
        due_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// The orders with an unpaid installment due between two dates (dunning's candidates).
    async fn dunning_candidates(&self, from: chrono::NaiveDate, to: chrono::NaiveDate)
    -> Result<Vec<Uuid>, StoreError>;
    /// The orders the follow-through rules may concern at a date (see `outbox::follow_through_candidates`).
    async fn follow_through_candidates(
        &self,
        milestones: &MilestoneWindow,
        client_updates: &[(ordertrail_domain::order::OrderType, chrono::NaiveDate)],
    ) -> Result<Vec<Uuid>, StoreError>;

    // Moving an organisation between databases (see `copy`).
    /// The rows of table `table` (an index into [`copy::TABLES`]) after those of `after`, a page at a time.
    async fn export_page(&self, table: usize, after: Option<&CopyPage>) -> Result<CopyPage, StoreError>;
    /// Copies everything `source` holds into this (empty, unless `replace`) database, in one transaction.
    async fn copy_from(&self, source: &dyn Store, replace: bool) -> Result<CopyReport, StoreError>;
    /// Rows per table, in [`copy::TABLES`] order.
    async fn table_counts(&self) -> Result<Vec<(String, i64)>, StoreError>;
}
