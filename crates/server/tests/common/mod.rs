//! The shared harness of the HTTP-level tests: a real router over a real database (a SQLite file in a temp
//! folder; a throwaway PostgreSQL database when `ORDERTRAIL_TEST_ENGINE=postgres`, as CI runs them too), a
//! manual clock, users in every role with their tokens, two customers, and helpers that send requests through
//! the router exactly as a client would (`tower::ServiceExt::oneshot`).
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use ordertrail_domain::Role;
use ordertrail_domain::customer::User;
use ordertrail_domain::ids::CustomerId;
use ordertrail_domain::workflow::{Guard, Workflow};
use ordertrail_server::app;
use ordertrail_server::clock::Clock;
use ordertrail_server::config::Config;
use ordertrail_server::state::AppState;
use ordertrail_store::sqlite::Durability;
use ordertrail_store::testing::TestDatabase;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use tower::ServiceExt;
use uuid::Uuid;

/// The time the manual clock starts at: Monday 2 March 2026, noon in London (GMT, before summer time).
pub const T0: &str = "2026-03-02T12:00:00Z";
/// The organisation's date at [`T0`].
pub const TODAY: &str = "2026-03-02";

pub type Reply = (StatusCode, HeaderMap, Value);

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("bad test time {text}: {e}"))
        .with_timezone(&Utc)
}

/// A running application on its own database, which lives as long as this value.
pub struct TestApp {
    pub db: TestDatabase,
    pub state: AppState,
    pub router: Router,
}

/// A value for [`TestApp::tamper`].
pub enum Raw<'a> {
    Text(&'a str),
    Int(i64),
}

impl TestApp {
    pub async fn new() -> TestApp {
        TestApp::with_config(|_| {}).await
    }

    /// An application whose configuration is the default one (London time) changed by `change`.
    pub async fn with_config(change: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = Config::default();
        config.organisation.time_zone = "Europe/London".into();
        change(&mut config);
        let org = config.organisation().expect("the default organisation loads");
        let db = TestDatabase::for_engine_under_test("an HTTP test").await;
        let store = ordertrail_store::open(&db.url, Durability::Normal, Arc::new(org.workflows.clone()))
            .await
            .expect("open the store");
        store.migrate().await.expect("migrate");
        let state = AppState::new(store, org, Clock::manual(at(T0)));
        let router = ordertrail_server::router(state.clone());
        TestApp { db, state, router }
    }

    /// Changes the database behind the product's back (tampering tests), on either engine; `$1, $2, ...`
    /// are bound from `values`. Returns the rows changed. Compare ids as text: `CAST(stream_id AS TEXT) = $1`.
    pub async fn tamper(&self, sql: &str, values: &[Raw<'_>]) -> u64 {
        use sqlx::Connection;
        macro_rules! run {
            ($conn:expr) => {{
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
                for value in values {
                    query = match value {
                        Raw::Text(t) => query.bind(t.to_string()),
                        Raw::Int(i) => query.bind(*i),
                    };
                }
                query
                    .execute(&mut $conn)
                    .await
                    .expect("the tampering statement runs")
                    .rows_affected()
            }};
        }
        if self.db.is_postgres() {
            let mut conn = sqlx::PgConnection::connect(&self.db.url).await.expect("connect");
            run!(conn)
        } else {
            let mut conn = sqlx::SqliteConnection::connect(&self.db.url).await.expect("connect");
            run!(conn)
        }
    }

    /// Adds a user with `roles` (and a customer for a customer user) and issues them a token.
    pub async fn person(&self, email: &str, roles: Vec<Role>, customer: Option<CustomerId>) -> Person {
        let name = email.split('@').next().unwrap_or(email).to_string();
        let user = app::add_user(&self.state, email, &name, roles, customer)
            .await
            .unwrap_or_else(|e| panic!("add user {email}: {e}"));
        let (_, token) = app::issue_token(&self.state, email)
            .await
            .unwrap_or_else(|e| panic!("issue token for {email}: {e}"));
        Person { user, token }
    }

    pub async fn event_count(&self) -> i64 {
        self.state.store.count_events().await.expect("count events")
    }

    pub fn set_clock(&self, to: &str) {
        self.state.clock.set(at(to));
    }

    pub fn workflow(&self, id: &str) -> Workflow {
        self.state
            .workflow(id)
            .unwrap_or_else(|| panic!("workflow {id} is loaded"))
            .clone()
    }

    /// Sends a request through the router and reads the whole answer; a JSON body is parsed, any other body
    /// is returned as a JSON string, an empty one as null.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.expect("the router answers");
        read(response).await
    }

    pub async fn get(&self, path: &str, token: &str, role: Option<&str>) -> Reply {
        self.send(request(Method::GET, path, Some(token), role, None)).await
    }

    pub async fn post(&self, path: &str, token: &str, role: Option<&str>, body: Value) -> Reply {
        self.send(request(Method::POST, path, Some(token), role, Some(&body)))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, role: Option<&str>, body: Value) -> Reply {
        self.send(request(Method::PATCH, path, Some(token), role, Some(&body)))
            .await
    }
}

pub async fn read(response: axum::response::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.expect("read the body").to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, headers, body)
}

/// A request with an optional bearer token, acting role and JSON body.
pub fn request(
    method: Method,
    path: &str,
    token: Option<&str>,
    role: Option<&str>,
    body: Option<&Value>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(role) = role {
        builder = builder.header("x-ordertrail-role", role);
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request"),
        None => builder.body(Body::empty()).expect("request"),
    }
}

/// A request with raw body bytes and any extra headers (malformed bodies, Idempotency-Key).
pub fn raw_request(
    method: Method,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::from(body)).expect("request")
}

/// Someone who signs in: the user and their bearer token.
#[derive(Debug, Clone)]
pub struct Person {
    pub user: User,
    pub token: String,
}

impl Person {
    pub fn id(&self) -> String {
        self.user.id.to_string()
    }
}

/// An organisation with one single-role user per role, a user with several roles, and two customers, each
/// with a customer user. Orders made by [`World::create_order`] name everyone (so that every role is on it).
pub struct World {
    pub app: TestApp,
    pub admin: Person,
    /// Account manager, the owner of the orders.
    pub am: Person,
    /// Sales coordinator, the backup.
    pub sc: Person,
    pub sd: Person,
    pub ops: Person,
    pub design: Person,
    pub finance: Person,
    pub logistics: Person,
    pub ip: Person,
    pub mfr: Person,
    /// Holds sales_coordinator, logistics, manufacturer and operations; must pick one per request.
    pub multi: Person,
    /// An operations user who is on no order.
    pub outsider: Person,
    pub acme: String,
    pub acme_user: Person,
    pub globex: String,
    pub globex_user: Person,
}

impl World {
    pub async fn new() -> World {
        World::on(TestApp::new().await).await
    }

    pub async fn on(app: TestApp) -> World {
        let admin = app.person("admin@test.dev", vec![Role::Admin], None).await;
        let am = app.person("amy@test.dev", vec![Role::AccountManager], None).await;
        let sc = app.person("sam@test.dev", vec![Role::SalesCoordinator], None).await;
        let sd = app.person("dana@test.dev", vec![Role::SalesDirector], None).await;
        let ops = app.person("omar@test.dev", vec![Role::Operations], None).await;
        let design = app.person("lea@test.dev", vec![Role::Design], None).await;
        let finance = app.person("fay@test.dev", vec![Role::Finance], None).await;
        let logistics = app.person("leo@test.dev", vec![Role::Logistics], None).await;
        let ip = app.person("ivy@test.dev", vec![Role::IpOwner], None).await;
        let mfr = app.person("mia@test.dev", vec![Role::Manufacturer], None).await;
        let multi = app
            .person(
                "max@test.dev",
                vec![
                    Role::SalesCoordinator,
                    Role::Logistics,
                    Role::Manufacturer,
                    Role::Operations,
                ],
                None,
            )
            .await;
        let outsider = app.person("otto@test.dev", vec![Role::Operations], None).await;
        let acme = create_customer(&app, &am, "Acme Theatre", "Margaret Hale").await;
        let globex = create_customer(&app, &am, "Globex Parts", "Wang Lei").await;
        let acme_user = app
            .person("margaret@acme.example", vec![Role::Customer], Some(customer_id(&acme)))
            .await;
        let globex_user = app
            .person("wang@globex.example", vec![Role::Customer], Some(customer_id(&globex)))
            .await;
        World {
            app,
            admin,
            am,
            sc,
            sd,
            ops,
            design,
            finance,
            logistics,
            ip,
            mfr,
            multi,
            outsider,
            acme,
            acme_user,
            globex,
            globex_user,
        }
    }

    /// The single-role user of `role` (the Acme customer user for `customer`).
    pub fn holder_of(&self, role: Role) -> &Person {
        match role {
            Role::Admin => &self.admin,
            Role::AccountManager => &self.am,
            Role::SalesCoordinator => &self.sc,
            Role::SalesDirector => &self.sd,
            Role::Operations => &self.ops,
            Role::Design => &self.design,
            Role::Finance => &self.finance,
            Role::Logistics => &self.logistics,
            Role::IpOwner => &self.ip,
            Role::Manufacturer => &self.mfr,
            Role::Customer => &self.acme_user,
        }
    }

    /// A new order for Acme in `workflow`, ordered today and promised in 91 days, with everyone on it:
    /// Amy owns it, Sam backs her up, Omar and Mia produce, Léa designs, Leo ships, Ivy owns the IP, Max backs
    /// up too, and Margaret is the customer.
    pub fn order_body(&self, workflow: &str) -> Value {
        json!({
            "workflow": workflow,
            "customer_id": self.acme,
            "title": format!("Test order ({workflow})"),
            "order_type": "regular",
            "amount": {"currency": "USD", "amount": "1250.00"},
            "order_date": TODAY,
            "promised_date": "2026-06-01",
            "line_items": [{"description": "Widget", "quantity": 3}],
            "people": [
                {"relation": "owner", "user_id": self.am.id()},
                {"relation": "backup", "user_id": self.sc.id()},
                {"relation": "backup", "user_id": self.multi.id()},
                {"relation": "production", "user_id": self.ops.id()},
                {"relation": "production", "user_id": self.mfr.id()},
                {"relation": "design", "user_id": self.design.id()},
                {"relation": "logistics", "user_id": self.logistics.id()},
                {"relation": "ip_owner", "user_id": self.ip.id()},
                {"relation": "customer", "user_id": self.acme_user.id()},
            ],
        })
    }

    /// Creates an order as Amy; panics unless 201.
    pub async fn create_order(&self, body: Value) -> Value {
        let (status, _, order) = self.app.post("/api/v1/orders", &self.am.token, None, body).await;
        assert_eq!(status, StatusCode::CREATED, "create order: {order}");
        order
    }

    pub async fn new_order(&self, workflow: &str) -> Value {
        self.create_order(self.order_body(workflow)).await
    }

    /// The order as the admin sees it.
    pub async fn order(&self, id: &str) -> Value {
        let (status, _, order) = self
            .app
            .get(&format!("/api/v1/orders/{id}"), &self.admin.token, None)
            .await;
        assert_eq!(status, StatusCode::OK, "get order: {order}");
        order
    }

    /// Posts a transition as `who` (acting in `role` when given).
    pub async fn transition(&self, order_id: &str, who: &Person, role: Option<&str>, body: Value) -> Reply {
        self.app
            .post(
                &format!("/api/v1/orders/{order_id}/transitions"),
                &who.token,
                role,
                body,
            )
            .await
    }

    /// Completes milestone `key` as `who` with all its checklist items and a client approver; panics unless 200.
    pub async fn complete(&self, order_id: &str, key: &str, who: &Person, role: Option<&str>) {
        let order = self.order(order_id).await;
        let m = milestone(&order, key);
        let (status, _, body) = self
            .app
            .post(
                &format!(
                    "/api/v1/orders/{order_id}/milestones/{}/complete",
                    m["id"].as_str().unwrap()
                ),
                &who.token,
                role,
                json!({
                    "evidence": {"approved_by": "Margaret Hale", "note": "approved by email"},
                    "checklist": checklist_items(m),
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "complete {key}: {body}");
    }

    /// Moves an order to `target` along the workflow's shortest path, each step made by someone allowed to
    /// make it, with whatever its guards need (milestones completed, checklist ticked, fields, confirmation).
    pub async fn advance(&self, order_id: &str, target: &str) {
        let order = self.order(order_id).await;
        let wf = self.app.workflow(order["workflow"].as_str().unwrap());
        let from = order["status"].as_str().unwrap().to_string();
        for (from, to) in path(&wf, &from, target) {
            let t = wf.transition(&from, &to).expect("a path uses transitions").clone();
            let mut fields = BTreeMap::new();
            for guard in &t.guards {
                self.satisfy(order_id, &wf, guard, &mut fields).await;
            }
            let role = t.roles[0];
            let (status, _, body) = self
                .transition(
                    order_id,
                    self.holder_of(role),
                    None,
                    json!({"to": to, "fields": fields, "confirm": true}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{from} -> {to} as {role}: {body}");
        }
    }

    /// Records the signed contract (R15) as the account manager; panics unless 201.
    pub async fn sign_contract(&self, order_id: &str, on: &str) {
        let (status, _, body) = self
            .app
            .post(
                &format!("/api/v1/orders/{order_id}/contract"),
                &self.holder_of(Role::AccountManager).token,
                None,
                json!({ "signed_on": on }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "sign the contract: {body}");
    }

    /// Records a bank transfer paying `amount` on installment `number`, as finance; panics unless 201.
    pub async fn pay(&self, order_id: &str, number: u32, currency: &str, amount: &str, on: &str) {
        let (status, _, body) = self
            .app
            .post(
                &format!("/api/v1/orders/{order_id}/payments"),
                &self.finance.token,
                None,
                json!({"installment": number, "amount": {"currency": currency, "amount": amount}, "paid_on": on,
                       "method": "bank_transfer", "reference": "BANK-REF-0"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "pay installment {number}: {body}");
    }

    async fn satisfy(&self, order_id: &str, wf: &Workflow, guard: &Guard, fields: &mut BTreeMap<String, String>) {
        match guard {
            Guard::Field { field, .. } => {
                // The format's type is private to the domain crate: read it from the guard's JSON.
                let format = serde_json::to_value(guard).unwrap()["format"].clone();
                let value = match format.as_str().unwrap() {
                    "date" => "2026-03-01".to_string(),
                    "tracking_url" => "https://track.example.com/p/1Z999AA10123456784".to_string(),
                    "tracking_number" => {
                        fields.insert("carrier".into(), "UPS".into());
                        "1Z999AA10123456784".to_string()
                    }
                    _ => "Margaret Hale".to_string(),
                };
                fields.entry(field.clone()).or_insert(value);
            }
            Guard::Confirmed => {}
            Guard::DepositPaid => {
                let order = self.order(order_id).await;
                let (status, _, schedule) = self
                    .app
                    .get(
                        &format!("/api/v1/orders/{order_id}/payments"),
                        &self.finance.token,
                        None,
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{schedule}");
                if schedule["contract_signed_on"].is_null() {
                    self.sign_contract(order_id, "2026-03-01").await;
                }
                let deposit = &schedule["installments"][0];
                if deposit["state"] != "paid" {
                    let amount = deposit["outstanding"]["amount"].as_str().unwrap();
                    let currency = order["amount"]["currency"].as_str().unwrap();
                    self.pay(order_id, 1, currency, amount, "2026-03-01").await;
                }
            }
            Guard::MilestonesDone { phase, milestones } => {
                let order = self.order(order_id).await;
                for m in order["milestones"].as_array().unwrap() {
                    let key = m["key"].as_str().unwrap();
                    let wanted =
                        phase.as_deref().is_some_and(|p| m["phase"] == p) || milestones.iter().any(|k| k == key);
                    if wanted && m["completed_at"].is_null() {
                        let role: Role = serde_json::from_value(m["complete_roles"][0].clone()).unwrap();
                        self.complete(order_id, key, self.holder_of(role), None).await;
                    }
                }
            }
            Guard::ChecklistDone { milestone: key } => {
                let order = self.order(order_id).await;
                let m = milestone(&order, key);
                let ticks: BTreeMap<String, bool> = checklist_items(m).into_iter().map(|item| (item, true)).collect();
                let (status, _, body) = self
                    .app
                    .patch(
                        &format!("/api/v1/orders/{order_id}/milestones/{}", m["id"].as_str().unwrap()),
                        &self.holder_of(wf.replan_roles[0]).token,
                        None,
                        json!({ "checklist": ticks }),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "tick {key}: {body}");
            }
        }
    }

    pub async fn events(&self, order_id: &str) -> Vec<Value> {
        let (status, _, events) = self
            .app
            .get(&format!("/api/v1/orders/{order_id}/events"), &self.admin.token, None)
            .await;
        assert_eq!(status, StatusCode::OK, "events: {events}");
        events.as_array().unwrap().clone()
    }
}

/// Creates a customer with one contact, as `who`; panics unless 201.
pub async fn create_customer(app: &TestApp, who: &Person, name: &str, contact: &str) -> String {
    let (status, _, customer) = app
        .post(
            "/api/v1/customers",
            &who.token,
            None,
            json!({
                "name": name,
                "contacts": [{"name": contact, "email": "buyer@example.com", "title": "Buyer"}],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "create customer: {customer}");
    customer["id"].as_str().unwrap().to_string()
}

pub fn customer_id(id: &str) -> CustomerId {
    CustomerId(Uuid::parse_str(id).expect("a customer id"))
}

/// The milestone with `key` of an order view.
pub fn milestone<'a>(order: &'a Value, key: &str) -> &'a Value {
    order["milestones"]
        .as_array()
        .expect("milestones")
        .iter()
        .find(|m| m["key"] == key)
        .unwrap_or_else(|| panic!("milestone {key} in {order}"))
}

pub fn checklist_items(milestone: &Value) -> Vec<String> {
    milestone["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["item"].as_str().unwrap().to_string())
        .collect()
}

pub fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_string()
}

/// The shortest path of (from, to) steps from `from` to `to`, never through a terminal status.
pub fn path(wf: &Workflow, from: &str, to: &str) -> Vec<(String, String)> {
    let mut previous: BTreeMap<String, String> = BTreeMap::new();
    let mut seen = BTreeSet::from([from.to_string()]);
    let mut queue = VecDeque::from([from.to_string()]);
    while let Some(status) = queue.pop_front() {
        if status == to {
            break;
        }
        if wf.is_terminal(&status) {
            continue;
        }
        for t in wf.transitions.iter().filter(|t| t.from.contains(&status)) {
            if seen.insert(t.to.clone()) {
                previous.insert(t.to.clone(), status.clone());
                queue.push_back(t.to.clone());
            }
        }
    }
    let mut steps = Vec::new();
    let mut at = to.to_string();
    while at != from {
        let before = previous
            .get(&at)
            .unwrap_or_else(|| panic!("{to} is reachable from {from} in {}", wf.id))
            .clone();
        steps.push((before.clone(), at));
        at = before;
    }
    steps.reverse();
    steps
}

/// Asserts that a reply is an RFC 9457 problem with `status`, whose `type` ends with `kind`, and that its
/// detail is not empty.
pub fn assert_problem(reply: &Reply, status: StatusCode, kind: &str) {
    let (got, headers, body) = reply;
    assert_eq!(*got, status, "status of {body}");
    assert_eq!(
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "content type of {body}"
    );
    assert_eq!(body["status"], status.as_u16(), "problem status in {body}");
    let problem_type = body["type"].as_str().unwrap_or_default();
    assert!(
        problem_type.ends_with(&format!("/{kind}")),
        "problem type {problem_type} should be {kind}: {body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.trim().is_empty()),
        "a problem needs a detail: {body}"
    );
}

/// The `field`s named in a validation problem's `errors`.
pub fn error_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The `guard`s named in a guard-failed problem.
pub fn guard_names(body: &Value) -> Vec<String> {
    body["guards"]
        .as_array()
        .map(|guards| {
            guards
                .iter()
                .map(|g| g["guard"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}
