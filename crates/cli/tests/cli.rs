//! The `ordertrail` binary as a user runs it: help, users and tokens, the demo server, and `verify` catching
//! a row edited behind the product's back.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn ordertrail(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ordertrail"))
        .args(args)
        .env("ORDERTRAIL_DATABASE_URL", db)
        .env_remove("ORDERTRAIL_CONFIG")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("cli.db").display());
    (dir, url)
}

#[test]
fn help_describes_every_verb() {
    let (_dir, db) = temp_db();
    let top = ordertrail(&db, &["--help"]);
    assert!(top.status.success());
    let top = text(&top.stdout);
    for verb in ["serve", "migrate", "user", "token", "verify", "bench"] {
        assert!(top.contains(verb), "--help lists {verb}");
        let help = ordertrail(&db, &[verb, "--help"]);
        assert!(help.status.success(), "{verb} --help succeeds");
        assert!(text(&help.stdout).len() > 40, "{verb} --help says something");
    }
    let add = text(&ordertrail(&db, &["user", "add", "--help"]).stdout);
    assert!(add.contains("--role") && add.contains("--name"));
}

#[test]
fn a_user_gets_a_token_that_is_stored_only_as_a_hash() {
    let (_dir, db) = temp_db();
    let added = ordertrail(
        &db,
        &[
            "user",
            "add",
            "amy@example.com",
            "--name",
            "Amy Chen",
            "--role",
            "account_manager",
            "--role",
            "operations",
        ],
    );
    assert!(added.status.success(), "{}", text(&added.stderr));
    assert!(text(&added.stdout).contains("account_manager, operations"));

    let issued = ordertrail(&db, &["token", "issue", "amy@example.com"]);
    assert!(issued.status.success(), "{}", text(&issued.stderr));
    let token = text(&issued.stdout).trim().to_string();
    assert!(token.starts_with("ot_") && token.len() == 67, "{token}");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stored: Vec<String> = rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&db).await.expect("open");
        sqlx::query_scalar("SELECT token_hash FROM tokens")
            .fetch_all(&pool)
            .await
            .expect("read")
    });
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], token, "the token itself is not stored");
    assert_eq!(stored[0], ordertrail_server::auth::hash_token(&token));
}

#[test]
fn a_wrong_role_or_a_duplicate_email_is_refused_with_one_clear_line() {
    let (_dir, db) = temp_db();
    let bad = ordertrail(&db, &["user", "add", "x@example.com", "--name", "X", "--role", "chief"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("unknown role 'chief'"),
        "{}",
        text(&bad.stderr)
    );
    let ok = ordertrail(
        &db,
        &["user", "add", "x@example.com", "--name", "X", "--role", "finance"],
    );
    assert!(ok.status.success());
    let twice = ordertrail(
        &db,
        &["user", "add", "X@example.com", "--name", "X", "--role", "finance"],
    );
    assert!(!twice.status.success());
    assert!(
        text(&twice.stderr).contains("already exists"),
        "{}",
        text(&twice.stderr)
    );
    let nobody = ordertrail(&db, &["token", "issue", "nobody@example.com"]);
    assert!(!nobody.status.success());
    assert!(text(&nobody.stderr).contains("nobody@example.com"));
    let email = ordertrail(
        &db,
        &["user", "add", "not-an-email", "--name", "X", "--role", "finance"],
    );
    assert!(!email.status.success());
    assert!(text(&email.stderr).contains("email"));
}

#[test]
fn migrate_reports_the_schema_version() {
    let (_dir, db) = temp_db();
    let out = ordertrail(&db, &["migrate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // "... is at schema version N (this ordertrail knows N)": migrated to the newest it knows.
    let said = text(&out.stdout);
    let numbers: Vec<&str> = said
        .split(|c: char| !c.is_ascii_digit())
        .filter(|n| !n.is_empty())
        .collect();
    assert!(said.contains("schema version"), "{said}");
    assert_eq!(numbers.iter().rev().take(2).collect::<Vec<_>>().len(), 2, "{said}");
    assert_eq!(numbers[numbers.len() - 1], numbers[numbers.len() - 2], "{said}");
    assert_ne!(numbers[numbers.len() - 1], "0", "{said}");
}

/// Starts `serve --demo` on a free port, returns the child, base URL and admin token.
fn start_demo(db: &str) -> (std::process::Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ordertrail"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .env("ORDERTRAIL_DATABASE_URL", db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut base = String::new();
    let mut token = String::new();
    let started = Instant::now();
    while token.is_empty() && started.elapsed() < Duration::from_secs(30) {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.split("on http://").nth(1) {
            base = format!("http://{}", rest.split('/').next().unwrap_or_default());
        }
        if let Some(t) = line.split_whitespace().find(|w| w.starts_with("ot_")) {
            token = t.to_string();
        }
    }
    assert!(
        !base.is_empty() && !token.is_empty(),
        "serve printed its URL and an admin token"
    );
    (child, base, token)
}

#[test]
fn the_demo_server_answers_with_orders_in_every_preset_and_verify_catches_tampering() {
    let (_dir, db) = temp_db();
    let (mut child, base, token) = start_demo(&db);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (health, workflows) = rt.block_on(async {
        ordertrail_notify::install_crypto_provider();
        let client = reqwest::Client::new();
        let health = client
            .get(format!("{base}/api/v1/health"))
            .send()
            .await
            .expect("health")
            .status()
            .as_u16();
        let page: serde_json::Value = client
            .get(format!("{base}/api/v1/orders?limit=200"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("orders")
            .json()
            .await
            .expect("json");
        let mut workflows: Vec<String> = page["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|o| o["workflow"].as_str().map(str::to_string))
            .collect();
        workflows.sort();
        workflows.dedup();
        (health, workflows)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(health, 200);
    assert_eq!(workflows, ["custom-production", "make-to-order", "standard"]);

    let clean = ordertrail(&db, &["verify"]);
    assert!(clean.status.success(), "{}", text(&clean.stdout));
    assert!(text(&clean.stdout).starts_with("ok:"));

    // Edit one event of one order behind the product's back.
    let number: String = rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&db).await.expect("open");
        let (stream, number): (String, String) = sqlx::query_as(
            "SELECT e.stream_id, o.number FROM events e JOIN orders o ON o.id = e.stream_id WHERE e.seq = 2 ORDER BY o.number LIMIT 1",
        )
        .fetch_one(&pool)
        .await
        .expect("an order with two events");
        sqlx::query("UPDATE events SET reason = 'nothing to see here' WHERE stream_id = $1 AND seq = 2")
            .bind(&stream)
            .execute(&pool)
            .await
            .expect("tamper");
        number
    });
    let broken = ordertrail(&db, &["verify"]);
    assert_eq!(broken.status.code(), Some(2), "verify fails");
    let report = text(&broken.stdout);
    assert!(
        report.contains(&format!("BROKEN: order {number}: first broken link at event 2")),
        "{report}"
    );
    assert!(report.contains("1 of"), "{report}");
}

#[test]
fn a_broken_workflow_file_stops_the_start_naming_the_file_and_the_problem() {
    let (dir, db) = temp_db();
    let workflows = dir.path().join("workflows");
    std::fs::create_dir(&workflows).expect("dir");
    std::fs::write(
        workflows.join("rush.toml"),
        r#"
id = "rush"
name = "Rush"
initial = "new"
create_roles = ["account_manager"]
statuses = [{ id = "new", name = "New" }, { id = "done", name = "Done", terminal = true }, { id = "lost", name = "Lost", terminal = true }]
[[transitions]]
from = ["new"]
to = "done"
roles = ["chief"]
"#,
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_ordertrail"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("ORDERTRAIL_DATABASE_URL", &db)
        .env("ORDERTRAIL_WORKFLOWS_DIR", &workflows)
        .output()
        .expect("runs");
    assert!(!out.status.success(), "serve refuses to start");
    let err = text(&out.stderr);
    assert!(err.contains("rush.toml"), "{err}");
    assert!(err.contains("unknown role 'chief'"), "{err}");
    assert!(err.contains("status 'lost' is unreachable"), "{err}");
}
