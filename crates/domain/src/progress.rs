//! Derived fields of the order record (R12): current phase, % complete, next milestone, health, blockers and
//! last client update, all computed from the order at the time asked, never stored by hand.
//!
//! Health (DESIGN.md: "Delayed" is a health, not a status):
//! - `late`: the order awaits delivery and its promised date has passed, or a milestone is overdue by more
//!   than `late_after_days` days;
//! - `at_risk`: a milestone is overdue (by fewer days), a milestone is planned after the promised date, or an
//!   exception is open;
//! - `on_track` otherwise, and always once the order is delivered or closed.
//!
//! The same rule is written in SQL by the store for list filters; a store test checks that the two agree.

use crate::ids::MilestoneId;
use crate::order::Order;
use crate::workflow::Workflow;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    OnTrack,
    AtRisk,
    Late,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::OnTrack => "on_track",
            Health::AtRisk => "at_risk",
            Health::Late => "late",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthPolicy {
    /// A milestone overdue by more than this many days makes the order late (seed 004: minor is 1-2 days).
    #[serde(default = "two")]
    pub late_after_days: i64,
}

fn two() -> i64 {
    2
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy { late_after_days: 2 }
    }
}

/// The few facts health depends on; kept on the order's row so that lists can filter by health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthInputs {
    pub awaits_delivery: bool,
    pub promised_date: NaiveDate,
    /// Earliest planned date among milestones not yet completed.
    pub next_due_on: Option<NaiveDate>,
    /// Latest planned date among milestones not yet completed.
    pub last_planned_on: Option<NaiveDate>,
    pub open_exceptions: usize,
}

impl HealthInputs {
    pub fn of(order: &Order, wf: &Workflow) -> HealthInputs {
        HealthInputs::with(order, wf.awaits_delivery(&order.status))
    }

    /// The inputs of `order` when whether it still awaits delivery is known otherwise (e.g. its workflow is no
    /// longer configured).
    pub fn with(order: &Order, awaits_delivery: bool) -> HealthInputs {
        let open = order.milestones.iter().filter(|m| m.completed_at.is_none());
        HealthInputs {
            awaits_delivery,
            promised_date: order.promised_date,
            next_due_on: open.clone().map(|m| m.planned_on).min(),
            // After-sales nodes are planned past the promise on purpose.
            last_planned_on: open.filter(|m| !m.after_delivery).map(|m| m.planned_on).max(),
            open_exceptions: order.open_exceptions.len() + order.open_issues().count(),
        }
    }

    pub fn health(&self, today: NaiveDate, policy: &HealthPolicy) -> Health {
        if !self.awaits_delivery {
            return Health::OnTrack;
        }
        let overdue_days = self.next_due_on.map_or(0, |d| (today - d).num_days());
        if today > self.promised_date || overdue_days > policy.late_after_days {
            Health::Late
        } else if overdue_days > 0
            || self.last_planned_on.is_some_and(|d| d > self.promised_date)
            || self.open_exceptions > 0
        {
            Health::AtRisk
        } else {
            Health::OnTrack
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PhaseRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NextMilestone {
    pub id: MilestoneId,
    pub key: String,
    pub name: String,
    pub planned_on: NaiveDate,
    /// Negative when overdue.
    pub days_left: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BlockerKind {
    OverdueMilestone,
    OpenException,
    OpenIssue,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Blocker {
    pub kind: BlockerKind,
    pub description: String,
    pub milestone_id: Option<MilestoneId>,
}

/// The derived part of the order record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Progress {
    /// R1: the production phase (from the status, else from the next milestone).
    pub phase: Option<PhaseRef>,
    pub percent_complete: u8,
    pub next_milestone: Option<NextMilestone>,
    pub health: Health,
    pub blockers: Vec<Blocker>,
    pub last_client_update_at: Option<DateTime<Utc>>,
}

pub fn progress(order: &Order, wf: &Workflow, today: NaiveDate, policy: &HealthPolicy) -> Progress {
    let open: Vec<_> = order.milestones.iter().filter(|m| m.completed_at.is_none()).collect();
    let next = open.iter().min_by_key(|m| (m.planned_on, m.position));
    let total = order.milestones.len();
    let percent_complete = if total == 0 {
        if wf.is_terminal(&order.status) { 100 } else { 0 }
    } else {
        ((total - open.len()) * 100).checked_div(total).unwrap_or(0) as u8
    };
    let phase_id = wf
        .status(&order.status)
        .and_then(|s| s.phase.clone())
        .or_else(|| next.and_then(|m| m.phase.clone()));
    let phase = phase_id.map(|id| PhaseRef {
        name: wf.phase_name(&id).unwrap_or(&id).to_string(),
        id,
    });
    let awaits = wf.awaits_delivery(&order.status);
    let mut blockers: Vec<Blocker> = if awaits {
        open.iter()
            .filter(|m| m.planned_on < today)
            .map(|m| Blocker {
                kind: BlockerKind::OverdueMilestone,
                description: format!(
                    "{} is {} days overdue (planned {})",
                    m.name,
                    (today - m.planned_on).num_days(),
                    m.planned_on
                ),
                milestone_id: Some(m.id),
            })
            .collect()
    } else {
        Vec::new()
    };
    blockers.extend(order.open_exceptions.iter().map(|e| Blocker {
        kind: BlockerKind::OpenException,
        description: match e.expected_resolution_at {
            Some(at) => format!(
                "Exception: {} (expected resolution {})",
                e.cause,
                at.format("%Y-%m-%d %H:%M UTC")
            ),
            None => format!("Exception: {}", e.cause),
        },
        milestone_id: match e.subject {
            crate::follow_up::Subject::Milestone(id) => Some(id),
            crate::follow_up::Subject::Order => None,
        },
    }));
    blockers.extend(order.open_issues().map(|i| Blocker {
        kind: BlockerKind::OpenIssue,
        description: format!(
            "{} issue ({}): {} (expected resolution {})",
            i.severity.as_str(),
            i.kind.as_str(),
            i.description,
            i.expected_resolution_at.format("%Y-%m-%d %H:%M UTC")
        ),
        milestone_id: None,
    }));
    Progress {
        phase,
        percent_complete,
        next_milestone: next.map(|m| NextMilestone {
            id: m.id,
            key: m.key.clone(),
            name: m.name.clone(),
            planned_on: m.planned_on,
            days_left: (m.planned_on - today).num_days(),
        }),
        health: HealthInputs::of(order, wf).health(today, policy),
        blockers,
        last_client_update_at: order.last_client_update_at,
    }
}
