//! Social login's settings.

use std::time::Duration;

use clap::Args;
use secrecy::SecretString;
use url::Url;

use crate::config::parse_secret;

/// Social login (OAuth 2.0 / OpenID Connect) settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Social login")]
pub struct OAuthArgs {
    /// The BFF's external base URL; each provider's callback is
    /// `{BFF_PUBLIC_URL}/api/v1/auth/oauth/{provider}/callback`. Default in the
    /// dev profile: `http://127.0.0.1:8080`; required in prod once a provider is
    /// enabled.
    #[arg(long, env = "BFF_PUBLIC_URL")]
    pub public_url: Option<Url>,
    /// Frontend URLs a flow may return to (comma-separated): a `redirect_uri`
    /// equal to an entry, or below an entry that ends in `/`.
    #[arg(long, env = "BFF_OAUTH_REDIRECT_URIS", value_delimiter = ',')]
    pub oauth_redirect_uris: Vec<String>,
    /// How long a started flow may take to come back (at most 10 minutes).
    #[arg(long, env = "BFF_OAUTH_STATE_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub oauth_state_ttl: Duration,
    /// Google: the client id; the provider is enabled when it is set.
    #[arg(long, env = "BFF_OAUTH_GOOGLE_CLIENT_ID")]
    pub oauth_google_client_id: Option<String>,
    /// Google: the client secret.
    #[arg(long, env = "BFF_OAUTH_GOOGLE_CLIENT_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub oauth_google_client_secret: Option<SecretString>,
    /// Google: the authorization endpoint, overriding the default or discovery.
    #[arg(long, env = "BFF_OAUTH_GOOGLE_AUTHORIZE_URL")]
    pub oauth_google_authorize_url: Option<Url>,
    /// Google: the token endpoint, overriding the default or discovery.
    #[arg(long, env = "BFF_OAUTH_GOOGLE_TOKEN_URL")]
    pub oauth_google_token_url: Option<Url>,
    /// Google: the profile (userinfo) endpoint, overriding the default or discovery.
    #[arg(long, env = "BFF_OAUTH_GOOGLE_USERINFO_URL")]
    pub oauth_google_userinfo_url: Option<Url>,
    /// Google: the scopes to ask for (comma-separated), replacing the defaults.
    #[arg(long, env = "BFF_OAUTH_GOOGLE_SCOPES", value_delimiter = ',')]
    pub oauth_google_scopes: Option<Vec<String>>,
    /// Google: the issuer whose discovery document gives the endpoints and keys.
    #[arg(
        long,
        env = "BFF_OAUTH_GOOGLE_ISSUER",
        default_value = "https://accounts.google.com"
    )]
    pub oauth_google_issuer: Url,
    /// Facebook: the client id; the provider is enabled when it is set.
    #[arg(long, env = "BFF_OAUTH_FACEBOOK_CLIENT_ID")]
    pub oauth_facebook_client_id: Option<String>,
    /// Facebook: the client secret.
    #[arg(long, env = "BFF_OAUTH_FACEBOOK_CLIENT_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub oauth_facebook_client_secret: Option<SecretString>,
    /// Facebook: the authorization endpoint, overriding the default.
    #[arg(long, env = "BFF_OAUTH_FACEBOOK_AUTHORIZE_URL")]
    pub oauth_facebook_authorize_url: Option<Url>,
    /// Facebook: the token endpoint, overriding the default.
    #[arg(long, env = "BFF_OAUTH_FACEBOOK_TOKEN_URL")]
    pub oauth_facebook_token_url: Option<Url>,
    /// Facebook: the profile (userinfo) endpoint, overriding the default.
    #[arg(long, env = "BFF_OAUTH_FACEBOOK_USERINFO_URL")]
    pub oauth_facebook_userinfo_url: Option<Url>,
    /// Facebook: the scopes to ask for (comma-separated), replacing the defaults.
    #[arg(long, env = "BFF_OAUTH_FACEBOOK_SCOPES", value_delimiter = ',')]
    pub oauth_facebook_scopes: Option<Vec<String>>,
    /// VK ID: the client id; the provider is enabled when it is set.
    #[arg(long, env = "BFF_OAUTH_VK_CLIENT_ID")]
    pub oauth_vk_client_id: Option<String>,
    /// VK ID: the client secret (VK ID's public-client flow needs none).
    #[arg(long, env = "BFF_OAUTH_VK_CLIENT_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub oauth_vk_client_secret: Option<SecretString>,
    /// VK ID: the authorization endpoint, overriding the default.
    #[arg(long, env = "BFF_OAUTH_VK_AUTHORIZE_URL")]
    pub oauth_vk_authorize_url: Option<Url>,
    /// VK ID: the token endpoint, overriding the default.
    #[arg(long, env = "BFF_OAUTH_VK_TOKEN_URL")]
    pub oauth_vk_token_url: Option<Url>,
    /// VK ID: the profile (userinfo) endpoint, overriding the default.
    #[arg(long, env = "BFF_OAUTH_VK_USERINFO_URL")]
    pub oauth_vk_userinfo_url: Option<Url>,
    /// VK ID: the scopes to ask for (comma-separated), replacing the defaults.
    #[arg(long, env = "BFF_OAUTH_VK_SCOPES", value_delimiter = ',')]
    pub oauth_vk_scopes: Option<Vec<String>>,
    /// Yandex ID: the client id; the provider is enabled when it is set.
    #[arg(long, env = "BFF_OAUTH_YANDEX_CLIENT_ID")]
    pub oauth_yandex_client_id: Option<String>,
    /// Yandex ID: the client secret.
    #[arg(long, env = "BFF_OAUTH_YANDEX_CLIENT_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub oauth_yandex_client_secret: Option<SecretString>,
    /// Yandex ID: the authorization endpoint, overriding the default.
    #[arg(long, env = "BFF_OAUTH_YANDEX_AUTHORIZE_URL")]
    pub oauth_yandex_authorize_url: Option<Url>,
    /// Yandex ID: the token endpoint, overriding the default.
    #[arg(long, env = "BFF_OAUTH_YANDEX_TOKEN_URL")]
    pub oauth_yandex_token_url: Option<Url>,
    /// Yandex ID: the profile (userinfo) endpoint, overriding the default.
    #[arg(long, env = "BFF_OAUTH_YANDEX_USERINFO_URL")]
    pub oauth_yandex_userinfo_url: Option<Url>,
    /// Yandex ID: the scopes to ask for (comma-separated), replacing the defaults.
    #[arg(long, env = "BFF_OAUTH_YANDEX_SCOPES", value_delimiter = ',')]
    pub oauth_yandex_scopes: Option<Vec<String>>,
    /// the generic OpenID Connect provider: the client id; the provider is enabled when it is set.
    #[arg(long, env = "BFF_OAUTH_OIDC_CLIENT_ID")]
    pub oauth_oidc_client_id: Option<String>,
    /// the generic OpenID Connect provider: the client secret.
    #[arg(long, env = "BFF_OAUTH_OIDC_CLIENT_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub oauth_oidc_client_secret: Option<SecretString>,
    /// the generic OpenID Connect provider: the authorization endpoint, overriding the default or discovery.
    #[arg(long, env = "BFF_OAUTH_OIDC_AUTHORIZE_URL")]
    pub oauth_oidc_authorize_url: Option<Url>,
    /// the generic OpenID Connect provider: the token endpoint, overriding the default or discovery.
    #[arg(long, env = "BFF_OAUTH_OIDC_TOKEN_URL")]
    pub oauth_oidc_token_url: Option<Url>,
    /// the generic OpenID Connect provider: the profile (userinfo) endpoint, overriding the default or discovery.
    #[arg(long, env = "BFF_OAUTH_OIDC_USERINFO_URL")]
    pub oauth_oidc_userinfo_url: Option<Url>,
    /// the generic OpenID Connect provider: the scopes to ask for (comma-separated), replacing the defaults.
    #[arg(long, env = "BFF_OAUTH_OIDC_SCOPES", value_delimiter = ',')]
    pub oauth_oidc_scopes: Option<Vec<String>>,
    /// The generic OpenID Connect provider's issuer (required with its client id).
    #[arg(long, env = "BFF_OAUTH_OIDC_ISSUER")]
    pub oauth_oidc_issuer: Option<Url>,
}
