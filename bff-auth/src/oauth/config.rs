//! Providers and their settings.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::OAuthError;

/// A kind of identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Google (OpenID Connect).
    Google,
    /// Facebook (OAuth 2.0 on the Graph API).
    Facebook,
    /// VK ID (OAuth 2.1 on `id.vk.ru`).
    Vk,
    /// Yandex ID (OAuth 2.0).
    Yandex,
    /// Any other OpenID Connect issuer, configured by discovery.
    Oidc,
}

impl ProviderKind {
    /// Every kind.
    pub const ALL: [ProviderKind; 5] = [
        ProviderKind::Google,
        ProviderKind::Facebook,
        ProviderKind::Vk,
        ProviderKind::Yandex,
        ProviderKind::Oidc,
    ];

    /// The name used in URLs and settings: `google`, `facebook`, `vk`,
    /// `yandex`, `oidc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Facebook => "facebook",
            Self::Vk => "vk",
            Self::Yandex => "yandex",
            Self::Oidc => "oidc",
        }
    }

    /// The kind named exactly `s` (as [`as_str`](Self::as_str) spells it).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == s)
    }

    /// Whether the provider speaks OpenID Connect (ID tokens, discovery, and
    /// the only verified-email signal): Google and OIDC.
    pub fn is_openid(self) -> bool {
        matches!(self, Self::Google | Self::Oidc)
    }

    /// Google's issuer, used when none is configured.
    pub(crate) const GOOGLE_ISSUER: &'static str = "https://accounts.google.com";

    /// The production endpoints of a plain OAuth provider: authorize, token,
    /// profile. OpenID providers have none: discovery gives theirs.
    pub(crate) fn default_endpoints(self) -> Option<[&'static str; 3]> {
        match self {
            Self::Facebook => Some([
                "https://www.facebook.com/v24.0/dialog/oauth",
                "https://graph.facebook.com/v24.0/oauth/access_token",
                "https://graph.facebook.com/v24.0/me",
            ]),
            Self::Vk => Some([
                "https://id.vk.ru/authorize",
                "https://id.vk.ru/oauth2/auth",
                "https://id.vk.ru/oauth2/user_info",
            ]),
            Self::Yandex => Some([
                "https://oauth.yandex.ru/authorize",
                "https://oauth.yandex.ru/token",
                "https://login.yandex.ru/info?format=json",
            ]),
            Self::Google | Self::Oidc => None,
        }
    }

    /// Scopes that ask for the user's email (and name).
    pub(crate) fn default_scopes(self) -> &'static [&'static str] {
        match self {
            Self::Google | Self::Oidc => &["openid", "email", "profile"],
            Self::Facebook => &["email", "public_profile"],
            Self::Vk => &["email"],
            Self::Yandex => &["login:email", "login:info"],
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The settings of one provider. Its `Debug` output hides the secret.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// Which provider.
    pub kind: ProviderKind,
    /// The client (app) id registered with the provider.
    pub client_id: String,
    /// The client secret; required for all but VK ID.
    pub client_secret: Option<SecretString>,
    /// Overrides the authorization endpoint.
    pub authorize_url: Option<Url>,
    /// Overrides the token endpoint.
    pub token_url: Option<Url>,
    /// Overrides the profile (userinfo) endpoint.
    pub userinfo_url: Option<Url>,
    /// The OpenID issuer, whose discovery document gives the endpoints and the
    /// JWKS: Google's defaults to `https://accounts.google.com`; required for
    /// OIDC; not allowed for the others.
    pub issuer: Option<Url>,
    /// Overrides the scopes (`openid` is added for OpenID providers when
    /// missing); `None` asks for the email and name.
    pub scopes: Option<Vec<String>>,
}

impl ProviderConfig {
    /// A provider with client id `client_id` and every other setting at its
    /// default.
    pub fn new(kind: ProviderKind, client_id: impl Into<String>) -> Self {
        Self {
            kind,
            client_id: client_id.into(),
            client_secret: None,
            authorize_url: None,
            token_url: None,
            userinfo_url: None,
            issuer: None,
            scopes: None,
        }
    }

    /// Checks the settings: a client id, a secret where the provider needs
    /// one, an issuer for OIDC, endpoints over `https` (plain `http` only on
    /// loopback, for development and tests), sane scopes.
    pub fn validate(&self) -> Result<(), OAuthError> {
        let provider = self.kind.as_str();
        let config = |message: String| Err(OAuthError::Config(format!("{provider}: {message}")));
        if self.client_id.trim().is_empty() || self.client_id.len() > 512 {
            return config("the client id is missing or too long".to_owned());
        }
        let secret_missing = self
            .client_secret
            .as_ref()
            .is_none_or(|secret| secret.expose_secret().trim().is_empty());
        if self.kind != ProviderKind::Vk && secret_missing {
            return config("the client secret is required".to_owned());
        }
        match (self.kind, &self.issuer) {
            (ProviderKind::Oidc, None) => return config("the issuer is required".to_owned()),
            (kind, Some(_)) if !kind.is_openid() => {
                return config("an issuer applies only to OpenID providers".to_owned());
            }
            _ => {}
        }
        for (name, url) in [
            ("authorize URL", &self.authorize_url),
            ("token URL", &self.token_url),
            ("userinfo URL", &self.userinfo_url),
            ("issuer", &self.issuer),
        ] {
            if let Some(url) = url {
                check_endpoint(url).or_else(|why| config(format!("the {name} {why}")))?;
            }
        }
        if let Some(scopes) = &self.scopes {
            let bad = |s: &String| {
                s.is_empty() || s.len() > 128 || !s.chars().all(|c| c.is_ascii_graphic())
            };
            if scopes.is_empty() || scopes.iter().any(bad) {
                return config("scopes must be non-empty words without spaces".to_owned());
            }
        }
        Ok(())
    }

    /// The scopes to ask for.
    pub(crate) fn scope_list(&self) -> Vec<String> {
        let mut scopes: Vec<String> = match &self.scopes {
            Some(scopes) => scopes.clone(),
            None => self
                .kind
                .default_scopes()
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        };
        if self.kind.is_openid() && !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".to_owned());
        }
        scopes
    }

    /// The issuer: the configured one, or Google's.
    pub(crate) fn issuer_url(&self) -> Option<Url> {
        match (&self.issuer, self.kind) {
            (Some(issuer), _) => Some(issuer.clone()),
            (None, ProviderKind::Google) => Url::parse(ProviderKind::GOOGLE_ISSUER).ok(),
            (None, _) => None,
        }
    }
}

/// Whether `url` may be called with secrets: `https`, or `http` on loopback;
/// no credentials and no fragment. The error completes "the {setting} ...".
pub(crate) fn check_endpoint(url: &Url) -> Result<(), &'static str> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("must be an https URL (http only on loopback)"),
    }
    if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err("must name a host and no credentials");
    }
    if url.fragment().is_some() {
        return Err("must have no fragment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in ProviderKind::ALL {
            assert_eq!(ProviderKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).expect("serialises"),
                kind.as_str()
            );
        }
        assert_eq!(ProviderKind::parse("Google"), None);
    }

    #[test]
    fn validation_names_the_provider_and_the_setting() {
        let facebook = ProviderConfig::new(ProviderKind::Facebook, "app");
        let Err(OAuthError::Config(message)) = facebook.validate() else {
            panic!("a secret is required");
        };
        assert!(message.contains("facebook") && message.contains("secret"));
        assert!(
            ProviderConfig::new(ProviderKind::Vk, "app")
                .validate()
                .is_ok()
        );
        let mut oidc = ProviderConfig::new(ProviderKind::Oidc, "app");
        oidc.client_secret = Some("s".into());
        assert!(matches!(oidc.validate(), Err(OAuthError::Config(m)) if m.contains("issuer")));
        oidc.issuer = Some(Url::parse("http://idp.example.com").expect("url"));
        assert!(oidc.validate().is_err(), "http off loopback");
        oidc.issuer = Some(Url::parse("http://127.0.0.1:8080/realms/x").expect("url"));
        assert!(oidc.validate().is_ok());
    }

    #[test]
    fn the_secret_is_not_in_debug() {
        let mut google = ProviderConfig::new(ProviderKind::Google, "app");
        google.client_secret = Some("very-secret".into());
        assert!(!format!("{google:?}").contains("very-secret"));
    }
}
