//! # bff-rbac
//!
//! Role-based access control: roles and permissions as data the app declares, a
//! [`Policy`] built from them, a guard as a tower layer
//! ([`RequirePermissionLayer`]) and as an axum extractor ([`Authz`]), and scopes
//! ([`Scope`]) that tell a handler whether to limit a query to the caller's own
//! rows.
//!
//! ```
//! use bff_rbac::{Policy, Scope};
//!
//! let policy = Policy::builder()
//!     .role("customer", [], ["profile:read", "records:write"])
//!     .role("manager", ["customer"], ["users:read_any", "wallets:deposit"])
//!     .role("admin", ["manager"], ["users:manage"])
//!     .build()
//!     .unwrap();
//!
//! // Inheritance: admin includes manager includes customer.
//! assert!(policy.allows("admin", "profile:read"));
//! assert!(!policy.allows("customer", "users:read_any"));
//! assert!(!policy.allows("nobody", "profile:read"), "unknown roles have nothing");
//!
//! // Scopes: one permission decides between own rows and anyone's.
//! assert_eq!(policy.scope("manager", "users:read_any", "u1"), Scope::Any);
//! assert_eq!(policy.scope("customer", "users:read_any", "u1"), Scope::Own("u1".into()));
//!
//! // Ranks: nobody grants a role above their own.
//! assert!(policy.can_grant("admin", "manager", "admin"));
//! assert!(!policy.can_grant("manager", "customer", "admin"));
//! ```
//!
//! # Features
//!
//! None is on by default: the guard and the extractor read the caller through
//! the [`Subject`] trait, which any authentication scheme's caller type can
//! implement, so the crate costs little more than `bff-core`'s problem type.
//!
//! - `auth`: `bff-auth`'s `Principal` implements [`Subject`]. It brings
//!   bff-auth, and with it josekit and OpenSSL, so it is not a default: turn it
//!   on when bff-auth is your authentication layer (you depend on it then
//!   anyway).
//! - `openapi`: [`Authz`] is an aide operation input, for routes documented
//!   with aide.
#![deny(missing_docs, unreachable_pub, unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's examples, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod extract;
mod layer;
mod macros;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub use bff_core::refusal::ResponseBody;
pub use extract::{Authz, AuthzRejection};
pub use layer::{RequirePermission, RequirePermissionLayer, ResponseFuture};

/// The caller as a request extension carries it: whoever put it there (an
/// authentication layer) implements this.
pub trait Subject: Clone + Send + Sync + 'static {
    /// The caller's id.
    fn subject_id(&self) -> &str;
    /// The caller's role.
    fn role(&self) -> &str;
}

#[cfg(feature = "auth")]
#[cfg_attr(docsrs, doc(cfg(feature = "auth")))]
impl Subject for bff_auth::layer::Principal {
    fn subject_id(&self) -> &str {
        &self.user_id
    }

    fn role(&self) -> &str {
        &self.role
    }
}

/// Whether a query covers the caller's own rows only, or anyone's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Only rows owned by this subject id.
    Own(String),
    /// Rows of any owner.
    Any,
}

impl Scope {
    /// The owner a query must be limited to, or `None` for anyone's rows.
    pub fn owner(&self) -> Option<&str> {
        match self {
            Self::Own(owner) => Some(owner),
            Self::Any => None,
        }
    }
}

/// Why a policy could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A role was declared twice.
    #[error("role {0:?} is declared twice")]
    Duplicate(String),
    /// A role inherits from a role that is not declared.
    #[error("role {role:?} inherits from undeclared role {parent:?}")]
    UnknownParent {
        /// The role.
        role: String,
        /// The missing parent.
        parent: String,
    },
    /// Inheritance goes round in a circle.
    #[error("role {0:?} inherits from itself")]
    Cycle(String),
}

#[derive(Debug)]
struct RoleDecl {
    parents: Vec<String>,
    permissions: BTreeSet<String>,
}

/// Declares roles; see [`Policy::builder`].
#[derive(Debug, Default)]
pub struct PolicyBuilder {
    roles: Vec<(String, RoleDecl)>,
}

impl PolicyBuilder {
    /// Declares `name` with the roles it inherits from and its own permissions.
    #[must_use]
    pub fn role<'a>(
        mut self,
        name: &str,
        inherits: impl IntoIterator<Item = &'a str>,
        permissions: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        self.roles.push((
            name.to_owned(),
            RoleDecl {
                parents: inherits.into_iter().map(str::to_owned).collect(),
                permissions: permissions.into_iter().map(str::to_owned).collect(),
            },
        ));
        self
    }

    /// Resolves inheritance and ranks; refuses duplicates, unknown parents and cycles.
    pub fn build(self) -> Result<Policy, PolicyError> {
        let mut declared: BTreeMap<String, RoleDecl> = BTreeMap::new();
        for (name, decl) in self.roles {
            if declared.insert(name.clone(), decl).is_some() {
                return Err(PolicyError::Duplicate(name));
            }
        }
        for (name, decl) in &declared {
            if let Some(parent) = decl.parents.iter().find(|p| !declared.contains_key(*p)) {
                return Err(PolicyError::UnknownParent {
                    role: name.clone(),
                    parent: parent.clone(),
                });
            }
        }
        let mut roles = BTreeMap::new();
        for name in declared.keys() {
            let mut path = Vec::new();
            let resolved = resolve(name, &declared, &mut path)?;
            roles.insert(name.clone(), resolved);
        }
        Ok(Policy {
            roles: Arc::new(roles),
        })
    }
}

/// Effective permissions and rank of `name`, following its parents depth first.
fn resolve(
    name: &str,
    declared: &BTreeMap<String, RoleDecl>,
    path: &mut Vec<String>,
) -> Result<Resolved, PolicyError> {
    if path.iter().any(|p| p == name) {
        return Err(PolicyError::Cycle(name.to_owned()));
    }
    let Some(decl) = declared.get(name) else {
        unreachable!("parents are checked before resolving")
    };
    path.push(name.to_owned());
    let mut permissions = decl.permissions.clone();
    let mut includes = BTreeSet::from([name.to_owned()]);
    let mut rank = 0;
    for parent in &decl.parents {
        let inherited = resolve(parent, declared, path)?;
        permissions.extend(inherited.permissions);
        includes.extend(inherited.includes);
        rank = rank.max(inherited.rank + 1);
    }
    path.pop();
    Ok(Resolved {
        permissions,
        includes,
        rank,
    })
}

#[derive(Debug, Clone)]
struct Resolved {
    permissions: BTreeSet<String>,
    /// The role itself and every role it inherits from, directly or not.
    includes: BTreeSet<String>,
    rank: u32,
}

/// Roles with their effective permissions and ranks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Policy {
    roles: Arc<BTreeMap<String, Resolved>>,
}

impl Policy {
    /// Starts declaring roles.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }

    /// Whether `role` holds `permission`, itself or by inheritance. Unknown
    /// roles hold nothing.
    pub fn allows(&self, role: &str, permission: &str) -> bool {
        self.roles
            .get(role)
            .is_some_and(|r| r.permissions.contains(permission))
    }

    /// `role`'s rank: 0 for a role that inherits nothing, one more than its
    /// highest parent otherwise. `None` for an unknown role.
    pub fn rank(&self, role: &str) -> Option<u32> {
        self.roles.get(role).map(|r| r.rank)
    }

    /// Whether a caller with `granter` may change someone's role from `current`
    /// to `new`: both must be the granter's own role or one it inherits from.
    /// So nobody grants a role above their own, nor changes the role of someone
    /// above them, nor hands out a role of another branch (with permissions
    /// the granter lacks) however its rank compares.
    pub fn can_grant(&self, granter: &str, current: &str, new: &str) -> bool {
        self.roles
            .get(granter)
            .is_some_and(|g| g.includes.contains(current) && g.includes.contains(new))
    }

    /// [`Scope::Any`] if `role` holds `any_permission`, else the caller's own rows.
    pub fn scope(&self, role: &str, any_permission: &str, subject_id: &str) -> Scope {
        if self.allows(role, any_permission) {
            Scope::Any
        } else {
            Scope::Own(subject_id.to_owned())
        }
    }

    /// The declared roles, lowest rank first.
    pub fn roles(&self) -> Vec<&str> {
        let mut roles: Vec<(&str, u32)> = self
            .roles
            .iter()
            .map(|(n, r)| (n.as_str(), r.rank))
            .collect();
        roles.sort_by_key(|(name, rank)| (*rank, *name));
        roles.into_iter().map(|(name, _)| name).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::builder()
            .role("customer", [], ["a"])
            .role("manager", ["customer"], ["b"])
            .role("admin", ["manager"], ["c"])
            .role("auditor", [], ["audit"])
            .build()
            .expect("valid")
    }

    #[test]
    fn permissions_are_inherited() {
        let policy = policy();
        for (role, permission, allowed) in [
            ("customer", "a", true),
            ("customer", "b", false),
            ("manager", "a", true),
            ("manager", "c", false),
            ("admin", "a", true),
            ("admin", "b", true),
            ("admin", "c", true),
            ("admin", "audit", false),
            ("auditor", "a", false),
            ("ghost", "a", false),
        ] {
            assert_eq!(
                policy.allows(role, permission),
                allowed,
                "{role} {permission}"
            );
        }
        assert_eq!(policy.roles(), ["auditor", "customer", "manager", "admin"]);
    }

    #[test]
    fn ranks_decide_grants() {
        let policy = policy();
        assert_eq!(policy.rank("customer"), Some(0));
        assert_eq!(policy.rank("admin"), Some(2));
        assert!(policy.can_grant("admin", "customer", "admin"));
        assert!(policy.can_grant("manager", "customer", "manager"));
        assert!(
            !policy.can_grant("manager", "customer", "admin"),
            "above their own"
        );
        assert!(
            !policy.can_grant("manager", "admin", "customer"),
            "someone above them"
        );
        assert!(!policy.can_grant("admin", "customer", "ghost"));
        // Same rank, another branch: the auditor's permission is not the
        // customer's to give, and the other way round.
        assert!(!policy.can_grant("customer", "customer", "auditor"));
        assert!(!policy.can_grant("auditor", "auditor", "customer"));
        assert!(
            !policy.can_grant("admin", "customer", "auditor"),
            "not below admin either"
        );
    }

    #[test]
    fn bad_declarations_are_refused() {
        assert_eq!(
            Policy::builder().role("a", ["b"], []).build().err(),
            Some(PolicyError::UnknownParent {
                role: "a".into(),
                parent: "b".into()
            })
        );
        assert!(matches!(
            Policy::builder()
                .role("a", ["b"], [])
                .role("b", ["a"], [])
                .build(),
            Err(PolicyError::Cycle(_))
        ));
        assert_eq!(
            Policy::builder()
                .role("a", [], [])
                .role("a", [], [])
                .build()
                .err(),
            Some(PolicyError::Duplicate("a".into()))
        );
    }
}
