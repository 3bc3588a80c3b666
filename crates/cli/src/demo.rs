//! Demo data for `serve --demo`: a small costume-and-parts business with people in every role, three
//! customers and orders in every workflow at different stages, made through the same use cases as the API.

use chrono::{Days, NaiveDate};
use ordertrail_domain::Role;
use ordertrail_domain::customer::{Contact, Language, NewCustomer, User};
use ordertrail_domain::decide::{
    Acting, ContractInput, MilestoneCompletion, NewOrder, PaymentInput, TransitionRequest, complete_milestone,
    log_follow_up, record_payment, sign_contract, transition,
};
use ordertrail_domain::follow_up::{
    Channel, Counterpart, CounterpartKind, Direction, ExceptionNote, FollowUpStatus, NewFollowUp,
};
use ordertrail_domain::ids::{FollowUpId, UserId};
use ordertrail_domain::money::Money;
use ordertrail_domain::order::{Evidence, LineItem, Order, OrderType, Participant, Relation};
use ordertrail_domain::payment::{Payment, PaymentMethod};
use ordertrail_server::app;
use ordertrail_server::error::ApiError;
use ordertrail_server::state::AppState;
use std::collections::BTreeMap;
use uuid::Uuid;

pub const ADMIN_EMAIL: &str = "admin@demo.ordertrail.dev";

/// Seeds an empty database; on one already seeded, only issues a fresh admin token. Returns the token.
pub async fn ensure(state: &AppState) -> Result<String, ApiError> {
    if state.store.user_by_email(ADMIN_EMAIL).await?.is_none() {
        seed(state).await?;
    }
    Ok(app::issue_token(state, ADMIN_EMAIL).await?.1)
}

struct People {
    amy: User,
    sam: User,
    omar: User,
    lea: User,
    leo: User,
    ivy: User,
    max: User,
}

fn act(user: &User, role: Role) -> Acting {
    Acting { user: user.id, role }
}

fn days_ago(today: NaiveDate, n: u64) -> NaiveDate {
    today.checked_sub_days(Days::new(n)).unwrap_or(today)
}

fn days_ahead(today: NaiveDate, n: u64) -> NaiveDate {
    today.checked_add_days(Days::new(n)).unwrap_or(today)
}

fn contact(name: &str, email: &str, title: &str) -> Contact {
    Contact {
        name: name.into(),
        email: Some(email.into()),
        phone: None,
        title: Some(title.into()),
    }
}

async fn seed(state: &AppState) -> Result<(), ApiError> {
    let user = |email: &'static str, name: &'static str, roles: Vec<Role>| async move {
        app::add_user(state, &format!("{email}@demo.ordertrail.dev"), name, roles, None).await
    };
    user("admin", "Ada Admin", vec![Role::Admin]).await?;
    let p = People {
        amy: user("amy", "Amy Chen", vec![Role::AccountManager]).await?,
        sam: user("sam", "Sam Rivera", vec![Role::SalesCoordinator]).await?,
        omar: user("omar", "Omar Haddad", vec![Role::Operations]).await?,
        lea: user("lea", "Léa Martin", vec![Role::Design]).await?,
        leo: user("leo", "Leo Park", vec![Role::Logistics]).await?,
        ivy: user("ivy", "Ivy Ross", vec![Role::IpOwner]).await?,
        max: user("max", "Max Müller", vec![Role::Manufacturer, Role::Operations]).await?,
    };
    user("dana", "Dana Brooks", vec![Role::SalesDirector]).await?;
    let fay = user("fay", "Fay Wong", vec![Role::Finance]).await?;

    let amy = act(&p.amy, Role::AccountManager);
    let theatre = app::create_customer(
        state,
        amy,
        NewCustomer {
            name: "Royal Lyceum Theatre".into(),
            language: Language::English,
            contacts: vec![contact("Margaret Hale", "margaret@lyceum.example", "Producer")],
            notes: Some("Season opens in spring; fittings on Tuesdays.".into()),
        },
    )
    .await?;
    let xingchen = app::create_customer(
        state,
        amy,
        NewCustomer {
            name: "深圳星辰科技".into(),
            language: Language::SimplifiedChinese,
            contacts: vec![contact("王磊", "wang.lei@xingchen.example", "采购经理")],
            notes: None,
        },
    )
    .await?;
    let harbor = app::create_customer(
        state,
        amy,
        NewCustomer {
            name: "Harbor Supplies Ltd".into(),
            language: Language::English,
            contacts: vec![contact("Tom Baker", "tom@harbor.example", "Buyer")],
            notes: None,
        },
    )
    .await?;
    let margaret = app::add_user(
        state,
        "margaret@lyceum.example",
        "Margaret Hale",
        vec![Role::Customer],
        Some(theatre.id),
    )
    .await?;
    let wang = app::add_user(
        state,
        "wang.lei@xingchen.example",
        "王磊",
        vec![Role::Customer],
        Some(xingchen.id),
    )
    .await?;

    let today = state.local_date(state.now());
    let people = |extra: &[(Relation, UserId)]| -> Vec<Participant> {
        [(Relation::Owner, p.amy.id), (Relation::Backup, p.sam.id)]
            .iter()
            .chain(extra)
            .map(|(relation, user_id)| Participant {
                relation: *relation,
                user_id: *user_id,
            })
            .collect()
    };
    let order = |workflow: &str,
                 customer,
                 title: &str,
                 kind,
                 amount: &str,
                 start: u64,
                 promised: NaiveDate,
                 people: Vec<Participant>| NewOrder {
        workflow: workflow.into(),
        customer_id: customer,
        customer_contact: None,
        title: title.into(),
        order_type: kind,
        amount: Money::parse("USD", amount).unwrap_or(Money {
            currency: "USD".into(),
            minor: 100,
        }),
        order_date: Some(days_ago(today, start)),
        promised_date: promised,
        line_items: vec![LineItem {
            description: title.into(),
            quantity: 1,
            notes: None,
        }],
        special_requirements: None,
        people,
        department_contacts: vec![],
        tags: vec![],
        custom_fields: BTreeMap::new(),
        milestone_owners: BTreeMap::new(),
        extra_checklist: BTreeMap::new(),
    };

    // Custom production: Hamlet in the Pattern phase, design approved; a rush Nutcracker waiting on fabric.
    let hamlet_people = people(&[
        (Relation::Production, p.omar.id),
        (Relation::Design, p.lea.id),
        (Relation::Customer, margaret.id),
    ]);
    let hamlet = app::create_order(
        state,
        amy,
        order(
            "custom-production",
            theatre.id,
            "Hamlet: 12 principal costumes",
            OrderType::Custom,
            "48000.00",
            20,
            days_ahead(today, 40),
            hamlet_people,
        ),
    )
    .await?;
    // R15: the contract was signed, the deposit (installment 1, due at signing) paid the day after; then
    // tracking started.
    sign(state, amy, &hamlet, days_ago(today, 19)).await?;
    pay(state, act(&fay, Role::Finance), &hamlet, 1, days_ago(today, 18)).await?;
    move_to(state, amy, &hamlet, "design", BTreeMap::new()).await?;
    complete(
        state,
        act(&p.lea, Role::Design),
        &hamlet,
        "design_approval",
        Some("Margaret Hale (Producer)"),
    )
    .await?;
    move_to(state, act(&p.lea, Role::Design), &hamlet, "pattern", BTreeMap::new()).await?;
    follow_up(
        state,
        amy,
        &hamlet,
        FollowUpStatus::InProgress,
        "Weekly update sent: sketches approved, pattern making started.",
        None,
    )
    .await?;

    let nutcracker_people = people(&[(Relation::Production, p.omar.id), (Relation::Customer, margaret.id)]);
    let nutcracker = app::create_order(
        state,
        amy,
        order(
            "custom-production",
            theatre.id,
            "Nutcracker: Sugar Plum Fairy tutu",
            OrderType::Rush,
            "6500.00",
            10,
            days_ahead(today, 25),
            nutcracker_people,
        ),
    )
    .await?;
    let exception = ExceptionNote {
        cause: "Silk organza delayed at the supplier".into(),
        impact: "Design approval slips about 3 days".into(),
        expected_resolution_at: state.now().checked_add_days(Days::new(3)),
    };
    follow_up(
        state,
        amy,
        &nutcracker,
        FollowUpStatus::ExceptionPending,
        "Supplier confirmed a delay on the organza.",
        Some(exception),
    )
    .await?;

    // Make to order: a bracket in production with part of its inspection plan done; an enclosure just placed.
    let bracket_people = people(&[
        (Relation::IpOwner, p.ivy.id),
        (Relation::Production, p.max.id),
        (Relation::Customer, wang.id),
    ]);
    let mut bracket_order = order(
        "make-to-order",
        xingchen.id,
        "钛合金支架 Titanium bracket, 50 pcs",
        OrderType::Regular,
        "12800.00",
        15,
        days_ahead(today, 5),
        bracket_people,
    );
    bracket_order.extra_checklist = BTreeMap::from([(
        "production".to_string(),
        vec!["CMM report for critical dimensions".to_string()],
    )]);
    let bracket = app::create_order(state, amy, bracket_order).await?;
    let confirm = |to: &str| TransitionRequest {
        to: to.into(),
        confirm: true,
        ..Default::default()
    };
    app::change_order(state, act(&p.ivy, Role::IpOwner), bracket.id, move |o, ctx| {
        transition(o, confirm("confirmed"), ctx)
    })
    .await?;
    app::change_order(state, act(&p.max, Role::Manufacturer), bracket.id, move |o, ctx| {
        transition(o, confirm("in_production"), ctx)
    })
    .await?;
    let enclosure_people = people(&[
        (Relation::IpOwner, p.ivy.id),
        (Relation::Production, p.max.id),
        (Relation::Customer, wang.id),
    ]);
    app::create_order(
        state,
        amy,
        order(
            "make-to-order",
            xingchen.id,
            "Anodised enclosure prototype",
            OrderType::Rush,
            "2400.00",
            3,
            days_ahead(today, 18),
            enclosure_people,
        ),
    )
    .await?;

    // Standard: chairs in production with a milestone overdue; cartons shipped but past their promised date.
    let chairs = app::create_order(
        state,
        amy,
        order(
            "standard",
            harbor.id,
            "Office chairs, 120 units",
            OrderType::Regular,
            "21600.00",
            12,
            days_ahead(today, 9),
            people(&[(Relation::Production, p.omar.id), (Relation::Logistics, p.leo.id)]),
        ),
    )
    .await?;
    move_to(state, amy, &chairs, "in_production", BTreeMap::new()).await?;
    complete(state, act(&p.omar, Role::Operations), &chairs, "production_start", None).await?;
    let cartons = app::create_order(
        state,
        amy,
        order(
            "standard",
            harbor.id,
            "Printed shipping cartons",
            OrderType::Rush,
            "3150.00",
            25,
            days_ago(today, 3),
            people(&[(Relation::Logistics, p.leo.id)]),
        ),
    )
    .await?;
    move_to(state, amy, &cartons, "in_production", BTreeMap::new()).await?;
    let shipping = BTreeMap::from([
        ("carrier".to_string(), "UPS".to_string()),
        ("tracking_number".to_string(), "1Z999AA10123456784".to_string()),
    ]);
    move_to(state, act(&p.leo, Role::Logistics), &cartons, "shipped", shipping).await?;
    Ok(())
}

async fn move_to(
    state: &AppState,
    acting: Acting,
    order: &Order,
    to: &str,
    fields: BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let req = TransitionRequest {
        to: to.into(),
        fields,
        confirm: true,
        ..Default::default()
    };
    app::change_order(state, acting, order.id, move |o, ctx| transition(o, req.clone(), ctx))
        .await
        .map(drop)
}

/// Records the day the client signed the contract.
async fn sign(state: &AppState, acting: Acting, order: &Order, on: NaiveDate) -> Result<(), ApiError> {
    let input = ContractInput { signed_on: on };
    app::change_order(state, acting, order.id, move |o, ctx| {
        sign_contract(o, input.clone(), ctx)
    })
    .await
    .map(drop)
}

/// Records the payment of what is outstanding on installment `number`, by bank transfer.
async fn pay(state: &AppState, acting: Acting, order: &Order, number: u32, on: NaiveDate) -> Result<(), ApiError> {
    let current = state
        .store
        .order(order.id)
        .await?
        .ok_or_else(|| ApiError::not_found("order"))?;
    let Some(installment) = current.payments.as_ref().and_then(|s| s.installment(number)) else {
        return Ok(());
    };
    let input = PaymentInput {
        installment: Some(number),
        payment: Payment {
            amount: installment.outstanding(),
            paid_on: on,
            method: PaymentMethod::BankTransfer,
            reference: Some(format!("{}-{number}", current.number)),
        },
    };
    app::change_order(state, acting, order.id, move |o, ctx| {
        record_payment(o, input.clone(), ctx)
    })
    .await
    .map(drop)
}

async fn complete(
    state: &AppState,
    acting: Acting,
    order: &Order,
    key: &str,
    approved_by: Option<&str>,
) -> Result<(), ApiError> {
    let Some(m) = order.milestones.iter().find(|m| m.key == key) else {
        return Ok(());
    };
    let completion = MilestoneCompletion {
        evidence: Evidence {
            approved_by: approved_by.map(str::to_string),
            note: Some("Demo data".into()),
            attachments: vec![],
        },
        checklist: m.checklist.iter().map(|c| c.item.clone()).collect(),
        ..Default::default()
    };
    let id = m.id;
    app::change_order(state, acting, order.id, move |o, ctx| {
        complete_milestone(o, id, completion.clone(), ctx)
    })
    .await
    .map(drop)
}

async fn follow_up(
    state: &AppState,
    acting: Acting,
    order: &Order,
    status: FollowUpStatus,
    summary: &str,
    exception: Option<ExceptionNote>,
) -> Result<(), ApiError> {
    let record = NewFollowUp {
        occurred_at: None,
        channel: Channel::Email,
        direction: Direction::Outbound,
        counterpart: Counterpart {
            kind: CounterpartKind::Customer,
            name: order.customer_contact.as_ref().map(|c| c.name.clone()),
        },
        milestone_id: None,
        status,
        summary: Some(summary.into()),
        progress_details: None,
        next_step: Some("Next update on Friday".into()),
        next_step_due: None,
        exception,
        client_feedback: None,
        attachments: vec![],
    };
    let id = FollowUpId(Uuid::now_v7());
    app::change_order(state, acting, order.id, move |o, ctx| {
        log_follow_up(o, id, record.clone(), ctx)
    })
    .await
    .map(drop)
}
