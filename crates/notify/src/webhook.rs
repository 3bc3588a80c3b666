//! Outbound HTTP: Slack-compatible incoming-webhook messages and signed order events for other systems. This
//! module owns the signature scheme (`X-Ordertrail-Signature: sha256=<hex HMAC-SHA256(secret,
//! "{timestamp}." + body)>`, with the timestamp in `X-Ordertrail-Timestamp` and an id for receiver-side dedupe
//! in `X-Ordertrail-Event-Id`), its constant-time verification, and the [`WebhookClient`] that posts and
//! classifies the answer for the outbox worker: 2xx delivered; 408, 429, 5xx and network trouble
//! [`SendError::Transient`]; any other status (other 4xx, and 3xx: redirects are not followed, so a signed body
//! is never replayed elsewhere) [`SendError::Permanent`]. Errors never contain the URL's path or query, which
//! for Slack-style webhooks is the secret.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use sha2::Sha256;

pub use crate::email::SendError;

/// Header carrying `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Ordertrail-Signature";
/// Header carrying the unix seconds that were signed.
pub const TIMESTAMP_HEADER: &str = "X-Ordertrail-Timestamp";
/// Header carrying the event id: the same on every retry of one event, so receivers can drop duplicates.
pub const EVENT_ID_HEADER: &str = "X-Ordertrail-Event-Id";
/// The request timeout [`WebhookClient::new`] is usually given.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Option<HmacSha256> {
    // HMAC takes keys of any length, so this never fails; no panic path all the same.
    let mut mac = HmacSha256::new_from_slice(secret).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// `"sha256=" + hex(HMAC-SHA256(secret, "{timestamp}." + body))`, the value of [`SIGNATURE_HEADER`].
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    match mac(secret, timestamp, body) {
        Some(mac) => format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        None => String::new(),
    }
}

/// Whether `header` (a [`SIGNATURE_HEADER`] value) signs `timestamp` and `body` with `secret`. Compares in
/// constant time. Receivers should also refuse timestamps far from their clock (replays); that is theirs to do.
pub fn verify(secret: &[u8], timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(hex_digest) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    match mac(secret, timestamp, body) {
        Some(mac) => mac.verify_slice(&expected).is_ok(),
        None => false,
    }
}

/// Posts webhooks. Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct WebhookClient {
    client: reqwest::Client,
}

impl WebhookClient {
    /// A client whose every request (connect, send, answer) must finish within `timeout`
    /// ([`DEFAULT_WEBHOOK_TIMEOUT`] is the usual value). Redirects are not followed.
    pub fn new(timeout: Duration) -> Result<WebhookClient, SendError> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Ordertrail/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SendError::Permanent(format!("the webhook HTTP client cannot be built: {e}")))?;
        Ok(WebhookClient { client })
    }

    /// POSTs `body` (JSON) to `url`, signed with `secret` at `timestamp` (unix seconds), with the headers
    /// [`SIGNATURE_HEADER`], [`TIMESTAMP_HEADER`], [`EVENT_ID_HEADER`] and `Content-Type: application/json`.
    /// Retries of one event must pass the same `event_id` (a new `timestamp` is fine: it is signed).
    pub async fn post_signed(
        &self,
        url: &str,
        secret: &[u8],
        event_id: &str,
        body: &[u8],
        timestamp: i64,
    ) -> Result<(), SendError> {
        let target = checked_url(url)?;
        let event_header = HeaderValue::from_str(event_id)
            .map_err(|_| SendError::Permanent(format!("event id {event_id:?} cannot be sent as an HTTP header")))?;
        let request = self
            .client
            .post(target.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(secret, timestamp, body))
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(EVENT_ID_HEADER, event_header)
            .body(body.to_vec());
        self.execute(request, &target).await
    }

    /// Posts a Slack-compatible incoming-webhook message, `{"text": text}`.
    pub async fn post_slack(&self, url: &str, text: &str) -> Result<(), SendError> {
        let target = checked_url(url)?;
        let body = serde_json::json!({ "text": text }).to_string();
        let request = self
            .client
            .post(target.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        self.execute(request, &target).await
    }

    async fn execute(&self, request: reqwest::RequestBuilder, target: &reqwest::Url) -> Result<(), SendError> {
        let where_to = origin(target);
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let e = e.without_url();
                let error = if e.is_builder() {
                    SendError::Permanent(format!("webhook request to {where_to} is invalid: {e}"))
                } else if e.is_timeout() {
                    SendError::Transient(format!("webhook to {where_to} timed out: {e}"))
                } else {
                    SendError::Transient(format!("webhook to {where_to} failed: {}", error_chain(&e)))
                };
                tracing::debug!(target = %where_to, error = %error, "webhook not delivered");
                return Err(error);
            }
        };
        let status = response.status();
        if status.is_success() {
            tracing::debug!(target = %where_to, %status, "webhook delivered");
            return Ok(());
        }
        // The first 200 characters of the answer explain most refusals; read no more than needed for them.
        let mut head = Vec::new();
        while head.len() < 1024 {
            match response.chunk().await {
                Ok(Some(chunk)) => head.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        let text: String = String::from_utf8_lossy(&head).chars().take(200).collect();
        let message = format!("webhook to {where_to} answered {status}: {}", text.trim());
        let error = if is_transient_status(status) {
            SendError::Transient(message)
        } else {
            SendError::Permanent(message)
        };
        tracing::debug!(target = %where_to, %status, error = %error, "webhook not delivered");
        Err(error)
    }
}

fn is_transient_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

fn checked_url(url: &str) -> Result<reqwest::Url, SendError> {
    let parsed =
        reqwest::Url::parse(url.trim()).map_err(|e| SendError::Permanent(format!("invalid webhook URL: {e}")))?;
    match parsed.scheme() {
        "http" | "https" if parsed.host().is_some() => Ok(parsed),
        scheme => Err(SendError::Permanent(format!(
            "invalid webhook URL: scheme {scheme:?} with host {:?}; expected http(s)://host/...",
            parsed.host_str().unwrap_or("")
        ))),
    }
}

/// `scheme://host:port` only: the path of a webhook URL is often its secret.
fn origin(url: &reqwest::Url) -> String {
    url.origin().ascii_serialization()
}

/// The error and its sources ("error sending request: connection refused"), which reqwest's Display omits.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trips_and_rejects_tampering() {
        let sig = signature(b"k", 5, b"{}");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
        assert!(verify(b"k", 5, b"{}", &sig));
        assert!(verify(
            b"k",
            5,
            b"{}",
            &sig.to_uppercase().replace("SHA256=", "sha256=")
        ));
        assert!(!verify(b"k", 5, b"{}", &sig[7..]));
        assert!(!verify(b"k", 5, b"{}", "sha256=zz"));
        assert!(!verify(b"k", 5, b"{}", ""));
        assert!(!verify(b"k", 5, b"{}", &sig[..sig.len() - 2]));
    }

    #[test]
    fn statuses_are_classified() {
        for code in [408, 429, 500, 502, 503] {
            assert!(
                is_transient_status(StatusCode::from_u16(code).unwrap_or_default()),
                "{code}"
            );
        }
        for code in [301, 400, 401, 403, 404, 410, 422] {
            assert!(
                !is_transient_status(StatusCode::from_u16(code).unwrap_or_default()),
                "{code}"
            );
        }
    }

    #[test]
    fn urls_are_checked_and_errors_keep_the_path_out() {
        assert!(checked_url("ftp://example.com/x").is_err_and(|e| e.is_permanent()));
        assert!(checked_url("not a url").is_err_and(|e| e.is_permanent()));
        let url = checked_url("https://hooks.example.com/services/T0/B0/SECRET").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(origin(&url), "https://hooks.example.com");
    }
}
