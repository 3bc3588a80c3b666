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

/// Installs rustls' ring crypto provider as the process default, once. The workspace builds rustls with ring
/// only (lettre's TLS uses it; reqwest is built without a provider of its own), and reqwest needs a default
/// provider installed before a client is built. Safe to call any number of times, from anywhere: a provider
/// installed earlier (by this function or by the program) is left in place.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider is already the default: that one stays, which is what we want.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
