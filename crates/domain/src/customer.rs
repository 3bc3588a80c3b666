//! Customers (the businesses or people who order) and their contacts, and the people who sign in.

use crate::error::{DomainError, MAX_NAME, MAX_TEXT, Problems};
use crate::ids::{CustomerId, UserId};
use crate::role::Role;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The language a customer reads (messages and portal, later issues).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub enum Language {
    #[default]
    #[serde(rename = "en")]
    English,
    #[serde(rename = "zh-CN")]
    SimplifiedChinese,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// What the contact does for the customer, e.g. "Producer".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

impl Contact {
    pub fn check(&self, field: &str, problems: &mut Problems) {
        problems.text(&format!("{field}.name"), &self.name, MAX_NAME);
        problems.optional_text(&format!("{field}.phone"), self.phone.as_deref(), 50);
        problems.optional_text(&format!("{field}.title"), self.title.as_deref(), MAX_NAME);
        if let Some(email) = &self.email
            && !is_email(email)
        {
            problems.add(
                format!("{field}.email"),
                "must be an email address like name@example.com",
            );
        }
    }
}

/// A plausible email address: one @, a dot in the domain, no spaces, at most 254 characters.
pub fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    text.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// A customer as created through the API.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    pub name: String,
    #[serde(default)]
    pub language: Language,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub notes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Customer {
    pub id: CustomerId,
    pub name: String,
    pub language: Language,
    pub contacts: Vec<Contact>,
    pub notes: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl NewCustomer {
    pub fn into_customer(self, id: CustomerId, now: DateTime<Utc>) -> Result<Customer, DomainError> {
        let mut problems = Problems::new();
        problems.text("name", &self.name, MAX_NAME);
        problems.optional_text("notes", self.notes.as_deref(), MAX_TEXT);
        if self.contacts.len() > 50 {
            problems.add("contacts", "at most 50 contacts");
        }
        for (i, contact) in self.contacts.iter().enumerate() {
            contact.check(&format!("contacts[{i}]"), &mut problems);
        }
        problems.into_result()?;
        Ok(Customer {
            id,
            name: self.name.trim().to_string(),
            language: self.language,
            contacts: self.contacts,
            notes: self.notes,
            created_at: now,
        })
    }
}

/// A person who signs in. Secrets (token hashes) are not part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub roles: Vec<Role>,
    /// For a customer user: the customer they belong to.
    pub customer_id: Option<CustomerId>,
    pub created_at: DateTime<Utc>,
}

impl User {
    /// Checks a new user's fields.
    pub fn new(
        id: UserId,
        email: &str,
        name: &str,
        roles: Vec<Role>,
        customer_id: Option<CustomerId>,
        now: DateTime<Utc>,
    ) -> Result<User, DomainError> {
        let mut problems = Problems::new();
        let email = email.trim().to_ascii_lowercase();
        if !is_email(&email) {
            problems.add("email", "must be an email address like name@example.com");
        }
        problems.text("name", name, MAX_NAME);
        if roles.is_empty() {
            problems.add("roles", "a user needs at least one role");
        }
        if customer_id.is_some() && !roles.contains(&Role::Customer) {
            problems.add("customer", "only a user with the customer role belongs to a customer");
        }
        problems.into_result()?;
        let mut unique = Vec::new();
        for role in roles {
            if !unique.contains(&role) {
                unique.push(role);
            }
        }
        Ok(User {
            id,
            email,
            name: name.trim().to_string(),
            roles: unique,
            customer_id,
            created_at: now,
        })
    }

    /// The role this person acts in: the one asked for (which they must hold), or their only role.
    pub fn acting_role(&self, asked: Option<&str>) -> Result<Role, RoleChoiceError> {
        match asked {
            Some(name) => {
                let role: Role = name
                    .trim()
                    .parse()
                    .map_err(|_| RoleChoiceError::Unknown(name.to_string()))?;
                if self.roles.contains(&role) {
                    Ok(role)
                } else {
                    Err(RoleChoiceError::NotHeld(role))
                }
            }
            None if self.roles.len() == 1 => Ok(self.roles[0]),
            None => Err(RoleChoiceError::Ambiguous(self.roles.clone())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleChoiceError {
    #[error("unknown role '{0}' in X-Ordertrail-Role")]
    Unknown(String),
    #[error("you do not hold the role {0}")]
    NotHeld(Role),
    #[error("you hold several roles ({}); choose one with the X-Ordertrail-Role header", .0.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "))]
    Ambiguous(Vec<Role>),
}
