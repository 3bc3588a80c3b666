//! Commands: what a person asks of an order, checked against the workflow, their role and the order's state,
//! turned into events or refused with a typed error. Pure functions of (state, command, actor, now).

use crate::access::{AccessPolicy, can_see};
use crate::customer::{Contact, Customer};
use crate::error::{DomainError, GuardFailure, MAX_NAME, MAX_TEXT, Problems};
use crate::event::OrderEvent;
use crate::follow_up::NewFollowUp;
use crate::ids::{CustomerId, FollowUpId, MilestoneId, OrderId, UserId};
use crate::money::Money;
use crate::order::{
    ChecklistItem, DepartmentContact, Evidence, LineItem, Milestone, Order, OrderType, Participant, Relation,
    planned_date,
};
use crate::role::Role;
use crate::tracking::check_tracking_url;
use crate::workflow::{Guard, GuardInput, Workflow};
use crate::{change_order, issue, payment};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The person acting and in which role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acting {
    pub user: UserId,
    pub role: Role,
}

/// An order as entered through the API (R32 and DESIGN.md capability 1).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// The workflow the order follows: `custom-production`, `make-to-order`, `standard` or one loaded from a file.
    pub workflow: String,
    pub customer_id: CustomerId,
    /// The customer's contact for this order (default: the customer's first contact).
    #[serde(default)]
    pub customer_contact: Option<Contact>,
    pub title: String,
    pub order_type: OrderType,
    pub amount: Money,
    /// Default: today in the organisation's time zone.
    #[serde(default)]
    pub order_date: Option<NaiveDate>,
    pub promised_date: NaiveDate,
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    #[serde(default)]
    pub special_requirements: Option<String>,
    /// The people on the order. The creator becomes the owner when no owner is named.
    #[serde(default)]
    pub people: Vec<Participant>,
    #[serde(default)]
    pub department_contacts: Vec<DepartmentContact>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub custom_fields: BTreeMap<String, serde_json::Value>,
    /// Owners of milestones by milestone key, e.g. `{"first_fitting": "<user id>"}`.
    #[serde(default)]
    pub milestone_owners: BTreeMap<String, UserId>,
    /// Extra checklist items by milestone key, e.g. the inspection-and-test-plan items of this part (R20).
    #[serde(default)]
    pub extra_checklist: BTreeMap<String, Vec<String>>,
}

/// Everything a new order needs from outside the domain.
pub struct OrderContext<'a> {
    pub workflow: &'a Workflow,
    pub customer: &'a Customer,
    /// The roles of every user the request names (people and milestone owners); a missing user is unknown.
    pub people_roles: &'a BTreeMap<UserId, Vec<Role>>,
    /// For named customer users linked to a customer record: that customer.
    pub people_customers: &'a BTreeMap<UserId, CustomerId>,
    pub today: NaiveDate,
    pub now: DateTime<Utc>,
}

/// A checked order that only lacks its number, which storage draws inside the write transaction.
#[derive(Debug, Clone)]
pub struct PlannedOrder {
    order: Order,
}

impl PlannedOrder {
    pub fn order_date(&self) -> NaiveDate {
        self.order.order_date
    }
    pub fn id(&self) -> OrderId {
        self.order.id
    }
    /// The creation event, with the number drawn by storage.
    pub fn created(&self, number: String) -> OrderEvent {
        let mut order = self.order.clone();
        order.number = number;
        OrderEvent::OrderCreated { order: Box::new(order) }
    }
}

/// Checks a new order and plans its milestones from the workflow (R33), dates from the order date in the
/// organisation's time zone. `new_id` supplies ids (the domain draws no randomness).
pub fn plan_order(
    input: NewOrder,
    acting: Acting,
    ctx: &OrderContext<'_>,
    new_id: &mut dyn FnMut() -> uuid::Uuid,
) -> Result<PlannedOrder, DomainError> {
    let wf = ctx.workflow;
    if !wf.create_roles.contains(&acting.role) {
        return Err(DomainError::RoleNotAllowed {
            role: acting.role,
            action: format!("create {} orders", wf.id),
        });
    }
    let mut p = Problems::new();
    p.text("title", &input.title, MAX_NAME);
    p.optional_text("special_requirements", input.special_requirements.as_deref(), MAX_TEXT);
    let order_date = input.order_date.unwrap_or(ctx.today);
    if input.promised_date < order_date {
        p.add(
            "promised_date",
            format!("must not be before the order date {order_date}"),
        );
    }
    if input.amount.minor <= 0 {
        p.add("amount", "must be more than zero");
    }
    if input.line_items.len() > 500 {
        p.add("line_items", "at most 500 line items");
    }
    for (i, item) in input.line_items.iter().enumerate() {
        p.text(&format!("line_items[{i}].description"), &item.description, MAX_TEXT);
        p.optional_text(&format!("line_items[{i}].notes"), item.notes.as_deref(), MAX_TEXT);
        if item.quantity < 1 {
            p.add(format!("line_items[{i}].quantity"), "must be at least 1");
        }
    }
    if input.tags.len() > 20 {
        p.add("tags", "at most 20 tags");
    }
    for (i, tag) in input.tags.iter().enumerate() {
        p.text(&format!("tags[{i}]"), tag, 50);
    }
    if input.custom_fields.len() > 50 {
        p.add("custom_fields", "at most 50 custom fields");
    }
    for (key, value) in &input.custom_fields {
        p.text(&format!("custom_fields.{key}"), key, 64);
        if value.to_string().len() > MAX_TEXT {
            p.add(
                format!("custom_fields.{key}"),
                format!("must be at most {MAX_TEXT} characters of JSON"),
            );
        }
    }
    for (i, contact) in input.department_contacts.iter().enumerate() {
        p.text(
            &format!("department_contacts[{i}].department"),
            &contact.department,
            MAX_NAME,
        );
        p.text(&format!("department_contacts[{i}].name"), &contact.name, MAX_NAME);
        p.optional_text(&format!("department_contacts[{i}].phone"), contact.phone.as_deref(), 50);
        p.optional_text(
            &format!("department_contacts[{i}].email"),
            contact.email.as_deref(),
            254,
        );
    }
    if let Some(contact) = &input.customer_contact {
        contact.check("customer_contact", &mut p);
    }

    // People: every user must exist and suit the relation; exactly one owner (the creator by default).
    let mut people = input.people.clone();
    for (i, person) in people.iter().enumerate() {
        let field = format!("people[{i}].user_id");
        match ctx.people_roles.get(&person.user_id) {
            None => p.add(field, "no such user"),
            Some(roles) if person.relation == Relation::Customer && !roles.contains(&Role::Customer) => {
                p.add(field, "the customer on an order must be a user with the customer role")
            }
            Some(_)
                if person.relation == Relation::Customer
                    && ctx
                        .people_customers
                        .get(&person.user_id)
                        .is_some_and(|c| *c != ctx.customer.id) =>
            {
                p.add(field, "this customer user belongs to another customer")
            }
            Some(roles) if person.relation != Relation::Customer && !roles.iter().any(|r| r.is_staff()) => p.add(
                field,
                format!("a {} must be a staff user, not a customer", person.relation.as_str()),
            ),
            Some(_) => {}
        }
        if people[..i].contains(person) {
            p.add(format!("people[{i}]"), "is listed twice");
        }
    }
    match people.iter().filter(|x| x.relation == Relation::Owner).count() {
        0 if acting.role.is_staff() => people.insert(
            0,
            Participant {
                relation: Relation::Owner,
                user_id: acting.user,
            },
        ),
        0 => p.add("people", "name the order's owner (relation owner)"),
        1 => {}
        _ => p.add("people", "an order has exactly one owner"),
    }
    for (key, user) in &input.milestone_owners {
        if wf.milestone_plan(key).is_none() {
            p.add(
                format!("milestone_owners.{key}"),
                format!("workflow {} has no milestone '{key}'", wf.id),
            );
        } else {
            match ctx.people_roles.get(user) {
                None => p.add(format!("milestone_owners.{key}"), "no such user"),
                Some(roles) if !roles.iter().any(|r| r.is_staff()) => p.add(
                    format!("milestone_owners.{key}"),
                    "a milestone owner must be a staff user",
                ),
                Some(_) => {}
            }
        }
    }
    for (key, items) in &input.extra_checklist {
        if wf.milestone_plan(key).is_none() {
            p.add(
                format!("extra_checklist.{key}"),
                format!("workflow {} has no milestone '{key}'", wf.id),
            );
        }
        for (i, item) in items.iter().enumerate() {
            p.text(&format!("extra_checklist.{key}[{i}]"), item, MAX_NAME);
        }
    }
    p.into_result()?;

    let milestones = wf
        .milestones
        .iter()
        .enumerate()
        .map(|(position, plan)| {
            let planned_on = planned_date(plan.due, order_date, input.promised_date);
            let extra = input.extra_checklist.get(&plan.key).into_iter().flatten();
            Milestone {
                id: MilestoneId(new_id()),
                key: plan.key.clone(),
                name: plan.name.clone(),
                phase: plan.phase.clone(),
                position: position as i32,
                planned_on,
                original_planned_on: planned_on,
                owner_role: plan.owner_role,
                owner_id: input.milestone_owners.get(&plan.key).copied(),
                complete_roles: plan.complete_roles.clone(),
                deliverable: plan.deliverable.clone(),
                client_action: plan.client_action,
                after_delivery: plan.after_delivery,
                checklist: plan
                    .checklist
                    .iter()
                    .chain(extra)
                    .map(|item| ChecklistItem {
                        item: item.clone(),
                        done: false,
                    })
                    .collect(),
                completed_at: None,
                completed_by: None,
                evidence: None,
            }
        })
        .collect();

    let order = Order {
        id: OrderId(new_id()),
        number: String::new(),
        workflow: wf.id.clone(),
        status: wf.initial.clone(),
        customer_id: ctx.customer.id,
        customer_name: ctx.customer.name.clone(),
        customer_contact: input
            .customer_contact
            .or_else(|| ctx.customer.contacts.first().cloned()),
        title: input.title.trim().to_string(),
        order_type: input.order_type,
        amount: input.amount,
        order_date,
        promised_date: input.promised_date,
        line_items: input.line_items,
        special_requirements: input.special_requirements,
        people,
        department_contacts: input.department_contacts,
        tags: input.tags,
        custom_fields: input.custom_fields,
        fields: BTreeMap::new(),
        milestones,
        open_exceptions: Vec::new(),
        issues: Vec::new(),
        change_orders: Vec::new(),
        payments: None,
        last_client_update_at: None,
        last_follow_up_at: None,
        messages_queued: Default::default(),
        messages_delivered: Default::default(),
        client_update_on: None,
        version: 0,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    let mut order = order;
    order.payments = wf
        .payment
        .as_ref()
        .map(|template| payment::PaymentSchedule::from_template(order.id, order.amount.clone(), template))
        .transpose()?;
    Ok(PlannedOrder { order })
}

/// The payment event of `change`, when the order has a schedule, the schedule accepts it (tried on a copy) and
/// it changes something (a milestone that triggers no installment makes no payment event).
fn payment_event(
    order: &Order,
    change: payment::PaymentChange,
) -> Result<Option<(OrderEvent, Option<String>)>, DomainError> {
    let Some(schedule) = &order.payments else {
        return Ok(None);
    };
    let mut next = schedule.clone();
    next.apply(&change)?;
    Ok((next != *schedule).then_some((OrderEvent::PaymentChanged { change }, None)))
}

/// A request to move an order to another status.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// The target status.
    pub to: String,
    /// The version the person saw; a different current version is refused with 409.
    #[serde(default)]
    pub expected_version: Option<i64>,
    /// Why (kept in the event log).
    #[serde(default)]
    pub note: Option<String>,
    /// Values the transition's guards need, e.g. `tracking_url`, `carrier`, `tracking_number`.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// The explicit double-check of R22.
    #[serde(default)]
    pub confirm: bool,
}

fn check_version(order: &Order, expected: Option<i64>) -> Result<(), DomainError> {
    match expected {
        Some(expected) if expected != order.version => Err(DomainError::StaleVersion {
            expected,
            actual: order.version,
        }),
        _ => Ok(()),
    }
}

/// Everything a change to an existing order needs besides the order itself.
pub struct ChangeContext<'a> {
    pub workflow: &'a Workflow,
    pub access: &'a AccessPolicy,
    pub acting: Acting,
    pub now: DateTime<Utc>,
    /// The organisation's date at `now` (due dates and dunning count in its days).
    pub today: NaiveDate,
    pub dunning: &'a payment::DunningPolicy,
}

impl ChangeContext<'_> {
    /// An order the acting person may not see does not exist for them.
    fn visible(&self, order: &Order) -> Result<(), DomainError> {
        if can_see(order, self.acting.user, self.acting.role, self.access) {
            Ok(())
        } else {
            Err(DomainError::NotFound { what: "order".into() })
        }
    }

    fn open(&self, order: &Order) -> Result<(), DomainError> {
        if self.workflow.is_terminal(&order.status) {
            Err(DomainError::Conflict(format!(
                "order {} is {} and can no longer change",
                order.number, order.status
            )))
        } else {
            Ok(())
        }
    }
}

/// Moves the order to `req.to`: the transition must exist from the current status, the acting role must be
/// allowed to make it, and every guard must hold. All failing guards are reported together.
pub fn transition(
    order: &Order,
    req: TransitionRequest,
    ctx: &ChangeContext<'_>,
) -> Result<Vec<(OrderEvent, Option<String>)>, DomainError> {
    ctx.visible(order)?;
    check_version(order, req.expected_version)?;
    let wf = ctx.workflow;
    let mut p = Problems::new();
    p.optional_text("note", req.note.as_deref(), MAX_TEXT);
    if req.fields.len() > 20 {
        p.add("fields", "at most 20 fields");
    }
    for (key, value) in &req.fields {
        p.text(&format!("fields.{key}"), key, 64);
        p.optional_text(&format!("fields.{key}"), Some(value), 2000);
    }
    p.into_result()?;
    if wf.status(&req.to).is_none() {
        return Err(DomainError::UnknownStatus {
            workflow: wf.id.clone(),
            status: req.to,
        });
    }
    let Some(t) = wf.transition(&order.status, &req.to) else {
        return Err(DomainError::TransitionNotAllowed {
            workflow: wf.id.clone(),
            from: order.status.clone(),
            to: req.to,
        });
    };
    if !t.roles.contains(&ctx.acting.role) {
        return Err(DomainError::RoleNotAllowed {
            role: ctx.acting.role,
            action: format!("move an order from {} to {}", order.status, req.to),
        });
    }
    let input = GuardInput {
        order,
        fields: &req.fields,
        confirmed: req.confirm,
    };
    let failures: Vec<GuardFailure> = t.guards.iter().filter_map(|g| g.evaluate(&input).err()).collect();
    if !failures.is_empty() {
        return Err(DomainError::GuardsFailed(failures));
    }
    // R8, R9: production work waits while an installment is overdue past the policy's days.
    if t.production_work
        && let Some(pause) = order
            .payments
            .as_ref()
            .and_then(|s| payment::production_pause(s, ctx.dunning, ctx.today))
    {
        return Err(DomainError::Paused(pause.to_string()));
    }
    // R7: work waits for a change order's extra deposit once it is due.
    if t.production_work
        && let Some(deposit) = order.payments.as_ref().and_then(|s| s.due_change_deposit(ctx.today))
    {
        return Err(DomainError::Paused(format!(
            "paused: installment {} (a change order's extra deposit, due {}) is not paid",
            deposit.number,
            deposit.due_on.map_or_else(String::new, |d| d.to_string())
        )));
    }
    // A tracking URL given where no guard asks for one must still be valid: the customer will follow it (R21).
    let guarded = |field: &str| {
        t.guards
            .iter()
            .any(|g| matches!(g, Guard::Field { field: f, .. } if f == field))
    };
    if let Some(url) = req.fields.get("tracking_url").filter(|_| !guarded("tracking_url"))
        && let Err(why) = check_tracking_url(url)
    {
        return Err(DomainError::invalid(
            "fields.tracking_url",
            format!("tracking_url {why}"),
        ));
    }
    let completes: Vec<_> = order
        .milestones
        .iter()
        .filter(|m| m.completed_at.is_none() && t.completes.contains(&m.key))
        .map(|m| OrderEvent::MilestoneCompleted {
            milestone_id: m.id,
            completed_at: ctx.now,
            completed_by: ctx.acting.user,
            evidence: Evidence {
                note: Some(format!("Completed with the transition '{}'", t.name)),
                ..Evidence::default()
            },
            checklist: m.checklist.clone(),
        })
        .collect();
    // The payment schedule's triggers (R8) a transition can pull: milestones reached, delivery, cancellation (the
    // contract is signed by its own step, `sign_contract`).
    let mut triggers = Vec::new();
    for m in order
        .milestones
        .iter()
        .filter(|m| m.completed_at.is_none() && t.completes.contains(&m.key))
    {
        triggers.push(payment::PaymentChange::MilestoneCompleted {
            milestone: m.key.clone(),
            on: ctx.today,
        });
    }
    match wf.status(&req.to) {
        Some(s) if s.delivered && !wf.status(&order.status).is_some_and(|f| f.delivered) => {
            triggers.push(payment::PaymentChange::Delivered { on: ctx.today });
        }
        Some(s) if s.terminal && !s.delivered && wf.awaits_delivery(&order.status) => {
            triggers.push(payment::PaymentChange::Cancelled { on: ctx.today });
        }
        _ => {}
    }
    let mut payments = Vec::new();
    let mut schedule = order.payments.clone();
    for change in triggers {
        if let Some(s) = schedule.as_mut() {
            let before = s.clone();
            s.apply(&change)?;
            if *s != before {
                payments.push((OrderEvent::PaymentChanged { change }, None));
            }
        }
    }
    let event = OrderEvent::StatusChanged {
        from: order.status.clone(),
        to: req.to,
        fields: req.fields,
    };
    Ok(std::iter::once((event, req.note))
        .chain(completes.into_iter().map(|e| (e, None)))
        .chain(payments)
        .collect())
}

/// Changes to one milestone: a new planned date (with its reason), a new owner, checklist items ticked.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MilestoneChange {
    #[serde(default)]
    pub planned_on: Option<NaiveDate>,
    /// Required when the planned date changes.
    #[serde(default)]
    pub reason: Option<String>,
    /// The new owner; `null` is "no owner". Omit to leave unchanged.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub owner_id: Option<Option<UserId>>,
    /// Checklist items by name, set done (true) or not (false).
    #[serde(default)]
    pub checklist: BTreeMap<String, bool>,
    #[serde(default)]
    pub expected_version: Option<i64>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

fn milestone(order: &Order, id: MilestoneId) -> Result<&Milestone, DomainError> {
    order.milestone(id).ok_or_else(|| DomainError::NotFound {
        what: "milestone".into(),
    })
}

/// Replans, reassigns, or ticks checklist items of a milestone. Replanning and reassigning are for the
/// workflow's replan roles; ticking the checklist also for the roles that complete the milestone.
pub fn change_milestone(
    order: &Order,
    id: MilestoneId,
    change: MilestoneChange,
    owner_exists: Option<bool>,
    ctx: &ChangeContext<'_>,
) -> Result<Vec<(OrderEvent, Option<String>)>, DomainError> {
    ctx.visible(order)?;
    check_version(order, change.expected_version)?;
    let m = milestone(order, id)?;
    ctx.open(order)?;
    let role = ctx.acting.role;
    let replans = change.planned_on.is_some_and(|d| d != m.planned_on);
    let reassigns = change.owner_id.is_some_and(|o| o != m.owner_id);
    if (replans || reassigns) && !ctx.workflow.replan_roles.contains(&role) {
        return Err(DomainError::RoleNotAllowed {
            role,
            action: "replan or reassign milestones".into(),
        });
    }
    if !change.checklist.is_empty() && !ctx.workflow.replan_roles.contains(&role) && !may_complete(m, ctx.acting) {
        return Err(DomainError::RoleNotAllowed {
            role,
            action: format!("tick the checklist of '{}'", m.name),
        });
    }
    let mut p = Problems::new();
    if m.completed_at.is_some() && (replans || !change.checklist.is_empty()) {
        return Err(DomainError::Conflict(format!(
            "milestone '{}' is already completed",
            m.name
        )));
    }
    if replans {
        match change.reason.as_deref().map(str::trim) {
            None | Some("") => p.add("reason", "say why the milestone moves"),
            Some(reason) => p.optional_text("reason", Some(reason), MAX_TEXT),
        }
        if change.planned_on.is_some_and(|d| d < order.order_date) {
            p.add(
                "planned_on",
                format!("must not be before the order date {}", order.order_date),
            );
        }
    }
    if owner_exists == Some(false) {
        p.add("owner_id", "no such user");
    }
    for name in change.checklist.keys() {
        if !m.checklist.iter().any(|c| &c.item == name) {
            p.add(
                format!("checklist.{name}"),
                format!("'{}' has no checklist item '{name}'", m.name),
            );
        }
    }
    p.into_result()?;

    let mut events = Vec::new();
    if let Some(to) = change.planned_on.filter(|_| replans) {
        events.push((
            OrderEvent::MilestoneReplanned {
                milestone_id: id,
                from: m.planned_on,
                to,
            },
            change.reason.clone(),
        ));
    }
    if let Some(to) = change.owner_id.filter(|_| reassigns) {
        events.push((
            OrderEvent::MilestoneOwnerChanged {
                milestone_id: id,
                from: m.owner_id,
                to,
            },
            None,
        ));
    }
    let checklist = ticked(&m.checklist, &change.checklist);
    if checklist != m.checklist {
        events.push((
            OrderEvent::ChecklistUpdated {
                milestone_id: id,
                checklist,
            },
            None,
        ));
    }
    if events.is_empty() {
        return Err(DomainError::invalid(
            "planned_on",
            "nothing to change: give a new planned_on, owner_id or checklist items",
        ));
    }
    Ok(events)
}

fn ticked(checklist: &[ChecklistItem], ticks: &BTreeMap<String, bool>) -> Vec<ChecklistItem> {
    checklist
        .iter()
        .map(|c| ChecklistItem {
            item: c.item.clone(),
            done: ticks.get(&c.item).copied().unwrap_or(c.done),
        })
        .collect()
}

fn may_complete(m: &Milestone, acting: Acting) -> bool {
    m.complete_roles.contains(&acting.role) || (m.owner_id == Some(acting.user) && acting.role.is_staff())
}

/// Completion of a milestone: when, with what evidence, and the checklist's final ticks (R33, R4).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MilestoneCompletion {
    /// When it was actually done (default: now). Not in the future, not before the order date.
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub evidence: Evidence,
    /// Checklist items ticked with the completion; every item must end up done.
    #[serde(default)]
    pub checklist: Vec<String>,
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// Completes a milestone. Its checklist must be all done; a milestone that waits on the client needs the
/// approver's name as evidence.
pub fn complete_milestone(
    order: &Order,
    id: MilestoneId,
    completion: MilestoneCompletion,
    ctx: &ChangeContext<'_>,
) -> Result<Vec<(OrderEvent, Option<String>)>, DomainError> {
    ctx.visible(order)?;
    check_version(order, completion.expected_version)?;
    let m = milestone(order, id)?;
    if !(m.after_delivery && ctx.workflow.status(&order.status).is_some_and(|s| s.delivered)) {
        ctx.open(order)?;
    }
    if !may_complete(m, ctx.acting) {
        return Err(DomainError::RoleNotAllowed {
            role: ctx.acting.role,
            action: format!("complete '{}'", m.name),
        });
    }
    if m.completed_at.is_some() {
        return Err(DomainError::Conflict(format!(
            "milestone '{}' is already completed",
            m.name
        )));
    }
    let mut p = Problems::new();
    let completed_at = completion.completed_at.unwrap_or(ctx.now);
    if completed_at > ctx.now + TimeDelta::minutes(5) {
        p.add("completed_at", "must not be in the future");
    }
    if completed_at.date_naive() < order.order_date - TimeDelta::days(1) {
        p.add(
            "completed_at",
            format!("must not be before the order date {}", order.order_date),
        );
    }
    let evidence = completion.evidence;
    p.optional_text("evidence.note", evidence.note.as_deref(), MAX_TEXT);
    p.optional_text("evidence.approved_by", evidence.approved_by.as_deref(), MAX_NAME);
    if evidence.attachments.len() > 20 {
        p.add("evidence.attachments", "at most 20 attachments");
    }
    if m.client_action && evidence.approved_by.as_deref().is_none_or(|a| a.trim().is_empty()) {
        p.add(
            "evidence.approved_by",
            format!("'{}' waits on the client: record who approved it", m.name),
        );
    }
    let ticks: BTreeMap<String, bool> = completion.checklist.iter().map(|item| (item.clone(), true)).collect();
    for name in ticks.keys() {
        if !m.checklist.iter().any(|c| &c.item == name) {
            p.add(
                format!("checklist.{name}"),
                format!("'{}' has no checklist item '{name}'", m.name),
            );
        }
    }
    let checklist = ticked(&m.checklist, &ticks);
    let undone: Vec<&str> = checklist.iter().filter(|c| !c.done).map(|c| c.item.as_str()).collect();
    if !undone.is_empty() {
        p.add("checklist", format!("items not done: {}", undone.join(", ")));
    }
    p.into_result()?;
    let note = evidence.note.clone();
    let key = m.key.clone();
    let event = OrderEvent::MilestoneCompleted {
        milestone_id: id,
        completed_at: crate::event::truncate_to_micros(completed_at),
        completed_by: ctx.acting.user,
        evidence,
        checklist,
    };
    let reached = payment::PaymentChange::MilestoneCompleted {
        milestone: key,
        on: ctx.today,
    };
    Ok(std::iter::once((event, note))
        .chain(payment_event(order, reached)?)
        .collect())
}

/// Logs a follow-up (R34). Staff only: customers speak through the portal (a later issue).
pub fn log_follow_up(
    order: &Order,
    id: FollowUpId,
    follow_up: NewFollowUp,
    ctx: &ChangeContext<'_>,
) -> Result<Vec<(OrderEvent, Option<String>)>, DomainError> {
    ctx.visible(order)?;
    if !ctx.acting.role.is_staff() {
        return Err(DomainError::RoleNotAllowed {
            role: ctx.acting.role,
            action: "log follow-ups".into(),
        });
    }
    let record = follow_up.check(order, id, ctx.acting.user, ctx.acting.role, ctx.now)?;
    Ok(vec![(
        OrderEvent::FollowUpLogged {
            follow_up: Box::new(record),
        },
        None,
    )])
}

/// What a person does to an order's issue (R5, R6, R10, R36). The rules of each step are in [`crate::issue`].
#[derive(Debug, Clone)]
pub enum IssueCommand {
    Open(issue::NewIssue),
    ChangeImpact(issue::Impact),
    SetSeverity(issue::SeverityChange),
    ProposeOptions(issue::ProposedOptions),
    ClientTold(issue::ClientToldInput),
    ClientDecision(issue::ClientDecisionInput),
    Resolve(issue::ResolutionInput),
}

/// Opens or moves on the order's issue `issue_id`. Only people who may see the order may act on its issues; an
/// issue's owner must be one of the order's people; a resolved issue, like a closed order, no longer changes.
/// A resolution that changes budget or scope also drafts a change order, named by `new_id`.
pub fn change_issue(
    order: &Order,
    issue_id: issue::IssueId,
    command: IssueCommand,
    policy: &issue::IssuePolicy,
    ctx: &ChangeContext<'_>,
    new_id: &mut dyn FnMut() -> uuid::Uuid,
) -> Result<Vec<(OrderEvent, Option<String>)>, DomainError> {
    ctx.visible(order)?;
    let (acting, now) = (ctx.acting, ctx.now);
    let current = || {
        order
            .issue(issue_id)
            .ok_or_else(|| DomainError::NotFound { what: "issue".into() })
    };
    let change = match command {
        IssueCommand::Open(input) => {
            ctx.open(order)?;
            if !order.involves(input.owner_id) {
                return Err(DomainError::invalid(
                    "owner_id",
                    "the issue's owner must be one of the order's people",
                ));
            }
            issue::open(issue_id, order.id, input, policy, acting, now)?
        }
        IssueCommand::ChangeImpact(impact) => issue::change_impact(current()?, impact, policy, acting, now)?,
        IssueCommand::SetSeverity(change) => issue::set_severity(current()?, change, policy, acting, now)?,
        IssueCommand::ProposeOptions(options) => issue::propose_options(current()?, options, acting, now)?,
        IssueCommand::ClientTold(told) => issue::record_client_told(current()?, told, acting, now)?,
        IssueCommand::ClientDecision(decision) => issue::record_client_decision(current()?, decision, acting, now)?,
        IssueCommand::Resolve(resolution) => issue::resolve(current()?, resolution, acting, now)?,
    };
    // R6: a resolution that changes budget or scope opens a change order, in the same decision.
    let draft = match &change {
        issue::IssueChange::Resolved {
            change_order: Some(seed),
            ..
        } => Some(change_order::draft(
            change_order::ChangeOrderId(new_id()),
            order.id,
            &order.amount.currency,
            seed.clone(),
            acting,
            now,
        )?),
        _ => None,
    };
    let mut events = vec![(OrderEvent::IssueChanged { issue_id, change }, None)];
    if let Some(drafted) = draft {
        let change_order_id = match &drafted {
            change_order::ChangeOrderChange::Drafted { change_order } => change_order.id,
            _ => return Err(DomainError::Conflict("a draft must start a change order".into())),
        };
        events.push((
            OrderEvent::ChangeOrderChanged {
                change_order_id,
                change: drafted,
            },
            None,
        ));
    }
    Ok(events)
}

/// What a person does to one of the order's change orders (R7, R14). The rules of each step are in
/// [`crate::change_order`].
#[derive(Debug, Clone)]
pub enum ChangeOrderCommand {
    Draft(change_order::NewChangeOrder),
    EstimateCost(change_order::CostEstimateInput),
    EstimateTimeline(change_order::TimelineEstimateInput),
    ApproveInternally { note: Option<String> },
    SendToClient { note: Option<String> },
    RecordClientResponse(change_order::ClientResponseInput),
    Withdraw { reason: String },
}

/// Drafts or moves on the order's change order `id`. The client's approval computes the effects on the order
/// (amount, promised date, milestone shift, extra deposit) from the order as it is.
pub fn change_change_order(
    order: &Order,
    id: change_order::ChangeOrderId,
    command: ChangeOrderCommand,
    policy: &change_order::ChangeOrderPolicy,
    ctx: &ChangeContext<'_>,
) -> Result<Vec<(OrderEvent, Option<String>)>, DomainError> {
    ctx.visible(order)?;
    let (acting, now) = (ctx.acting, ctx.now);
    let current = || {
        order.change_order(id).ok_or_else(|| DomainError::NotFound {
            what: "change order".into(),
        })
    };
    let change = match command {
        ChangeOrderCommand::Draft(input) => {
            ctx.open(order)?;
            if let Some(issue_id) = input.origin_issue
                && order.issue(issue_id).is_none()
            {
                return Err(DomainError::invalid("origin_issue", "no such issue on this order"));
            }
            change_order::draft(id, order.id, &order.amount.currency, input, acting, now)?
        }
        ChangeOrderCommand::EstimateCost(input) => change_order::estimate_cost(current()?, input, acting, now)?,
        ChangeOrderCommand::EstimateTimeline(input) => change_order::estimate_timeline(current()?, input, acting, now)?,
        ChangeOrderCommand::ApproveInternally { note } => {
            change_order::approve_internally(current()?, note, acting, now)?
        }
        ChangeOrderCommand::SendToClient { note } => change_order::send_to_client(current()?, note, acting, now)?,
        ChangeOrderCommand::RecordClientResponse(input) => {
            ctx.open(order)?;
            let terms = change_order::OrderTerms {
                original_amount: order.original_amount(),
                current_amount: order.amount.clone(),
                promised_date: order.promised_date,
            };
            let approval = change_order::ApprovalContext {
                terms: &terms,
                change_orders: &order.change_orders,
                policy,
            };
            change_order::record_client_response(current()?, input, approval, acting, now)?
        }
        ChangeOrderCommand::Withdraw { reason } => change_order::withdraw(current()?, reason, acting, now)?,
    };
    // R7: on approval the payment schedule follows the new amount, with the extra deposit when one is due.
    let schedule = match &change {
        change_order::ChangeOrderChange::ClientApproved { effects, .. } => payment_event(
            order,
            payment::PaymentChange::ChangeOrderApplied {
                change: payment::ApprovedChange {
                    change_order: id.0.to_string(),
                    new_amount: effects.new_order_amount.clone(),
                    approved_on: ctx.today,
                    work_starts_on: None,
                },
                extra_deposit: effects.extra_deposit.clone(),
            },
        )?,
        _ => None,
    };
    Ok(std::iter::once((
        OrderEvent::ChangeOrderChanged {
            change_order_id: id,
            change,
        },
        None,
    ))
    .chain(schedule)
    .collect())
}

/// A payment as finance records it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentInput {
    /// The installment paid (default: the earliest due ones, in order).
    #[serde(default)]
    pub installment: Option<u32>,
    #[serde(flatten)]
    pub payment: payment::Payment,
}

/// Records a payment (finance, or an admin). Refused, changing nothing: an overpayment, another currency, a
/// cancelled order, an order without a payment schedule.
pub fn record_payment(
    order: &Order,
    input: PaymentInput,
    ctx: &ChangeContext<'_>,
) -> Result<Vec<(OrderEvent, Option<String>)>, DomainError> {
    ctx.visible(order)?;
    if !matches!(ctx.acting.role, Role::Finance | Role::Admin) {
        return Err(DomainError::RoleNotAllowed {
            role: ctx.acting.role,
            action: "record payments".into(),
        });
    }
    if input.payment.paid_on > ctx.today {
        return Err(DomainError::invalid("paid_on", "must not be in the future"));
    }
    let change = payment::PaymentChange::PaymentRecorded {
        installment: input.installment,
        payment: input.payment,
    };
    payment_event(order, change)?
        .map(|event| vec![event])
        .ok_or_else(|| DomainError::Conflict(format!("order {} has no payment schedule", order.number)))
}

/// The signed contract as it is recorded: the day the client signed.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractInput {
    /// The day the client signed the contract (not in the future).
    pub signed_on: NaiveDate,
}

/// Records that the client signed the contract (R15): the installments due at signing (the deposit) fall due
/// that day. By the account manager, the sales coordinator, the sales director or finance. Refused, changing
/// nothing: a date in the future, a contract already signed, a cancelled order, an order without a schedule.
pub fn sign_contract(
    order: &Order,
    input: ContractInput,
    ctx: &ChangeContext<'_>,
) -> Result<Vec<(OrderEvent, Option<String>)>, DomainError> {
    ctx.visible(order)?;
    if !matches!(
        ctx.acting.role,
        Role::AccountManager | Role::SalesCoordinator | Role::SalesDirector | Role::Finance | Role::Admin
    ) {
        return Err(DomainError::RoleNotAllowed {
            role: ctx.acting.role,
            action: "record the signed contract".into(),
        });
    }
    if input.signed_on > ctx.today {
        return Err(DomainError::invalid("signed_on", "must not be in the future"));
    }
    let change = payment::PaymentChange::ContractSigned { on: input.signed_on };
    payment_event(order, change)?
        .map(|event| vec![event])
        .ok_or_else(|| DomainError::Conflict(format!("order {} has no payment schedule", order.number)))
}

/// The dunning steps due today (R8, R9), as the scheduler does them: each once (its dedupe key), an invoice
/// step with the invoice's number. Nothing when the order has no schedule or nothing is due.
pub fn dunning(
    order: &Order,
    policy: &payment::DunningPolicy,
    today: NaiveDate,
) -> Result<Vec<(OrderEvent, Option<String>)>, DomainError> {
    let Some(schedule) = &order.payments else {
        return Ok(Vec::new());
    };
    let mut schedule = schedule.clone();
    let mut events = Vec::new();
    for action in payment::dunning_actions(&schedule, policy, today, &schedule.dunning_done) {
        let invoice_number = (action.kind == payment::DunningKind::Invoice)
            .then(|| format!("INV-{}-{}", order.number, action.installment));
        let change = payment::PaymentChange::Dunning {
            action,
            on: today,
            invoice_number,
        };
        schedule.apply(&change)?;
        events.push((OrderEvent::PaymentChanged { change }, None));
    }
    Ok(events)
}
