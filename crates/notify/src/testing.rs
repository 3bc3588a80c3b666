//! Real delivery endpoints on loopback for tests (feature `testing`): [`SmtpSink`], an SMTP server that keeps
//! every message it accepts, and [`WebhookReceiver`], an HTTP server that records every request and checks its
//! signature. This module owns those two servers and the small MIME reader ([`ReceivedMail`]) that lets a test
//! look at what really went over the wire: headers, RFC 2047 subjects, parts decoded from base64 or
//! quoted-printable. It is written for lettre's output (and well-formed MIME generally), not as a general mail
//! parser. This crate's tests, the server's tests and long simulations share it; nothing here is mocked: mail
//! goes through lettre, TCP and aiosmtpd, webhooks through reqwest, TCP and axum.
//!
//! The SMTP sink runs Debian's `/usr/bin/python3` (override with the `ORDERTRAIL_SMTP_SINK_PYTHON` environment
//! variable) with the `python3-aiosmtpd` package; the first `python3` on PATH may be a build that cannot see
//! Debian's modules.
//!
//! ```no_run
//! # async fn demo() -> Result<(), String> {
//! use ordertrail_notify::testing::SmtpSink;
//! let sink = SmtpSink::start().await?;
//! let mailer = ordertrail_notify::email::Mailer::new(&sink.settings()).map_err(|e| e.to_string())?;
//! // ... send ...
//! let mails = sink.wait_for(1, std::time::Duration::from_secs(5)).await;
//! assert_eq!(mails[0].subject, "Your order shipped");
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

pub use axum::http::StatusCode;

use crate::email::{Security, SmtpSettings};
use crate::webhook;

const SINK_SCRIPT: &str = include_str!("smtp_sink.py");
const DEFAULT_PYTHON: &str = "/usr/bin/python3";
const PYTHON_ENV: &str = "ORDERTRAIL_SMTP_SINK_PYTHON";
const START_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------------------------------------
// SMTP sink
// ---------------------------------------------------------------------------------------------------------

/// A real SMTP server (aiosmtpd) on 127.0.0.1 with a free port, storing each accepted message. Killed when
/// dropped; it also exits by itself if the test process dies (it watches its stdin).
#[derive(Debug)]
pub struct SmtpSink {
    port: u16,
    // Field order is drop order: the process goes first, then its files.
    _child: Child,
    _stdin: ChildStdin,
    mail_dir: PathBuf,
    control_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts the server and waits (up to 20 s) until it listens. Errors say what to install when Python or
    /// aiosmtpd is missing.
    pub async fn start() -> Result<SmtpSink, String> {
        let dir = tempfile::Builder::new()
            .prefix("ordertrail-smtp-sink-")
            .tempdir()
            .map_err(|e| format!("SMTP sink: cannot create a temporary directory: {e}"))?;
        let script = dir.path().join("smtp_sink.py");
        let mail_dir = dir.path().join("mail");
        let control_file = dir.path().join("failure");
        let stderr_file = dir.path().join("stderr.log");
        std::fs::write(&script, SINK_SCRIPT)
            .map_err(|e| format!("SMTP sink: cannot write {}: {e}", script.display()))?;
        std::fs::create_dir(&mail_dir).map_err(|e| format!("SMTP sink: cannot create {}: {e}", mail_dir.display()))?;
        let stderr = std::fs::File::create(&stderr_file)
            .map_err(|e| format!("SMTP sink: cannot create {}: {e}", stderr_file.display()))?;

        let python = std::env::var(PYTHON_ENV).unwrap_or_else(|_| DEFAULT_PYTHON.to_owned());
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(&mail_dir)
            .arg(&control_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!(
                    "SMTP sink: cannot run {python}: {e}; install python3 and python3-aiosmtpd \
                     (apt-get install -y python3-aiosmtpd) or set {PYTHON_ENV}"
                )
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("SMTP sink: the server's stdin/stdout were not captured".to_owned());
        };

        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(START_TIMEOUT, async {
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        let line = line.trim();
                        if let Some(port) = line.strip_prefix("READY ") {
                            return port
                                .trim()
                                .parse::<u16>()
                                .map_err(|e| format!("bad READY line {line:?}: {e}"));
                        }
                        if line == "MISSING aiosmtpd" {
                            return Err(format!(
                                "{python} cannot import aiosmtpd: install python3-aiosmtpd \
                                 (apt-get install -y python3-aiosmtpd)"
                            ));
                        }
                    }
                    Ok(None) => return Err("the server exited before it was ready".to_owned()),
                    Err(e) => return Err(format!("cannot read the server's output: {e}")),
                }
            }
        })
        .await;
        let port = match ready {
            Ok(Ok(port)) => port,
            Ok(Err(e)) => {
                return Err(format!("SMTP sink: {e}{}", stderr_tail(&stderr_file)));
            }
            Err(_) => {
                return Err(format!(
                    "SMTP sink: not ready within {} s{}",
                    START_TIMEOUT.as_secs(),
                    stderr_tail(&stderr_file)
                ));
            }
        };
        Ok(SmtpSink {
            port,
            _child: child,
            _stdin: stdin,
            mail_dir,
            control_file,
            _dir: dir,
        })
    }

    /// Starts a sink that answers every RCPT and DATA with `code` (400..=599), e.g. 451 (transient) or 550
    /// (permanent). [`SmtpSink::fail_with`]`(None)` makes it accept mail again.
    pub async fn start_failing(code: u16) -> Result<SmtpSink, String> {
        let sink = SmtpSink::start().await?;
        sink.fail_with(Some(code))?;
        Ok(sink)
    }

    /// From now on answer every RCPT and DATA with `code` (400..=599), or, with `None`, accept mail again.
    /// Takes effect for the next command, also on connections already open.
    pub fn fail_with(&self, code: Option<u16>) -> Result<(), String> {
        match code {
            None => match std::fs::remove_file(&self.control_file) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(format!("SMTP sink: cannot clear the failure mode: {e}")),
            },
            Some(code) if (400..=599).contains(&code) => {
                let enhanced = if code < 500 { "4.3.0" } else { "5.7.1" };
                let reply = format!("{code} {enhanced} Ordertrail SMTP sink: failure requested by the test\n");
                let tmp = self.control_file.with_extension("tmp");
                std::fs::write(&tmp, reply)
                    .and_then(|()| std::fs::rename(&tmp, &self.control_file))
                    .map_err(|e| format!("SMTP sink: cannot set the failure mode: {e}"))
            }
            Some(code) => Err(format!("SMTP sink: {code} is not a failure reply code (400..=599)")),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Settings that deliver to this sink: 127.0.0.1, no TLS, no login, from
    /// `Ordertrail <noreply@ordertrail.test>`, 10 s timeout.
    pub fn settings(&self) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".to_owned(),
            port: self.port,
            security: Security::None,
            username: None,
            password: None,
            from: "Ordertrail <noreply@ordertrail.test>".to_owned(),
            timeout_seconds: 10,
        }
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let Ok(entries) = std::fs::read_dir(&self.mail_dir) else {
            return Vec::new();
        };
        let mut names: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
            .collect();
        names.sort();
        names.iter().filter_map(|path| read_mail(path)).collect()
    }

    /// Waits until at least `n` messages have arrived, then returns all of them; at the deadline returns
    /// whatever arrived (fewer than `n`), so the caller's assertion shows what is missing.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            let mails = self.messages();
            if mails.len() >= n || Instant::now() >= deadline {
                return mails;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

fn stderr_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!("; its stderr ends with:\n{}", tail.join("\n"))
}

fn read_mail(eml: &Path) -> Option<ReceivedMail> {
    let bytes = std::fs::read(eml).ok()?;
    let meta: serde_json::Value = std::fs::read(eml.with_extension("json"))
        .ok()
        .and_then(|json| serde_json::from_slice(&json).ok())
        .unwrap_or_default();
    let envelope_to = meta["rcpt_tos"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let envelope_from = meta["mail_from"].as_str().unwrap_or_default().to_owned();
    Some(ReceivedMail::parse(
        &String::from_utf8_lossy(&bytes),
        envelope_from,
        envelope_to,
    ))
}

// ---------------------------------------------------------------------------------------------------------
// Received mail and the MIME reader
// ---------------------------------------------------------------------------------------------------------

/// One message as the SMTP server received it.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    /// The envelope sender (MAIL FROM).
    pub envelope_from: String,
    /// The envelope recipients (RCPT TO), in order.
    pub envelope_to: Vec<String>,
    /// The Message-ID header without angle brackets (empty if there is none).
    pub message_id: String,
    /// The Subject header, unfolded and decoded (RFC 2047).
    pub subject: String,
    /// The whole message as received (CRLF line endings).
    pub raw: String,
    headers: Vec<(String, String)>,
    root: MimeNode,
}

/// One leaf part of a message (not a multipart container), its body decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MimePart {
    /// Lowercase type without parameters, e.g. `"text/plain"`, `"image/png"`.
    pub content_type: String,
    /// Content-ID without angle brackets, for inline parts.
    pub content_id: Option<String>,
    /// `"inline"` or `"attachment"` (lowercase), when the part says.
    pub disposition: Option<String>,
    /// The filename from Content-Disposition (or Content-Type's `name`), decoded.
    pub filename: Option<String>,
    /// The body after undoing base64 / quoted-printable.
    pub body: Vec<u8>,
}

#[derive(Clone, Debug)]
struct MimeNode {
    content_type: String,
    children: Vec<MimeNode>,
    part: Option<MimePart>,
}

impl ReceivedMail {
    fn parse(raw: &str, envelope_from: String, envelope_to: Vec<String>) -> ReceivedMail {
        let (headers, _) = split_entity(raw);
        let root = parse_node(raw, 0);
        let mut mail = ReceivedMail {
            envelope_from,
            envelope_to,
            message_id: String::new(),
            subject: String::new(),
            raw: raw.to_owned(),
            headers,
            root,
        };
        mail.message_id = mail
            .header("message-id")
            .map(|id| id.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
            .unwrap_or_default();
        mail.subject = mail.header("subject").unwrap_or_default();
        mail
    }

    /// The first top-level header of that name (case-insensitive), unfolded and RFC 2047-decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| decode_words(v.trim()))
    }

    /// Every leaf part, depth first (the order in the message).
    pub fn parts(&self) -> Vec<MimePart> {
        fn walk(node: &MimeNode, out: &mut Vec<MimePart>) {
            if let Some(part) = &node.part {
                out.push(part.clone());
            }
            for child in &node.children {
                walk(child, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }

    /// The decoded body of the first part of this content type (`"text/html"`, `"image/png"`, ...).
    pub fn part(&self, content_type: &str) -> Option<Vec<u8>> {
        let wanted = content_type.trim().to_ascii_lowercase();
        self.parts()
            .into_iter()
            .find(|p| p.content_type == wanted)
            .map(|p| p.body)
    }

    /// [`ReceivedMail::part`] as UTF-8 text with CRLF turned back into LF (SMTP sends text with CRLF).
    pub fn part_text(&self, content_type: &str) -> Option<String> {
        self.part(content_type)
            .map(|body| String::from_utf8_lossy(&body).replace("\r\n", "\n"))
    }

    pub fn has_part(&self, content_type: &str) -> bool {
        self.part(content_type).is_some()
    }

    /// The MIME tree as text, e.g.
    /// `multipart/mixed(multipart/related(multipart/alternative(text/plain,text/html),image/png),application/pdf)`.
    pub fn structure(&self) -> String {
        fn render(node: &MimeNode, out: &mut String) {
            out.push_str(&node.content_type);
            if node.part.is_none() {
                out.push('(');
                for (i, child) in node.children.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    render(child, out);
                }
                out.push(')');
            }
        }
        let mut out = String::new();
        render(&self.root, &mut out);
        out
    }
}

/// Splits an entity into its unfolded headers and its body (after the first empty line).
fn split_entity(text: &str) -> (Vec<(String, String)>, &str) {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let line = text[pos..end].trim_end_matches('\r');
        let next = (end + 1).min(text.len());
        if line.is_empty() {
            return (headers, &text[next..]);
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim_start().to_owned()));
        }
        pos = next;
    }
    (headers, "")
}

fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// `type/subtype; a=b; c="d"` -> ("type/subtype", {a: b, c: d}); RFC 2231 `name*=utf-8''...` decoded.
fn parse_params(value: &str) -> (String, BTreeMap<String, String>) {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ';' if !quoted => pieces.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    pieces.push(current);
    let mut iter = pieces.into_iter();
    let essence = iter.next().unwrap_or_default().trim().to_ascii_lowercase();
    let mut params = BTreeMap::new();
    for piece in iter {
        let Some((key, val)) = piece.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let val = val.trim();
        let val = val.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(val);
        if let Some(plain_key) = key.strip_suffix('*') {
            // RFC 2231: charset'language'percent-encoded
            let encoded = val.splitn(3, '\'').nth(2).unwrap_or(val);
            let bytes = percent_decode(encoded);
            params.insert(plain_key.to_owned(), String::from_utf8_lossy(&bytes).into_owned());
        } else {
            params.insert(key, decode_words(val));
        }
    }
    (essence, params)
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = bytes.get(i + 1..i + 3).and_then(hex_byte)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    let text = std::str::from_utf8(two).ok()?;
    u8::from_str_radix(text, 16).ok()
}

fn parse_node(text: &str, depth: usize) -> MimeNode {
    let (headers, body) = split_entity(text);
    let (content_type, params) = match header_value(&headers, "content-type") {
        Some(value) => parse_params(value),
        None => ("text/plain".to_owned(), BTreeMap::new()),
    };
    if content_type.starts_with("multipart/")
        && depth < 16
        && let Some(boundary) = params.get("boundary")
    {
        let children = split_multipart(body, boundary)
            .into_iter()
            .map(|part| parse_node(part, depth + 1))
            .collect();
        return MimeNode {
            content_type,
            children,
            part: None,
        };
    }
    let encoding = header_value(&headers, "content-transfer-encoding")
        .unwrap_or("7bit")
        .trim()
        .to_ascii_lowercase();
    let body = match encoding.as_str() {
        "base64" => decode_base64(body),
        "quoted-printable" => decode_quoted_printable(body),
        _ => body.as_bytes().to_vec(),
    };
    let (disposition, disposition_params) = match header_value(&headers, "content-disposition") {
        Some(value) => {
            let (d, p) = parse_params(value);
            (Some(d), p)
        }
        None => (None, BTreeMap::new()),
    };
    let filename = disposition_params
        .get("filename")
        .or_else(|| params.get("name"))
        .cloned();
    let content_id = header_value(&headers, "content-id")
        .map(|id| id.trim().trim_start_matches('<').trim_end_matches('>').to_owned());
    MimeNode {
        content_type: content_type.clone(),
        children: Vec::new(),
        part: Some(MimePart {
            content_type,
            content_id,
            disposition,
            filename,
            body,
        }),
    }
}

/// The bodies between `--boundary` lines, each without the line break that belongs to the next delimiter.
fn split_multipart<'a>(body: &'a str, boundary: &str) -> Vec<&'a str> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    while pos < body.len() {
        let end = body[pos..].find('\n').map_or(body.len(), |i| pos + i);
        let line = body[pos..end].trim_end_matches('\r');
        let next = (end + 1).min(body.len());
        if let Some(rest) = line.strip_prefix(delimiter.as_str()) {
            let closing = rest.starts_with("--");
            if closing || rest.trim().is_empty() {
                if let Some(s) = start {
                    // The CRLF before a delimiter is part of the delimiter.
                    let mut e = pos;
                    if body[..e].ends_with('\n') {
                        e -= 1;
                    }
                    if body[..e].ends_with('\r') {
                        e -= 1;
                    }
                    parts.push(&body[s..e.max(s)]);
                }
                if closing {
                    return parts;
                }
                start = Some(next);
            }
        }
        pos = next;
    }
    // No closing delimiter: keep what the last part had.
    if let Some(s) = start {
        parts.push(&body[s..]);
    }
    parts
}

fn base64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// Standard (and URL-safe) base64; whitespace and other characters outside the alphabet are skipped, and
/// decoding stops at padding.
fn decode_base64(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in text.as_bytes() {
        if c == b'=' {
            break;
        }
        let Some(v) = base64_value(c) else {
            continue;
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Quoted-printable (RFC 2045): `=XX` bytes, `=` at a line end joins lines, hard line breaks become CRLF,
/// trailing whitespace on a line is dropped. With `underscore_space` (RFC 2047 Q), `_` is a space.
fn decode_qp(text: &str, underscore_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let lines: Vec<&str> = text.split('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim_end_matches('\r').trim_end_matches([' ', '\t']);
        let (content, soft) = match line.strip_suffix('=') {
            Some(content) => (content, true),
            None => (line, false),
        };
        let bytes = content.as_bytes();
        let mut j = 0;
        while j < bytes.len() {
            if bytes[j] == b'='
                && let Some(byte) = bytes.get(j + 1..j + 3).and_then(hex_byte)
            {
                out.push(byte);
                j += 3;
                continue;
            }
            out.push(if underscore_space && bytes[j] == b'_' {
                b' '
            } else {
                bytes[j]
            });
            j += 1;
        }
        if !soft && i + 1 < lines.len() {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

fn decode_quoted_printable(text: &str) -> Vec<u8> {
    decode_qp(text, false)
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?...?=`, `=?UTF-8?Q?...?=`) in an unfolded header value.
/// Whitespace between adjacent encoded words is dropped, and their bytes are joined before decoding, so a
/// character split across two words survives. Unknown charsets are left as they are.
pub fn decode_words(value: &str) -> String {
    let mut out = String::new();
    // Bytes of consecutive encoded words not yet turned into text, and their charset.
    let mut pending: Vec<u8> = Vec::new();
    let mut pending_charset = String::new();
    let mut gap = String::new();
    let mut rest = value;

    fn flush(out: &mut String, pending: &mut Vec<u8>, charset: &str) {
        if pending.is_empty() {
            return;
        }
        if charset == "iso-8859-1" || charset == "latin1" {
            out.extend(pending.iter().map(|&b| char::from(b)));
        } else {
            out.push_str(&String::from_utf8_lossy(pending));
        }
        pending.clear();
    }

    while !rest.is_empty() {
        match find_encoded_word(rest) {
            Some((start, EncodedWord { charset, bytes, len })) => {
                let before = &rest[..start];
                let adjacent = !pending.is_empty() && before.trim().is_empty();
                if !adjacent {
                    flush(&mut out, &mut pending, &pending_charset);
                    out.push_str(&gap);
                    out.push_str(before);
                } else if charset != pending_charset {
                    flush(&mut out, &mut pending, &pending_charset);
                }
                gap.clear();
                pending_charset = charset;
                pending.extend_from_slice(&bytes);
                rest = &rest[start + len..];
                // Whitespace after a word is kept only if plain text follows.
                let trimmed = rest.trim_start();
                gap.push_str(&rest[..rest.len() - trimmed.len()]);
                rest = trimmed;
            }
            None => {
                flush(&mut out, &mut pending, &pending_charset);
                out.push_str(&gap);
                gap.clear();
                out.push_str(rest);
                rest = "";
            }
        }
    }
    flush(&mut out, &mut pending, &pending_charset);
    out.push_str(&gap);
    out
}

/// One RFC 2047 encoded word, decoded to bytes.
struct EncodedWord {
    /// Lowercase; `us-ascii` is reported as `utf-8`.
    charset: String,
    bytes: Vec<u8>,
    /// Its length in the header text.
    len: usize,
}

/// The first well-formed encoded word in `text`, and where it starts.
fn find_encoded_word(text: &str) -> Option<(usize, EncodedWord)> {
    let mut from = 0;
    while let Some(i) = text[from..].find("=?") {
        let start = from + i;
        if let Some(word) = parse_encoded_word(&text[start..]) {
            return Some((start, word));
        }
        from = start + 2;
    }
    None
}

/// Parses `=?charset?enc?text?=` at the start of `text`.
fn parse_encoded_word(text: &str) -> Option<EncodedWord> {
    let inner = text.strip_prefix("=?")?;
    let (charset, inner) = inner.split_once('?')?;
    let (encoding, inner) = inner.split_once('?')?;
    let end = inner.find("?=")?;
    let payload = &inner[..end];
    if payload.contains([' ', '\t']) {
        return None;
    }
    let len = 2 + charset.len() + 1 + encoding.len() + 1 + end + 2;
    // RFC 2231 allows charset*language.
    let charset = charset.split('*').next().unwrap_or(charset).to_ascii_lowercase();
    if !matches!(
        charset.as_str(),
        "utf-8" | "utf8" | "us-ascii" | "iso-8859-1" | "latin1"
    ) {
        return None;
    }
    let bytes = match encoding {
        "b" | "B" => decode_base64(payload),
        "q" | "Q" => decode_qp(payload, true),
        _ => return None,
    };
    let charset = if charset == "us-ascii" {
        "utf-8".to_owned()
    } else {
        charset
    };
    Some(EncodedWord { charset, bytes, len })
}

// ---------------------------------------------------------------------------------------------------------
// Webhook receiver
// ---------------------------------------------------------------------------------------------------------

/// One request the [`WebhookReceiver`] got.
#[derive(Clone, Debug)]
pub struct ReceivedHook {
    pub method: String,
    /// The request path, e.g. `"/hooks/orders"` (the query, if any, is in `query`).
    pub path: String,
    pub query: Option<String>,
    /// Header names in lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    /// `X-Ordertrail-Event-Id`, if sent.
    pub event_id: Option<String>,
    /// `X-Ordertrail-Timestamp`, if sent and a number.
    pub timestamp: Option<i64>,
    /// `X-Ordertrail-Signature`, if sent.
    pub signature: Option<String>,
    /// The body as JSON (`Value::Null` if it was not JSON; see `raw_body`).
    pub body: serde_json::Value,
    pub raw_body: Vec<u8>,
    /// Whether the signature verifies against the receiver's secret, the timestamp header and the raw body.
    pub signature_ok: bool,
}

impl ReceivedHook {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct ReceiverState {
    secret: Vec<u8>,
    status: AtomicU16,
    delay_ms: AtomicU64,
    hooks: Mutex<Vec<ReceivedHook>>,
}

impl ReceiverState {
    fn hooks(&self) -> MutexGuard<'_, Vec<ReceivedHook>> {
        self.hooks.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// An HTTP server on 127.0.0.1 (any path, any method) that records every request and answers with a status
/// that the test sets (200 by default). Stops when dropped.
#[derive(Debug)]
pub struct WebhookReceiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
    server: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    /// Starts the server; signatures are checked with `secret`. Panics only if no loopback port can be bound.
    pub async fn start(secret: &[u8]) -> WebhookReceiver {
        let state = Arc::new(ReceiverState {
            secret: secret.to_vec(),
            status: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
            hooks: Mutex::new(Vec::new()),
        });
        let listener = match tokio::net::TcpListener::bind(("127.0.0.1", 0)).await {
            Ok(listener) => listener,
            Err(e) => panic!("webhook receiver: cannot bind 127.0.0.1:0: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(e) => panic!("webhook receiver: no local address: {e}"),
        };
        let app = Router::new().fallback(record).with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "webhook receiver stopped");
            }
        });
        WebhookReceiver { addr, state, server }
    }

    /// `http://127.0.0.1:PORT{path}` (a missing leading `/` is added).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with('/') {
            format!("http://{}{path}", self.addr)
        } else {
            format!("http://{}/{path}", self.addr)
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answer every following request with `status` (e.g. 500 to make deliveries fail transiently).
    pub fn set_status(&self, status: StatusCode) {
        self.state.status.store(status.as_u16(), Ordering::SeqCst);
    }

    /// Wait this long before answering each following request (to provoke client timeouts).
    pub fn set_delay(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.state.delay_ms.store(millis, Ordering::SeqCst);
    }

    /// Every request so far, oldest first (failed answers included: the request still arrived).
    pub fn received(&self) -> Vec<ReceivedHook> {
        self.state.hooks().clone()
    }

    /// Waits until at least `n` requests have arrived, then returns all of them; at the deadline returns
    /// whatever arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedHook> {
        let deadline = Instant::now() + timeout;
        loop {
            let hooks = self.received();
            if hooks.len() >= n || Instant::now() >= deadline {
                return hooks;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(
    State(state): State<Arc<ReceiverState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let event_id = text(webhook::EVENT_ID_HEADER);
    let timestamp = text(webhook::TIMESTAMP_HEADER).and_then(|t| t.trim().parse::<i64>().ok());
    let signature = text(webhook::SIGNATURE_HEADER);
    let signature_ok = match (timestamp, &signature) {
        (Some(ts), Some(sig)) => webhook::verify(&state.secret, ts, &body, sig),
        _ => false,
    };
    let hook = ReceivedHook {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        event_id,
        timestamp,
        signature,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        raw_body: body.to_vec(),
        signature_ok,
    };
    state.hooks().push(hook);
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    StatusCode::from_u16(state.status.load(Ordering::SeqCst)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_decode() {
        assert_eq!(decode_words("plain text"), "plain text");
        assert_eq!(decode_words("=?utf-8?b?5L2g5aW9?= =?utf-8?b?5LiW55WM?="), "你好世界");
        // A character split across two words.
        assert_eq!(decode_words("=?utf-8?b?5L2g5Q==?=\r\n =?utf-8?b?pb0=?="), "你好");
        assert_eq!(decode_words("a =?bad b =?utf-8?b?5L2g?="), "a =?bad b 你");
        assert_eq!(decode_words("Re: =?UTF-8?Q?caf=C3=A9_ol=C3=A9?= !"), "Re: café olé !");
        assert_eq!(decode_words("a =?utf-8?q?b?= c"), "a b c");
        assert_eq!(decode_words("=?koi8-r?b?xxx?="), "=?koi8-r?b?xxx?=");
    }

    #[test]
    fn transfer_encodings_decode() {
        assert_eq!(decode_base64("aGVs\r\nbG8="), b"hello");
        assert_eq!(decode_base64("AAEC/w=="), vec![0, 1, 2, 255]);
        assert_eq!(
            decode_quoted_printable("caf=C3=A9 soft=\r\nbreak\r\nline two  \r\nend"),
            "café softbreak\r\nline two\r\nend".as_bytes()
        );
    }

    #[test]
    fn multipart_tree_parses() {
        let raw = "Subject: =?utf-8?b?5L2g5aW9?=\r\nMessage-ID: <x@y>\r\nContent-Type: multipart/mixed;\r\n boundary=\"AB\"\r\n\r\n\
                   preamble\r\n--AB\r\nContent-Type: text/plain\r\n\r\nhello\r\nworld\r\n--AB\r\n\
                   Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\n\
                   Content-Transfer-Encoding: base64\r\n\r\nJVBE\r\nRg==\r\n--AB--\r\n";
        let mail = ReceivedMail::parse(raw, String::new(), vec![]);
        assert_eq!(mail.subject, "你好");
        assert_eq!(mail.message_id, "x@y");
        assert_eq!(mail.structure(), "multipart/mixed(text/plain,application/pdf)");
        assert_eq!(mail.part("text/plain"), Some(b"hello\r\nworld".to_vec()));
        assert_eq!(mail.part("application/pdf"), Some(b"%PDF".to_vec()));
        assert_eq!(mail.parts()[1].filename.as_deref(), Some("a.pdf"));
        assert!(!mail.has_part("text/html"));
    }
}
