//! Email over SMTP. This module owns turning a rendered [`Email`] (subject, plain text, HTML, inline images,
//! attachments) into one MIME message with lettre and handing it to the organisation's SMTP server through a
//! pooled [`Mailer`]. It also owns [`SendError`], the verdict every delivery channel of this crate gives the
//! outbox worker: [`SendError::Permanent`] when retrying cannot help (a malformed address, a 5xx reply, a 4xx
//! from a webhook endpoint) and [`SendError::Transient`] when a later attempt may succeed (4xx SMTP replies,
//! refused connections, timeouts). The message keeps the caller's Message-ID, so a retried message carries the
//! same id as the attempt before it and the receiving side can recognise the duplicate. Nothing on the send
//! path unwraps or panics: one bad message fails alone and never stops a batch.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment as LettreAttachment, Body, Mailbox, Message, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Security {
    /// Plain SMTP, no TLS at all (a relay on loopback, a test server). Written `"none"`.
    #[serde(rename = "none")]
    None,
    /// Plain connection upgraded with STARTTLS, which is required: no credentials or mail travel unencrypted
    /// (usually port 587). Written `"starttls"`.
    #[serde(rename = "starttls", alias = "start_tls")]
    StartTls,
    /// TLS from the first byte, "SMTPS" (usually port 465). Written `"tls"`.
    #[serde(rename = "tls")]
    Tls,
}

/// Where and how to send email. Deserialises from the configuration file, e.g.
/// `{ host = "smtp.example.com", port = 587, security = "starttls", username = "...", password = "...",
/// from = "Ordertrail <noreply@example.com>" }`. `Debug` never prints the password.
#[derive(Clone, Deserialize)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// The From mailbox, `"Ordertrail <noreply@example.com>"` or `"noreply@example.com"`.
    pub from: String,
    /// Limit for the whole delivery of one message: connecting, TLS, login and the SMTP conversation.
    /// 0 counts as 1.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
}

/// The default of [`SmtpSettings::timeout_seconds`].
pub const DEFAULT_SMTP_TIMEOUT_SECONDS: u64 = 30;

fn default_timeout_seconds() -> u64 {
    DEFAULT_SMTP_TIMEOUT_SECONDS
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("timeout_seconds", &self.timeout_seconds)
            .finish()
    }
}

/// An image shown inside the HTML body, referenced there as `<img src="cid:{cid}">`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlineImage {
    /// Content-ID without angle brackets, e.g. `"timeline"`.
    pub cid: String,
    /// e.g. `"image/png"`.
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// A file attached to the message (an invoice PDF, a report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    /// e.g. `"application/pdf"`.
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// One rendered email, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email {
    /// The Message-ID without angle brackets, e.g. `"6f1c0d2e-...@ordertrail"`: printable ASCII with exactly
    /// one `@` and nothing on either side of it empty. Reuse it when retrying so the receiver sees the same id.
    pub message_id: String,
    /// Recipients, each `"Name <a@b.example>"` or `"a@b.example"`.
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    /// The HTML alternative; when empty the message carries the plain text only.
    pub html: String,
    pub inline_images: Vec<InlineImage>,
    pub attachments: Vec<Attachment>,
}

/// Why a message was not delivered, and whether trying again later may help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Retrying the same message cannot succeed (bad address, rejected by the server): give up and record it.
    #[error("permanent delivery failure: {0}")]
    Permanent(String),
    /// A later attempt may succeed (server busy or unreachable, timeout, rate limit): retry with back-off.
    #[error("transient delivery failure: {0}")]
    Transient(String),
}

impl SendError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Permanent(_))
    }

    /// The explanation without the permanent/transient prefix.
    pub fn message(&self) -> &str {
        match self {
            SendError::Permanent(m) | SendError::Transient(m) => m,
        }
    }
}

/// Sends [`Email`]s through one SMTP server. Cheap to clone: clones share one connection pool.
///
/// Every delivery runs in its own task under a deadline of [`SmtpSettings::timeout_seconds`] for the whole
/// conversation (lettre bounds only the connect). A caller that stops waiting (drops the future) does not cut
/// a conversation in half: the task finishes or meets its deadline on its own. When the deadline cuts one
/// off, the connection pool is replaced by a fresh one, so a connection left mid-conversation is never used
/// again (its replies would be read as the answers to the next message's commands).
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<MailerInner>,
}

struct MailerInner {
    settings: SmtpSettings,
    from: Mailbox,
    server: String,
    limit: Duration,
    /// The pooled transport and its generation (bumped each time a timed-out pool is replaced).
    transport: Mutex<(u64, AsyncSmtpTransport<Tokio1Executor>)>,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.inner.server)
            .field("from", &self.inner.from.to_string())
            .field("limit", &self.inner.limit)
            .finish()
    }
}

impl Mailer {
    /// Checks the settings (the From address must parse) and prepares a pooled transport. Connects lazily: a
    /// server that is down shows up as a [`SendError::Transient`] from [`Mailer::send`], not here.
    pub fn new(settings: &SmtpSettings) -> Result<Mailer, SendError> {
        crate::install_crypto_provider();
        let from: Mailbox = settings
            .from
            .trim()
            .parse()
            .map_err(|e| SendError::Permanent(format!("invalid from address {:?}: {e}", settings.from)))?;
        let transport = build_transport(settings)?;
        Ok(Mailer {
            inner: Arc::new(MailerInner {
                settings: settings.clone(),
                from,
                server: format!("{}:{}", settings.host.trim(), settings.port),
                limit: Duration::from_secs(settings.timeout_seconds.max(1)),
                transport: Mutex::new((0, transport)),
            }),
        })
    }

    /// The From mailbox every message carries.
    pub fn from(&self) -> &Mailbox {
        &self.inner.from
    }

    /// Builds the MIME message and delivers it. Every recipient is checked before anything is sent: one
    /// malformed address fails the whole message (permanently) and nothing goes out. Must be called within a
    /// tokio runtime.
    pub async fn send(&self, email: &Email) -> Result<(), SendError> {
        let message = build_message(&self.inner.from, email)?;
        let inner = Arc::clone(&self.inner);
        let result = match tokio::spawn(async move { inner.deliver(message).await }).await {
            Ok(result) => result,
            Err(e) => Err(SendError::Transient(format!(
                "SMTP delivery via {} failed: the delivery task ended: {e}",
                self.inner.server
            ))),
        };
        match &result {
            Ok(()) => {
                tracing::debug!(message_id = %email.message_id, server = %self.inner.server, "email sent");
            }
            Err(error) => {
                tracing::debug!(message_id = %email.message_id, server = %self.inner.server, %error, "email not sent");
            }
        }
        result
    }
}

impl MailerInner {
    fn current(&self) -> (u64, AsyncSmtpTransport<Tokio1Executor>) {
        let guard = self.transport.lock().unwrap_or_else(|p| p.into_inner());
        (guard.0, guard.1.clone())
    }

    async fn deliver(&self, message: Message) -> Result<(), SendError> {
        let (generation, transport) = self.current();
        match tokio::time::timeout(self.limit, transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify_smtp_error(&self.server, &e)),
            Err(_) => {
                self.replace_pool(generation);
                Err(SendError::Transient(format!(
                    "SMTP server {} did not finish the delivery within {} s",
                    self.server,
                    self.limit.as_secs()
                )))
            }
        }
    }

    /// Swaps in a fresh pool unless another timed-out delivery already did; the old pool is shut down in the
    /// background (briefly: connections that do not answer QUIT in time are simply closed).
    fn replace_pool(&self, generation: u64) {
        let Ok(fresh) = build_transport(&self.settings) else {
            return;
        };
        let old = {
            let mut guard = self.transport.lock().unwrap_or_else(|p| p.into_inner());
            if guard.0 != generation {
                return;
            }
            let old = std::mem::replace(&mut guard.1, fresh);
            guard.0 += 1;
            old
        };
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), old.shutdown()).await;
        });
    }
}

fn build_transport(settings: &SmtpSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
    let host = settings.host.trim();
    if host.is_empty() {
        return Err(SendError::Permanent("SMTP host is empty".to_owned()));
    }
    let timeout = Duration::from_secs(settings.timeout_seconds.max(1));
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(settings.port)
        .timeout(Some(timeout));
    builder = match settings.security {
        Security::None => builder.tls(Tls::None),
        Security::StartTls => builder.tls(Tls::Required(tls_parameters(host)?)),
        Security::Tls => builder.tls(Tls::Wrapper(tls_parameters(host)?)),
    };
    match (&settings.username, &settings.password) {
        (Some(user), Some(password)) => {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        (None, None) => {}
        _ => {
            return Err(SendError::Permanent(
                "SMTP username and password must be given together".to_owned(),
            ));
        }
    }
    Ok(builder.build())
}

fn tls_parameters(host: &str) -> Result<TlsParameters, SendError> {
    TlsParameters::new(host.to_owned())
        .map_err(|e| SendError::Permanent(format!("TLS set-up for SMTP host {host:?} failed: {e}")))
}

/// 5xx replies are permanent; 4xx replies and everything on the way there (refused connection, network,
/// timeout, TLS handshake, a garbled reply) are transient.
fn classify_smtp_error(server: &str, e: &lettre::transport::smtp::Error) -> SendError {
    if e.is_permanent() {
        SendError::Permanent(format!("SMTP server {server} rejected the message: {e}"))
    } else if e.is_timeout() {
        SendError::Transient(format!("SMTP server {server} timed out: {e}"))
    } else {
        SendError::Transient(format!("SMTP delivery via {server} failed: {e}"))
    }
}

/// Builds the lettre message: `multipart/mixed(multipart/related(multipart/alternative(text/plain,
/// text/html), inline images...), attachments...)`, leaving out each outer layer that would be empty.
pub(crate) fn build_message(from: &Mailbox, email: &Email) -> Result<Message, SendError> {
    let message_id = checked_message_id(&email.message_id)?;
    if email.to.is_empty() {
        return Err(SendError::Permanent(format!("message {message_id} has no recipients")));
    }
    let subject: String = email
        .subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut builder = Message::builder()
        .message_id(Some(format!("<{message_id}>")))
        .date(SystemTime::now())
        .from(from.clone())
        .subject(subject);
    for to in &email.to {
        let mailbox: Mailbox = to
            .trim()
            .parse()
            .map_err(|e| SendError::Permanent(format!("invalid recipient address {to:?}: {e}")))?;
        builder = builder.to(mailbox);
    }

    let text = SinglePart::plain(email.text.clone());
    let mut body = if email.html.is_empty() {
        MimeBody::Single(text)
    } else {
        MimeBody::Multi(
            MultiPart::alternative()
                .singlepart(text)
                .singlepart(SinglePart::html(email.html.clone())),
        )
    };
    if !email.inline_images.is_empty() {
        let mut related = body.into_multipart(MultiPart::related());
        for image in &email.inline_images {
            let cid = image.cid.trim().trim_start_matches('<').trim_end_matches('>');
            if cid.is_empty() || !cid.chars().all(|c| c.is_ascii_graphic()) {
                return Err(SendError::Permanent(format!(
                    "invalid Content-ID {:?} for an inline image",
                    image.cid
                )));
            }
            let content_type = parse_content_type(&image.content_type, "inline image", cid)?;
            related = related
                .singlepart(LettreAttachment::new_inline(cid.to_owned()).body(binary_body(&image.bytes), content_type));
        }
        body = MimeBody::Multi(related);
    }
    if !email.attachments.is_empty() {
        let mut mixed = body.into_multipart(MultiPart::mixed());
        for attachment in &email.attachments {
            let filename: String = attachment
                .filename
                .chars()
                .map(|c| if c.is_control() { '_' } else { c })
                .collect();
            let content_type = parse_content_type(&attachment.content_type, "attachment", &filename)?;
            mixed =
                mixed.singlepart(LettreAttachment::new(filename).body(binary_body(&attachment.bytes), content_type));
        }
        body = MimeBody::Multi(mixed);
    }
    let built = match body {
        MimeBody::Single(part) => builder.singlepart(part),
        MimeBody::Multi(part) => builder.multipart(part),
    };
    built.map_err(|e| SendError::Permanent(format!("message {message_id} cannot be built: {e}")))
}

/// The body of a MIME message while it is being wrapped layer by layer.
enum MimeBody {
    Single(SinglePart),
    Multi(MultiPart),
}

impl MimeBody {
    /// Puts this body as the first part of a new multipart of the given kind.
    fn into_multipart(self, outer: lettre::message::MultiPartBuilder) -> MultiPart {
        match self {
            MimeBody::Single(part) => outer.singlepart(part),
            MimeBody::Multi(part) => outer.multipart(part),
        }
    }
}

/// Images and attachments always travel as base64, so they arrive byte for byte (lettre would send ASCII-only
/// bytes as 7bit, where line endings are not guaranteed to survive).
fn binary_body(bytes: &[u8]) -> Body {
    match Body::new_with_encoding(bytes.to_vec(), ContentTransferEncoding::Base64) {
        Ok(body) => body,
        // Base64 accepts any bytes; lettre returns the buffer only for 7bit/8bit. Fall back to its choice.
        Err(bytes) => Body::new(bytes),
    }
}

fn parse_content_type(value: &str, what: &str, name: &str) -> Result<ContentType, SendError> {
    ContentType::parse(value.trim())
        .map_err(|e| SendError::Permanent(format!("invalid content type {value:?} for {what} {name:?}: {e}")))
}

/// Accepts `id@domain` (angle brackets are tolerated and stripped): printable ASCII, no brackets, one `@`.
fn checked_message_id(id: &str) -> Result<&str, SendError> {
    let id = id.trim();
    let id = id
        .strip_prefix('<')
        .and_then(|rest| rest.strip_suffix('>'))
        .unwrap_or(id);
    let valid = id
        .chars()
        .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | '\\'))
        && matches!(id.split_once('@'), Some((left, right)) if !left.is_empty() && !right.is_empty() && !right.contains('@'));
    if valid {
        Ok(id)
    } else {
        Err(SendError::Permanent(format!(
            "invalid Message-ID {id:?}: expected printable ASCII of the form id@domain"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email {
            message_id: "abc@ordertrail".to_owned(),
            to: vec!["Ann <ann@example.com>".to_owned()],
            subject: "Hello".to_owned(),
            text: "text".to_owned(),
            html: String::new(),
            inline_images: vec![],
            attachments: vec![],
        }
    }

    fn from() -> Mailbox {
        "Ordertrail <noreply@example.com>"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn message_ids_are_checked() {
        assert_eq!(checked_message_id("a@b").ok(), Some("a@b"));
        assert_eq!(checked_message_id("<a@b>").ok(), Some("a@b"));
        for bad in ["", "ab", "@b", "a@", "a b@c", "a@b@c", "a<@b", "a@b\r\nX: y"] {
            assert!(checked_message_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn plain_text_only_is_a_single_part() {
        let message = build_message(&from(), &email()).unwrap_or_else(|e| panic!("{e}"));
        let raw = String::from_utf8_lossy(&message.formatted()).into_owned();
        assert!(raw.contains("Message-ID: <abc@ordertrail>"), "{raw}");
        assert!(raw.contains("Content-Type: text/plain"), "{raw}");
        assert!(!raw.contains("multipart/"), "{raw}");
    }

    #[test]
    fn bad_inputs_are_permanent() {
        let mut e = email();
        e.to.push("not an address".to_owned());
        let err = build_message(&from(), &e).err();
        assert!(
            matches!(&err, Some(SendError::Permanent(m)) if m.contains("not an address")),
            "{err:?}"
        );
        let mut e = email();
        e.to.clear();
        assert!(build_message(&from(), &e).is_err_and(|e| e.is_permanent()));
        let mut e = email();
        e.attachments.push(Attachment {
            filename: "a.pdf".to_owned(),
            content_type: "no type".to_owned(),
            bytes: vec![1],
        });
        assert!(build_message(&from(), &e).is_err_and(|e| e.is_permanent()));
    }

    #[test]
    fn settings_deserialise_and_hide_the_password() {
        let settings: SmtpSettings = serde_json::from_value(serde_json::json!({
            "host": "smtp.example.com", "port": 587, "security": "starttls",
            "username": "u", "password": "hunter2", "from": "x@example.com"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.security, Security::StartTls);
        assert_eq!(settings.timeout_seconds, DEFAULT_SMTP_TIMEOUT_SECONDS);
        assert!(!format!("{settings:?}").contains("hunter2"));
        for (text, security) in [("none", Security::None), ("tls", Security::Tls)] {
            let parsed: Security = serde_json::from_value(serde_json::json!(text)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(parsed, security);
        }
        let bad = SmtpSettings {
            from: "not an address".to_owned(),
            ..settings
        };
        assert!(Mailer::new(&bad).is_err_and(|e| e.is_permanent() && e.message().contains("not an address")));
    }
}
