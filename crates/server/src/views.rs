//! What the API shows of an order: its record (R32), people, milestones and derived fields (R12), with the
//! fields a role may not see left out (R40), and the transitions the caller's role can make from here.

use crate::auth::Caller;
use crate::state::AppState;
use chrono::{DateTime, NaiveDate, Utc};
use ordertrail_domain::access::FieldVisibility;
use ordertrail_domain::customer::Contact;
use ordertrail_domain::ids::{CustomerId, OrderId};
use ordertrail_domain::issue::{Breach, Issue, breaches};
use ordertrail_domain::money::Money;
use ordertrail_domain::order::{DepartmentContact, LineItem, Milestone, Order, OrderType, Participant};
use ordertrail_domain::progress::{Progress, progress};
use ordertrail_domain::workflow::Guard;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderView {
    pub id: OrderId,
    pub number: String,
    pub workflow: String,
    pub status: String,
    pub status_name: String,
    pub version: i64,
    pub customer_id: CustomerId,
    pub customer_name: String,
    /// Shown to roles that handle the customer (not to production or marketplace partners).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_contact: Option<Contact>,
    pub title: String,
    pub order_type: OrderType,
    /// Shown to sales, finance, admin and the customer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    pub order_date: NaiveDate,
    pub promised_date: NaiveDate,
    pub line_items: Vec<LineItem>,
    pub special_requirements: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub people: Option<Vec<Participant>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department_contacts: Option<Vec<DepartmentContact>>,
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub custom_fields: Option<BTreeMap<String, serde_json::Value>>,
    /// Values given with transitions: tracking URL, carrier, tracking number, sign-off...
    pub fields: BTreeMap<String, String>,
    pub progress: Progress,
    pub milestones: Vec<Milestone>,
    /// What the caller's role can do next.
    pub allowed_transitions: Vec<AllowedTransition>,
    pub last_follow_up_at: Option<DateTime<Utc>>,
    /// The order's issues with the clocks they breached (R10, R36, R34); staff only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issues: Option<Vec<IssueView>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An issue with the clocks it has breached at the time asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssueView {
    #[serde(flatten)]
    pub issue: Issue,
    /// R10 (client not told within the policy's hours), R36 (opened late), R34 (resolution overdue).
    pub breaches: Vec<Breach>,
    /// R13: the moves the organisation's playbook suggests for an issue of this kind.
    pub playbook: Vec<String>,
}

impl IssueView {
    pub fn new(state: &AppState, issue: Issue) -> IssueView {
        IssueView {
            breaches: breaches(&issue, &state.org.issue_policy, state.now()),
            playbook: state.org.issue_policy.playbook_for(issue.kind).to_vec(),
            issue,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AllowedTransition {
    pub to: String,
    pub name: String,
    /// The guards that must hold, e.g. `field:tracking_url`, `confirmed`.
    pub guards: Vec<String>,
}

impl OrderView {
    pub fn new(order: Order, caller: &Caller, state: &AppState) -> OrderView {
        let today = state.local_date(state.now());
        let visible = FieldVisibility::for_role(caller.role);
        let wf = state.workflow(&order.workflow);
        let (status_name, progress, allowed) = match wf {
            Some(wf) => (
                wf.status(&order.status)
                    .map_or(order.status.clone(), |s| s.name.clone()),
                progress(&order, wf, today, &state.org.health),
                wf.transitions_for(&order.status, caller.role)
                    .map(|t| AllowedTransition {
                        to: t.to.clone(),
                        name: t.name.clone(),
                        guards: t.guards.iter().map(Guard::name).collect(),
                    })
                    .collect(),
            ),
            None => (
                order.status.clone(),
                Progress {
                    phase: None,
                    percent_complete: 0,
                    next_milestone: None,
                    health: ordertrail_domain::progress::Health::OnTrack,
                    blockers: vec![],
                    last_client_update_at: order.last_client_update_at,
                },
                vec![],
            ),
        };
        let mut progress = progress;
        if !visible.internal {
            progress.blockers.clear();
        }
        OrderView {
            id: order.id,
            number: order.number,
            workflow: order.workflow,
            status: order.status,
            status_name,
            version: order.version,
            customer_id: order.customer_id,
            customer_name: order.customer_name,
            customer_contact: order.customer_contact.filter(|_| visible.customer_contact),
            title: order.title,
            order_type: order.order_type,
            amount: Some(order.amount).filter(|_| visible.money),
            order_date: order.order_date,
            promised_date: order.promised_date,
            line_items: order.line_items,
            special_requirements: order.special_requirements,
            people: Some(order.people).filter(|_| visible.internal),
            department_contacts: Some(order.department_contacts).filter(|_| visible.internal),
            tags: order.tags,
            custom_fields: Some(order.custom_fields).filter(|_| visible.internal),
            fields: order.fields,
            progress,
            milestones: order.milestones,
            allowed_transitions: allowed,
            last_follow_up_at: order.last_follow_up_at,
            issues: visible.internal.then(|| {
                order
                    .issues
                    .iter()
                    .rev()
                    .map(|i| IssueView::new(state, i.clone()))
                    .collect()
            }),
            created_at: order.created_at,
            updated_at: order.updated_at,
        }
    }
}

/// A page of orders, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    pub items: Vec<OrderView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}
