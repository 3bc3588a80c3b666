//! The order aggregate: its master record (R32), its people, its milestones (R33), and what has been recorded
//! on it. State changes only by applying events ([`Order::apply`]); the commands in [`crate::decide`] produce
//! those events, so the projection in the database and the log can never tell two stories.

use crate::change_order::{ChangeOrder, ChangeOrderChange, ChangeOrderId};
use crate::customer::Contact;
use crate::event::OrderEvent;
use crate::follow_through::{Delivery, MessageKind};
use crate::follow_up::{FollowUpStatus, Subject};
use crate::ids::{CustomerId, FollowUpId, MilestoneId, OrderId, UserId};
use crate::issue::{Issue, IssueChange, IssueId};
use crate::money::Money;
use crate::payment::PaymentSchedule;
use crate::role::Role;
use crate::workflow::{DueAnchor, DueDef};
use chrono::{DateTime, Days, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use utoipa::ToSchema;

/// R32: regular, rush or custom. Rush orders get daily client updates (later issue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    Regular,
    Rush,
    Custom,
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Regular => "regular",
            OrderType::Rush => "rush",
            OrderType::Custom => "custom",
        }
    }
}

/// How a person is attached to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// The account manager who owns the order (exactly one).
    Owner,
    /// The backup (sales coordinator) who can act for the owner (R14).
    Backup,
    Production,
    Design,
    Logistics,
    IpOwner,
    /// The customer's contact user: sees the order in the portal.
    Customer,
}

impl Relation {
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Owner => "owner",
            Relation::Backup => "backup",
            Relation::Production => "production",
            Relation::Design => "design",
            Relation::Logistics => "logistics",
            Relation::IpOwner => "ip_owner",
            Relation::Customer => "customer",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    pub relation: Relation,
    pub user_id: UserId,
}

/// A contact in a collaborating department (R32: production, warehouse, logistics...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentContact {
    pub department: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineItem {
    pub description: String,
    #[serde(default = "one")]
    pub quantity: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

fn one() -> i64 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChecklistItem {
    pub item: String,
    pub done: bool,
}

/// How a milestone's completion was approved (R4: feedback and approvals documented).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who approved (for a client action: the client's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// A link or file name of the approval (an email, a signed sheet, photos).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
}

/// One node of the order's plan (R33).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Milestone {
    pub id: MilestoneId,
    /// The key of the workflow's milestone plan it came from.
    pub key: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    pub position: i32,
    pub planned_on: NaiveDate,
    /// The first planned date; differs from `planned_on` after a replan.
    pub original_planned_on: NaiveDate,
    pub owner_role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<UserId>,
    pub complete_roles: Vec<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliverable: Option<String>,
    pub client_action: bool,
    /// Planned after delivery (after-sales): does not count against the promised date.
    #[serde(default)]
    pub after_delivery: bool,
    pub checklist: Vec<ChecklistItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_by: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
}

/// An exception reported in a follow-up and not yet cleared by a later follow-up on the same subject (R34).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OpenException {
    pub follow_up_id: FollowUpId,
    pub subject: Subject,
    pub cause: String,
    pub since: DateTime<Utc>,
    pub expected_resolution_at: Option<DateTime<Utc>>,
}

/// The order as the projection holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub number: String,
    pub workflow: String,
    pub status: String,
    pub customer_id: CustomerId,
    pub customer_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_contact: Option<Contact>,
    pub title: String,
    pub order_type: OrderType,
    pub amount: Money,
    pub order_date: NaiveDate,
    pub promised_date: NaiveDate,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub line_items: Vec<LineItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub special_requirements: Option<String>,
    pub people: Vec<Participant>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub department_contacts: Vec<DepartmentContact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_fields: BTreeMap<String, serde_json::Value>,
    /// Values given with transitions (tracking URL, carrier, sign-off...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    pub milestones: Vec<Milestone>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub open_exceptions: Vec<OpenException>,
    /// Issues and exceptions raised on the order (R5, R36), open and resolved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<Issue>,
    /// Change orders (R7), in the order they were drafted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub change_orders: Vec<ChangeOrder>,
    /// The payment schedule (R8), from the workflow's payment template; none for a workflow without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payments: Option<PaymentSchedule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_client_update_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_follow_up_at: Option<DateTime<Utc>>,
    /// The dedupe keys of the messages the scheduler queued for the order: each is queued once.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub messages_queued: BTreeSet<String>,
    /// The dedupe keys of the messages whose delivery (or drop) is recorded: a message claimed again after a
    /// crash between recording and finishing it is not sent twice.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub messages_delivered: BTreeSet<String>,
    /// The first day of the last client-update period queued (R3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_update_on: Option<NaiveDate>,
    /// Number of events in the order's log; also its version for optimistic concurrency.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Order {
    pub fn milestone(&self, id: MilestoneId) -> Option<&Milestone> {
        self.milestones.iter().find(|m| m.id == id)
    }

    fn milestone_mut(&mut self, id: MilestoneId) -> Option<&mut Milestone> {
        self.milestones.iter_mut().find(|m| m.id == id)
    }

    /// The user with `relation` on this order (the first one, for relations that allow several).
    pub fn person(&self, relation: Relation) -> Option<UserId> {
        self.people.iter().find(|p| p.relation == relation).map(|p| p.user_id)
    }

    pub fn issue(&self, id: IssueId) -> Option<&Issue> {
        self.issues.iter().find(|i| i.id == id)
    }

    pub fn change_order(&self, id: ChangeOrderId) -> Option<&ChangeOrder> {
        self.change_orders.iter().find(|c| c.id == id)
    }

    /// The amount before any approved change order: the base of the change orders' cumulative percentage.
    pub fn original_amount(&self) -> Money {
        let approved: i64 = self
            .change_orders
            .iter()
            .filter_map(|c| c.effects.as_ref())
            .filter(|e| e.change_amount.currency == self.amount.currency)
            .map(|e| e.change_amount.minor)
            .sum();
        Money {
            currency: self.amount.currency.clone(),
            minor: self.amount.minor - approved,
        }
    }

    /// Moves the milestones not yet completed by `days` (a replan by an issue or a change order).
    fn shift_open_milestones(&mut self, days: i32) {
        let shift = TimeDelta::days(i64::from(days));
        for m in self.milestones.iter_mut().filter(|m| m.completed_at.is_none()) {
            m.planned_on += shift;
        }
    }

    /// The issues still open: each is a blocker (R12).
    pub fn open_issues(&self) -> impl Iterator<Item = &Issue> {
        self.issues.iter().filter(|i| i.is_open())
    }

    /// Whether `user` is attached to the order: as one of its people or as a milestone owner.
    pub fn involves(&self, user: UserId) -> bool {
        self.people.iter().any(|p| p.user_id == user) || self.milestones.iter().any(|m| m.owner_id == Some(user))
    }

    /// Applies one event. `at` is the event's time; `version` moves by one per event.
    pub fn apply(&mut self, event: &OrderEvent, at: DateTime<Utc>) {
        match event {
            OrderEvent::OrderCreated { order } => {
                *self = (**order).clone();
            }
            OrderEvent::StatusChanged { to, fields, .. } => {
                self.status = to.clone();
                for (key, value) in fields {
                    self.fields.insert(key.clone(), value.clone());
                }
            }
            OrderEvent::MilestoneReplanned { milestone_id, to, .. } => {
                if let Some(m) = self.milestone_mut(*milestone_id) {
                    m.planned_on = *to;
                }
            }
            OrderEvent::MilestoneOwnerChanged { milestone_id, to, .. } => {
                if let Some(m) = self.milestone_mut(*milestone_id) {
                    m.owner_id = *to;
                }
            }
            OrderEvent::ChecklistUpdated {
                milestone_id,
                checklist,
            } => {
                if let Some(m) = self.milestone_mut(*milestone_id) {
                    m.checklist = checklist.clone();
                }
            }
            OrderEvent::MilestoneCompleted {
                milestone_id,
                completed_at,
                completed_by,
                evidence,
                checklist,
            } => {
                if let Some(m) = self.milestone_mut(*milestone_id) {
                    m.completed_at = Some(*completed_at);
                    m.completed_by = Some(*completed_by);
                    m.evidence = Some(evidence.clone());
                    m.checklist = checklist.clone();
                }
            }
            OrderEvent::FollowUpLogged { follow_up } => {
                let subject = follow_up.subject();
                // A later report on the same subject supersedes an exception; a back-dated one does not.
                self.open_exceptions
                    .retain(|e| e.subject != subject || e.since > follow_up.occurred_at);
                if follow_up.status == FollowUpStatus::ExceptionPending
                    && let Some(exception) = &follow_up.exception
                {
                    self.open_exceptions.push(OpenException {
                        follow_up_id: follow_up.id,
                        subject,
                        cause: exception.cause.clone(),
                        since: follow_up.occurred_at,
                        expected_resolution_at: exception.expected_resolution_at,
                    });
                }
                if follow_up.is_client_update() {
                    self.last_client_update_at = self.last_client_update_at.max(Some(follow_up.occurred_at));
                }
                self.last_follow_up_at = self.last_follow_up_at.max(Some(follow_up.occurred_at));
            }
            OrderEvent::IssueChanged { issue_id, change } => {
                match self.issues.iter_mut().find(|i| i.id == *issue_id) {
                    Some(issue) => issue.apply(change),
                    None => {
                        if let IssueChange::Opened { issue } = change {
                            self.issues.push((**issue).clone());
                        }
                    }
                }
                // R6: the resolution's replan moves the open milestones and the promise.
                if let IssueChange::Resolved { resolution, .. } = change {
                    self.shift_open_milestones(resolution.shift_days);
                    self.promised_date = resolution
                        .new_promised_date
                        .unwrap_or(self.promised_date + TimeDelta::days(i64::from(resolution.shift_days)));
                }
            }
            OrderEvent::ChangeOrderChanged {
                change_order_id,
                change,
            } => {
                match self.change_orders.iter_mut().find(|c| c.id == *change_order_id) {
                    Some(co) => co.apply(change),
                    None => {
                        if let ChangeOrderChange::Drafted { change_order } = change {
                            self.change_orders.push((**change_order).clone());
                        }
                    }
                }
                if let ChangeOrderChange::ClientApproved { effects, .. } = change {
                    // R7: the approved change moves the money, the promise and the plan, in the same event.
                    self.amount = effects.new_order_amount.clone();
                    self.promised_date = effects.new_promised_date;
                    self.shift_open_milestones(effects.milestone_shift_days);
                }
            }
            OrderEvent::MessageQueued { message } => {
                self.messages_queued.insert(message.dedupe_key.clone());
                if let Some(update) = &message.client_update {
                    self.client_update_on = self.client_update_on.max(Some(update.period_from));
                }
            }
            OrderEvent::MessageDelivered {
                kind,
                dedupe_key,
                delivery,
            } => {
                if *kind == MessageKind::ClientUpdate && matches!(delivery, Delivery::Sent { .. }) {
                    self.last_client_update_at = self.last_client_update_at.max(Some(at));
                }
                if matches!(delivery, Delivery::Sent { .. } | Delivery::Dropped { .. }) {
                    self.messages_delivered.insert(dedupe_key.clone());
                }
            }
            OrderEvent::PaymentChanged { change } => {
                if let Some(schedule) = self.payments.as_mut() {
                    // Decided on a copy first (`decide`), so a recorded change always applies; a refusal here
                    // would leave the schedule as it was rather than half-changed.
                    let _ = schedule.apply(change);
                }
            }
        }
        self.version += 1;
        self.updated_at = at;
    }
}

/// The date a milestone is planned for, from the order's dates.
pub fn planned_date(due: DueDef, order_date: NaiveDate, promised_date: NaiveDate) -> NaiveDate {
    let anchor = match due.from {
        DueAnchor::OrderDate => order_date,
        DueAnchor::PromisedDate => promised_date,
    };
    let days = Days::new(u64::from(due.days.unsigned_abs()));
    let date = if due.days >= 0 {
        anchor.checked_add_days(days)
    } else {
        anchor.checked_sub_days(days)
    };
    // A short order squeezes its plan: nothing is planned before the order date.
    date.unwrap_or(anchor).max(order_date)
}
