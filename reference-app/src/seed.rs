//! `bff seed`: the demo accounts of the contract, one per role.

use bff_auth::password::{PasswordError, PasswordHasher};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;

use clap::Args;

use crate::config::parse_secret;
use crate::identity::{Identifier, NewPassword, Role};
use crate::users::{NewUser, store as users};

/// The demo accounts: email, name, role.
pub const DEMO_ACCOUNTS: [(&str, &str, Role); 3] = [
    ("admin@example.com", "Demo Admin", Role::Admin),
    ("manager@example.com", "Demo Manager", Role::Manager),
    ("customer@example.com", "Demo Customer", Role::Customer),
];

/// The demo accounts' password.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Seed")]
pub struct SeedPasswordArgs {
    /// Password of the demo accounts; a random one is generated and logged when unset.
    #[arg(long, env = "BFF_SEED_PASSWORD", value_parser = parse_secret, hide_env_values = true)]
    pub seed_password: Option<SecretString>,
}

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// BFF_SEED_PASSWORD does not meet the password policy.
    #[error("BFF_SEED_PASSWORD {0}")]
    WeakPassword(crate::identity::WeakPassword),
    /// Hashing failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The database failed.
    #[error("cannot write the demo accounts")]
    Database(#[from] sqlx::Error),
    /// No random password could be made.
    #[error(transparent)]
    Random(bff_auth::random::RandomError),
}

/// Creates the demo accounts that do not exist yet, and returns the emails it
/// created; seeding twice is harmless.
///
/// With `password` (`BFF_SEED_PASSWORD`), existing demo accounts whose
/// password is another one get this one, so the variable always says what the
/// demo accounts' password is (a development convenience: the seed runs in
/// the `dev` profile and by `bff seed`, never on its own in `prod`). Without
/// it, a random one is generated and logged, once, when any account is
/// created: it is the only way to learn it; existing accounts keep theirs.
pub async fn seed(
    db: &PgPool,
    hasher: &PasswordHasher,
    password: Option<&SecretString>,
) -> Result<Vec<String>, SeedError> {
    let (password, generated) = match password {
        Some(p) => (
            NewPassword::parse(p.expose_secret()).map_err(SeedError::WeakPassword)?,
            false,
        ),
        None => (
            NewPassword::parse(&random_password()?).map_err(SeedError::WeakPassword)?,
            true,
        ),
    };
    let hash = hasher.hash(password.clone().into_secret()).await?;
    let mut created = Vec::new();
    let mut existing = Vec::new();
    for (email, name, role) in DEMO_ACCOUNTS {
        let user = NewUser {
            email: Some(email.to_owned()),
            phone: None,
            name: name.to_owned(),
            role,
            password_hash: Some(hash.clone()),
            verified: true,
        };
        if users::insert_if_absent(db, &user).await?.is_some() {
            created.push(email.to_owned());
        } else {
            existing.push(email);
        }
    }
    let reset = if generated {
        Vec::new()
    } else {
        reset_passwords(db, hasher, &existing, &password, &hash).await?
    };
    if !created.is_empty() && generated {
        tracing::warn!(
            accounts = ?created,
            password = %password.into_secret().expose_secret(),
            "created demo accounts with a generated password (set BFF_SEED_PASSWORD to choose it)"
        );
    } else if !created.is_empty() {
        tracing::info!(accounts = ?created, "created demo accounts with BFF_SEED_PASSWORD");
    }
    if !reset.is_empty() {
        tracing::warn!(accounts = ?reset, "set the demo accounts' password to BFF_SEED_PASSWORD");
    } else if created.is_empty() && generated {
        tracing::info!(
            "demo accounts already exist, with the password generated when they were created; \
             set BFF_SEED_PASSWORD to give them one of your choice"
        );
    } else if created.is_empty() {
        tracing::info!("demo accounts already exist, with the password of BFF_SEED_PASSWORD");
    }
    Ok(created)
}

/// Gives the `emails` whose password is not `password` the `hash` of it;
/// returns the ones changed.
async fn reset_passwords(
    db: &PgPool,
    hasher: &PasswordHasher,
    emails: &[&str],
    password: &NewPassword,
    hash: &str,
) -> Result<Vec<String>, SeedError> {
    let mut reset = Vec::new();
    for email in emails {
        let Ok(identifier) = Identifier::parse(email) else {
            continue;
        };
        let Some(user) = users::find_by_identifier(db, &identifier).await? else {
            continue;
        };
        let current = user.password_hash.clone();
        let matches = current.is_some()
            && hasher
                .verify(password.clone().into_secret(), current)
                .await?
                .matches;
        if !matches {
            users::set_password_hash(db, user.id, hash).await?;
            reset.push((*email).to_owned());
        }
    }
    Ok(reset)
}

fn random_password() -> Result<String, SeedError> {
    // 18 bytes: 144 bits, 24 characters.
    bff_auth::random::base64url(18).map_err(SeedError::Random)
}
