//! The order projections on SQLite: the `orders` row (whole record as JSON plus the columns lists filter on),
//! its people, milestones and follow-ups, written from the order as the events left it.

use super::batch::Batch;
use crate::{OrderQuery, StoreError, Visibility, format_time};
use ordertrail_domain::event::OrderEvent;
use ordertrail_domain::order::{Order, Relation};
use ordertrail_domain::progress::{Health, HealthInputs};
use ordertrail_domain::workflow::Workflows;
use sqlx::{QueryBuilder, Sqlite};

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

fn body(order: &Order) -> Result<String, StoreError> {
    serde_json::to_string(order).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Adds the new order's rows: the order, its people, its milestones.
pub(crate) fn insert(
    batch: &mut Batch,
    order: &Order,
    workflows: &Workflows,
    head_hash: &str,
) -> Result<(), StoreError> {
    let d = derived(order, workflows);
    batch
        .push(
            "INSERT INTO orders (id, number, workflow, status, customer_id, owner_id, order_type, amount_minor, currency,
                order_date, promised_date, awaits_delivery, next_due_on, last_planned_on, open_exceptions, search_text,
                body, version, head_hash, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            1,
        )
        .bind(order.id.to_string())
        .bind(order.number.clone())
        .bind(order.workflow.clone())
        .bind(order.status.clone())
        .bind(order.customer_id.to_string())
        .bind(order.person(Relation::Owner).map(|u| u.to_string()))
        .bind(order.order_type.as_str())
        .bind(order.amount.minor)
        .bind(order.amount.currency.clone())
        .bind(order.order_date.to_string())
        .bind(order.promised_date.to_string())
        .bind(d.awaits_delivery)
        .bind(d.next_due_on.map(|x| x.to_string()))
        .bind(d.last_planned_on.map(|x| x.to_string()))
        .bind(d.open_exceptions as i64)
        .bind(search_text(order))
        .bind(body(order)?)
        .bind(order.version)
        .bind(head_hash.to_string())
        .bind(format_time(order.created_at))
        .bind(format_time(order.updated_at));
    if !order.people.is_empty() {
        let values = vec!["(?, ?, ?)"; order.people.len()].join(", ");
        batch.push(
            &format!("INSERT INTO order_people (order_id, user_id, relation) VALUES {values}"),
            order.people.len() as u64,
        );
        for person in &order.people {
            batch
                .bind(order.id.to_string())
                .bind(person.user_id.to_string())
                .bind(person.relation.as_str());
        }
    }
    if !order.milestones.is_empty() {
        let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; order.milestones.len()].join(", ");
        batch.push(
            &format!(
                "INSERT INTO milestones (id, order_id, key, name, position, planned_on, owner_role, owner_id, client_action, completed_at)
                 VALUES {values}"
            ),
            order.milestones.len() as u64,
        );
        for m in &order.milestones {
            batch
                .bind(m.id.to_string())
                .bind(order.id.to_string())
                .bind(m.key.clone())
                .bind(m.name.clone())
                .bind(m.position)
                .bind(m.planned_on.to_string())
                .bind(m.owner_role.as_str())
                .bind(m.owner_id.map(|u| u.to_string()))
                .bind(m.client_action)
                .bind(m.completed_at.map(format_time));
        }
    }
    Ok(())
}

/// Adds the update of the order row from `after`, guarded by the version it was loaded at.
pub(crate) fn update(
    batch: &mut Batch,
    after: &Order,
    loaded_version: i64,
    workflows: &Workflows,
    head_hash: &str,
) -> Result<(), StoreError> {
    let d = derived(after, workflows);
    batch
        .push(
            "UPDATE orders SET status = ?, awaits_delivery = ?, next_due_on = ?, last_planned_on = ?,
                open_exceptions = ?, body = ?, version = ?, head_hash = ?, updated_at = ?
             WHERE id = ? AND version = ?",
            1,
        )
        .bind(after.status.clone())
        .bind(d.awaits_delivery)
        .bind(d.next_due_on.map(|x| x.to_string()))
        .bind(d.last_planned_on.map(|x| x.to_string()))
        .bind(d.open_exceptions as i64)
        .bind(body(after)?)
        .bind(after.version)
        .bind(head_hash.to_string())
        .bind(format_time(after.updated_at))
        .bind(after.id.to_string())
        .bind(loaded_version);
    Ok(())
}

/// Adds the writes to the side tables an event touches (milestone rows, follow-up rows).
pub(crate) fn project_event(batch: &mut Batch, after: &Order, event: &OrderEvent) -> Result<(), StoreError> {
    let milestone_id = match event {
        OrderEvent::MilestoneReplanned { milestone_id, .. }
        | OrderEvent::MilestoneOwnerChanged { milestone_id, .. }
        | OrderEvent::MilestoneCompleted { milestone_id, .. } => Some(*milestone_id),
        OrderEvent::FollowUpLogged { follow_up } => {
            batch
                .push(
                    "INSERT INTO follow_ups (id, order_id, occurred_at, status, body) VALUES (?, ?, ?, ?, ?)",
                    1,
                )
                .bind(follow_up.id.to_string())
                .bind(after.id.to_string())
                .bind(format_time(follow_up.occurred_at))
                .bind(follow_up.status.as_str())
                .bind(serde_json::to_string(follow_up).map_err(|e| StoreError::Corrupt(e.to_string()))?);
            None
        }
        OrderEvent::OrderCreated { .. } | OrderEvent::StatusChanged { .. } | OrderEvent::ChecklistUpdated { .. } => {
            None
        }
    };
    if let Some(m) = milestone_id.and_then(|id| after.milestone(id)) {
        batch
            .push(
                "UPDATE milestones SET planned_on = ?, owner_id = ?, completed_at = ? WHERE order_id = ? AND key = ?",
                1,
            )
            .bind(m.planned_on.to_string())
            .bind(m.owner_id.map(|u| u.to_string()))
            .bind(m.completed_at.map(format_time))
            .bind(after.id.to_string())
            .bind(m.key.clone());
    }
    Ok(())
}

/// The SQL of the health rule in `ordertrail_domain::progress`; `$today` and `$cutoff` are bound by the caller.
const LATE: &str =
    "(o.awaits_delivery = 1 AND (o.promised_date < {today} OR COALESCE(o.next_due_on, '9999-12-31') < {cutoff}))";
const AT_RISK_OR_WORSE: &str = "(o.awaits_delivery = 1 AND (COALESCE(o.next_due_on, '9999-12-31') < {today} OR COALESCE(o.last_planned_on, '0000-01-01') > o.promised_date OR o.open_exceptions > 0))";

fn push_rule(qb: &mut QueryBuilder<Sqlite>, rule: &str, today: &str, cutoff: &str) {
    let mut rest = rule;
    while let Some(pos) = rest.find('{') {
        qb.push(&rest[..pos]);
        let end = rest[pos..].find('}').map_or(rest.len(), |e| pos + e);
        match &rest[pos + 1..end] {
            "today" => qb.push_bind(today.to_string()),
            _ => qb.push_bind(cutoff.to_string()),
        };
        rest = &rest[end + 1..];
    }
    qb.push(rest);
}

pub(crate) fn list_query(q: &OrderQuery) -> QueryBuilder<Sqlite> {
    let mut qb = QueryBuilder::<Sqlite>::new("SELECT o.body FROM orders o WHERE 1 = 1");
    match q.visibility {
        Visibility::All => {}
        Visibility::Customer(user) => {
            qb.push(" AND EXISTS (SELECT 1 FROM order_people p WHERE p.order_id = o.id AND p.relation = 'customer' AND p.user_id = ");
            qb.push_bind(user.to_string()).push(")");
        }
        Visibility::InvolvedStaff(user) => {
            qb.push(" AND (EXISTS (SELECT 1 FROM order_people p WHERE p.order_id = o.id AND p.relation <> 'customer' AND p.user_id = ");
            qb.push_bind(user.to_string());
            qb.push(") OR EXISTS (SELECT 1 FROM milestones m WHERE m.order_id = o.id AND m.owner_id = ");
            qb.push_bind(user.to_string()).push("))");
        }
    }
    if let Some(status) = &q.status {
        qb.push(" AND o.status = ").push_bind(status.clone());
    }
    if let Some(owner) = q.owner {
        qb.push(" AND o.owner_id = ").push_bind(owner.to_string());
    }
    if let Some(customer) = q.customer {
        qb.push(" AND o.customer_id = ").push_bind(customer.to_string());
    }
    if let Some(order_type) = q.order_type {
        qb.push(" AND o.order_type = ").push_bind(order_type.as_str());
    }
    if let Some(due) = q.due_before {
        qb.push(" AND o.promised_date < ").push_bind(due.to_string());
    }
    if let Some(text) = q.text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let escaped = text
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        qb.push(" AND o.search_text LIKE ")
            .push_bind(format!("%{escaped}%"))
            .push(" ESCAPE '\\'");
    }
    if let Some(health) = q.health {
        let today = q.today.to_string();
        let cutoff = (q.today - chrono::TimeDelta::days(q.late_after_days)).to_string();
        match health {
            Health::Late => {
                qb.push(" AND ");
                push_rule(&mut qb, LATE, &today, &cutoff);
            }
            Health::AtRisk => {
                qb.push(" AND NOT ");
                push_rule(&mut qb, LATE, &today, &cutoff);
                qb.push(" AND ");
                push_rule(&mut qb, AT_RISK_OR_WORSE, &today, &cutoff);
            }
            Health::OnTrack => {
                qb.push(" AND NOT ");
                push_rule(&mut qb, LATE, &today, &cutoff);
                qb.push(" AND NOT ");
                push_rule(&mut qb, AT_RISK_OR_WORSE, &today, &cutoff);
            }
        }
    }
    if let Some(before) = q.before {
        qb.push(" AND o.id < ").push_bind(before.to_string());
    }
    qb.push(" ORDER BY o.id DESC LIMIT ").push_bind(i64::from(q.limit));
    qb
}
