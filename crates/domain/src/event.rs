//! Events: every change is one, recorded with who made it, in which role, when and why. Each stream (an order,
//! a customer, the organisation's users) has a sequence and a hash chain ([`chain_hash`]): each event's hash
//! covers the previous one's, so editing or deleting a row breaks the chain from there on.

use crate::change_order::{ChangeOrderChange, ChangeOrderId};
use crate::customer::{Customer, User};
use crate::follow_through::{Delivery, MessageKind, QueuedMessage};
use crate::follow_up::FollowUp;
use crate::ids::{EventId, MilestoneId, TokenId, UserId};
use crate::issue::{IssueChange, IssueId};
use crate::order::{ChecklistItem, Evidence, Order};
use crate::payment::PaymentChange;
use crate::role::Role;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// A person, acting in one of their roles (R18).
    User { id: UserId, role: Role },
    /// The operator at the command line or the server's own schedule.
    System,
}

impl Actor {
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Actor::User { id, .. } => Some(*id),
            Actor::System => None,
        }
    }

    /// The acting role as stored: a role name, or `system`.
    pub fn role_name(&self) -> &'static str {
        match self {
            Actor::User { role, .. } => role.as_str(),
            Actor::System => "system",
        }
    }
}

/// What happened to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderEvent {
    OrderCreated {
        order: Box<Order>,
    },
    StatusChanged {
        from: String,
        to: String,
        fields: BTreeMap<String, String>,
    },
    MilestoneReplanned {
        milestone_id: MilestoneId,
        from: NaiveDate,
        to: NaiveDate,
    },
    MilestoneOwnerChanged {
        milestone_id: MilestoneId,
        from: Option<UserId>,
        to: Option<UserId>,
    },
    ChecklistUpdated {
        milestone_id: MilestoneId,
        checklist: Vec<ChecklistItem>,
    },
    MilestoneCompleted {
        milestone_id: MilestoneId,
        completed_at: DateTime<Utc>,
        completed_by: UserId,
        evidence: Evidence,
        checklist: Vec<ChecklistItem>,
    },
    FollowUpLogged {
        follow_up: Box<FollowUp>,
    },
    /// Something happened to one of the order's issues (opened, re-assessed, options, client told or decided,
    /// resolved).
    IssueChanged {
        issue_id: IssueId,
        change: IssueChange,
    },
    /// A step of one of the order's change orders (drafted, estimated, approved, sent, answered, withdrawn).
    /// The client's approval carries what it does to the order (amount, promised date, milestones).
    ChangeOrderChanged {
        change_order_id: ChangeOrderId,
        change: ChangeOrderChange,
    },
    /// The payment schedule moved: a trigger set due dates, a payment was recorded, a change order changed the
    /// amounts, a dunning step was done (R8, R9, R15).
    PaymentChanged {
        change: PaymentChange,
    },
    /// The scheduler queued a message (a reminder, a client update...) for the outbox (R3, R33, R35).
    MessageQueued {
        message: QueuedMessage,
    },
    /// What became of a message of the order: sent, a failed try, dropped. "Why and when was this sent" is
    /// answered on the order's timeline.
    MessageDelivered {
        kind: MessageKind,
        dedupe_key: String,
        delivery: Delivery,
    },
}

impl OrderEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            OrderEvent::OrderCreated { .. } => "order_created",
            OrderEvent::StatusChanged { .. } => "status_changed",
            OrderEvent::MilestoneReplanned { .. } => "milestone_replanned",
            OrderEvent::MilestoneOwnerChanged { .. } => "milestone_owner_changed",
            OrderEvent::ChecklistUpdated { .. } => "checklist_updated",
            OrderEvent::MilestoneCompleted { .. } => "milestone_completed",
            OrderEvent::FollowUpLogged { .. } => "follow_up_logged",
            OrderEvent::IssueChanged { change, .. } => match change {
                IssueChange::Opened { .. } => "issue_opened",
                IssueChange::ImpactChanged { .. } => "issue_impact_changed",
                IssueChange::SeverityChanged { .. } => "issue_severity_changed",
                IssueChange::OptionsProposed { .. } => "issue_options_proposed",
                IssueChange::ClientTold { .. } => "issue_client_told",
                IssueChange::ClientDecided { .. } => "issue_client_decided",
                IssueChange::Resolved { .. } => "issue_resolved",
            },
            OrderEvent::ChangeOrderChanged { change, .. } => match change {
                ChangeOrderChange::Drafted { .. } => "change_order_drafted",
                ChangeOrderChange::CostEstimated { .. } => "change_order_cost_estimated",
                ChangeOrderChange::TimelineEstimated { .. } => "change_order_timeline_estimated",
                ChangeOrderChange::ApprovedInternally { .. } => "change_order_approved_internally",
                ChangeOrderChange::SentToClient { .. } => "change_order_sent_to_client",
                ChangeOrderChange::ClientApproved { .. } => "change_order_client_approved",
                ChangeOrderChange::ClientDeclined { .. } => "change_order_client_declined",
                ChangeOrderChange::Withdrawn { .. } => "change_order_withdrawn",
            },
            OrderEvent::PaymentChanged { change } => match change {
                PaymentChange::ContractSigned { .. } => "payment_contract_signed",
                PaymentChange::MilestoneCompleted { .. } => "payment_milestone_reached",
                PaymentChange::Delivered { .. } => "payment_delivery_reached",
                PaymentChange::Cancelled { .. } => "payment_schedule_cancelled",
                PaymentChange::PaymentRecorded { .. } => "payment_recorded",
                PaymentChange::ChangeOrderApplied { .. } => "payment_change_order_applied",
                PaymentChange::Dunning { .. } => "dunning_step",
            },
            OrderEvent::MessageQueued { .. } => "message_queued",
            OrderEvent::MessageDelivered { delivery, .. } => match delivery {
                Delivery::Sent { .. } => "message_sent",
                Delivery::Failed { .. } => "message_failed",
                Delivery::Dropped { .. } => "message_dropped",
            },
        }
    }
}

/// What happened to a customer record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CustomerEvent {
    CustomerCreated { customer: Customer },
}

/// What happened to the organisation's people and access.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrgEvent {
    UserAdded {
        user: User,
    },
    /// Only the SHA-256 of the token is kept; the token itself is shown once.
    TokenIssued {
        token_id: TokenId,
        user_id: UserId,
        token_hash: String,
    },
}

/// The stream the organisation's own events (users, tokens) are chained in.
pub const ORG_STREAM: Uuid = Uuid::nil();

/// An event about to be appended: the payload plus who, when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent<P> {
    pub id: EventId,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    /// Why, in the actor's words (a transition's note, a replan's reason).
    pub reason: Option<String>,
    pub payload: P,
}

/// The hash every chain starts from.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The stored facts of one event that its hash covers.
#[derive(Debug, Clone, Copy)]
pub struct ChainLink<'a> {
    pub stream_id: Uuid,
    pub seq: i64,
    pub event_id: Uuid,
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub acting_role: &'a str,
    pub kind: &'a str,
    pub reason: Option<&'a str>,
    pub payload: &'a str,
}

/// `sha256(prev_hash, then each field length-prefixed)`, as lowercase hex. Times are hashed as RFC 3339 with
/// microseconds, so they must be stored with at most microsecond precision (see [`truncate_to_micros`]).
pub fn chain_hash(prev_hash: &str, link: &ChainLink<'_>) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(prev_hash.as_bytes());
    field(link.stream_id.as_bytes());
    field(&link.seq.to_be_bytes());
    field(link.event_id.as_bytes());
    field(link.at.to_rfc3339_opts(SecondsFormat::Micros, true).as_bytes());
    field(link.actor_id.map(|id| *id.as_bytes()).unwrap_or_default().as_slice());
    field(link.acting_role.as_bytes());
    field(link.kind.as_bytes());
    match link.reason {
        None => field(b"-"),
        Some(reason) => field(format!("+{reason}").as_bytes()),
    }
    field(link.payload.as_bytes());
    hex::encode(h.finalize())
}

/// Drops sub-microsecond precision so a time survives a round trip through either database unchanged.
pub fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_changes_when_any_covered_fact_changes() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let link = ChainLink {
            stream_id: Uuid::from_u128(1),
            seq: 1,
            event_id: Uuid::from_u128(2),
            at,
            actor_id: Some(Uuid::from_u128(3)),
            acting_role: "account_manager",
            kind: "status_changed",
            reason: Some("ok"),
            payload: "{}",
        };
        let base = chain_hash(GENESIS_HASH, &link);
        assert_eq!(base.len(), 64);
        assert_eq!(base, chain_hash(GENESIS_HASH, &link));
        assert_ne!(base, chain_hash(&base, &link));
        assert_ne!(base, chain_hash(GENESIS_HASH, &ChainLink { seq: 2, ..link }));
        assert_ne!(
            base,
            chain_hash(
                GENESIS_HASH,
                &ChainLink {
                    acting_role: "admin",
                    ..link
                }
            )
        );
        assert_ne!(base, chain_hash(GENESIS_HASH, &ChainLink { payload: "{ }", ..link }));
        assert_ne!(base, chain_hash(GENESIS_HASH, &ChainLink { reason: None, ..link }));
        assert_ne!(
            base,
            chain_hash(
                GENESIS_HASH,
                &ChainLink {
                    at: at + chrono::TimeDelta::microseconds(1),
                    ..link
                }
            )
        );
    }
}
