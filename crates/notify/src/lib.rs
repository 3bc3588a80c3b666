//! Delivery of notifications: what the outbox holds becomes messages people read. `templates` renders a
//! message kind in the recipient's language as a subject, plain text and HTML (embedded defaults, overridable
//! per organisation from a folder); `timeline` draws an order's milestones as a PNG for the weekly update;
//! `email` sends over SMTP; `webhook` posts Slack-compatible messages and signed order events. Nothing here
//! knows the database: the server's outbox worker claims, calls these, and records what happened.

pub mod email;
pub mod templates;
pub mod timeline;
pub mod webhook;

#[cfg(feature = "testing")]
pub mod testing;
