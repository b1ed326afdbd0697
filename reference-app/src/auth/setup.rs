//! Setting auth up: the signing keys (configured, or created in the dev
//! profile), the code secret, and the issuer, verifier, session store and
//! hasher built from them.

use std::path::Path;
use std::time::Duration;

use bff_auth::code::CodeSecret;
use bff_auth::keys::{Algorithm, KeyError, KeySet, PublicKey, SigningKey};
use bff_auth::layer::{CookieSessions, JwtLayer};
use bff_auth::mint::Minter;
use bff_auth::password::{PasswordError, PasswordHasher};
use bff_auth::session::{BrowserPolicy, RedisSessionStore, SessionPolicy, StoreSessionCheck};
use bff_auth::token::{TokenIssuer, TokenVerifier, ValidationPolicy};
use bff_core::redis_client::RedisConnection;
use secrecy::ExposeSecret;

use super::config::{AuthArgs, PasswordArgs};
use crate::config::Profile;

/// File name of the key the dev profile creates under BFF_KEY_DIR.
pub const DEV_KEY_FILE: &str = "jwt-signing-key.pem";

/// File name of the code secret the dev profile creates under BFF_KEY_DIR.
pub const DEV_CODE_SECRET_FILE: &str = "code-secret";

/// Everything the auth endpoints need.
#[derive(Debug, Clone)]
pub struct Auth {
    /// Signs access tokens.
    pub issuer: TokenIssuer,
    /// Sessions and refresh tokens.
    pub sessions: RedisSessionStore,
    /// Hashes passwords.
    pub hasher: PasswordHasher,
    /// Authenticates bearer tokens (shared by every protected route).
    pub jwt: JwtLayer,
    /// `Cache-Control: max-age` of the JWKS.
    pub jwks_max_age: Duration,
    /// Mints the tokens that backend calls carry.
    pub minter: Minter,
    /// The audiences of the backends.
    pub audiences: BackendAudiences,
}

/// The `aud` of the tokens minted for each backend.
#[derive(Debug, Clone)]
pub struct BackendAudiences {
    /// The orders service.
    pub orders: String,
    /// The loyalty responder.
    pub loyalty: String,
}

/// Why auth could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthSetupError {
    /// The prod profile needs a configured signing key.
    #[error(
        "the prod profile needs a signing key: set BFF_JWT_SIGNING_KEY_FILE or BFF_JWT_SIGNING_KEY (see `bff keys generate`)"
    )]
    NoSigningKey,
    /// A key file could not be read or written.
    #[error("cannot use key file {path}")]
    KeyFile {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key is not usable.
    #[error("invalid key {what}")]
    Key {
        /// Which key.
        what: String,
        /// The cause.
        #[source]
        source: KeyError,
    },
    /// The hashing parameters are invalid.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// The prod profile needs a configured code secret.
    #[error(
        "the prod profile needs BFF_CODE_SECRET (at least 32 bytes, e.g. `openssl rand -base64 48`)"
    )]
    NoCodeSecret,
    /// The token audiences or the backend tokens' lifetime are not usable.
    #[error("{0}")]
    Claims(String),
    /// The code secret or policy is not usable.
    #[error("invalid verification-code settings")]
    Codes(#[source] bff_auth::code::CodeError),
}

/// The secret that keys stored code hashes: configured, or in the dev profile
/// loaded from (and on first start created under) `key_dir`.
pub fn load_code_secret(
    configured: Option<&secrecy::SecretString>,
    key_dir: &Path,
    profile: Profile,
) -> Result<CodeSecret, AuthSetupError> {
    let bytes = match configured {
        Some(secret) => secret.expose_secret().as_bytes().to_vec(),
        None if profile == Profile::Dev => {
            let path = key_dir.join(DEV_CODE_SECRET_FILE);
            if !path.exists() {
                let secret =
                    bff_auth::random::base64url(48).map_err(|e| AuthSetupError::Codes(e.into()))?;
                write_private(&path, secret.as_bytes())?;
                tracing::warn!(path = %path.display(), "created a development code secret; configure BFF_CODE_SECRET in production");
            }
            let text = read(&path)?;
            String::from_utf8_lossy(&text).trim().as_bytes().to_vec()
        }
        None => return Err(AuthSetupError::NoCodeSecret),
    };
    CodeSecret::new(bytes).map_err(AuthSetupError::Codes)
}

impl Auth {
    /// Loads the keys and builds the issuer, verifier, session store and hasher.
    pub fn build(
        args: &AuthArgs,
        password: &PasswordArgs,
        profile: Profile,
        redis: RedisConnection,
        redis_prefix: &str,
    ) -> Result<Self, AuthSetupError> {
        let keys = load_keys(args, profile)?;
        tracing::info!(kid = keys.signing_key().kid(), algorithm = %keys.signing_key().algorithm(), published = keys.verification_keys().len(), "token signing key loaded");
        let issuer = TokenIssuer::new(
            keys.clone(),
            &args.claims.jwt_issuer,
            &args.claims.jwt_audience,
            args.access_token_ttl,
        );
        let sessions = RedisSessionStore::new(
            redis,
            format!("{redis_prefix}auth:"),
            SessionPolicy {
                idle_timeout: args.session_idle_timeout,
                absolute_lifetime: args.session_lifetime,
                reuse_grace: args.refresh_reuse_grace,
            },
        )
        .with_browser_policy(BrowserPolicy {
            idle_timeout: args.browser_session_idle,
            absolute_lifetime: args.browser_session_lifetime,
        });
        let verifier = TokenVerifier::new(
            keys.verification_keys(),
            ValidationPolicy::new(&args.claims.jwt_issuer, &args.claims.jwt_audience),
        );
        // One authenticator for bearer tokens and browser session cookies (with
        // the CSRF rule built in), so every protected route takes both.
        let jwt = JwtLayer::new(verifier)
            .with_session_check(StoreSessionCheck(sessions.clone()))
            .with_cookie_sessions(CookieSessions::new(sessions.clone()));
        let hasher = password.hasher()?;
        args.claims.validate().map_err(AuthSetupError::Claims)?;
        let minter = Minter::new(issuer.clone(), args.claims.backend_token_ttl)
            .map_err(|e| AuthSetupError::Claims(e.to_string()))?;
        Ok(Self {
            minter,
            audiences: BackendAudiences {
                orders: args.claims.orders_audience.clone(),
                loyalty: args.claims.loyalty_audience.clone(),
            },
            issuer,
            sessions,
            hasher,
            jwt,
            jwks_max_age: args.jwks_max_age,
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, AuthSetupError> {
    std::fs::read(path).map_err(|source| AuthSetupError::KeyFile {
        path: path.display().to_string(),
        source,
    })
}

fn load_keys(args: &AuthArgs, profile: Profile) -> Result<KeySet, AuthSetupError> {
    let signing = if let Some(pem) = &args.jwt_signing_key {
        SigningKey::from_pem(pem.expose_secret().as_bytes()).map_err(|source| {
            AuthSetupError::Key {
                what: "BFF_JWT_SIGNING_KEY".into(),
                source,
            }
        })?
    } else if let Some(path) = &args.jwt_signing_key_file {
        SigningKey::from_pem(&read(path)?).map_err(|source| AuthSetupError::Key {
            what: path.display().to_string(),
            source,
        })?
    } else if profile == Profile::Dev {
        dev_key(&args.key_dir)?
    } else {
        return Err(AuthSetupError::NoSigningKey);
    };
    let mut verification = Vec::new();
    for path in &args.jwt_verification_key_files {
        let key = PublicKey::from_pem(&read(path)?).map_err(|source| AuthSetupError::Key {
            what: path.display().to_string(),
            source,
        })?;
        // The signing key may also be listed among the verification keys mid-rotation.
        if key.kid() != signing.kid() {
            verification.push(key);
        }
    }
    KeySet::new(signing, verification).map_err(|source| AuthSetupError::Key {
        what: "set".into(),
        source,
    })
}

/// The dev profile's key: loaded from `dir`, created there on first start.
fn dev_key(dir: &Path) -> Result<SigningKey, AuthSetupError> {
    let path = dir.join(DEV_KEY_FILE);
    if !path.exists() {
        let generated =
            SigningKey::generate(Algorithm::EdDsa).map_err(|source| AuthSetupError::Key {
                what: "generated".into(),
                source,
            })?;
        write_private(&path, generated.private_pem())?;
        tracing::warn!(path = %path.display(), kid = generated.kid(), "created a development signing key; configure BFF_JWT_SIGNING_KEY_FILE in production");
    }
    SigningKey::from_pem(&read(&path)?).map_err(|source| AuthSetupError::Key {
        what: path.display().to_string(),
        source,
    })
}

/// Writes a private key readable by its owner only, never over an existing file.
pub fn write_private(path: &Path, pem: &[u8]) -> Result<(), AuthSetupError> {
    use std::io::Write;
    let error = |source| AuthSetupError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Directories made for secrets are their owner's alone too.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(error)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(error)?;
    file.write_all(pem)
        .and_then(|()| file.sync_all())
        .map_err(error)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn secrets_and_the_directories_made_for_them_are_the_owners_alone() {
        let root = std::env::temp_dir().join(format!("bff-keys-{}", uuid::Uuid::now_v7()));
        let key = root.join(".bff").join("key.pem");
        write_private(&key, b"secret").expect("written");
        let mode = |path: &Path| {
            std::fs::metadata(path)
                .expect("exists")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(&root.join(".bff")), 0o700);
        assert_eq!(mode(&key), 0o600);
        assert!(write_private(&key, b"again").is_err(), "never overwritten");
        std::fs::remove_dir_all(&root).expect("cleaned up");
    }
}
