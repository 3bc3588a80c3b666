//! Issues and exceptions on an order (R5, R6, R10, R36): open one, re-assess it, propose options, record that
//! the client was told and what they decided, resolve it; and the organisation-wide list with its breached
//! clocks. Issues are internal: customers do not see them.

use super::CommonProblems;
use crate::app;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::views::IssueView;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use ordertrail_domain::decide::{IssueCommand, change_issue};
use ordertrail_domain::ids::OrderId;
use ordertrail_domain::issue::{
    ClientDecisionInput, ClientToldInput, Impact, Issue, IssueId, NewIssue, ProposedOptions, ResolutionInput,
    SeverityChange,
};
use ordertrail_store::{BreachLimits, IssueQuery};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

fn view(state: &AppState, issue: Issue) -> IssueView {
    IssueView::new(state, issue)
}

/// Runs `command` on the order's issue and answers with the issue as it is after the commit.
async fn act(
    state: &AppState,
    caller: &Caller,
    order_id: OrderId,
    issue_id: IssueId,
    command: IssueCommand,
) -> ApiResult<IssueView> {
    let policy = state.org.issue_policy.clone();
    let order = app::change_order(state, caller.acting(), order_id, move |order, ctx| {
        change_issue(order, issue_id, command.clone(), &policy, ctx, &mut Uuid::now_v7)
    })
    .await?;
    let issue = order
        .issue(issue_id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("issue"))?;
    Ok(view(state, issue))
}

/// Opens an issue on the order. Its severity comes from the organisation's issue policy; a major one
/// escalates at once (an event, and a message in the outbox for the escalation role).
#[utoipa::path(post, operation_id = "open_issue", path = "/api/v1/orders/{id}/issues", tag = "issues", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first result")),
    request_body = NewIssue,
    responses((status = 201, description = "The issue, opened", body = IssueView), (status = 409, description = "The order is closed", body = crate::error::Problem, content_type = "application/problem+json"), CommonProblems))]
pub async fn open(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<OrderId>,
    ApiJson(input): ApiJson<NewIssue>,
) -> ApiResult<(StatusCode, Json<IssueView>)> {
    let issue_id = IssueId(Uuid::now_v7());
    let opened = act(&state, &caller, id, issue_id, IssueCommand::Open(input)).await?;
    Ok((StatusCode::CREATED, Json(opened)))
}

/// The order's issues, newest first.
#[utoipa::path(get, operation_id = "list_order_issues", path = "/api/v1/orders/{id}/issues", tag = "issues", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, description = "The order's issues, newest first", body = Vec<IssueView>), CommonProblems))]
pub async fn list_for_order(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<OrderId>,
) -> ApiResult<Json<Vec<IssueView>>> {
    let order = app::visible_order(&state, &caller, id).await?;
    caller.require_staff()?;
    let mut issues: Vec<IssueView> = order.issues.into_iter().map(|i| view(&state, i)).collect();
    issues.reverse();
    Ok(Json(issues))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IssueFilter {
    /// Only open (`true`) or only resolved (`false`) issues.
    pub open: Option<bool>,
    /// Only issues with a breached clock now (R10, R36, R34).
    pub breached: Option<bool>,
    /// Only the issues of this order.
    pub order_id: Option<Uuid>,
    /// At most this many (1-200, default 50).
    pub limit: Option<u32>,
}

/// Issues across the orders the caller may see, newest first; `breached=true` lists those whose clocks ran out.
#[utoipa::path(get, operation_id = "list_issues", path = "/api/v1/issues", tag = "issues", security(("bearer" = [])),
    params(IssueFilter),
    responses((status = 200, description = "The issues, newest first", body = Vec<IssueView>), CommonProblems))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(filter): ApiQuery<IssueFilter>,
) -> ApiResult<Json<Vec<IssueView>>> {
    caller.require_staff()?;
    let limit = filter.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ordertrail_domain::DomainError::invalid("limit", "must be between 1 and 200").into());
    }
    let policy = &state.org.issue_policy;
    let query = IssueQuery {
        visibility: app::visibility(&state, &caller),
        open: filter.open,
        breached: filter.breached.filter(|b| *b).map(|_| BreachLimits {
            now: state.now(),
            open_within_minutes: i64::from(policy.open_within_minutes),
            client_notice_hours: i64::from(policy.client_notice_hours),
        }),
        order: filter.order_id.map(OrderId),
        limit,
    };
    let issues = state.store.issues(&query).await?;
    let mut views: Vec<IssueView> = issues.into_iter().map(|i| view(&state, i)).collect();
    if filter.breached == Some(false) {
        views.retain(|v| v.breaches.is_empty());
    }
    Ok(Json(views))
}

macro_rules! issue_step {
    ($name:ident, $op:literal, $path:literal, $input:ty, $command:ident, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, operation_id = $op, path = $path, tag = "issues", security(("bearer" = [])),
            params(("id" = String, Path, format = Uuid), ("issue_id" = String, Path, format = Uuid),
                ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the first result")),
            request_body = $input,
            responses((status = 200, description = "The issue after the step", body = IssueView),
                (status = 409, description = "The step is out of order (e.g. the issue is resolved)", body = crate::error::Problem, content_type = "application/problem+json"),
                CommonProblems))]
        pub async fn $name(
            State(state): State<AppState>,
            caller: Caller,
            ApiPath((id, issue_id)): ApiPath<(OrderId, IssueId)>,
            ApiJson(input): ApiJson<$input>,
        ) -> ApiResult<Json<IssueView>> {
            Ok(Json(act(&state, &caller, id, issue_id, IssueCommand::$command(input)).await?))
        }
    };
}

issue_step!(
    change_impact,
    "change_issue_impact",
    "/api/v1/orders/{id}/issues/{issue_id}/impact",
    Impact,
    ChangeImpact,
    "Records a new estimate of the impact; the severity is recomputed, never silently lowered."
);
issue_step!(
    set_severity,
    "set_issue_severity",
    "/api/v1/orders/{id}/issues/{issue_id}/severity",
    SeverityChange,
    SetSeverity,
    "Raises the severity (any staff, with a reason) or lowers it (the escalation role, with a reason)."
);
issue_step!(
    propose_options,
    "propose_issue_options",
    "/api/v1/orders/{id}/issues/{issue_id}/options",
    ProposedOptions,
    ProposeOptions,
    "R6: 2-3 options with their timeline and cost effects, the roles consulted and a recommendation."
);
issue_step!(
    client_told,
    "record_issue_client_told",
    "/api/v1/orders/{id}/issues/{issue_id}/client-told",
    ClientToldInput,
    ClientTold,
    "R10: records when and how the client was told."
);
issue_step!(
    client_decision,
    "record_issue_client_decision",
    "/api/v1/orders/{id}/issues/{issue_id}/decision",
    ClientDecisionInput,
    ClientDecision,
    "R6: records the client's decision (who, when, evidence, the option chosen)."
);
issue_step!(
    resolve,
    "resolve_issue",
    "/api/v1/orders/{id}/issues/{issue_id}/resolve",
    ResolutionInput,
    Resolve,
    "Resolves the issue with the resulting replan; a major issue needs the client's decision first."
);
