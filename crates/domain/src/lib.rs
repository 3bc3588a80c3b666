//! Ordertrail's domain: the rules of orders, workflows, milestones and follow-ups, as pure functions.
//!
//! Nothing here does I/O, reads the clock or draws random numbers: callers pass `now`, ids and loaded state,
//! and get back events or typed refusals. Storage applies the events; HTTP and the CLI only translate.
//!
//! - [`workflow`]: workflow definitions (TOML), their checks and guards; the bundled presets.
//! - [`order`]: the order aggregate and how events change it; [`decide`]: the commands that make events.
//! - [`event`]: the events and the hash chain of the audit log.
//! - [`progress`]: derived fields (phase, % complete, next milestone, health, blockers).
//! - [`access`]: who may see which order and which of its fields.
//! - [`issue`], [`change_order`], [`payment`]: exceptions and their escalation, change orders, the payment
//!   schedule and dunning (issue 4; being written).

pub mod access;
pub mod change_order;
pub mod customer;
pub mod decide;
pub mod error;
pub mod event;
pub mod follow_through;
pub mod follow_up;
pub mod ids;
pub mod issue;
pub mod money;
pub mod number;
pub mod order;
pub mod payment;
pub mod progress;
pub mod role;
pub mod tracking;
pub mod workflow;

pub use error::DomainError;
pub use role::Role;
