//! The conformance suite of the storage trait: every test here runs on BOTH engines, a SQLite file and a
//! throwaway PostgreSQL database (skipped, with a line saying so, when `ORDERTRAIL_TEST_POSTGRES_URL` is not
//! set; CI sets it). The health filter in SQL agrees with the domain's rule, a refused decision writes
//! nothing, order numbers stay unique under concurrent creation, verify finds a removed last event, two
//! stores on one database never lose or duplicate a change, two claimers never get the same outbox message.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use ordertrail_domain::customer::{Customer, Language};
use ordertrail_domain::decide::{
    Acting, ChangeContext, MilestoneCompletion, NewOrder, OrderContext, complete_milestone, plan_order,
};
use ordertrail_domain::event::Actor;
use ordertrail_domain::ids::{CustomerId, UserId};
use ordertrail_domain::money::Money;
use ordertrail_domain::number::NumberPattern;
use ordertrail_domain::order::{Order, OrderType};
use ordertrail_domain::progress::{Health, HealthPolicy, progress};
use ordertrail_domain::workflow::Workflows;
use ordertrail_domain::{DomainError, Role};
use ordertrail_store::sqlite::Durability;
use ordertrail_store::testing::TestDatabase;
use ordertrail_store::{Meta, OrderQuery, OutboxOutcome, Store, Visibility, WriteError};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

const AM: UserId = UserId(Uuid::from_u128(0xa1));

struct Fixture {
    db: TestDatabase,
    store: Arc<dyn Store>,
    workflows: Workflows,
    customer: Customer,
}

/// Runs each named test on SQLite (`<name>::sqlite`) and on PostgreSQL (`<name>::postgres`).
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::fixture(ordertrail_store::testing::TestDatabase::sqlite()).await).await;
            }
            #[tokio::test]
            async fn postgres() {
                let test = concat!(stringify!($name), " (store)");
                if let Some(db) = ordertrail_store::testing::TestDatabase::postgres(test).await {
                    super::$name(super::fixture(db).await).await;
                }
            }
        }
    )*};
}

on_both_engines!(
    the_health_filter_in_sql_agrees_with_the_domain_rule_on_every_day,
    a_refused_decision_writes_nothing,
    order_numbers_stay_unique_when_orders_are_created_at_once,
    verify_finds_a_removed_last_event,
    a_store_that_remembers_an_order_notices_when_another_server_changed_it,
    a_decision_that_panics_fails_its_own_write_and_the_store_goes_on,
    concurrent_changes_from_two_servers_make_one_change_per_version,
    two_claimers_never_get_the_same_outbox_message,
    a_claim_that_runs_out_is_taken_again_and_the_late_worker_cannot_finish_it,
    a_list_by_status_uses_its_index,
    a_schema_newer_than_the_program_is_refused,
);

async fn open(url: &str, workflows: &Workflows) -> Arc<dyn Store> {
    ordertrail_store::open(url, Durability::Normal, Arc::new(workflows.clone()))
        .await
        .expect("open")
}

async fn fixture(db: TestDatabase) -> Fixture {
    let workflows = Workflows::load(&[]).expect("presets load");
    let store = open(&db.url, &workflows).await;
    store.migrate().await.expect("migrate");
    let customer = Customer {
        id: CustomerId(Uuid::now_v7()),
        name: "Harbor Supplies".into(),
        language: Language::English,
        contacts: vec![],
        notes: None,
        created_at: at(2026, 1, 1),
    };
    let event = ordertrail_domain::event::NewEvent {
        id: ordertrail_domain::ids::EventId(Uuid::now_v7()),
        at: at(2026, 1, 1),
        actor: Actor::System,
        reason: None,
        payload: ordertrail_domain::event::CustomerEvent::CustomerCreated {
            customer: customer.clone(),
        },
    };
    store.create_customer(event).await.expect("customer");
    Fixture {
        db,
        store,
        workflows,
        customer,
    }
}

/// Runs SQL behind the store's back, on either engine (`$1` bound as text); returns the rows it changed, or
/// the rows it returned as text for a query.
async fn behind_the_back(f: &Fixture, sql: &str, text: Option<&str>) -> Vec<String> {
    use sqlx::{Connection, Row};
    macro_rules! run {
        ($conn:expr) => {{
            // Statements separated by "; " run one after another on this connection; the last one's rows count.
            let mut lines = Vec::new();
            for part in sql.split("; ") {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(part.to_string()));
                if let Some(t) = text.filter(|_| part.contains("$1")) {
                    query = query.bind(t.to_string());
                }
                let rows = query.fetch_all(&mut $conn).await.expect("the statement runs");
                lines = rows
                    .iter()
                    .map(|r| r.try_get::<String, _>(r.len().saturating_sub(1)).unwrap_or_default())
                    .collect();
            }
            lines
        }};
    }
    if f.db.is_postgres() {
        let mut conn = sqlx::PgConnection::connect(&f.db.url).await.expect("connect");
        run!(conn)
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&f.db.url).await.expect("connect");
        run!(conn)
    }
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .map(|t| t.and_utc())
        .expect("date")
}

fn acting() -> Acting {
    Acting {
        user: AM,
        role: Role::AccountManager,
    }
}

async fn create(f: &Fixture, workflow: &str, order_date: NaiveDate, promised: NaiveDate) -> Order {
    let input = NewOrder {
        workflow: workflow.into(),
        customer_id: f.customer.id,
        customer_contact: None,
        title: format!("{workflow} order"),
        order_type: OrderType::Regular,
        amount: Money::parse("USD", "100.00").expect("money"),
        order_date: Some(order_date),
        promised_date: promised,
        line_items: vec![],
        special_requirements: None,
        people: vec![],
        department_contacts: vec![],
        tags: vec![],
        custom_fields: BTreeMap::new(),
        milestone_owners: BTreeMap::new(),
        extra_checklist: BTreeMap::new(),
    };
    let now = at(2026, 1, 1);
    let people = BTreeMap::new();
    let ctx = OrderContext {
        workflow: f.workflows.get(workflow).expect("wf"),
        customer: &f.customer,
        people_roles: &people,
        people_customers: &BTreeMap::new(),
        today: order_date,
        now,
    };
    let planned = plan_order(input, acting(), &ctx, &mut Uuid::now_v7).expect("valid order");
    f.store
        .create_order(
            planned,
            NumberPattern::default(),
            Meta {
                actor: Actor::System,
                at: now,
            },
        )
        .await
        .expect("created")
}

fn query(today: NaiveDate, health: Option<Health>) -> OrderQuery {
    OrderQuery {
        visibility: Visibility::All,
        status: None,
        health,
        owner: None,
        customer: None,
        order_type: None,
        due_before: None,
        text: None,
        before: None,
        limit: 1000,
        today,
        late_after_days: HealthPolicy::default().late_after_days,
    }
}

async fn the_health_filter_in_sql_agrees_with_the_domain_rule_on_every_day(f: Fixture) {
    let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).expect("date");
    // Orders whose milestones fall due on different days; one with its first milestone done, one replanned
    // past its promise, one delivered.
    let mut orders = [
        create(&f, "standard", d(1, 5), d(1, 30)).await,
        create(&f, "standard", d(1, 10), d(1, 20)).await,
        create(&f, "custom-production", d(1, 2), d(3, 15)).await,
        create(&f, "make-to-order", d(1, 8), d(1, 25)).await,
    ];
    let first = orders[0].milestones[0].clone();
    let workflows = f.workflows.clone();
    let done = f
        .store
        .change_order(
            orders[0].id,
            Meta {
                actor: Actor::User {
                    id: AM,
                    role: Role::AccountManager,
                },
                at: at(2026, 1, 6),
            },
            Box::new(move |o: &Order| {
                let wf = workflows.get(&o.workflow).expect("wf");
                let ctx = ChangeContext {
                    workflow: wf,
                    access: &Default::default(),
                    acting: acting(),
                    now: at(2026, 1, 6),
                    today: at(2026, 1, 6).date_naive(),
                    dunning: &Default::default(),
                };
                complete_milestone(
                    o,
                    first.id,
                    MilestoneCompletion {
                        checklist: first.checklist.iter().map(|c| c.item.clone()).collect(),
                        ..Default::default()
                    },
                    &ctx,
                )
            }),
        )
        .await
        .expect("completed");
    orders[0] = done;

    let policy = HealthPolicy::default();
    for offset in 0..80 {
        let today = d(1, 1) + TimeDelta::days(offset);
        for health in [Health::OnTrack, Health::AtRisk, Health::Late] {
            let mut from_sql: Vec<_> = f
                .store
                .list_orders(&query(today, Some(health)))
                .await
                .expect("list")
                .into_iter()
                .map(|o| o.number)
                .collect();
            let mut from_domain: Vec<_> = orders
                .iter()
                .filter(|o| progress(o, f.workflows.get(&o.workflow).expect("wf"), today, &policy).health == health)
                .map(|o| o.number.clone())
                .collect();
            from_sql.sort();
            from_domain.sort();
            assert_eq!(from_sql, from_domain, "{health:?} on {today}");
        }
    }
}

async fn a_refused_decision_writes_nothing(f: Fixture) {
    let order = create(
        &f,
        "standard",
        at(2026, 1, 5).date_naive(),
        at(2026, 1, 30).date_naive(),
    )
    .await;
    let events_before = f.store.count_events().await.expect("count");
    let refused = f
        .store
        .change_order(
            order.id,
            Meta {
                actor: Actor::System,
                at: at(2026, 1, 6),
            },
            Box::new(|_: &Order| Err(DomainError::Conflict("no".into()))),
        )
        .await;
    assert!(matches!(refused, Err(WriteError::Domain(DomainError::Conflict(_)))));
    assert_eq!(f.store.count_events().await.expect("count"), events_before);
    assert_eq!(f.store.order(order.id).await.expect("read"), Some(order));
}

async fn order_numbers_stay_unique_when_orders_are_created_at_once(f: Fixture) {
    let f = Arc::new(f);
    let day = NaiveDate::from_ymd_opt(2026, 2, 3).expect("date");
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            create(&f, "standard", day, day + TimeDelta::days(20)).await.number
        }));
    }
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.expect("task"));
    }
    numbers.sort();
    let expected: Vec<String> = (1..=40).map(|n| format!("ORD20260203{n:03}")).collect();
    assert_eq!(numbers, expected);
}

async fn verify_finds_a_removed_last_event(f: Fixture) {
    let order = create(
        &f,
        "standard",
        at(2026, 1, 5).date_naive(),
        at(2026, 1, 30).date_naive(),
    )
    .await;
    assert!(f.store.verify().await.expect("verify").broken.is_empty());
    behind_the_back(
        &f,
        "DELETE FROM events WHERE CAST(stream_id AS TEXT) = $1 RETURNING kind",
        Some(&order.id.to_string()),
    )
    .await;
    let report = f.store.verify().await.expect("verify");
    assert_eq!(report.broken.len(), 1, "{report:?}");
    assert_eq!(report.broken[0].order_number.as_deref(), Some(order.number.as_str()));
}

async fn a_list_by_status_uses_its_index(f: Fixture) {
    let explain = if f.db.is_postgres() {
        "EXPLAIN SELECT body FROM orders WHERE status = 'shipped' ORDER BY id DESC LIMIT 50"
    } else {
        "EXPLAIN QUERY PLAN SELECT body FROM orders WHERE status = 'shipped' ORDER BY id DESC LIMIT 50"
    };
    if f.db.is_postgres() {
        // On an empty table PostgreSQL rightly prefers a sequential scan; with statistics saying the table is
        // large it must use the index.
        behind_the_back(&f, "ANALYZE orders", None).await;
        let plan = behind_the_back(&f, &format!("SET enable_seqscan = off; {explain}"), None).await;
        assert!(plan.iter().any(|line| line.contains("orders_status")), "{plan:?}");
    } else {
        let plan = behind_the_back(&f, explain, None).await;
        assert!(plan.iter().any(|line| line.contains("orders_status")), "{plan:?}");
    }
}

async fn a_store_that_remembers_an_order_notices_when_another_server_changed_it(f: Fixture) {
    let order = create(
        &f,
        "standard",
        at(2026, 1, 5).date_naive(),
        at(2026, 1, 30).date_naive(),
    )
    .await;
    // A second store on the same database, as a second `ordertrail serve` would open it.
    let other = open(&f.db.url, &f.workflows).await;
    let complete = |milestone: usize, day: u32| -> Box<ordertrail_store::Decide> {
        let m = order.milestones[milestone].clone();
        let workflows = f.workflows.clone();
        Box::new(move |o: &Order| {
            let ctx = ChangeContext {
                workflow: workflows.get(&o.workflow).expect("wf"),
                access: &Default::default(),
                acting: acting(),
                now: at(2026, 1, day),
                today: at(2026, 1, day).date_naive(),
                dunning: &Default::default(),
            };
            let checklist = m.checklist.iter().map(|c| c.item.clone()).collect();
            complete_milestone(
                o,
                m.id,
                MilestoneCompletion {
                    checklist,
                    ..Default::default()
                },
                &ctx,
            )
        })
    };
    let meta = |day| Meta {
        actor: Actor::User {
            id: AM,
            role: Role::AccountManager,
        },
        at: at(2026, 1, day),
    };
    // The first store remembers the order it created; the other changes it behind its back.
    let changed_elsewhere = other
        .change_order(order.id, meta(6), complete(0, 6))
        .await
        .expect("the other store writes");
    assert_eq!(changed_elsewhere.version, 2);
    let changed_here = f
        .store
        .change_order(order.id, meta(7), complete(6, 7))
        .await
        .expect("the first store notices and writes on the current order");
    assert_eq!(
        changed_here.version, 3,
        "built on the other store's change, not on what it remembered"
    );
    assert!(
        changed_here.milestones[0].completed_at.is_some(),
        "the other store's change is kept"
    );
    assert!(changed_here.milestones[6].completed_at.is_some());
    let events = f.store.events(order.id.0).await.expect("events");
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(f.store.verify().await.expect("verify").broken.is_empty());
}

async fn a_decision_that_panics_fails_its_own_write_and_the_store_goes_on(f: Fixture) {
    let order = create(
        &f,
        "standard",
        at(2026, 1, 5).date_naive(),
        at(2026, 1, 30).date_naive(),
    )
    .await;
    let meta = Meta {
        actor: Actor::System,
        at: at(2026, 1, 6),
    };
    let panicked = f
        .store
        .change_order(order.id, meta, Box::new(|_: &Order| panic!("a bug in a decision")))
        .await;
    assert!(matches!(panicked, Err(WriteError::Store(_))), "{panicked:?}");
    // The writer still writes.
    let next = create(
        &f,
        "standard",
        at(2026, 1, 5).date_naive(),
        at(2026, 1, 30).date_naive(),
    )
    .await;
    assert_eq!(next.number, "ORD20260105002");
    assert_eq!(f.store.order(order.id).await.expect("read"), Some(order));
}

fn meta(day: u32) -> Meta {
    Meta {
        actor: Actor::User {
            id: AM,
            role: Role::AccountManager,
        },
        at: at(2026, 1, day),
    }
}

/// A decision that completes milestone `index`, and only on the version the caller saw (as a request carrying
/// `expected_version` does).
fn complete_on_version(f: &Fixture, order: &Order, index: usize, seen: i64) -> Box<ordertrail_store::Decide> {
    let m = order.milestones[index].clone();
    let workflows = f.workflows.clone();
    Box::new(move |o: &Order| {
        if o.version != seen {
            return Err(DomainError::StaleVersion {
                expected: seen,
                actual: o.version,
            });
        }
        let ctx = ChangeContext {
            workflow: workflows.get(&o.workflow).expect("wf"),
            access: &Default::default(),
            acting: acting(),
            now: at(2026, 1, 6),
            today: at(2026, 1, 6).date_naive(),
            dunning: &Default::default(),
        };
        let checklist = m.checklist.iter().map(|c| c.item.clone()).collect();
        complete_milestone(
            o,
            m.id,
            MilestoneCompletion {
                checklist,
                ..Default::default()
            },
            &ctx,
        )
    })
}

async fn concurrent_changes_from_two_servers_make_one_change_per_version(f: Fixture) {
    let order = create(
        &f,
        "standard",
        at(2026, 1, 5).date_naive(),
        at(2026, 1, 30).date_naive(),
    )
    .await;
    let other = open(&f.db.url, &f.workflows).await;
    let stores = [f.store.clone(), other];
    // Two rounds (milestones the account manager owns); in each, 12 writers on the two stores race to change
    // the version they all saw.
    for (round, milestone) in [0, 6].into_iter().enumerate() {
        let round = round as i64;
        let seen = 1 + round;
        let current = f.store.order(order.id).await.expect("read").expect("order");
        assert_eq!(current.version, seen);
        let mut racers = Vec::new();
        for i in 0..12 {
            let store = stores[i % 2].clone();
            let decide = complete_on_version(&f, &current, milestone, seen);
            racers.push(tokio::spawn(async move {
                store.change_order(order.id, meta(6), decide).await
            }));
        }
        let mut won = 0;
        for racer in racers {
            match racer.await.expect("task") {
                Ok(after) => {
                    won += 1;
                    assert_eq!(after.version, seen + 1);
                }
                Err(WriteError::Domain(DomainError::StaleVersion { .. })) => {}
                Err(other) => panic!("a lost race is a stale version, not {other:?}"),
            }
        }
        assert_eq!(won, 1, "exactly one change per version in round {round}");
    }
    let events = f.store.events(order.id.0).await.expect("events");
    assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(f.store.verify().await.expect("verify").broken.is_empty());
}

async fn two_claimers_never_get_the_same_outbox_message(f: Fixture) {
    // Each new order puts two messages in the outbox: its webhook event and its acknowledgment (R23).
    for _ in 0..30 {
        create(
            &f,
            "standard",
            at(2026, 1, 5).date_naive(),
            at(2026, 1, 30).date_naive(),
        )
        .await;
    }
    let other = open(&f.db.url, &f.workflows).await;
    let now = at(2026, 1, 5);
    let mut workers = Vec::new();
    for (worker, store) in [
        ("a", f.store.clone()),
        ("b", other.clone()),
        ("c", f.store.clone()),
        ("d", other),
    ] {
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = store
                    .claim_outbox(worker, 4, now, TimeDelta::minutes(5))
                    .await
                    .expect("claim");
                if claimed.is_empty() {
                    return mine;
                }
                for message in claimed {
                    assert!(
                        store
                            .finish_outbox(message.id, worker, OutboxOutcome::Sent { at: at(2026, 3, 2) })
                            .await
                            .expect("finish")
                    );
                    mine.push(message.id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("worker"));
    }
    let claimed = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), claimed, "a message was claimed twice");
    assert_eq!(claimed, 60, "every message was claimed once");
    assert!(
        f.store
            .claim_outbox("e", 10, now, TimeDelta::minutes(5))
            .await
            .expect("claim")
            .is_empty()
    );
}

async fn a_claim_that_runs_out_is_taken_again_and_the_late_worker_cannot_finish_it(f: Fixture) {
    create(
        &f,
        "standard",
        at(2026, 1, 5).date_naive(),
        at(2026, 1, 30).date_naive(),
    )
    .await;
    let now = at(2026, 1, 5);
    let first = f
        .store
        .claim_outbox("a", 10, now, TimeDelta::minutes(5))
        .await
        .expect("claim");
    assert_eq!(first.len(), 2, "the order's webhook message and its acknowledgment");
    assert_eq!(first[0].attempts, 1);
    // The test follows the first; the second is done.
    assert!(
        f.store
            .finish_outbox(first[1].id, "a", OutboxOutcome::Sent { at: now })
            .await
            .expect("finish")
    );
    // Within the lease nobody else gets it; after it, another worker does.
    assert!(
        f.store
            .claim_outbox("b", 10, now + TimeDelta::minutes(4), TimeDelta::minutes(5))
            .await
            .expect("claim")
            .is_empty()
    );
    let again = f
        .store
        .claim_outbox("b", 10, now + TimeDelta::minutes(6), TimeDelta::minutes(5))
        .await
        .expect("claim");
    assert_eq!(
        again.iter().map(|m| (m.id, m.attempts)).collect::<Vec<_>>(),
        [(first[0].id, 2)]
    );
    assert!(
        !f.store
            .finish_outbox(first[0].id, "a", OutboxOutcome::Sent { at: at(2026, 3, 2) })
            .await
            .expect("finish"),
        "a's claim ran out"
    );
    // A retry later puts it back in the queue at its new time.
    let later = now + TimeDelta::hours(1);
    assert!(
        f.store
            .finish_outbox(
                first[0].id,
                "b",
                OutboxOutcome::RetryAt {
                    at: later,
                    error: "451 try later".into()
                }
            )
            .await
            .expect("finish")
    );
    assert!(
        f.store
            .claim_outbox("c", 10, later - TimeDelta::seconds(1), TimeDelta::minutes(5))
            .await
            .expect("claim")
            .is_empty()
    );
    assert_eq!(
        f.store
            .claim_outbox("c", 10, later, TimeDelta::minutes(5))
            .await
            .expect("claim")
            .len(),
        1
    );
}

/// The tables and columns a migrated database has, table by table, sorted (the migrations' bookkeeping aside).
async fn schema(f: &Fixture) -> Vec<(String, Vec<String>)> {
    let mut tables = Vec::new();
    for table in ordertrail_store::copy::TABLES {
        let sql = if f.db.is_postgres() {
            format!(
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '{}'",
                table.name
            )
        } else {
            format!("SELECT name FROM pragma_table_info('{}')", table.name)
        };
        let mut columns = behind_the_back(f, &sql, None).await;
        columns.sort();
        tables.push((table.name.to_string(), columns));
    }
    let all = if f.db.is_postgres() {
        "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%'"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_sqlx%' ESCAPE '\\'"
    };
    let mut names = behind_the_back(f, all, None).await;
    names.sort();
    tables.push(("(all tables)".into(), names));
    tables
}

#[tokio::test]
async fn the_two_engines_have_the_same_tables_and_columns() {
    let Some(pg) = TestDatabase::postgres("the_two_engines_have_the_same_tables_and_columns").await else {
        return;
    };
    let sqlite = fixture(TestDatabase::sqlite()).await;
    let postgres = fixture(pg).await;
    let (on_sqlite, on_postgres) = (schema(&sqlite).await, schema(&postgres).await);
    assert_eq!(on_sqlite, on_postgres);
    // And both are the schema the copy knows, column for column.
    for (table, (name, columns)) in ordertrail_store::copy::TABLES.iter().zip(&on_sqlite) {
        let mut known: Vec<String> = table.columns.iter().map(|(c, _)| c.to_string()).collect();
        known.sort();
        assert_eq!((&table.name.to_string(), &known), (name, columns));
    }
    let mut known: Vec<String> = ordertrail_store::copy::TABLES
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    known.sort();
    assert_eq!(on_sqlite.last().map(|(_, names)| names), Some(&known));
}

#[tokio::test]
async fn an_organisation_copied_to_postgres_and_back_verifies_with_the_same_counts() {
    let Some(pg) = TestDatabase::postgres("an_organisation_copied_to_postgres_and_back").await else {
        return;
    };
    let source = fixture(TestDatabase::sqlite()).await;
    let order = create(
        &source,
        "standard",
        at(2026, 1, 5).date_naive(),
        at(2026, 1, 30).date_naive(),
    )
    .await;
    source
        .store
        .change_order(order.id, meta(6), complete_on_version(&source, &order, 0, 1))
        .await
        .expect("changed");
    source
        .store
        .claim_outbox("a", 1, at(2026, 1, 7), TimeDelta::minutes(5))
        .await
        .expect("claim");
    let expected = source.store.table_counts().await.expect("counts");

    let target = open(&pg.url, &source.workflows).await;
    target.migrate().await.expect("migrate");
    let report = target.copy_from(source.store.as_ref(), false).await.expect("copied");
    assert_eq!(report.tables, expected);
    assert!(target.verify().await.expect("verify").broken.is_empty());
    assert_eq!(
        target.order(order.id).await.expect("read"),
        source.store.order(order.id).await.expect("read")
    );
    assert_eq!(target.events(order.id.0).await.expect("events").len(), 2);

    // A non-empty target is refused and left as it was, unless told to replace it.
    let refused = target.copy_from(source.store.as_ref(), false).await;
    assert!(
        matches!(refused, Err(ordertrail_store::StoreError::Conflict(ref m)) if m.contains("not empty")),
        "{refused:?}"
    );
    assert_eq!(target.table_counts().await.expect("counts"), expected);
    target.copy_from(source.store.as_ref(), true).await.expect("replaced");

    // The copy writes on: a new order after the copied ones, its event after the copied positions.
    let after_copy = fixture_on(&target, &source).await;
    assert_eq!(after_copy.number, "ORD20260105002");

    // And back to a fresh SQLite file.
    let back = TestDatabase::sqlite();
    let back_store = open(&back.url, &source.workflows).await;
    back_store.migrate().await.expect("migrate");
    back_store.copy_from(target.as_ref(), false).await.expect("copied back");
    assert_eq!(
        back_store.table_counts().await.expect("counts"),
        target.table_counts().await.expect("counts")
    );
    assert!(back_store.verify().await.expect("verify").broken.is_empty());
}

/// Creates an order through `store` with the fixture's customer and workflows.
async fn fixture_on(store: &Arc<dyn Store>, f: &Fixture) -> Order {
    let twin = Fixture {
        db: TestDatabase::sqlite(),
        store: store.clone(),
        workflows: f.workflows.clone(),
        customer: f.customer.clone(),
    };
    create(
        &twin,
        "standard",
        at(2026, 1, 5).date_naive(),
        at(2026, 1, 30).date_naive(),
    )
    .await
}

async fn a_schema_newer_than_the_program_is_refused(f: Fixture) {
    let (known, applied) = f.store.schema_versions().await.expect("versions");
    assert_eq!(applied, Some(known));
    let bytes = if f.db.is_postgres() { "BYTEA" } else { "BLOB" };
    let future = format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ({}, 'from the future', TRUE, CAST('' AS {bytes}), 0) RETURNING description",
        known + 1
    );
    behind_the_back(&f, &future, None).await;
    let refused = open(&f.db.url, &f.workflows).await.migrate().await;
    let message = refused.expect_err("refused").to_string();
    assert!(
        message.contains(&format!("schema is at version {}", known + 1)),
        "{message}"
    );
    assert!(message.contains("upgrade ordertrail"), "{message}");
}
