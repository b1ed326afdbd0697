//! The settings of tokens, sessions, passwords and codes, flattened into
//! `bff serve` (and, for the claims, `bff orders`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;

use crate::config::parse_secret;

/// Password hashing cost (argon2id); OWASP's recommendation by default.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Passwords")]
pub struct PasswordArgs {
    /// argon2id memory in KiB.
    #[arg(long, env = "BFF_PASSWORD_MEMORY_KIB", default_value_t = 19456)]
    pub password_memory_kib: u32,
    /// argon2id passes.
    #[arg(long, env = "BFF_PASSWORD_ITERATIONS", default_value_t = 2)]
    pub password_iterations: u32,
    /// argon2id lanes.
    #[arg(long, env = "BFF_PASSWORD_PARALLELISM", default_value_t = 1)]
    pub password_parallelism: u32,
    /// Threads that hash passwords, each holding one argon2 memory buffer
    /// (`BFF_PASSWORD_MEMORY_KIB`) for good. Default: the cores.
    #[arg(long, env = "BFF_PASSWORD_THREADS")]
    pub password_threads: Option<usize>,
    /// Hashes that may wait for a thread; past that a login, sign-up or
    /// password change answers 503 with `Retry-After` at once. Default: 16 per
    /// thread.
    #[arg(long, env = "BFF_PASSWORD_QUEUE")]
    pub password_queue: Option<usize>,
}

impl PasswordArgs {
    /// The hasher: the parameters, on its threads, with its queue.
    pub fn hasher(
        &self,
    ) -> Result<bff_auth::password::PasswordHasher, bff_auth::password::PasswordError> {
        use bff_auth::password::PasswordHasher;
        let threads = self
            .password_threads
            .unwrap_or_else(PasswordHasher::default_threads);
        match self.password_queue {
            Some(queue) => PasswordHasher::with_pool(self.params(), threads, queue),
            None => PasswordHasher::with_concurrency(self.params(), threads),
        }
    }

    /// The hashing parameters.
    pub fn params(&self) -> bff_auth::password::HashParams {
        bff_auth::password::HashParams {
            memory_kib: self.password_memory_kib,
            iterations: self.password_iterations,
            parallelism: self.password_parallelism,
        }
    }
}

/// Token and session settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Tokens and sessions")]
pub struct AuthArgs {
    /// PEM file of the private key that signs access tokens (PKCS#8 Ed25519, P-256
    /// or RSA). Without it (and without BFF_JWT_SIGNING_KEY) the dev profile
    /// creates one under BFF_KEY_DIR and prod refuses to start.
    #[arg(long, env = "BFF_JWT_SIGNING_KEY_FILE")]
    pub jwt_signing_key_file: Option<PathBuf>,
    /// The signing key's PEM itself, for platforms that pass secrets as variables.
    #[arg(long, env = "BFF_JWT_SIGNING_KEY", value_parser = parse_secret, hide_env_values = true)]
    pub jwt_signing_key: Option<SecretString>,
    /// PEM files (public or private) of keys that verify and are published in the
    /// JWKS but do not sign: the next key before a rotation, the previous after.
    #[arg(long, env = "BFF_JWT_VERIFICATION_KEY_FILES", value_delimiter = ',')]
    pub jwt_verification_key_files: Vec<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub claims: ClaimArgs,
    /// Lifetime of access tokens.
    #[arg(long, env = "BFF_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = humantime::parse_duration)]
    pub access_token_ttl: Duration,
    /// `Cache-Control: max-age` of the JWKS document.
    #[arg(long, env = "BFF_JWKS_MAX_AGE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub jwks_max_age: Duration,
    /// A session not refreshed for this long ends.
    #[arg(long, env = "BFF_SESSION_IDLE_TIMEOUT", default_value = "30days", value_parser = humantime::parse_duration)]
    pub session_idle_timeout: Duration,
    /// A session ends this long after login, however active.
    #[arg(long, env = "BFF_SESSION_LIFETIME", default_value = "90days", value_parser = humantime::parse_duration)]
    pub session_lifetime: Duration,
    /// A browser (cookie) session no request has touched for this long ends.
    #[arg(long, env = "BFF_BROWSER_SESSION_IDLE", default_value = "30m", value_parser = humantime::parse_duration)]
    pub browser_session_idle: Duration,
    /// A browser (cookie) session ends this long after login, however active.
    #[arg(long, env = "BFF_BROWSER_SESSION_LIFETIME", default_value = "12h", value_parser = humantime::parse_duration)]
    pub browser_session_lifetime: Duration,
    /// How long a rotated refresh token may still be used by a concurrent refresh.
    #[arg(long, env = "BFF_REFRESH_REUSE_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub refresh_reuse_grace: Duration,
    /// Where the dev profile keeps the signing key it creates.
    #[arg(long, env = "BFF_KEY_DIR", default_value = ".bff")]
    pub key_dir: PathBuf,
}

/// The issuer and audience of access tokens: the BFF writes them, the orders
/// service checks them.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Tokens and sessions")]
pub struct ClaimArgs {
    /// The `iss` of access tokens.
    #[arg(long, env = "BFF_JWT_ISSUER", default_value = "bff")]
    pub jwt_issuer: String,
    /// The `aud` of access tokens.
    #[arg(long, env = "BFF_JWT_AUDIENCE", default_value = "bff")]
    pub jwt_audience: String,
    /// The `aud` of the tokens the BFF mints for the orders service, the only
    /// audience that service accepts (never a user's own token).
    #[arg(long, env = "BFF_ORDERS_AUDIENCE", default_value = "orders")]
    pub orders_audience: String,
    /// The `aud` of the tokens the BFF mints for the loyalty responder.
    #[arg(long, env = "BFF_LOYALTY_AUDIENCE", default_value = "loyalty")]
    pub loyalty_audience: String,
    /// Lifetime of a token minted for a backend (at most 60 s); one is reused
    /// per session and backend until a quarter of it is left.
    #[arg(long, env = "BFF_BACKEND_TOKEN_TTL", default_value = "60s", value_parser = parse_backend_ttl)]
    pub backend_token_ttl: Duration,
}

impl ClaimArgs {
    /// Refuses audiences that are not all different: a token minted for one
    /// backend must work nowhere else.
    pub fn validate(&self) -> Result<(), String> {
        let audiences = [
            &self.jwt_audience,
            &self.orders_audience,
            &self.loyalty_audience,
        ];
        for (i, a) in audiences.iter().enumerate() {
            if a.is_empty() || audiences[i + 1..].contains(a) {
                return Err(format!(
                    "BFF_JWT_AUDIENCE, BFF_ORDERS_AUDIENCE and BFF_LOYALTY_AUDIENCE must be different and not empty (\"{a}\" is repeated or empty)"
                ));
            }
        }
        Ok(())
    }
}

fn parse_backend_ttl(value: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(value.trim()).map_err(|e| e.to_string())?;
    if ttl < Duration::from_secs(1) || ttl > bff_auth::mint::MAX_TTL {
        return Err("backend tokens live from 1 s to 60 s".to_owned());
    }
    Ok(ttl)
}

/// Verification codes (sign-up and password reset).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Verification codes")]
pub struct CodeArgs {
    /// Secret (at least 32 bytes) that keys the stored hashes of codes; every
    /// instance needs the same one. Without it the dev profile creates one under
    /// BFF_KEY_DIR and prod refuses to start.
    #[arg(long, env = "BFF_CODE_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub code_secret: Option<SecretString>,
    /// How long a code is valid; at most 10 minutes.
    #[arg(long, env = "BFF_CODE_TTL", default_value = "10m", value_parser = parse_code_ttl)]
    pub code_ttl: Duration,
    /// Least time between two codes for one identifier and purpose.
    #[arg(long, env = "BFF_CODE_COOLDOWN", default_value = "60s", value_parser = humantime::parse_duration)]
    pub code_cooldown: Duration,
    /// Codes one identifier may be sent per hour at one client address's request.
    #[arg(long, env = "BFF_CODE_HOURLY_LIMIT_PER_IDENTIFIER", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub code_hourly_limit_per_identifier: u32,
    /// Codes one identifier may be sent per hour from all clients together: at
    /// least the per-client cap, so that no one client starves the owner.
    #[arg(long, env = "BFF_CODE_HOURLY_LIMIT_PER_IDENTIFIER_ALL", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub code_hourly_limit_per_identifier_all: u32,
    /// Wrong codes one identifier may get in a day, all codes together; past
    /// it, it is sent no code and no code of it passes until the day is out.
    #[arg(long, env = "BFF_CODE_DAILY_FAILURES_PER_IDENTIFIER", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub code_daily_failures_per_identifier: u32,
    /// Codes one client IP address may request per hour.
    #[arg(long, env = "BFF_CODE_HOURLY_LIMIT_PER_IP", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub code_hourly_limit_per_ip: u32,
}

impl CodeArgs {
    /// The code policy.
    pub fn policy(&self) -> bff_auth::code::CodePolicy {
        bff_auth::code::CodePolicy {
            ttl: self.code_ttl,
            cooldown: self.code_cooldown,
            hourly_per_identifier: self.code_hourly_limit_per_identifier,
            hourly_per_identifier_all: self.code_hourly_limit_per_identifier_all,
            hourly_per_client: self.code_hourly_limit_per_ip,
            daily_failures_per_identifier: self.code_daily_failures_per_identifier,
        }
    }
}

fn parse_code_ttl(value: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(value).map_err(|e| e.to_string())?;
    if ttl.is_zero() || ttl > bff_auth::code::MAX_TTL {
        return Err("codes live more than 0 s and at most 10 minutes".to_owned());
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::Cli;

    #[test]
    fn backend_audiences_are_distinct_and_tokens_short() {
        let claims = |args: &[&str]| {
            let mut argv = vec!["bff"];
            argv.extend_from_slice(args);
            match Cli::try_parse_from(argv).map(Cli::into_command) {
                Ok(crate::config::Command::Serve(serve)) => Ok(serve.auth.claims),
                Ok(_) => unreachable!("serve"),
                Err(error) => Err(error.to_string()),
            }
        };
        assert!(claims(&[]).expect("defaults").validate().is_ok());
        for same in [
            ["--orders-audience", "bff"],
            ["--loyalty-audience", "orders"],
            ["--orders-audience", ""],
        ] {
            assert!(
                claims(&same).expect("parses").validate().is_err(),
                "{same:?}"
            );
        }
        assert!(claims(&["--backend-token-ttl", "61s"]).is_err());
        assert!(claims(&["--backend-token-ttl", "0s"]).is_err());
    }

    #[test]
    fn a_code_ttl_above_ten_minutes_is_refused() {
        assert!(Cli::try_parse_from(["bff", "--code-ttl", "11m"]).is_err());
        assert!(Cli::try_parse_from(["bff", "--code-ttl", "0s"]).is_err());
        assert!(Cli::try_parse_from(["bff", "--code-ttl", "5m"]).is_ok());
    }
}
