//! Social login (OAuth 2.0 / OpenID Connect) with Google, Facebook, VK ID,
//! Yandex ID and any OpenID Connect issuer: the flow's endpoints, resolving the
//! provider's person to an account, and the user's linked identities.
//!
//! The protocol work (state, PKCE, nonce, code exchange, ID-token checks,
//! profiles) is `bff_auth::oauth`'s; this feature adds the policy of
//! `docs/oauth.md`: which account an identity signs in, when it is linked, and
//! what the frontend is told.

pub mod config;
mod error;
pub mod login_code;
pub mod redirect;
pub mod routes;
pub mod service;
pub mod store;

use std::sync::Arc;

use bff_auth::oauth::{OAuthClient, ProviderConfig, ProviderKind, RedisStateStore};
use url::Url;

pub use self::config::OAuthArgs;
pub use self::error::OAuthFlowError;
pub use self::login_code::LoginCodes;
pub use self::redirect::RedirectAllowList;
pub use self::service::OAuthService;
use crate::config::Profile;

/// What start-up prepares for social login.
#[derive(Debug)]
pub struct OAuthParts {
    /// The providers and the flow's state store.
    pub client: OAuthClient,
    /// The frontend URLs flows may return to.
    pub redirects: RedirectAllowList,
    /// Login codes.
    pub codes: LoginCodes,
}

impl OAuthArgs {
    /// The enabled providers' settings (a provider is enabled by its client id).
    pub fn providers(&self) -> Vec<ProviderConfig> {
        let mut providers = Vec::new();
        let mut add = |kind,
                       id: &Option<String>,
                       secret: &Option<secrecy::SecretString>,
                       urls: [&Option<Url>; 3],
                       scopes: &Option<Vec<String>>,
                       issuer: Option<Url>| {
            if let Some(id) = id {
                let mut config = ProviderConfig::new(kind, id.clone());
                config.client_secret = secret.clone();
                config.authorize_url = urls[0].clone();
                config.token_url = urls[1].clone();
                config.userinfo_url = urls[2].clone();
                config.scopes = scopes.clone();
                config.issuer = issuer;
                providers.push(config);
            }
        };
        add(
            ProviderKind::Google,
            &self.oauth_google_client_id,
            &self.oauth_google_client_secret,
            [
                &self.oauth_google_authorize_url,
                &self.oauth_google_token_url,
                &self.oauth_google_userinfo_url,
            ],
            &self.oauth_google_scopes,
            Some(self.oauth_google_issuer.clone()),
        );
        add(
            ProviderKind::Facebook,
            &self.oauth_facebook_client_id,
            &self.oauth_facebook_client_secret,
            [
                &self.oauth_facebook_authorize_url,
                &self.oauth_facebook_token_url,
                &self.oauth_facebook_userinfo_url,
            ],
            &self.oauth_facebook_scopes,
            None,
        );
        add(
            ProviderKind::Vk,
            &self.oauth_vk_client_id,
            &self.oauth_vk_client_secret,
            [
                &self.oauth_vk_authorize_url,
                &self.oauth_vk_token_url,
                &self.oauth_vk_userinfo_url,
            ],
            &self.oauth_vk_scopes,
            None,
        );
        add(
            ProviderKind::Yandex,
            &self.oauth_yandex_client_id,
            &self.oauth_yandex_client_secret,
            [
                &self.oauth_yandex_authorize_url,
                &self.oauth_yandex_token_url,
                &self.oauth_yandex_userinfo_url,
            ],
            &self.oauth_yandex_scopes,
            None,
        );
        add(
            ProviderKind::Oidc,
            &self.oauth_oidc_client_id,
            &self.oauth_oidc_client_secret,
            [
                &self.oauth_oidc_authorize_url,
                &self.oauth_oidc_token_url,
                &self.oauth_oidc_userinfo_url,
            ],
            &self.oauth_oidc_scopes,
            self.oauth_oidc_issuer.clone(),
        );
        providers
    }

    /// The social-login client (its states in Redis under `prefix`), the
    /// redirect allow-list and the login codes. Every setting problem is an
    /// error naming it.
    pub fn parts(
        &self,
        profile: Profile,
        redis: bff_core::redis_client::RedisConnection,
        prefix: &str,
    ) -> Result<OAuthParts, String> {
        let providers = self.providers();
        for provider in &providers {
            let name = provider.kind.as_str().to_ascii_uppercase();
            if provider.kind != ProviderKind::Vk && provider.client_secret.is_none() {
                return Err(format!(
                    "BFF_OAUTH_{name}_CLIENT_ID is set but BFF_OAUTH_{name}_CLIENT_SECRET is not: {} needs a client secret",
                    provider.kind.as_str()
                ));
            }
            if provider.kind == ProviderKind::Oidc && provider.issuer.is_none() {
                return Err(
                    "BFF_OAUTH_OIDC_CLIENT_ID is set but BFF_OAUTH_OIDC_ISSUER is not".to_owned(),
                );
            }
        }
        let public_url = match (&self.public_url, profile) {
            (Some(url), _) => url.clone(),
            (None, Profile::Dev) => {
                Url::parse("http://127.0.0.1:8080").map_err(|e| e.to_string())?
            }
            (None, Profile::Prod) if providers.is_empty() => {
                Url::parse("https://localhost").map_err(|e| e.to_string())?
            }
            (None, Profile::Prod) => {
                return Err(
                    "BFF_PUBLIC_URL is required once a social-login provider is enabled".to_owned(),
                );
            }
        };
        if self.oauth_state_ttl.is_zero()
            || self.oauth_state_ttl > std::time::Duration::from_secs(600)
        {
            return Err("BFF_OAUTH_STATE_TTL must be between 1 ms and 10 minutes".to_owned());
        }
        let redirects =
            RedirectAllowList::parse(&self.oauth_redirect_uris, profile == Profile::Dev)?;
        if !providers.is_empty() && redirects.is_empty() {
            tracing::warn!(
                "a social-login provider is enabled but BFF_OAUTH_REDIRECT_URIS is empty: every flow will be refused"
            );
        }
        let states = Arc::new(RedisStateStore::new(
            redis.clone(),
            format!("{prefix}oauth:state:"),
        ));
        let client = OAuthClient::new(providers, states, public_url)
            .map_err(|e| format!("social login: {e}"))?
            .with_state_ttl(self.oauth_state_ttl);
        let codes = LoginCodes::new(Arc::new(RedisStateStore::new(
            redis,
            format!("{prefix}oauth:login:"),
        )));
        Ok(OAuthParts {
            client,
            redirects,
            codes,
        })
    }
}
