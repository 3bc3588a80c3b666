//! The SQLite store on a real database file: the health filter in SQL agrees with the domain's rule, a
//! refused decision writes nothing, order numbers stay unique under concurrent creation, and verify finds a
//! removed last event.

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
use ordertrail_store::sqlite::{Durability, SqliteStore};
use ordertrail_store::{Meta, OrderQuery, Store, Visibility, WriteError};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

const AM: UserId = UserId(Uuid::from_u128(0xa1));

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    workflows: Workflows,
    customer: Customer,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let workflows = Workflows::load(&[]).expect("presets load");
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = SqliteStore::open(&url, Durability::Normal, Arc::new(workflows.clone()))
        .await
        .expect("open");
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
        _dir: dir,
        store: Arc::new(store),
        workflows,
        customer,
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

#[tokio::test]
async fn the_health_filter_in_sql_agrees_with_the_domain_rule_on_every_day() {
    let f = fixture().await;
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

#[tokio::test]
async fn a_refused_decision_writes_nothing() {
    let f = fixture().await;
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

#[tokio::test]
async fn order_numbers_stay_unique_when_orders_are_created_at_once() {
    let f = Arc::new(fixture().await);
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

#[tokio::test]
async fn verify_finds_a_removed_last_event() {
    let f = fixture().await;
    let order = create(
        &f,
        "standard",
        at(2026, 1, 5).date_naive(),
        at(2026, 1, 30).date_naive(),
    )
    .await;
    assert!(f.store.verify().await.expect("verify").broken.is_empty());
    sqlx::query("DELETE FROM events WHERE stream_id = $1")
        .bind(order.id.to_string())
        .execute(f.store.writer_pool())
        .await
        .expect("delete");
    let report = f.store.verify().await.expect("verify");
    assert_eq!(report.broken.len(), 1, "{report:?}");
    assert_eq!(report.broken[0].order_number.as_deref(), Some(order.number.as_str()));
}

#[tokio::test]
async fn a_list_by_status_uses_its_index() {
    let f = fixture().await;
    let rows =
        sqlx::query("EXPLAIN QUERY PLAN SELECT body FROM orders WHERE status = 'shipped' ORDER BY id DESC LIMIT 50")
            .fetch_all(f.store.writer_pool())
            .await
            .expect("plan");
    let plan: Vec<String> = rows
        .iter()
        .map(|r| sqlx::Row::try_get::<String, _>(r, "detail").unwrap_or_default())
        .collect();
    assert!(plan.iter().any(|line| line.contains("orders_status")), "{plan:?}");
}

#[tokio::test]
async fn a_writer_that_remembers_an_order_notices_when_another_process_changed_it() {
    let f = fixture().await;
    let order = create(
        &f,
        "standard",
        at(2026, 1, 5).date_naive(),
        at(2026, 1, 30).date_naive(),
    )
    .await;
    // A second store on the same file, as a second `ordertrail serve` would open it.
    let url = format!("sqlite://{}", f._dir.path().join("store.db").display());
    let other = SqliteStore::open(&url, Durability::Normal, Arc::new(f.workflows.clone()))
        .await
        .expect("open");
    let complete = |milestone: usize, day: u32| -> Box<ordertrail_store::Decide> {
        let m = order.milestones[milestone].clone();
        let workflows = f.workflows.clone();
        Box::new(move |o: &Order| {
            let ctx = ChangeContext {
                workflow: workflows.get(&o.workflow).expect("wf"),
                access: &Default::default(),
                acting: acting(),
                now: at(2026, 1, day),
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

#[tokio::test]
async fn a_decision_that_panics_fails_its_own_write_and_the_writer_goes_on() {
    let f = fixture().await;
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
