//! The use cases, shared by the HTTP handlers, the CLI and the demo data: each authorises, lets the domain
//! decide, and hands the events to the store's single write path.

use crate::auth::{Caller, hash_token, new_token};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use ordertrail_domain::access::can_see;
use ordertrail_domain::customer::{Customer, NewCustomer, User};
use ordertrail_domain::decide::{Acting, ChangeContext, NewOrder, OrderContext, plan_order};
use ordertrail_domain::event::{Actor, CustomerEvent, NewEvent, OrgEvent};
use ordertrail_domain::ids::{CustomerId, EventId, OrderId, TokenId, UserId};
use ordertrail_domain::order::Order;
use ordertrail_domain::{DomainError, Role};
use ordertrail_store::{Decision, Meta};
use std::collections::BTreeMap;
use uuid::Uuid;

fn event<P>(state: &AppState, actor: Actor, payload: P) -> NewEvent<P> {
    NewEvent {
        id: EventId(Uuid::now_v7()),
        at: state.now(),
        actor,
        reason: None,
        payload,
    }
}

/// Adds a user (CLI `user add`, demo data).
pub async fn add_user(
    state: &AppState,
    email: &str,
    name: &str,
    roles: Vec<Role>,
    customer: Option<CustomerId>,
) -> ApiResult<User> {
    if let Some(id) = customer
        && state.store.customer(id).await?.is_none()
    {
        return Err(ApiError::from(DomainError::invalid("customer", "no such customer")));
    }
    let user = User::new(UserId(Uuid::now_v7()), email, name, roles, customer, state.now())?;
    state
        .store
        .record_org_event(event(state, Actor::System, OrgEvent::UserAdded { user: user.clone() }))
        .await?;
    Ok(user)
}

/// Issues a token for the user with `email` and returns it; only its hash is kept.
pub async fn issue_token(state: &AppState, email: &str) -> ApiResult<(User, String)> {
    let user = state
        .store
        .user_by_email(email)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("user with email {email}")))?;
    let token = new_token();
    let payload = OrgEvent::TokenIssued {
        token_id: TokenId(Uuid::now_v7()),
        user_id: user.id,
        token_hash: hash_token(&token),
    };
    state
        .store
        .record_org_event(event(state, Actor::System, payload))
        .await?;
    Ok((user, token))
}

/// Roles that keep the customer records.
const CUSTOMER_EDITORS: [Role; 4] = [
    Role::Admin,
    Role::AccountManager,
    Role::SalesCoordinator,
    Role::SalesDirector,
];

pub async fn create_customer(state: &AppState, acting: Acting, input: NewCustomer) -> ApiResult<Customer> {
    if !CUSTOMER_EDITORS.contains(&acting.role) {
        return Err(DomainError::RoleNotAllowed {
            role: acting.role,
            action: "create customers".into(),
        }
        .into());
    }
    let customer = input.into_customer(CustomerId(Uuid::now_v7()), state.now())?;
    let actor = Actor::User {
        id: acting.user,
        role: acting.role,
    };
    state
        .store
        .create_customer(event(
            state,
            actor,
            CustomerEvent::CustomerCreated {
                customer: customer.clone(),
            },
        ))
        .await?;
    Ok(customer)
}

/// A customer as the caller may see it: staff see every customer; a customer user only their own.
pub async fn customer(state: &AppState, caller: &Caller, id: CustomerId) -> ApiResult<Customer> {
    let customer = state
        .store
        .customer(id)
        .await?
        .ok_or_else(|| ApiError::not_found("customer"))?;
    if caller.role == Role::Customer && caller.user.customer_id != Some(id) {
        return Err(ApiError::not_found("customer"));
    }
    Ok(customer)
}

pub async fn create_order(state: &AppState, acting: Acting, input: NewOrder) -> ApiResult<Order> {
    let workflow = state.workflow(&input.workflow).ok_or_else(|| {
        ApiError::from(DomainError::invalid(
            "workflow",
            format!(
                "unknown workflow '{}' (known: {})",
                input.workflow,
                state.org.workflows.ids().join(", ")
            ),
        ))
    })?;
    let customer = state
        .store
        .customer(input.customer_id)
        .await?
        .ok_or_else(|| ApiError::from(DomainError::invalid("customer_id", "no such customer")))?;
    let mut named: Vec<UserId> = input
        .people
        .iter()
        .map(|p| p.user_id)
        .chain(input.milestone_owners.values().copied())
        .collect();
    named.sort();
    named.dedup();
    let users = state.store.users(&named).await?;
    let people_roles: BTreeMap<UserId, Vec<Role>> = users.iter().map(|u| (u.id, u.roles.clone())).collect();
    let people_customers: BTreeMap<UserId, CustomerId> =
        users.iter().filter_map(|u| Some((u.id, u.customer_id?))).collect();
    let now = state.now();
    let ctx = OrderContext {
        workflow,
        customer: &customer,
        people_roles: &people_roles,
        people_customers: &people_customers,
        today: state.local_date(now),
        now,
    };
    let planned = plan_order(input, acting, &ctx, &mut Uuid::now_v7)?;
    let meta = Meta {
        actor: Actor::User {
            id: acting.user,
            role: acting.role,
        },
        at: now,
    };
    Ok(state
        .store
        .create_order(planned, state.org.number_pattern.clone(), meta)
        .await?)
}

/// The one way to change an order: load it in the write transaction, let `decide` (a domain command) turn it
/// into events, commit them with the projections and outbox.
pub async fn change_order(
    state: &AppState,
    acting: Acting,
    id: OrderId,
    decide: impl Fn(&Order, &ChangeContext<'_>) -> Result<Decision, DomainError> + Send + Sync + 'static,
) -> ApiResult<Order> {
    let now = state.now();
    let meta = Meta {
        actor: Actor::User {
            id: acting.user,
            role: acting.role,
        },
        at: now,
    };
    let org = state.org.clone();
    let today = state.local_date(now);
    let decide = move |order: &Order| {
        let workflow = org.workflows.get(&order.workflow).ok_or_else(|| {
            DomainError::Conflict(format!(
                "the order's workflow '{}' is no longer configured",
                order.workflow
            ))
        })?;
        let ctx = ChangeContext {
            workflow,
            access: &org.access,
            acting,
            now,
            today,
            dunning: &org.dunning_policy,
        };
        decide(order, &ctx)
    };
    Ok(state.store.change_order(id, meta, Box::new(decide)).await?)
}

/// An order the caller may see; any other answers 404, as if it did not exist.
pub async fn visible_order(state: &AppState, caller: &Caller, id: OrderId) -> ApiResult<Order> {
    match state.store.order(id).await? {
        Some(order) if can_see(&order, caller.user.id, caller.role, &state.org.access) => Ok(order),
        _ => Err(ApiError::not_found("order")),
    }
}

/// Which orders the caller's lists may contain: a customer their own, roles that see everything all, other
/// staff the orders they are on.
pub fn visibility(state: &AppState, caller: &crate::auth::Caller) -> ordertrail_store::Visibility {
    use ordertrail_store::Visibility;
    if caller.role == Role::Customer {
        Visibility::Customer(caller.user.id)
    } else if state.org.access.sees_all(caller.role) {
        Visibility::All
    } else {
        Visibility::InvolvedStaff(caller.user.id)
    }
}

/// One dunning step the scheduler did (or would do).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TickAction {
    pub order_number: String,
    pub action: ordertrail_domain::payment::DunningAction,
}

/// The scheduler's pass at `now`: every order's dunning steps that fell due (R8, R9), each once (its dedupe
/// key), including those missed while nothing ran. With `dry_run`, reports them and writes nothing.
pub async fn tick(state: &AppState, now: chrono::DateTime<chrono::Utc>, dry_run: bool) -> ApiResult<Vec<TickAction>> {
    use ordertrail_domain::decide::dunning;
    use ordertrail_domain::event::OrderEvent;
    use ordertrail_domain::payment::PaymentChange;
    let today = state.local_date(now);
    let policy = state.org.dunning_policy.clone();
    let mut done = Vec::new();
    // By index: orders with an unpaid installment due from long ago (a step missed while nothing ran is still
    // done) to the invoice's lead time ahead.
    let from = today - chrono::TimeDelta::days(i64::from(policy.escalate_after_days) + 60);
    let to = today + chrono::TimeDelta::days(i64::from(policy.invoice_days_before_due));
    let candidates = state.store.dunning_candidates(from, to).await?;
    for ids in candidates.chunks(200) {
        let mut page = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(order) = state.store.order(OrderId(*id)).await? {
                page.push(order);
            }
        }
        for order in page.iter().filter(|o| o.payments.is_some()) {
            let planned = dunning(order, &policy, today)?;
            if planned.is_empty() {
                continue;
            }
            let events = if dry_run {
                planned
            } else {
                let policy = policy.clone();
                let meta = Meta {
                    actor: Actor::System,
                    at: now,
                };
                let after = state
                    .store
                    .change_order(order.id, meta, Box::new(move |o: &Order| dunning(o, &policy, today)))
                    .await?;
                // What this pass wrote (another server's tick may have done some of them just before).
                let done_before = order
                    .payments
                    .as_ref()
                    .map(|p| p.dunning_done.clone())
                    .unwrap_or_default();
                let done_now = after.payments.map(|p| p.dunning_done).unwrap_or_default();
                planned
                    .into_iter()
                    .filter(|(event, _)| match event {
                        OrderEvent::PaymentChanged {
                            change: PaymentChange::Dunning { action, .. },
                        } => done_now.contains(&action.dedupe_key) && !done_before.contains(&action.dedupe_key),
                        _ => false,
                    })
                    .collect()
            };
            for (event, _) in events {
                if let OrderEvent::PaymentChanged {
                    change: PaymentChange::Dunning { action, .. },
                } = event
                {
                    done.push(TickAction {
                        order_number: order.number.clone(),
                        action,
                    });
                }
            }
        }
    }
    Ok(done)
}
