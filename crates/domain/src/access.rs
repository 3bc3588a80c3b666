//! Who may see what. Authorisation is role AND relation: a customer sees only orders where they are the
//! customer; other people see an order when they are on it, unless their role oversees every order (by default
//! admin, sales director, finance). An order someone may not see answers 404, as if it did not exist.
//! Financial fields and customer contact data are shown only to the roles that need them (R40).

use crate::ids::UserId;
use crate::order::{Order, Relation};
use crate::role::Role;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessPolicy {
    /// Roles that see every order of the organisation.
    #[serde(default = "default_see_all")]
    pub see_all_roles: Vec<Role>,
}

fn default_see_all() -> Vec<Role> {
    vec![Role::Admin, Role::SalesDirector, Role::Finance]
}

impl Default for AccessPolicy {
    fn default() -> Self {
        AccessPolicy {
            see_all_roles: default_see_all(),
        }
    }
}

impl AccessPolicy {
    pub fn sees_all(&self, role: Role) -> bool {
        role != Role::Customer && self.see_all_roles.contains(&role)
    }
}

/// Whether `user`, acting as `role`, may see `order`.
pub fn can_see(order: &Order, user: UserId, role: Role, policy: &AccessPolicy) -> bool {
    if role == Role::Customer {
        order
            .people
            .iter()
            .any(|p| p.user_id == user && p.relation == Relation::Customer)
    } else {
        policy.sees_all(role)
            || order
                .people
                .iter()
                .any(|p| p.user_id == user && p.relation != Relation::Customer)
            || order.milestones.iter().any(|m| m.owner_id == Some(user))
    }
}

/// Which sensitive parts of an order a role is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldVisibility {
    pub money: bool,
    pub customer_contact: bool,
    pub internal: bool,
}

impl FieldVisibility {
    pub fn for_role(role: Role) -> FieldVisibility {
        use Role::*;
        FieldVisibility {
            money: matches!(
                role,
                Admin | AccountManager | SalesCoordinator | SalesDirector | Finance | Customer
            ),
            customer_contact: matches!(
                role,
                Admin | AccountManager | SalesCoordinator | SalesDirector | Finance | Logistics | Customer
            ),
            internal: role != Customer,
        }
    }
}
