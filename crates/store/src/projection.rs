//! What each change writes, for either engine: the events appended to their stream's hash chain, the
//! projections (the order row with the columns lists filter on, its people, milestones and follow-ups; users,
//! tokens, customers) and one outbox row per order event. The engines only run these [`Writes`].

use crate::rows::Writes;
use crate::{Decision, Meta, StoreError};
use chrono::{DateTime, Utc};
use ordertrail_domain::change_order::ChangeOrderChange;
use ordertrail_domain::customer::Customer;
use ordertrail_domain::event::{Actor, ChainLink, GENESIS_HASH, OrderEvent, OrgEvent, chain_hash};
use ordertrail_domain::follow_through::{self, QueuedMessage};
use ordertrail_domain::ids::MilestoneId;
use ordertrail_domain::issue::{Issue, IssueChange, IssueId};
use ordertrail_domain::order::{Order, Relation};
use ordertrail_domain::payment::PaymentChange;
use ordertrail_domain::progress::HealthInputs;
use ordertrail_domain::workflow::Workflows;
use serde::Serialize;
use uuid::Uuid;

/// The end of a stream's chain: the last sequence number and hash (0 and the genesis hash when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub seq: i64,
    pub hash: String,
}

impl Head {
    pub fn genesis() -> Head {
        Head {
            seq: 0,
            hash: GENESIS_HASH.to_string(),
        }
    }
}

/// An event ready to append: payload already serialised (the hash covers these exact bytes).
pub(crate) struct Append<'a> {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub reason: Option<&'a str>,
    pub kind: &'a str,
    pub payload: &'a str,
}

pub(crate) fn json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Adds one event after `head` and moves `head` on. The log's UNIQUE (stream, seq) refuses it when another
/// writer appended to the stream meanwhile.
pub(crate) fn append_event(writes: &mut Writes, stream: Uuid, head: &mut Head, e: Append<'_>) {
    let seq = head.seq + 1;
    let actor_id = e.actor.user_id().map(|u| u.0);
    let link = ChainLink {
        stream_id: stream,
        seq,
        event_id: e.id,
        at: e.at,
        actor_id,
        acting_role: e.actor.role_name(),
        kind: e.kind,
        reason: e.reason,
        payload: e.payload,
    };
    let hash = chain_hash(&head.hash, &link);
    writes
        .push(
            "INSERT INTO events (id, stream_id, seq, occurred_at, actor_id, acting_role, kind, reason, payload, prev_hash, hash)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            1,
        )
        .id(e.id)
        .id(stream)
        .int(seq)
        .time(e.at)
        .opt_id(actor_id)
        .text(e.actor.role_name())
        .text(e.kind)
        .opt_text(e.reason)
        .text(e.payload)
        .text(head.hash.clone())
        .text(hash.clone());
    *head = Head { seq, hash };
}

/// Adds an order's events after `head`, applying each to `order`: the follow-up rows they add, one outbox row
/// per event (offered to outbound webhooks), and the milestone rows they touched, written once as they end.
pub(crate) fn append_order_events(
    writes: &mut Writes,
    order: &mut Order,
    head: &mut Head,
    meta: Meta,
    decision: &Decision,
    workflows: &Workflows,
) -> Result<(), StoreError> {
    let mut touched: Vec<MilestoneId> = Vec::new();
    let mut issues: Vec<(IssueId, bool)> = Vec::new();
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
        append_event(writes, order.id.0, head, append);
        match event {
            OrderEvent::MilestoneReplanned { milestone_id, .. }
            | OrderEvent::MilestoneOwnerChanged { milestone_id, .. }
            | OrderEvent::MilestoneCompleted { milestone_id, .. } => {
                if !touched.contains(milestone_id) {
                    touched.push(*milestone_id);
                }
            }
            OrderEvent::FollowUpLogged { follow_up } => {
                writes
                    .push(
                        "INSERT INTO follow_ups (id, order_id, occurred_at, status, body) VALUES (?, ?, ?, ?, ?)",
                        1,
                    )
                    .id(follow_up.id.0)
                    .id(order.id.0)
                    .time(follow_up.occurred_at)
                    .text(follow_up.status.as_str())
                    .text(json(follow_up)?);
            }
            OrderEvent::IssueChanged { issue_id, change } => {
                let opened = matches!(change, IssueChange::Opened { .. });
                if let IssueChange::Resolved { resolution, .. } = change
                    && resolution.shift_days != 0
                {
                    for m in order.milestones.iter().filter(|m| m.completed_at.is_none()) {
                        if !touched.contains(&m.id) {
                            touched.push(m.id);
                        }
                    }
                }
                match issues.iter_mut().find(|(id, _)| id == issue_id) {
                    Some((_, new)) => *new |= opened,
                    None => issues.push((*issue_id, opened)),
                }
                if let Some(escalation) = change.escalation() {
                    // The domain escalates an issue once (R5); the unique dedupe key would refuse a second.
                    let message = serde_json::json!({
                        "order_id": order.id, "order_number": order.number, "issue_id": issue_id,
                        "to_role": escalation.to_role, "reasons": escalation.reasons, "event_id": id,
                    });
                    enqueue(
                        writes,
                        order,
                        id,
                        "issue.escalation",
                        &format!("issue_escalated:{issue_id}"),
                        &message,
                        meta.at,
                    );
                }
            }
            OrderEvent::ChangeOrderChanged {
                change_order_id,
                change,
            } => {
                if let ChangeOrderChange::ClientApproved { effects, .. } = change
                    && effects.milestone_shift_days != 0
                {
                    for m in order.milestones.iter().filter(|m| m.completed_at.is_none()) {
                        if !touched.contains(&m.id) {
                            touched.push(m.id);
                        }
                    }
                }
                // The roles the matrix says are informed of this step (R14), for the notifications to tell.
                let message = serde_json::json!({
                    "order_id": order.id, "order_number": order.number, "change_order_id": change_order_id,
                    "step": event.kind(), "informed": change.informed(), "event_id": id,
                });
                enqueue(
                    writes,
                    order,
                    id,
                    "change_order.step",
                    &format!("change_order_step:{id}"),
                    &message,
                    meta.at,
                );
            }
            OrderEvent::PaymentChanged {
                change: PaymentChange::Dunning {
                    action, invoice_number, ..
                },
            } => {
                // The message the step sends (invoice, reminder, pause notice, escalation), once per key.
                let message = serde_json::json!({
                    "order_id": order.id, "order_number": order.number, "action": action,
                    "invoice_number": invoice_number, "event_id": id,
                });
                enqueue(
                    writes,
                    order,
                    id,
                    &format!("dunning.{}", action.kind.as_str()),
                    &action.dedupe_key,
                    &message,
                    meta.at,
                );
            }
            OrderEvent::MessageQueued { message } => {
                if let Some(milestone_id) = message.milestone_id
                    && !touched.contains(&milestone_id)
                {
                    touched.push(milestone_id);
                }
                enqueue_message(writes, order, id, message, meta.at)?
            }
            // What became of a message is recorded on the timeline; it sends nothing (nor a webhook: a
            // webhook's delivery would record another event, and so on).
            OrderEvent::MessageDelivered { .. } => continue,
            OrderEvent::OrderCreated { .. }
            | OrderEvent::StatusChanged { .. }
            | OrderEvent::ChecklistUpdated { .. }
            | OrderEvent::PaymentChanged { .. } => {}
        }
        if let Some(wf) = workflows.get(&order.workflow) {
            for message in follow_through::on_event(order, wf, event, &id.to_string()) {
                enqueue_message(writes, order, id, &message, meta.at)?;
            }
        }
        if matches!(event, OrderEvent::MessageQueued { .. }) {
            continue;
        }
        let message = serde_json::json!({ "event_id": id, "order_id": order.id, "order_number": order.number, "kind": event.kind() });
        enqueue(
            writes,
            order,
            id,
            "webhook.order_event",
            &format!("order_event:{id}"),
            &message,
            meta.at,
        );
    }
    for (id, new) in issues {
        if let Some(issue) = order.issue(id) {
            issue_row(writes, issue, new)?;
        }
    }
    for m in touched.iter().filter_map(|id| order.milestone(*id)) {
        writes
            .push(
                "UPDATE milestones SET planned_on = ?, owner_id = ?, completed_at = ?, follow_through_stage = ?
                 WHERE order_id = ? AND key = ?",
                1,
            )
            .date(m.planned_on)
            .opt_id(m.owner_id.map(|u| u.0))
            .opt_time(m.completed_at)
            .int(follow_through::milestone_stage(order, m))
            .id(order.id.0)
            .text(m.key.clone());
    }
    Ok(())
}

/// The issue's row as it now is: inserted when new, else updated (once per write, from its final state).
fn issue_row(writes: &mut Writes, issue: &Issue, new: bool) -> Result<(), StoreError> {
    let told_at = issue.client_notice.as_ref().map(|n| n.told_at);
    let opened_after = (issue.opened_at - issue.discovered_at).num_seconds();
    let told_after = told_at.map(|t| (t - issue.opened_at).num_seconds());
    if new {
        writes
            .push(
                "INSERT INTO issues (id, order_id, kind, severity, status, owner_id, discovered_at, opened_at,
                    opened_after_seconds, client_told_at, told_after_seconds, expected_resolution_at, body)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                1,
            )
            .id(issue.id.0)
            .id(issue.order_id.0)
            .text(issue.kind.as_str())
            .text(issue.severity.as_str())
            .text(issue.status.as_str())
            .id(issue.owner_id.0)
            .time(issue.discovered_at)
            .time(issue.opened_at)
            .int(opened_after)
            .opt_time(told_at)
            .value(crate::rows::Value::Int(told_after))
            .time(issue.expected_resolution_at)
            .text(json(issue)?);
    } else {
        writes
            .push(
                "UPDATE issues SET severity = ?, status = ?, client_told_at = ?, told_after_seconds = ?, body = ?
                 WHERE id = ?",
                1,
            )
            .text(issue.severity.as_str())
            .text(issue.status.as_str())
            .opt_time(told_at)
            .value(crate::rows::Value::Int(told_after))
            .text(json(issue)?)
            .id(issue.id.0);
    }
    Ok(())
}

/// Adds a message for the outbox, caused by the order's event `event_id`; the dedupe key makes it unique.
fn enqueue(
    writes: &mut Writes,
    order: &Order,
    event_id: Uuid,
    kind: &str,
    dedupe_key: &str,
    payload: &serde_json::Value,
    at: DateTime<Utc>,
) {
    enqueue_in(writes, order, event_id, (kind, dedupe_key, "pending"), payload, at);
}

/// [`enqueue`] with the row's state: `pending` (the worker sends it) or `draft` (it waits for a person).
fn enqueue_in(
    writes: &mut Writes,
    order: &Order,
    event_id: Uuid,
    (kind, dedupe_key, state): (&str, &str, &str),
    payload: &serde_json::Value,
    at: DateTime<Utc>,
) {
    writes
        .push(
            "INSERT INTO outbox (id, stream_id, event_id, kind, dedupe_key, payload, due_at, state, attempts, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
            1,
        )
        .id(Uuid::now_v7())
        .id(order.id.0)
        .id(event_id)
        .text(kind)
        .text(dedupe_key)
        .text(payload.to_string())
        .time(at)
        .text(state)
        .time(at);
}

/// Queues a message for the delivery worker (kind `message`, payload the [`QueuedMessage`]).
fn enqueue_message(
    writes: &mut Writes,
    order: &Order,
    event_id: Uuid,
    message: &QueuedMessage,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let payload = serde_json::to_value(message).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let state = if message.draft { "draft" } else { "pending" };
    enqueue_in(
        writes,
        order,
        event_id,
        ("message", &message.dedupe_key, state),
        &payload,
        at,
    );
    Ok(())
}

fn derived(order: &Order, workflows: &Workflows) -> HealthInputs {
    match workflows.get(&order.workflow) {
        Some(wf) => HealthInputs::of(order, wf),
        // A workflow removed from the configuration: judge the order as still open.
        None => HealthInputs::with(order, true),
    }
}

fn search_text(order: &Order) -> String {
    format!(
        "{} {} {} {}",
        order.number,
        order.title,
        order.customer_name,
        order.tags.join(" ")
    )
    .to_lowercase()
}

/// The first day of the last client-update period queued, else the day the order was created: the scheduler
/// asks for orders where it is before the current period's start.
fn client_update_on(order: &Order) -> chrono::NaiveDate {
    order.client_update_on.unwrap_or(order.created_at.date_naive())
}

/// The earliest due date of an unpaid installment: the scheduler's index into dunning.
fn unpaid_due_on(order: &Order) -> Option<chrono::NaiveDate> {
    order.payments.as_ref().and_then(|p| p.earliest_unpaid_due_on())
}

/// Adds the new order's rows: the order, its people, its milestones.
pub(crate) fn insert_order(
    writes: &mut Writes,
    order: &Order,
    workflows: &Workflows,
    head_hash: &str,
) -> Result<(), StoreError> {
    let d = derived(order, workflows);
    writes
        .push(
            "INSERT INTO orders (id, number, workflow, status, customer_id, owner_id, order_type, amount_minor, currency,
                order_date, promised_date, awaits_delivery, next_due_on, last_planned_on, open_exceptions,
                client_update_on, unpaid_due_on, search_text, body, version, head_hash, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            1,
        )
        .id(order.id.0)
        .text(order.number.clone())
        .text(order.workflow.clone())
        .text(order.status.clone())
        .id(order.customer_id.0)
        .opt_id(order.person(Relation::Owner).map(|u| u.0))
        .text(order.order_type.as_str())
        .int(order.amount.minor)
        .text(order.amount.currency.clone())
        .date(order.order_date)
        .date(order.promised_date)
        .bool(d.awaits_delivery)
        .opt_date(d.next_due_on)
        .opt_date(d.last_planned_on)
        .int(d.open_exceptions as i64)
        .date(client_update_on(order))
        .opt_date(unpaid_due_on(order))
        .text(search_text(order))
        .text(json(order)?)
        .int(order.version)
        .text(head_hash)
        .time(order.created_at)
        .time(order.updated_at);
    if !order.people.is_empty() {
        let values = vec!["(?, ?, ?)"; order.people.len()].join(", ");
        let statement = writes.push(
            format!("INSERT INTO order_people (order_id, user_id, relation) VALUES {values}"),
            order.people.len() as u64,
        );
        for person in &order.people {
            statement
                .id(order.id.0)
                .id(person.user_id.0)
                .text(person.relation.as_str());
        }
    }
    if !order.milestones.is_empty() {
        let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; order.milestones.len()].join(", ");
        let statement = writes.push(
            format!(
                "INSERT INTO milestones (id, order_id, key, name, position, planned_on, owner_role, owner_id, client_action, completed_at)
                 VALUES {values}"
            ),
            order.milestones.len() as u64,
        );
        for m in &order.milestones {
            statement
                .id(m.id.0)
                .id(order.id.0)
                .text(m.key.clone())
                .text(m.name.clone())
                .int(i64::from(m.position))
                .date(m.planned_on)
                .text(m.owner_role.as_str())
                .opt_id(m.owner_id.map(|u| u.0))
                .bool(m.client_action)
                .opt_time(m.completed_at);
        }
    }
    Ok(())
}

/// Adds the update of the order row from `after`, guarded by the version it was loaded at.
pub(crate) fn update_order(
    writes: &mut Writes,
    after: &Order,
    loaded_version: i64,
    workflows: &Workflows,
    head_hash: &str,
) -> Result<(), StoreError> {
    let d = derived(after, workflows);
    writes
        .push(
            "UPDATE orders SET status = ?, amount_minor = ?, promised_date = ?, awaits_delivery = ?, next_due_on = ?,
                last_planned_on = ?, open_exceptions = ?, client_update_on = ?, unpaid_due_on = ?, body = ?, version = ?,
                head_hash = ?, updated_at = ?
             WHERE id = ? AND version = ?",
            1,
        )
        .text(after.status.clone())
        .int(after.amount.minor)
        .date(after.promised_date)
        .bool(d.awaits_delivery)
        .opt_date(d.next_due_on)
        .opt_date(d.last_planned_on)
        .int(d.open_exceptions as i64)
        .date(client_update_on(after))
        .opt_date(unpaid_due_on(after))
        .text(json(after)?)
        .int(after.version)
        .text(head_hash)
        .time(after.updated_at)
        .id(after.id.0)
        .int(loaded_version);
    Ok(())
}

/// The writes of an organisation event (user added, token issued) appended after `head`.
pub(crate) fn org_event(
    writes: &mut Writes,
    head: &mut Head,
    event: &ordertrail_domain::event::NewEvent<OrgEvent>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let kind = match &event.payload {
        OrgEvent::UserAdded { user } => {
            writes
                .push(
                    "INSERT INTO users (id, email, name, roles, customer_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    1,
                )
                .id(user.id.0)
                .text(user.email.clone())
                .text(user.name.clone())
                .text(json(&user.roles)?)
                .opt_id(user.customer_id.map(|c| c.0))
                .time(user.created_at);
            "user_added"
        }
        OrgEvent::TokenIssued {
            token_id,
            user_id,
            token_hash,
        } => {
            writes
                .push(
                    "INSERT INTO tokens (id, user_id, token_hash, created_at) VALUES (?, ?, ?, ?)",
                    1,
                )
                .id(token_id.0)
                .id(user_id.0)
                .text(token_hash.clone())
                .time(at);
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
    append_event(writes, ordertrail_domain::event::ORG_STREAM, head, append);
    Ok(())
}

/// The writes of a new customer: the first event of its own stream and its row.
pub(crate) fn new_customer(
    writes: &mut Writes,
    customer: &Customer,
    event: &ordertrail_domain::event::NewEvent<ordertrail_domain::event::CustomerEvent>,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let payload = json(&event.payload)?;
    let mut head = Head::genesis();
    let append = Append {
        id: event.id.0,
        at,
        actor: event.actor,
        reason: event.reason.as_deref(),
        kind: "customer_created",
        payload: &payload,
    };
    append_event(writes, customer.id.0, &mut head, append);
    writes
        .push(
            "INSERT INTO customers (id, name, body, version, head_hash, created_at) VALUES (?, ?, ?, 1, ?, ?)",
            1,
        )
        .id(customer.id.0)
        .text(customer.name.clone())
        .text(json(customer)?)
        .text(head.hash.clone())
        .time(customer.created_at);
    Ok(())
}

/// A new order's writes (after its number is known): the creation event as the first link of its chain, and
/// the order's rows. Returns the order as stored and its chain's head.
pub(crate) fn create_order(
    writes: &mut Writes,
    planned: &ordertrail_domain::decide::PlannedOrder,
    number: String,
    meta: Meta,
    workflows: &Workflows,
) -> Result<(Order, Head), StoreError> {
    let created = planned.created(number);
    let OrderEvent::OrderCreated { order } = &created else {
        return Err(StoreError::Corrupt(
            "a planned order must start with its creation".into(),
        ));
    };
    let mut order = (**order).clone();
    order.version = 0;
    let mut head = Head::genesis();
    append_order_events(writes, &mut order, &mut head, meta, &vec![(created, None)], workflows)?;
    insert_order(writes, &order, workflows, &head.hash)?;
    Ok((order, head))
}

/// A change's writes: runs the caller's decision on the loaded order, then appends its events and updates the
/// projections. `None` when the decision changes nothing. A decision that panics (a bug) fails this write only.
pub(crate) fn change_order(
    writes: &mut Writes,
    before: &Order,
    head_hash: String,
    decide: &crate::Decide,
    meta: Meta,
    workflows: &Workflows,
) -> Result<Option<(Order, Head)>, crate::WriteError> {
    let decision = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decide(before))).map_err(|_| {
        StoreError::Corrupt(format!(
            "deciding a change to order {} failed unexpectedly",
            before.number
        ))
    })??;
    if decision.is_empty() {
        return Ok(None);
    }
    let mut after = before.clone();
    let mut head = Head {
        seq: before.version,
        hash: head_hash,
    };
    append_order_events(writes, &mut after, &mut head, meta, &decision, workflows)?;
    update_order(writes, &after, before.version, workflows, &head.hash)?;
    Ok(Some((after, head)))
}
