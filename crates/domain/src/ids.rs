//! Typed identifiers. Ids are UUIDv7 (time-ordered), made by the caller: the domain never draws random numbers.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub Uuid);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

id_type!(/// An order.
    OrderId);
id_type!(/// A customer (the business or person who orders).
    CustomerId);
id_type!(/// A person who signs in (staff or customer).
    UserId);
id_type!(/// One milestone of one order.
    MilestoneId);
id_type!(/// One follow-up record.
    FollowUpId);
id_type!(/// One event of the log.
    EventId);
id_type!(/// One API token.
    TokenId);
