//! Message rendering: this module owns the message kinds Ordertrail sends, the embedded default templates for
//! each kind (English and Simplified Chinese; a one-line subject, a plain-text body and an email-safe HTML body),
//! the rules for an organisation's override folder (`<lang>/<kind>.subject.txt|txt|html`, `<lang>/layout.html`,
//! `macros.html`; a file that does not parse or whose name matches nothing is refused with its path), and the
//! rendering itself with minijinja in strict-undefined mode (HTML autoescaped, text not), so a template that names
//! a variable its kind's context does not carry fails loudly instead of sending a message with a hole in it.
//! Templates may test optional values with `is defined` or `|default(...)`; nullable context fields are present
//! as `null` and are tested with a plain `{% if %}`. Two filters are added for template authors:
//! `fmt_date(lang)` turns a `YYYY-MM-DD` string into a readable date ("Tue, Jan 23, 2024", "2024年1月23日")
//! and `safe_url` (for `href`s in HTML) lets only `http(s):` links through (anything else becomes `#`).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

/// The language a message is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub enum Lang {
    /// English (`en`).
    #[default]
    #[serde(rename = "en", alias = "en-US", alias = "en-GB")]
    En,
    /// Simplified Chinese (`zh-CN`).
    #[serde(rename = "zh-CN", alias = "zh", alias = "zh-Hans", alias = "zh-cn")]
    ZhCn,
}

impl Lang {
    /// Every language the templates are written in.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::ZhCn];

    /// Reads a language tag leniently: `zh`, `zh-CN`, `zh-Hans` (any case, `-` or `_`) mean Simplified Chinese;
    /// anything else, including an empty or unknown tag, means English.
    pub fn parse(tag: &str) -> Lang {
        let tag = tag.trim().to_ascii_lowercase().replace('_', "-");
        match tag.as_str() {
            "zh" | "zh-cn" | "zh-hans" | "zh-hans-cn" | "zh-sg" | "zh-hans-sg" => Lang::ZhCn,
            _ => Lang::En,
        }
    }

    /// The tag used in template paths and stored settings: `en` or `zh-CN`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message ready to send: a single-line subject, a plain-text body and an HTML body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Why templates could not be loaded or a message could not be rendered.
///
/// `file` is the override file's path (the override folder joined with the file's name inside it, e.g.
/// `templates/zh-CN/client_update.html`) or `embedded:<name>` for a default compiled into the binary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A template does not parse.
    #[error("{}: {reason}", at(.file, *.line))]
    Syntax {
        file: String,
        line: Option<usize>,
        reason: String,
    },
    /// A file in the override folder whose name matches no language, kind or part.
    #[error(
        "{file}: not a template name Ordertrail knows{hint}; expected <lang>/<kind>.subject.txt, <lang>/<kind>.txt or <lang>/<kind>.html (lang: en, zh-CN), <lang>/layout.html or macros.html"
    )]
    UnknownFile { file: String, hint: String },
    /// The override folder or one of its files could not be read.
    #[error("{file}: cannot read: {reason}")]
    Read { file: String, reason: String },
    /// `render` was asked for a message kind that does not exist.
    #[error("unknown message kind {0:?}")]
    UnknownKind(String),
    /// A template failed while rendering (an undefined variable in strict mode, a bad filter argument, ...).
    #[error("{}: {reason}", at(.file, *.line))]
    Render {
        file: String,
        line: Option<usize>,
        reason: String,
    },
}

fn at(file: &str, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{file}:{line}"),
        None => file.to_string(),
    }
}

/// The three parts of a message, as file name suffixes.
const PARTS: [&str; 3] = ["subject.txt", "txt", "html"];
/// Shared files that are not a message kind's part.
const LAYOUT: &str = "layout.html";
const MACROS: &str = "macros.html";

macro_rules! embedded_templates {
    ($($kind:literal),+ $(,)?) => {
        const KIND_LIST: &[&str] = &[$($kind),+];
        static DEFAULTS: &[(&str, &str)] = &[
            ("macros.html", include_str!("../templates/macros.html")),
            ("en/layout.html", include_str!("../templates/en/layout.html")),
            ("zh-CN/layout.html", include_str!("../templates/zh-CN/layout.html")),
            $(
                (concat!("en/", $kind, ".subject.txt"), include_str!(concat!("../templates/en/", $kind, ".subject.txt"))),
                (concat!("en/", $kind, ".txt"), include_str!(concat!("../templates/en/", $kind, ".txt"))),
                (concat!("en/", $kind, ".html"), include_str!(concat!("../templates/en/", $kind, ".html"))),
                (concat!("zh-CN/", $kind, ".subject.txt"), include_str!(concat!("../templates/zh-CN/", $kind, ".subject.txt"))),
                (concat!("zh-CN/", $kind, ".txt"), include_str!(concat!("../templates/zh-CN/", $kind, ".txt"))),
                (concat!("zh-CN/", $kind, ".html"), include_str!(concat!("../templates/zh-CN/", $kind, ".html"))),
            )+
        ];
    };
}

embedded_templates!(
    "order_acknowledgment",
    "client_update",
    "milestone_reminder",
    "milestone_overdue",
    "milestone_chase",
    "milestone_reached",
    "order_shipped",
    "order_delivered",
    "issue_notification",
    "issue_escalation",
    "change_order_approval",
    "payment_invoice",
    "payment_due",
    "payment_friendly",
    "payment_firm",
    "payment_pause",
    "payment_escalation",
    "daily_digest",
    "draft_waiting",
);

/// The compiled templates: the embedded defaults, possibly with an organisation's overrides. Cheap to clone and
/// shareable between threads.
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
    /// Template name -> the file it came from, for error messages (`embedded:<name>` or the override's path).
    files: Arc<HashMap<String, String>>,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut overrides: Vec<&str> = self
            .files
            .iter()
            .filter(|(_, file)| !file.starts_with("embedded:"))
            .map(|(name, _)| name.as_str())
            .collect();
        overrides.sort_unstable();
        f.debug_struct("Templates")
            .field("templates", &self.files.len())
            .field("overrides", &overrides)
            .finish()
    }
}

impl Templates {
    /// Every message kind, each with a subject, text and HTML template per language.
    pub const KINDS: &[&str] = KIND_LIST;

    /// The default templates compiled into the binary. Never fails: the test suite proves every default parses
    /// and renders; were one broken anyway, it is logged and rendering that kind returns an error.
    pub fn embedded() -> Templates {
        let mut env = new_env();
        let mut files = HashMap::new();
        for (name, source) in DEFAULTS {
            let file = format!("embedded:{name}");
            if let Err(err) = env.add_template(name, source) {
                tracing::error!(error = %syntax_error(&file, &err), "an embedded template does not parse");
            }
            files.insert((*name).to_string(), file);
        }
        Templates {
            env: Arc::new(env),
            files: Arc::new(files),
        }
    }

    /// The defaults with the files of `override_dir` (if any) replacing the defaults of the same name. Refuses a
    /// folder that cannot be read, a file that is not UTF-8 or does not parse (naming its path, line and reason),
    /// and a file or folder whose name matches no language, kind or part, so a typo is never silently ignored.
    /// Hidden entries (names starting with `.`) are skipped.
    pub fn load(override_dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut sources: BTreeMap<String, (String, Option<String>)> = DEFAULTS
            .iter()
            .map(|(name, source)| ((*name).to_string(), ((*source).to_string(), None)))
            .collect();
        if let Some(dir) = override_dir {
            for (name, path) in override_files(dir)? {
                let source = std::fs::read_to_string(&path).map_err(|err| TemplateError::Read {
                    file: path.clone(),
                    reason: err.to_string(),
                })?;
                sources.insert(name, (source, Some(path)));
            }
        }
        let mut env = new_env();
        let mut files = HashMap::new();
        for (name, (source, path)) in sources {
            let file = path.unwrap_or_else(|| format!("embedded:{name}"));
            env.add_template_owned(name.clone(), source)
                .map_err(|err| syntax_error(&file, &err))?;
            files.insert(name, file);
        }
        Ok(Templates {
            env: Arc::new(env),
            files: Arc::new(files),
        })
    }

    /// Renders message `kind` in `lang` with `context` (the kind's JSON context, see the templates).
    pub fn render(&self, kind: &str, lang: Lang, context: &serde_json::Value) -> Result<Rendered, TemplateError> {
        if !Self::KINDS.contains(&kind) {
            return Err(TemplateError::UnknownKind(kind.to_string()));
        }
        let ctx = Value::from(minijinja::value::Serde(context));
        let base = format!("{}/{kind}", lang.as_str());
        let subject = self.render_one(&format!("{base}.subject.txt"), &ctx)?;
        let text = self.render_one(&format!("{base}.txt"), &ctx)?;
        let html = self.render_one(&format!("{base}.html"), &ctx)?;
        Ok(Rendered {
            subject: one_line(&subject),
            text: tidy_text(&text),
            html: format!("{}\n", html.trim()),
        })
    }

    fn render_one(&self, name: &str, ctx: &Value) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template(name)
            .map_err(|err| self.render_error(name, &err))?;
        template.render(ctx).map_err(|err| self.render_error(name, &err))
    }

    fn render_error(&self, rendering: &str, err: &minijinja::Error) -> TemplateError {
        let name = err.name().unwrap_or(rendering);
        let file = self
            .files
            .get(name)
            .cloned()
            .unwrap_or_else(|| format!("embedded:{name}"));
        TemplateError::Render {
            file,
            line: err.line(),
            reason: reason(err),
        }
    }
}

/// A fresh environment with Ordertrail's settings: strict undefined values, HTML autoescaping for `.html` only,
/// block tags that do not leave blank lines behind, and the `fmt_date` and `safe_url` filters.
fn new_env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    match SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build() {
        Ok(syntax) => env.set_syntax(syntax),
        Err(err) => tracing::error!(error = %err, "cannot configure template whitespace handling"),
    }
    env.add_filter("fmt_date", fmt_date);
    env.add_filter("safe_url", safe_url);
    env
}

/// `{{ "2024-01-23"|fmt_date("en") }}` -> `Tue, Jan 23, 2024`; with `"zh-CN"` -> `2024年1月23日`.
/// A value that is not a `YYYY-MM-DD` date is returned unchanged; `none` becomes an empty string.
fn fmt_date(value: Value, lang: Option<String>) -> Result<Value, minijinja::Error> {
    if value.is_undefined() {
        return Err(minijinja::Error::new(
            ErrorKind::UndefinedError,
            "fmt_date applied to an undefined value",
        ));
    }
    if value.is_none() {
        return Ok(Value::from(""));
    }
    let Some(text) = value.as_str() else {
        return Ok(value);
    };
    let Ok(date) = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") else {
        return Ok(value);
    };
    let formatted = match Lang::parse(lang.as_deref().unwrap_or("en")) {
        Lang::En => date.format("%a, %b %-d, %Y").to_string(),
        Lang::ZhCn => format!("{}年{}月{}日", date.year(), date.month(), date.day()),
    };
    Ok(Value::from(formatted))
}

/// For `href`s in HTML templates: lets `http:`/`https:` links through, escaped for an attribute value (`&` as
/// `&amp;`, but `/` left readable), and turns anything else (`javascript:`, empty) into `#`.
fn safe_url(value: String) -> Value {
    let url = value.trim();
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Value::from_safe_string("#".to_string());
    }
    let mut out = String::with_capacity(url.len() + 8);
    for c in url.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            '"' => out.push_str("%22"),
            '\'' => out.push_str("%27"),
            ' ' => out.push_str("%20"),
            c => out.push(c),
        }
    }
    Value::from_safe_string(out)
}

fn syntax_error(file: &str, err: &minijinja::Error) -> TemplateError {
    TemplateError::Syntax {
        file: file.to_string(),
        line: err.line(),
        reason: reason(err),
    }
}

/// `syntax error: unexpected end of input, expected ...`, followed by the causes of a nested error.
fn reason(err: &minijinja::Error) -> String {
    let mut out = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        match cause.downcast_ref::<minijinja::Error>() {
            Some(inner) => {
                let detail = inner.detail().map(|d| format!(": {d}")).unwrap_or_default();
                let place = match (inner.name(), inner.line()) {
                    (Some(name), Some(line)) => format!(" (in {name}:{line})"),
                    (Some(name), None) => format!(" (in {name})"),
                    _ => String::new(),
                };
                out.push_str(&format!("; caused by {}{detail}{place}", inner.kind()));
            }
            None => out.push_str(&format!("; caused by {cause}")),
        }
        source = cause.source();
    }
    out
}

/// The override folder's files as (template name, path shown in errors), refusing names that match nothing.
fn override_files(dir: &Path) -> Result<Vec<(String, String)>, TemplateError> {
    let mut found = Vec::new();
    for (entry_name, entry_path, is_dir) in list_dir(dir)? {
        if is_dir {
            let Some(lang) = Lang::ALL.into_iter().find(|l| l.as_str() == entry_name) else {
                return Err(unknown_file(&entry_path, &format!("{entry_name}/")));
            };
            for (file_name, file_path, is_dir) in list_dir(Path::new(&entry_path))? {
                let name = format!("{}/{file_name}", lang.as_str());
                if is_dir || !is_known_in_lang(&file_name) {
                    return Err(unknown_file(&file_path, &name));
                }
                found.push((name, file_path));
            }
        } else if entry_name == MACROS {
            found.push((entry_name, entry_path));
        } else {
            return Err(unknown_file(&entry_path, &entry_name));
        }
    }
    Ok(found)
}

/// The visible entries of a folder, sorted by name, as (name, path for messages, is a folder).
fn list_dir(dir: &Path) -> Result<Vec<(String, String, bool)>, TemplateError> {
    let read_error = |path: &Path, err: std::io::Error| TemplateError::Read {
        file: path.display().to_string(),
        reason: err.to_string(),
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|err| read_error(dir, err))? {
        let entry = entry.map_err(|err| read_error(dir, err))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(unknown_file(&path.display().to_string(), ""));
        };
        if name.starts_with('.') {
            continue;
        }
        let is_dir = std::fs::metadata(&path).map_err(|err| read_error(&path, err))?.is_dir();
        entries.push((name, path.display().to_string(), is_dir));
    }
    entries.sort();
    Ok(entries)
}

fn is_known_in_lang(file_name: &str) -> bool {
    file_name == LAYOUT
        || PARTS.iter().any(|part| {
            file_name
                .strip_suffix(part)
                .and_then(|rest| rest.strip_suffix('.'))
                .is_some_and(|kind| Templates::KINDS.contains(&kind))
        })
}

fn unknown_file(path: &str, name: &str) -> TemplateError {
    let best = DEFAULTS
        .iter()
        .map(|(known, _)| (edit_distance(name, known), *known))
        .min();
    let hint = match best {
        Some((distance, known)) if distance <= 3 && !name.is_empty() => format!(" (did you mean {known}?)"),
        _ => String::new(),
    };
    TemplateError::UnknownFile {
        file: path.to_string(),
        hint,
    }
}

/// Levenshtein distance, for the "did you mean" hint.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            row[j + 1] = substitute.min(prev[j + 1] + 1).min(row[j] + 1);
        }
        prev = row;
    }
    prev[b.len()]
}

/// A subject is one line: whitespace runs (newlines included) become single spaces.
fn one_line(subject: &str) -> String {
    subject.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Plain text without trailing spaces, at most one blank line in a row, ending in one newline.
fn tidy_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() && blank_run > 0 {
            out.push('\n');
        }
        blank_run = 0;
        out.push_str(line);
        out.push('\n');
    }
    out
}
