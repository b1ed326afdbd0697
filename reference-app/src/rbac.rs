//! The app's roles and permissions, declared once as data for `bff-rbac`.
//!
//! Customers own their profile, records, wallets and orders, which needs no
//! permission beyond being authenticated. Managers also read anyone's and
//! deposit; admins also change roles, block users, restore deleted records and
//! read the audit log.

use bff_rbac::{Policy, PolicyError};

/// Read any user's profile (`/admin/users`).
pub const USERS_READ_ANY: &str = "users:read_any";
/// Change roles, block and unblock users.
pub const USERS_MANAGE: &str = "users:manage";
/// Read any user's addresses and wishlist.
pub const RECORDS_READ_ANY: &str = "records:read_any";
/// Restore soft-deleted records.
pub const RECORDS_RESTORE: &str = "records:restore";
/// Read any user's wallets and their transactions.
pub const WALLETS_READ_ANY: &str = "wallets:read_any";
/// Deposit into a wallet.
pub const WALLETS_DEPOSIT: &str = "wallets:deposit";
/// Read the audit log: admins only, for it names every user's security events.
pub const AUDIT_READ: &str = "audit:read";

/// `customer` < `manager` < `admin`, each including the one before.
pub fn policy() -> Result<Policy, PolicyError> {
    Policy::builder()
        .role("customer", [], [])
        .role(
            "manager",
            ["customer"],
            [
                USERS_READ_ANY,
                RECORDS_READ_ANY,
                WALLETS_READ_ANY,
                WALLETS_DEPOSIT,
            ],
        )
        .role(
            "admin",
            ["manager"],
            [USERS_MANAGE, RECORDS_RESTORE, AUDIT_READ],
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roles_of_the_contract() {
        let policy = policy().expect("valid");
        assert_eq!(policy.roles(), ["customer", "manager", "admin"]);
        for permission in [
            USERS_READ_ANY,
            RECORDS_READ_ANY,
            WALLETS_READ_ANY,
            WALLETS_DEPOSIT,
        ] {
            assert!(!policy.allows("customer", permission));
            assert!(policy.allows("manager", permission));
            assert!(policy.allows("admin", permission));
        }
        for permission in [USERS_MANAGE, RECORDS_RESTORE, AUDIT_READ] {
            assert!(!policy.allows("manager", permission));
            assert!(policy.allows("admin", permission));
        }
    }
}
