//! The message templates: every kind renders in both languages from a representative context (and from one
//! where every nullable field is null), HTML escapes what customers type, the plain text carries no markup, the
//! weekly update tells the honest date, and an override folder replaces defaults but refuses broken or unknown
//! files.

use std::path::Path;

use ordertrail_notify::templates::{Lang, Rendered, TemplateError, Templates};
use serde_json::{Value, json};

const EVIL_TITLE: &str = "<script>alert('x')</script> Ball gown & cape";

/// The context of `kind`; `full` fills every nullable field, otherwise they are all null (and lists empty).
fn context(kind: &str, full: bool, title: &str) -> Value {
    let opt = |v: Value| if full { v } else { Value::Null };
    let list = |v: Value| if full { v } else { json!([]) };
    let installment = json!({
        "number": 2,
        "name": "Second installment (after first fitting)",
        "amount": "1,250.00 USD",
        "outstanding": if full { "750.00 USD" } else { "1,250.00 USD" },
        "due_on": "2025-03-03",
        "days_overdue": opt(json!(8)),
        "invoice_number": opt(json!("INV-2025-0042")),
    });
    let mut ctx = json!({
        "org": {"name": "Velvet & Thread Costume Studio"},
        "recipient": {"name": "Alex Morgan"},
        "order": {
            "number": "ORD-20250106-007",
            "title": title,
            "customer_name": "Riverside Community Theatre",
            "promised_date": "2025-03-07",
            "status_name": "In production",
            "phase": opt(json!("Construction")),
            "portal_url": opt(json!("https://track.example.com/p/6f1c2e")),
        },
    });
    let extra = match kind {
        "order_acknowledgment" => json!({
            "items_summary": opt(json!("3 costumes: ball gown, cape, headpiece")),
            "next_steps": list(json!(["Design review meeting in week 1", "Fabric swatches for your approval in week 2"])),
        }),
        "client_update" => json!({
            "period": {"from": "2025-02-03", "to": "2025-02-07", "daily": !full},
            "completed": list(json!([{"name": "Design approval", "on": "2025-02-04"}, {"name": "Fabric selection", "on": "2025-02-06"}])),
            "in_progress": list(json!([{"name": "Pattern making for the lead gown"}])),
            "coming_next": list(json!([{"name": "First fitting", "planned_on": "2025-02-11"}])),
            "client_actions": list(json!(["Please confirm availability for the first fitting"])),
            "on_track": true,
            "delivery_date": "2025-03-07",
            "new_delivery_date": null,
            "delay_cause": null,
            "timeline_cid": opt(json!("timeline-ORD-20250106-007")),
        }),
        "milestone_reminder" => json!({
            "milestone": {
                "name": "First fitting",
                "planned_on": "2025-02-11",
                "deliverable": opt(json!("Fitted toile")),
                "open_checklist": list(json!(["Book the fitting room", "Print the measurement sheet"])),
            },
        }),
        "milestone_overdue" => json!({
            "milestone": {"name": "Pattern sign-off", "planned_on": "2025-02-05", "days_late": if full { 3 } else { 1 }},
        }),
        "milestone_chase" => json!({
            "milestone": {"name": "Embellishment delivery", "planned_on": "2025-02-12", "days_left": if full { 2 } else { 0 }},
            "last_update_on": opt(json!("2025-02-01")),
        }),
        "milestone_reached" => json!({
            "milestone": {"name": "Design approval", "completed_on": "2025-02-04", "deliverable": opt(json!("Approved sketches"))},
            "next": opt(json!({"name": "Fabric selection", "planned_on": "2025-02-14"})),
        }),
        "order_shipped" => json!({
            "shipment": {
                "carrier": opt(json!("DHL Express")),
                "tracking_number": opt(json!("JD014600006281")),
                "tracking_url": "https://www.dhl.com/track?id=JD014600006281&lang=en",
            },
        }),
        "order_delivered" => json!({"delivered_on": "2025-03-06"}),
        "issue_notification" => json!({
            "issue": {
                "kind_name": "Fabric delay",
                "description": "The silk for the ball gown is held at customs.",
                "impact": {"delay_days": if full { 7 } else { 0 }, "budget_overrun_percent": if full { 12.5 } else { 0.0 }, "quality_affected": full},
                "plan": opt(json!("We are chasing the broker daily and have sourced an alternative.")),
                "options": list(json!([
                    {"summary": "Wait one week for the original silk", "timeline_days": 7, "cost": "0.00 USD"},
                    {"summary": "Use the alternative silk and stay on schedule", "timeline_days": 0, "cost": "180.00 USD"},
                ])),
                "recommendation": opt(json!("Option 2: the alternative is a very close match.")),
            },
        }),
        "issue_escalation" => json!({
            "issue": {
                "kind_name": "Fabric delay",
                "severity": "major",
                "description": "The silk for the ball gown is held at customs.",
                "reasons": list(json!(["Delay of 9 days is more than 7 days", "Budget overrun of 12% is more than 10%"])),
                "owner_name": opt(json!("Sam Lee")),
            },
        }),
        "change_order_approval" => json!({
            "change_order": {
                "number": "CO-3",
                "reason": "Add a matching cape and change the gown colour to midnight blue.",
                "items": [
                    {"description": "Matching cape", "amount": "420.00 USD"},
                    {"description": "Re-dyeing fabric", "amount": "95.00 USD"},
                ],
                "total": "515.00 USD",
                "timeline_days": if full { 5 } else { 0 },
                "new_delivery_date": opt(json!("2025-03-12")),
                "deposit": opt(json!("257.50 USD")),
                "deposit_due": opt(json!("2025-02-14")),
            },
        }),
        "payment_invoice" | "payment_due" | "payment_friendly" | "payment_firm" | "payment_pause"
        | "payment_escalation" => json!({"installment": installment}),
        "daily_digest" => json!({
            "date": "2025-02-07",
            "exceptions": list(json!([{"order_number": "ORD-20250106-007", "title": title, "text": "Pattern sign-off is 3 days late"}])),
            "orders": list(json!([
                {"number": "ORD-20250106-007", "title": title, "phase": "Construction", "health": "at_risk", "next_milestone": "First fitting", "next_due": "2025-02-11"},
                {"number": "ORD-20250110-002", "title": "Chorus costumes", "phase": null, "health": "on_track", "next_milestone": null, "next_due": null},
            ])),
            "drafts_waiting": list(json!([{"order_number": "ORD-20250106-007", "kind": "client_update"}])),
        }),
        "draft_waiting" => json!({"draft_kind": "client_update", "drafted_at": "2025-02-07"}),
        other => panic!("no test context for kind {other}"),
    };
    let (Some(ctx_map), Value::Object(extra)) = (ctx.as_object_mut(), extra) else {
        panic!("contexts are objects");
    };
    ctx_map.extend(extra);
    if kind == "daily_digest" {
        ctx_map.remove("order");
    }
    if kind == "order_acknowledgment" {
        ctx["order"]["order_date"] = json!("2025-01-06");
    }
    ctx
}

fn render(t: &Templates, kind: &str, lang: Lang, ctx: &Value) -> Rendered {
    t.render(kind, lang, ctx)
        .unwrap_or_else(|err| panic!("{kind} ({lang}) does not render: {err}"))
}

fn has_cjk(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// An HTML tag: `<` followed by a letter, `/` or `!`.
fn has_tag(s: &str) -> bool {
    s.as_bytes()
        .windows(2)
        .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || w[1] == b'/' || w[1] == b'!'))
}

fn check(kind: &str, lang: Lang, r: &Rendered) {
    let what = format!("{kind} ({lang})");
    assert!(!r.subject.is_empty(), "{what}: empty subject");
    assert!(!r.subject.contains('\n'), "{what}: subject is not one line");
    assert!(r.subject.len() < 200, "{what}: subject too long: {}", r.subject);
    assert!(r.text.len() > 80, "{what}: text too short:\n{}", r.text);
    assert!(!has_tag(&r.text), "{what}: the text part has markup:\n{}", r.text);
    assert!(
        r.html.starts_with("<!DOCTYPE html>"),
        "{what}: not a full HTML document"
    );
    assert!(r.html.contains("max-width:600px"), "{what}: not the 600px layout");
    assert!(
        r.html.contains("Velvet &amp; Thread Costume Studio"),
        "{what}: the organisation's name is not at the top"
    );
    assert!(
        !r.html.contains("http://fonts") && !r.html.contains("<link"),
        "{what}: external resources"
    );
    for part in [&r.subject, &r.text, &r.html] {
        // A null printed by mistake shows as "none"; an unrendered tag shows its braces.
        let words = part.replace(":none", ""); // CSS values
        assert!(
            !words.split(|c: char| !c.is_alphanumeric()).any(|w| w == "none"),
            "{what}: a null value was printed:\n{part}"
        );
        assert!(
            !part.contains("{{") && !part.contains("{%"),
            "{what}: template syntax leaked"
        );
    }
    let (lang_tag, cjk) = match lang {
        Lang::En => ("<html lang=\"en\">", false),
        Lang::ZhCn => ("<html lang=\"zh-CN\">", true),
    };
    assert!(r.html.contains(lang_tag), "{what}: wrong html lang");
    assert_eq!(has_cjk(&r.subject), cjk, "{what}: subject language: {}", r.subject);
    assert_eq!(has_cjk(&r.text), cjk, "{what}: text language:\n{}", r.text);
}

#[test]
fn every_kind_renders_in_both_languages_full_and_with_nulls() {
    let t = Templates::embedded();
    assert_eq!(Templates::KINDS.len(), 19);
    for kind in Templates::KINDS {
        for lang in Lang::ALL {
            for full in [true, false] {
                let r = render(&t, kind, lang, &context(kind, full, "Cinderella ball gown"));
                check(kind, lang, &r);
                assert!(
                    kind == &"daily_digest" || r.text.contains("ORD-20250106-007"),
                    "{kind} ({lang}): the order number is missing:\n{}",
                    r.text
                );
            }
        }
    }
}

#[test]
fn load_without_overrides_equals_embedded() {
    let loaded = Templates::load(None).expect("defaults load");
    let embedded = Templates::embedded();
    for kind in Templates::KINDS {
        let ctx = context(kind, true, "Cinderella ball gown");
        assert_eq!(
            loaded.render(kind, Lang::ZhCn, &ctx).expect("renders"),
            embedded.render(kind, Lang::ZhCn, &ctx).expect("renders")
        );
    }
}

#[test]
fn html_escapes_what_the_customer_typed_and_text_keeps_it_verbatim() {
    let t = Templates::embedded();
    for kind in Templates::KINDS {
        for lang in Lang::ALL {
            let r = render(&t, kind, lang, &context(kind, true, EVIL_TITLE));
            assert!(
                !r.html.contains("<script"),
                "{kind} ({lang}): unescaped script tag in HTML"
            );
            assert!(
                r.html.contains("&lt;script&gt;"),
                "{kind} ({lang}): the title is not shown escaped in HTML"
            );
        }
    }
    let r = render(
        &t,
        "client_update",
        Lang::En,
        &context("client_update", true, EVIL_TITLE),
    );
    assert!(
        r.subject.contains(EVIL_TITLE),
        "text parts are not HTML-escaped: {}",
        r.subject
    );
    assert!(r.text.contains(EVIL_TITLE));
}

#[test]
fn client_update_on_track_says_so_with_the_date() {
    let t = Templates::embedded();
    let ctx = context("client_update", true, "Cinderella ball gown");
    let en = render(&t, "client_update", Lang::En, &ctx);
    assert!(
        en.text.contains("on track for delivery on Fri, Mar 7, 2025"),
        "{}",
        en.text
    );
    assert!(en.html.contains("on track for delivery on Fri, Mar 7, 2025"));
    assert!(en.html.contains(r#"<img src="cid:timeline-ORD-20250106-007""#));
    assert!(
        en.text
            .contains("✅ Completed this week:\n- Design approval (Tue, Feb 4, 2025)"),
        "{}",
        en.text
    );
    assert!(en.subject.ends_with("Weekly update"), "{}", en.subject);
    let zh = render(&t, "client_update", Lang::ZhCn, &ctx);
    assert!(zh.text.contains("按期于 2025年3月7日交付"), "{}", zh.text);
    assert!(zh.subject.contains("每周进度更新"));

    let mut no_picture = ctx.clone();
    no_picture["timeline_cid"] = Value::Null;
    let en = render(&t, "client_update", Lang::En, &no_picture);
    assert!(!en.html.contains("<img"));
}

#[test]
fn client_update_off_track_tells_the_honest_new_date_and_cause() {
    let t = Templates::embedded();
    let mut ctx = context("client_update", true, "Cinderella ball gown");
    ctx["on_track"] = json!(false);
    ctx["new_delivery_date"] = json!("2025-03-14");
    ctx["delay_cause"] = json!("The silk was held at customs for a week.");
    let en = render(&t, "client_update", Lang::En, &ctx);
    for part in [&en.text, &en.html] {
        assert!(!part.contains("on track"), "claims on track when late:\n{part}");
        assert!(part.contains("Fri, Mar 14, 2025"), "no new date:\n{part}");
        assert!(part.contains("instead of Fri, Mar 7, 2025"), "no old date:\n{part}");
        assert!(
            part.contains("The silk was held at customs for a week."),
            "no cause:\n{part}"
        );
    }
    assert!(en.subject.ends_with("new delivery date"), "{}", en.subject);
    let zh = render(&t, "client_update", Lang::ZhCn, &ctx);
    assert!(
        zh.text.contains("现预计将于 2025年3月14日交付"),
        "no new date:\n{}",
        zh.text
    );
    for part in [&zh.text, &zh.html] {
        assert!(!part.contains("按期"), "claims on track when late:\n{part}");
        assert!(part.contains("2025年3月14日"), "no new date:\n{part}");
        assert!(
            part.contains("原因：The silk was held at customs for a week."),
            "no cause:\n{part}"
        );
    }

    // Late without a new date yet: at risk, never "on track".
    ctx["new_delivery_date"] = Value::Null;
    let en = render(&t, "client_update", Lang::En, &ctx);
    assert!(
        en.text.contains("Delivery on Fri, Mar 7, 2025 is at risk."),
        "{}",
        en.text
    );
    assert!(!en.text.contains("on track"));
}

#[test]
fn firm_reminder_mentions_the_pause_and_friendly_does_not() {
    let t = Templates::embedded();
    let ctx = context("payment_firm", true, "Cinderella ball gown");
    let firm = render(&t, "payment_firm", Lang::En, &ctx);
    assert!(firm.text.contains("more than 7 days late"), "{}", firm.text);
    assert!(firm.text.contains("8 days overdue"), "{}", firm.text);
    let firm_zh = render(&t, "payment_firm", Lang::ZhCn, &ctx);
    assert!(firm_zh.text.contains("逾期超过 7 天"), "{}", firm_zh.text);
    let friendly = render(&t, "payment_friendly", Lang::En, &ctx);
    assert!(!friendly.text.contains("paused"), "{}", friendly.text);
    assert!(friendly.text.contains("friendly reminder"));
}

#[test]
fn missing_variables_fail_in_strict_mode_naming_the_template() {
    let t = Templates::embedded();
    let mut ctx = context("order_shipped", true, "Cinderella ball gown");
    let Some(map) = ctx.as_object_mut() else {
        panic!("object")
    };
    map.remove("shipment");
    let err = t.render("order_shipped", Lang::En, &ctx).expect_err("strict mode");
    assert!(matches!(err, TemplateError::Render { line: Some(_), .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("embedded:en/order_shipped.txt:"), "{msg}");
    assert!(msg.contains("`shipment` is undefined"), "{msg}");
    if let Some(map) = ctx.as_object_mut() {
        map.remove("order");
    }
    let msg = t
        .render("order_shipped", Lang::ZhCn, &ctx)
        .expect_err("strict mode")
        .to_string();
    assert!(
        msg.starts_with("embedded:zh-CN/order_shipped.subject.txt:1: undefined value"),
        "{msg}"
    );

    let err = t.render("weekly_update", Lang::En, &ctx).expect_err("unknown kind");
    assert_eq!(err, TemplateError::UnknownKind("weekly_update".into()));
}

fn write(dir: &Path, rel: &str, content: &str) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, content).expect("write");
}

#[test]
fn an_override_replaces_only_its_own_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "en/client_update.subject.txt",
        "  Progress on {{ order.title }} from {{ org.name }}\n\n",
    );
    write(dir.path(), ".DS_Store", "ignored: hidden");
    let t = Templates::load(Some(dir.path())).expect("loads");
    let ctx = context("client_update", true, "Cinderella ball gown");
    let r = render(&t, "client_update", Lang::En, &ctx);
    assert_eq!(
        r.subject,
        "Progress on Cinderella ball gown from Velvet & Thread Costume Studio"
    );
    // The body and the other language keep the defaults.
    let default = render(&Templates::embedded(), "client_update", Lang::En, &ctx);
    assert_eq!(r.text, default.text);
    let zh = render(&t, "client_update", Lang::ZhCn, &ctx);
    assert!(zh.subject.contains("每周进度更新"));
    assert!(format!("{t:?}").contains("en/client_update.subject.txt"));
}

#[test]
fn an_override_may_replace_the_layout_and_the_macros() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "en/layout.html",
        "<!DOCTYPE html><html lang=\"en\"><body><table style=\"max-width:600px\"><tr><td>{{ org.name }} (custom)</td></tr><tr><td>{% block body %}{% endblock %}</td></tr></table></body></html>",
    );
    let t = Templates::load(Some(dir.path())).expect("loads");
    let r = render(
        &t,
        "order_delivered",
        Lang::En,
        &context("order_delivered", true, "Gown"),
    );
    assert!(
        r.html.contains("Velvet &amp; Thread Costume Studio (custom)"),
        "{}",
        r.html
    );
}

#[test]
fn a_broken_override_is_refused_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "en/client_update.html",
        "{% extends \"en/layout.html\" %}\n{% block body %}\n{% if on_track %}\nOn track!\n{% endblock %}\n",
    );
    let err = Templates::load(Some(dir.path())).expect_err("refused");
    let TemplateError::Syntax { file, line, reason } = &err else {
        panic!("not a syntax error: {err:?}");
    };
    assert!(file.ends_with("en/client_update.html"), "{file}");
    assert!(line.is_some(), "no line in {err}");
    assert!(reason.starts_with("syntax error"), "{reason}");
    let msg = err.to_string();
    let expected = format!(
        "{}:{}: syntax error",
        dir.path().join("en/client_update.html").display(),
        line.unwrap_or(0)
    );
    assert!(msg.starts_with(&expected), "{msg}\nexpected to start with {expected}");

    // An unclosed `if` at the end of the file is reported on the file's last line.
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "zh-CN/payment_due.txt",
        "line 1\n{% if installment %}\nline 3\n",
    );
    let err = Templates::load(Some(dir.path())).expect_err("refused").to_string();
    assert!(
        err.contains("zh-CN/payment_due.txt:3: syntax error: unexpected end of input"),
        "{err}"
    );
}

#[test]
fn unknown_override_names_are_refused() {
    for (rel, hint) in [
        ("en/weekly_updat.html", ""),
        ("en/client_updat.html", " (did you mean en/client_update.html?)"),
        ("en/client_update.htm", ""),
        ("fr/client_update.html", ""),
        ("client_update.html", ""),
        ("en/sub/client_update.html", ""),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), rel, "Hello");
        let err = Templates::load(Some(dir.path())).expect_err(rel);
        let TemplateError::UnknownFile { file, .. } = &err else {
            panic!("{rel}: not an unknown-file error: {err:?}");
        };
        let first = rel.split('/').next().unwrap_or(rel);
        assert!(file.contains(first), "{rel}: {file}");
        let msg = err.to_string();
        assert!(msg.contains("not a template name Ordertrail knows"), "{msg}");
        assert!(msg.contains(hint), "{rel}: {msg}");
    }

    let err = Templates::load(Some(Path::new("/nonexistent/ordertrail-templates"))).expect_err("missing dir");
    assert!(matches!(err, TemplateError::Read { .. }), "{err:?}");
}

#[test]
fn language_tags_parse_leniently_and_serialize_canonically() {
    for tag in ["zh-CN", "zh", "ZH-hans", "zh_cn", " zh-Hans "] {
        assert_eq!(Lang::parse(tag), Lang::ZhCn, "{tag}");
    }
    for tag in ["en", "en-US", "EN", "fr", "", "zh-TW"] {
        assert_eq!(Lang::parse(tag), Lang::En, "{tag}");
    }
    assert_eq!(Lang::ZhCn.as_str(), "zh-CN");
    assert_eq!(serde_json::to_string(&Lang::ZhCn).expect("json"), "\"zh-CN\"");
    assert_eq!(serde_json::to_string(&Lang::En).expect("json"), "\"en\"");
    let back: Lang = serde_json::from_str("\"zh-CN\"").expect("json");
    assert_eq!(back, Lang::ZhCn);
    let back: Lang = serde_json::from_str("\"en\"").expect("json");
    assert_eq!(back, Lang::En);
}

#[test]
fn templates_can_be_shared_between_threads() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Templates>();
    let t = Templates::embedded();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let t = t.clone();
            std::thread::spawn(move || {
                let lang = if i % 2 == 0 { Lang::En } else { Lang::ZhCn };
                t.render("order_delivered", lang, &context("order_delivered", true, "Gown"))
                    .map(|r| r.subject)
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().expect("thread").is_ok());
    }
}
