//! Follow-up records (R34, seed 004's tracking table): every contact and progress note on an order, with the
//! channel, the counterpart, progress details, the next step, exceptions and the client's feedback.

use crate::error::{DomainError, MAX_NAME, MAX_TEXT, Problems};
use crate::ids::{FollowUpId, MilestoneId, OrderId, UserId};
use crate::order::Order;
use crate::role::Role;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Phone,
    Meeting,
    Chat,
    Portal,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// We contacted them.
    Outbound,
    /// They contacted us.
    Inbound,
    /// A note inside the team (a department reporting progress to the order lead).
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CounterpartKind {
    Customer,
    Supplier,
    Department,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Counterpart {
    pub kind: CounterpartKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// R34: in progress, done, or an exception pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpStatus {
    InProgress,
    Done,
    ExceptionPending,
}

impl FollowUpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FollowUpStatus::InProgress => "in_progress",
            FollowUpStatus::Done => "done",
            FollowUpStatus::ExceptionPending => "exception_pending",
        }
    }
}

/// The exception part of a follow-up: cause, impact, expected resolution (R34, R36).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExceptionNote {
    pub cause: String,
    pub impact: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_resolution_at: Option<DateTime<Utc>>,
}

/// What a follow-up is about: the order as a whole or one milestone. A later follow-up on the same subject
/// clears an exception reported earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    Order,
    Milestone(MilestoneId),
}

/// A follow-up as logged through the API.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFollowUp {
    /// When the contact happened (default: now). Not in the future.
    #[serde(default)]
    pub occurred_at: Option<DateTime<Utc>>,
    pub channel: Channel,
    pub direction: Direction,
    pub counterpart: Counterpart,
    #[serde(default)]
    pub milestone_id: Option<MilestoneId>,
    pub status: FollowUpStatus,
    #[serde(default)]
    pub summary: Option<String>,
    /// E.g. "80% produced, rest tomorrow".
    #[serde(default)]
    pub progress_details: Option<String>,
    #[serde(default)]
    pub next_step: Option<String>,
    #[serde(default)]
    pub next_step_due: Option<NaiveDate>,
    /// Required when the status is `exception_pending`.
    #[serde(default)]
    pub exception: Option<ExceptionNote>,
    #[serde(default)]
    pub client_feedback: Option<String>,
    #[serde(default)]
    pub attachments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FollowUp {
    pub id: FollowUpId,
    pub order_id: OrderId,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: UserId,
    pub recorded_as: Role,
    pub channel: Channel,
    pub direction: Direction,
    pub counterpart: Counterpart,
    pub milestone_id: Option<MilestoneId>,
    pub status: FollowUpStatus,
    pub summary: Option<String>,
    pub progress_details: Option<String>,
    pub next_step: Option<String>,
    pub next_step_due: Option<NaiveDate>,
    pub exception: Option<ExceptionNote>,
    pub client_feedback: Option<String>,
    pub attachments: Vec<String>,
}

impl FollowUp {
    pub fn subject(&self) -> Subject {
        self.milestone_id.map_or(Subject::Order, Subject::Milestone)
    }

    /// An outbound contact with the customer: counts as the order's last client update (R12).
    pub fn is_client_update(&self) -> bool {
        self.direction == Direction::Outbound && self.counterpart.kind == CounterpartKind::Customer
    }
}

impl NewFollowUp {
    /// Checks the record against the order and makes it a follow-up by `user` acting as `role` at `now`.
    pub fn check(
        self,
        order: &Order,
        id: FollowUpId,
        user: UserId,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<FollowUp, DomainError> {
        let mut p = Problems::new();
        let texts = [
            ("summary", &self.summary),
            ("progress_details", &self.progress_details),
            ("next_step", &self.next_step),
            ("client_feedback", &self.client_feedback),
        ];
        for (field, value) in texts {
            p.optional_text(field, value.as_deref(), MAX_TEXT);
        }
        let has_content = texts
            .iter()
            .any(|(_, v)| v.as_deref().is_some_and(|t| !t.trim().is_empty()))
            || self.exception.is_some();
        if !has_content {
            p.add(
                "summary",
                "a follow-up needs a summary, progress details, next step, client feedback or an exception",
            );
        }
        p.optional_text("counterpart.name", self.counterpart.name.as_deref(), MAX_NAME);
        let occurred_at = self.occurred_at.unwrap_or(now);
        if occurred_at > now + TimeDelta::minutes(5) {
            p.add("occurred_at", "must not be in the future");
        }
        if let Some(mid) = self.milestone_id
            && order.milestone(mid).is_none()
        {
            p.add("milestone_id", "is not a milestone of this order");
        }
        match (&self.exception, self.status) {
            (None, FollowUpStatus::ExceptionPending) => p.add(
                "exception",
                "an exception_pending follow-up needs the exception's cause and impact",
            ),
            (Some(e), _) => {
                p.text("exception.cause", &e.cause, MAX_TEXT);
                p.text("exception.impact", &e.impact, MAX_TEXT);
            }
            (None, _) => {}
        }
        if self.attachments.len() > 20 {
            p.add("attachments", "at most 20 attachments");
        }
        for (i, a) in self.attachments.iter().enumerate() {
            p.text(&format!("attachments[{i}]"), a, 2000);
        }
        p.into_result()?;
        Ok(FollowUp {
            id,
            order_id: order.id,
            occurred_at,
            recorded_at: now,
            recorded_by: user,
            recorded_as: role,
            channel: self.channel,
            direction: self.direction,
            counterpart: self.counterpart,
            milestone_id: self.milestone_id,
            status: self.status,
            summary: self.summary,
            progress_details: self.progress_details,
            next_step: self.next_step,
            next_step_due: self.next_step_due,
            exception: self.exception,
            client_feedback: self.client_feedback,
            attachments: self.attachments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::FollowUpStatus;

    #[test]
    fn a_status_name_is_its_json_name() {
        for status in [
            FollowUpStatus::InProgress,
            FollowUpStatus::Done,
            FollowUpStatus::ExceptionPending,
        ] {
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{}\"", status.as_str())
            );
        }
    }
}
