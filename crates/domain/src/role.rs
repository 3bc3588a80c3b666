//! The roles a person can hold (R18: a person may hold several and acts in one at a time).

use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};
use utoipa::ToSchema;

/// A role in the business. The acting role is chosen per request and recorded on every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    AccountManager,
    SalesCoordinator,
    SalesDirector,
    Operations,
    Design,
    Finance,
    Logistics,
    IpOwner,
    Manufacturer,
    Customer,
}

impl Role {
    pub const ALL: [Role; 11] = [
        Role::Admin,
        Role::AccountManager,
        Role::SalesCoordinator,
        Role::SalesDirector,
        Role::Operations,
        Role::Design,
        Role::Finance,
        Role::Logistics,
        Role::IpOwner,
        Role::Manufacturer,
        Role::Customer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::AccountManager => "account_manager",
            Role::SalesCoordinator => "sales_coordinator",
            Role::SalesDirector => "sales_director",
            Role::Operations => "operations",
            Role::Design => "design",
            Role::Finance => "finance",
            Role::Logistics => "logistics",
            Role::IpOwner => "ip_owner",
            Role::Manufacturer => "manufacturer",
            Role::Customer => "customer",
        }
    }

    /// Staff are everyone but the customer.
    pub fn is_staff(self) -> bool {
        self != Role::Customer
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the role names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown role '{0}' (known roles: admin, account_manager, sales_coordinator, sales_director, operations, design, finance, logistics, ip_owner, manufacturer, customer)"
)]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_round_trips_through_its_name() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
        }
        assert!("chief".parse::<Role>().is_err());
    }
}
