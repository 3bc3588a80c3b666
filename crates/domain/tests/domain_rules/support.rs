//! A small world for the tests: the bundled workflows, one customer, a cast of users (one per role, plus
//! strangers), and helpers that create orders and run commands the way the service does, applying each
//! resulting event to move the order forward.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use ordertrail_domain::Role;
use ordertrail_domain::access::AccessPolicy;
use ordertrail_domain::customer::{Contact, Customer, Language};
use ordertrail_domain::decide::{
    self, Acting, ChangeContext, MilestoneChange, MilestoneCompletion, NewOrder, OrderContext, PlannedOrder,
    TransitionRequest,
};
use ordertrail_domain::error::DomainError;
use ordertrail_domain::event::OrderEvent;
use ordertrail_domain::follow_up::{Channel, Counterpart, CounterpartKind, Direction, FollowUpStatus, NewFollowUp};
use ordertrail_domain::ids::{CustomerId, FollowUpId, MilestoneId, UserId};
use ordertrail_domain::money::Money;
use ordertrail_domain::order::{Evidence, Milestone, Order, OrderType, Participant, Relation};
use ordertrail_domain::workflow::{Workflow, Workflows};
use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

pub type Events = Vec<(OrderEvent, Option<String>)>;

static WORKFLOWS: LazyLock<Workflows> = LazyLock::new(|| Workflows::load(&[]).expect("the presets load"));
static POLICY: LazyLock<AccessPolicy> = LazyLock::new(AccessPolicy::default);

pub const PRESET_IDS: [&str; 3] = ["custom-production", "make-to-order", "standard"];

pub fn workflow(id: &str) -> &'static Workflow {
    WORKFLOWS.get(id).unwrap_or_else(|| panic!("no workflow {id}"))
}

pub fn policy() -> &'static AccessPolicy {
    &POLICY
}

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a real date")
}

/// Noon UTC on the given day.
pub fn noon(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).single().expect("a real time")
}

/// The people of the world, one per role (the strangers are on no order).
pub const ACCOUNT_MANAGER: UserId = UserId(Uuid::from_u128(0xa1));
pub const COORDINATOR: UserId = UserId(Uuid::from_u128(0xa2));
pub const DESIGNER: UserId = UserId(Uuid::from_u128(0xa3));
pub const OPERATIONS: UserId = UserId(Uuid::from_u128(0xa4));
pub const LOGISTICS: UserId = UserId(Uuid::from_u128(0xa5));
pub const IP_OWNER: UserId = UserId(Uuid::from_u128(0xa6));
pub const MANUFACTURER: UserId = UserId(Uuid::from_u128(0xa7));
pub const CUSTOMER: UserId = UserId(Uuid::from_u128(0xc1));
pub const OTHER_CUSTOMER: UserId = UserId(Uuid::from_u128(0xc2));
pub const DIRECTOR: UserId = UserId(Uuid::from_u128(0xd1));
pub const FINANCE: UserId = UserId(Uuid::from_u128(0xd2));
pub const ADMIN: UserId = UserId(Uuid::from_u128(0xd3));
/// Staff who hold every staff role but are on no order.
pub const STRANGER: UserId = UserId(Uuid::from_u128(0xe1));

pub const CUSTOMER_ID: CustomerId = CustomerId(Uuid::from_u128(0xcc));

pub fn people_roles() -> BTreeMap<UserId, Vec<Role>> {
    let staff: Vec<Role> = Role::ALL.into_iter().filter(|r| r.is_staff()).collect();
    BTreeMap::from([
        (ACCOUNT_MANAGER, vec![Role::AccountManager]),
        (COORDINATOR, vec![Role::SalesCoordinator]),
        (DESIGNER, vec![Role::Design]),
        (OPERATIONS, vec![Role::Operations]),
        (LOGISTICS, vec![Role::Logistics]),
        (IP_OWNER, vec![Role::IpOwner]),
        (MANUFACTURER, vec![Role::Manufacturer]),
        (CUSTOMER, vec![Role::Customer]),
        (OTHER_CUSTOMER, vec![Role::Customer]),
        (DIRECTOR, vec![Role::SalesDirector]),
        (FINANCE, vec![Role::Finance]),
        (ADMIN, vec![Role::Admin]),
        (STRANGER, staff),
    ])
}

/// The user of the world who holds `role` and is on every order made by [`new_order`] (or sees all).
pub fn user_for(role: Role) -> UserId {
    match role {
        Role::Admin => ADMIN,
        Role::AccountManager => ACCOUNT_MANAGER,
        Role::SalesCoordinator => COORDINATOR,
        Role::SalesDirector => DIRECTOR,
        Role::Operations => OPERATIONS,
        Role::Design => DESIGNER,
        Role::Finance => FINANCE,
        Role::Logistics => LOGISTICS,
        Role::IpOwner => IP_OWNER,
        Role::Manufacturer => MANUFACTURER,
        Role::Customer => CUSTOMER,
    }
}

pub fn acting(role: Role) -> Acting {
    Acting {
        user: user_for(role),
        role,
    }
}

pub fn customer() -> Customer {
    Customer {
        id: CUSTOMER_ID,
        name: "Globe Theatre Company".into(),
        language: Language::English,
        contacts: vec![Contact {
            name: "Maya Lin".into(),
            email: Some("maya@globe.example".into()),
            phone: None,
            title: Some("Producer".into()),
        }],
        notes: None,
        created_at: noon(2025, 12, 1),
    }
}

/// The order date of every order the tests make, unless a test says otherwise.
pub fn order_date() -> NaiveDate {
    date(2026, 1, 5)
}

/// The promised date: after every milestone the presets plan from the order date.
pub fn promised_date() -> NaiveDate {
    date(2026, 3, 16)
}

/// A valid new order in `workflow` with everyone of the world on it (the account manager is made the owner
/// by creating the order).
pub fn new_order(workflow: &str) -> NewOrder {
    let person = |relation, user_id| Participant { relation, user_id };
    NewOrder {
        workflow: workflow.into(),
        customer_id: CUSTOMER_ID,
        customer_contact: None,
        title: "Costumes for The Tempest".into(),
        order_type: OrderType::Custom,
        amount: Money::parse("USD", "12500.00").unwrap(),
        order_date: Some(order_date()),
        promised_date: promised_date(),
        line_items: vec![],
        special_requirements: None,
        people: vec![
            person(Relation::Backup, COORDINATOR),
            person(Relation::Design, DESIGNER),
            person(Relation::Production, OPERATIONS),
            person(Relation::Production, MANUFACTURER),
            person(Relation::Logistics, LOGISTICS),
            person(Relation::IpOwner, IP_OWNER),
            person(Relation::Customer, CUSTOMER),
        ],
        department_contacts: vec![],
        tags: vec![],
        custom_fields: BTreeMap::new(),
        milestone_owners: BTreeMap::new(),
        extra_checklist: BTreeMap::new(),
    }
}

/// Fresh ids, never repeated within the test run (so milestones of two orders never share an id): the domain
/// draws no randomness, the caller does.
pub fn counter() -> impl FnMut() -> Uuid {
    static NEXT: AtomicU64 = AtomicU64::new(0x1000);
    || Uuid::from_u128(u128::from(NEXT.fetch_add(1, Ordering::Relaxed)))
}

/// Plans `input` as `by` on the order date.
pub fn plan(input: NewOrder, by: Acting) -> Result<PlannedOrder, DomainError> {
    let wf = workflow(&input.workflow);
    let customer = customer();
    let roles = people_roles();
    let ctx = OrderContext {
        workflow: wf,
        customer: &customer,
        people_roles: &roles,
        people_customers: &BTreeMap::new(),
        today: order_date(),
        now: noon(2026, 1, 5),
    };
    decide::plan_order(input, by, &ctx, &mut counter())
}

/// Creates `input` as its workflow's first create role would, and applies the creation event (version 1).
pub fn create_from(input: NewOrder) -> Order {
    let by = acting(workflow(&input.workflow).create_roles[0]);
    let planned = plan(input, by).expect("the order is valid");
    let event = planned.created("ORD20260105001".into());
    let OrderEvent::OrderCreated { order } = &event else {
        panic!("created() made {event:?}")
    };
    let mut order = (**order).clone();
    order.apply(&event, noon(2026, 1, 5));
    order
}

/// A valid order of `workflow`, created and applied (version 1).
pub fn create(workflow: &str) -> Order {
    create_from(new_order(workflow))
}

pub fn ctx(order: &Order, by: Acting, now: DateTime<Utc>) -> ChangeContext<'static> {
    ChangeContext {
        workflow: workflow(&order.workflow),
        access: policy(),
        acting: by,
        now,
        today: now.date_naive(),
        dunning: dunning_policy(),
    }
}

/// The default dunning policy (seed 000), for contexts that live as long as the test.
pub fn dunning_policy() -> &'static ordertrail_domain::payment::DunningPolicy {
    static DUNNING: std::sync::LazyLock<ordertrail_domain::payment::DunningPolicy> =
        std::sync::LazyLock::new(Default::default);
    &DUNNING
}

/// Applies every event at `at`, returning them for assertions.
pub fn apply(order: &mut Order, events: Events, at: DateTime<Utc>) -> Events {
    for (event, _) in &events {
        order.apply(event, at);
    }
    events
}

pub fn request(to: &str) -> TransitionRequest {
    TransitionRequest {
        to: to.into(),
        ..TransitionRequest::default()
    }
}

/// A confirmed request with these fields.
pub fn confirmed(to: &str, fields: &[(&str, &str)]) -> TransitionRequest {
    TransitionRequest {
        to: to.into(),
        confirm: true,
        fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..TransitionRequest::default()
    }
}

pub fn transition(
    order: &Order,
    req: TransitionRequest,
    role: Role,
    now: DateTime<Utc>,
) -> Result<Events, DomainError> {
    decide::transition(order, req, &ctx(order, acting(role), now))
}

/// Makes the transition and applies its event; panics when refused.
pub fn move_to(order: &mut Order, req: TransitionRequest, role: Role, now: DateTime<Utc>) -> Events {
    let to = req.to.clone();
    let events = transition(order, req, role, now).unwrap_or_else(|e| panic!("{role} could not move to {to}: {e}"));
    apply(order, events, now)
}

pub fn milestone<'a>(order: &'a Order, key: &str) -> &'a Milestone {
    order
        .milestones
        .iter()
        .find(|m| m.key == key)
        .unwrap_or_else(|| panic!("no milestone {key}"))
}

pub fn milestone_id(order: &Order, key: &str) -> MilestoneId {
    milestone(order, key).id
}

/// A completion that ticks every checklist item and names the client as approver.
pub fn full_completion(m: &Milestone) -> MilestoneCompletion {
    MilestoneCompletion {
        completed_at: None,
        evidence: Evidence {
            note: Some("done".into()),
            approved_by: Some("Maya Lin".into()),
            attachments: vec![],
        },
        checklist: m.checklist.iter().map(|c| c.item.clone()).collect(),
        expected_version: None,
    }
}

pub fn complete(
    order: &Order,
    key: &str,
    completion: MilestoneCompletion,
    role: Role,
    now: DateTime<Utc>,
) -> Result<Events, DomainError> {
    let id = milestone_id(order, key);
    decide::complete_milestone(order, id, completion, &ctx(order, acting(role), now))
}

/// Completes the milestone fully as the milestone's owner role and applies the event.
pub fn complete_fully(order: &mut Order, key: &str, now: DateTime<Utc>) -> Events {
    let m = milestone(order, key);
    let (completion, role) = (full_completion(m), m.owner_role);
    let events =
        complete(order, key, completion, role, now).unwrap_or_else(|e| panic!("{role} could not complete {key}: {e}"));
    apply(order, events, now)
}

pub fn change(
    order: &Order,
    key: &str,
    change: MilestoneChange,
    role: Role,
    now: DateTime<Utc>,
) -> Result<Events, DomainError> {
    let id = milestone_id(order, key);
    decide::change_milestone(order, id, change, None, &ctx(order, acting(role), now))
}

/// A follow-up with a summary, outbound to the customer by email, in progress.
pub fn follow_up(summary: &str) -> NewFollowUp {
    NewFollowUp {
        occurred_at: None,
        channel: Channel::Email,
        direction: Direction::Outbound,
        counterpart: Counterpart {
            kind: CounterpartKind::Customer,
            name: Some("Maya Lin".into()),
        },
        milestone_id: None,
        status: FollowUpStatus::InProgress,
        summary: Some(summary.into()),
        progress_details: None,
        next_step: None,
        next_step_due: None,
        exception: None,
        client_feedback: None,
        attachments: vec![],
    }
}

pub fn log(
    order: &Order,
    id: u128,
    record: NewFollowUp,
    role: Role,
    now: DateTime<Utc>,
) -> Result<Events, DomainError> {
    decide::log_follow_up(
        order,
        FollowUpId(Uuid::from_u128(id)),
        record,
        &ctx(order, acting(role), now),
    )
}

/// The field names of an `Invalid` refusal; panics on any other result.
pub fn invalid_fields<T: std::fmt::Debug>(result: Result<T, DomainError>) -> Vec<String> {
    match result {
        Err(DomainError::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// The message of the `Invalid` refusal's error on `field`.
pub fn invalid_message<T: std::fmt::Debug>(result: Result<T, DomainError>, field: &str) -> String {
    match result {
        Err(DomainError::Invalid(errors)) => {
            errors
                .into_iter()
                .find(|e| e.field == field)
                .unwrap_or_else(|| panic!("no error on {field}"))
                .message
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// The failing guards' names and what each misses; panics on any other result.
pub fn failed_guards<T: std::fmt::Debug>(result: Result<T, DomainError>) -> Vec<(String, Vec<String>)> {
    match result {
        Err(DomainError::GuardsFailed(failures)) => failures.into_iter().map(|f| (f.guard, f.missing)).collect(),
        other => panic!("expected GuardsFailed, got {other:?}"),
    }
}

pub fn guard_names<T: std::fmt::Debug>(result: Result<T, DomainError>) -> Vec<String> {
    failed_guards(result).into_iter().map(|(name, _)| name).collect()
}

/// The status change of `events`: exactly one, first, followed only by the milestones the transition completes
/// and the payment triggers it sets off.
pub fn status_change(events: &Events) -> (&str, &str, &BTreeMap<String, String>) {
    match events.as_slice() {
        [(OrderEvent::StatusChanged { from, to, fields }, _), rest @ ..]
            if rest.iter().all(|(e, _)| {
                matches!(
                    e,
                    OrderEvent::MilestoneCompleted { .. } | OrderEvent::PaymentChanged { .. }
                )
            }) =>
        {
            (from, to, fields)
        }
        other => panic!("expected one status change, got {other:?}"),
    }
}

/// Finance records the payment of what is outstanding on installment `number`, paid at `now`; applies it.
pub fn pay_installment(order: &mut Order, number: u32, now: DateTime<Utc>) -> Events {
    let outstanding = order
        .payments
        .as_ref()
        .and_then(|s| s.installment(number))
        .map(|i| i.outstanding())
        .unwrap_or_else(|| panic!("order {} has no installment {number}", order.number));
    let input = ordertrail_domain::decide::PaymentInput {
        installment: Some(number),
        payment: ordertrail_domain::payment::Payment {
            amount: outstanding,
            paid_on: now.date_naive(),
            method: ordertrail_domain::payment::PaymentMethod::BankTransfer,
            reference: None,
        },
    };
    let events = ordertrail_domain::decide::record_payment(order, input, &ctx(order, acting(Role::Finance), now))
        .unwrap_or_else(|e| panic!("the payment was refused: {e}"));
    apply(order, events, now)
}

/// Records the contract signed on `on` (R15), as the account manager.
pub fn sign_contract(order: &mut Order, on: NaiveDate, now: DateTime<Utc>) -> Events {
    let input = ordertrail_domain::decide::ContractInput { signed_on: on };
    let events = ordertrail_domain::decide::sign_contract(order, input, &ctx(order, acting(Role::AccountManager), now))
        .unwrap_or_else(|e| panic!("the signature was refused: {e}"));
    apply(order, events, now)
}
