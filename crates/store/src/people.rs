//! The organisation's records outside orders: users, tokens and customers, appended to their chains and
//! projected the same way on both engines, inside the transaction the engine opened.

use crate::StoreError;
use crate::engine::{Sql, unique_as_conflict, write};
use crate::projection;
use crate::reads;
use crate::rows::Writes;
use ordertrail_domain::event::{CustomerEvent, NewEvent, ORG_STREAM, OrgEvent, truncate_to_micros};

/// Appends an organisation event (user added, token issued) to the organisation's chain, with its rows.
pub(crate) async fn record_org_event(sql: &mut dyn Sql, event: &NewEvent<OrgEvent>) -> Result<(), StoreError> {
    let at = truncate_to_micros(event.at);
    let mut head = reads::head(sql, ORG_STREAM).await?;
    let mut writes = Writes::default();
    projection::org_event(&mut writes, &mut head, event, at)?;
    write(sql, writes, || "the organisation's log moved on".into())
        .await
        .map_err(|e| match &event.payload {
            OrgEvent::UserAdded { user } => {
                unique_as_conflict(e, || format!("a user with email {} already exists", user.email))
            }
            OrgEvent::TokenIssued { .. } => e,
        })
}

/// Writes a new customer: the first event of its chain and its row.
pub(crate) async fn create_customer(sql: &mut dyn Sql, event: &NewEvent<CustomerEvent>) -> Result<(), StoreError> {
    let at = truncate_to_micros(event.at);
    let CustomerEvent::CustomerCreated { customer } = &event.payload;
    let mut writes = Writes::default();
    projection::new_customer(&mut writes, customer, event, at)?;
    write(sql, writes, || "the customer already exists".into())
        .await
        .map_err(|e| unique_as_conflict(e, || "the customer already exists".into()))
}
