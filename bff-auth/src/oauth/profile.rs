//! Discovery, the code exchange and the profile, per provider.

use std::time::Duration;

use hmac::{KeyInit, Mac};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use url::Url;

use super::client::{Endpoints, OpenId, PendingAuth, discovered};
use super::http::{Http, id_of, str_of};
use super::{ExternalProfile, OAuthError, ProviderConfig, ProviderKind, hex, id_token};
use crate::jwks::{JwksClient, JwksError};
use crate::token::unix_now;

/// Clock skew tolerated on an ID token's `exp`, `iat` and `nbf`.
const ID_TOKEN_LEEWAY_SECS: i64 = 60;

type Object = Map<String, Value>;

/// The endpoints of an OpenID provider: its discovery document, with the
/// configured URLs taking precedence. The document must name the configured
/// issuer (OpenID Connect Discovery 1.0, section 4.3).
pub(crate) async fn discover(
    http: &Http,
    config: &ProviderConfig,
    jwks_refetch_interval: Duration,
) -> Result<Endpoints, OAuthError> {
    let kind = config.kind;
    let issuer = config
        .issuer_url()
        .ok_or_else(|| OAuthError::Config(format!("{kind}: the issuer is required")))?;
    let configured = issuer.as_str().trim_end_matches('/');
    let url = Url::parse(&format!("{configured}/.well-known/openid-configuration"))
        .map_err(|_| OAuthError::Config(format!("{kind}: the issuer is not a base URL")))?;
    let what = format!("{kind} discovery");
    let doc = http
        .json(
            &what,
            http.client.get(url).header("accept", "application/json"),
        )
        .await?;
    let named =
        str_of(&doc, "issuer").ok_or_else(|| OAuthError::Provider(format!("{what}: no issuer")))?;
    if named.trim_end_matches('/') != configured {
        return Err(OAuthError::Provider(format!(
            "{what}: the document names another issuer"
        )));
    }
    let required = |name: &str| {
        discovered(&doc, name, kind)?
            .ok_or_else(|| OAuthError::Provider(format!("{what}: no {name}")))
    };
    let authorize = match &config.authorize_url {
        Some(url) => url.clone(),
        None => required("authorization_endpoint")?,
    };
    let token = match &config.token_url {
        Some(url) => url.clone(),
        None => required("token_endpoint")?,
    };
    let userinfo = match &config.userinfo_url {
        Some(url) => Some(url.clone()),
        None => discovered(&doc, "userinfo_endpoint", kind)?,
    };
    let jwks_uri = required("jwks_uri")?;
    let mut issuers = vec![named.to_owned()];
    if kind == ProviderKind::Google {
        // Google's ID tokens name their issuer either way.
        for alias in ["https://accounts.google.com", "accounts.google.com"] {
            if named == "https://accounts.google.com" && alias != named {
                issuers.push(alias.to_owned());
            }
        }
    }
    let jwks = JwksClient::lazy_with_client(
        jwks_uri.as_str(),
        http.client.clone(),
        jwks_refetch_interval,
    );
    Ok(Endpoints {
        authorize,
        token,
        userinfo,
        openid: Some(OpenId { issuers, jwks }),
    })
}

/// One code exchange and profile read.
pub(crate) struct Exchange<'a> {
    pub(crate) http: &'a Http,
    pub(crate) config: &'a ProviderConfig,
    pub(crate) endpoints: &'a Endpoints,
    pub(crate) redirect_uri: Url,
    pub(crate) pending: &'a PendingAuth,
    pub(crate) code: &'a str,
    pub(crate) device_id: Option<&'a str>,
}

impl Exchange<'_> {
    pub(crate) async fn run(&self) -> Result<ExternalProfile, OAuthError> {
        match self.config.kind {
            ProviderKind::Google | ProviderKind::Oidc => self.openid().await,
            ProviderKind::Facebook => self.facebook().await,
            ProviderKind::Vk => self.vk().await,
            ProviderKind::Yandex => self.yandex().await,
        }
    }

    fn kind(&self) -> ProviderKind {
        self.config.kind
    }

    fn secret(&self) -> Result<&str, OAuthError> {
        self.config
            .client_secret
            .as_ref()
            .map(|s| s.expose_secret())
            .ok_or_else(|| {
                OAuthError::Config(format!("{}: the client secret is required", self.kind()))
            })
    }

    fn userinfo(&self) -> Result<&Url, OAuthError> {
        self.endpoints
            .userinfo
            .as_ref()
            .ok_or_else(|| OAuthError::Config(format!("{}: no userinfo endpoint", self.kind())))
    }

    /// The token endpoint's answer to a form POST.
    async fn post_token(&self, form: &[(&str, &str)]) -> Result<Object, OAuthError> {
        let what = format!("{} token endpoint", self.kind());
        let request = self
            .http
            .client
            .post(self.endpoints.token.clone())
            .header("accept", "application/json")
            .form(form);
        self.http.json(&what, request).await
    }

    fn access_token<'m>(&self, answer: &'m Object) -> Result<&'m str, OAuthError> {
        str_of(answer, "access_token").ok_or_else(|| {
            OAuthError::Provider(format!("{} token endpoint: no access_token", self.kind()))
        })
    }

    async fn openid(&self) -> Result<ExternalProfile, OAuthError> {
        let kind = self.kind();
        let openid = self
            .endpoints
            .openid
            .as_ref()
            .ok_or_else(|| OAuthError::Internal(format!("{kind}: no discovery")))?;
        let nonce = self
            .pending
            .nonce
            .as_deref()
            .ok_or_else(|| OAuthError::Internal(format!("{kind}: the state has no nonce")))?;
        let answer = self
            .post_token(&[
                ("grant_type", "authorization_code"),
                ("code", self.code),
                ("redirect_uri", self.redirect_uri.as_str()),
                ("client_id", &self.config.client_id),
                ("client_secret", self.secret()?),
                ("code_verifier", &self.pending.verifier),
            ])
            .await?;
        let id_token = str_of(&answer, "id_token")
            .ok_or_else(|| OAuthError::Provider(format!("{kind} token endpoint: no id_token")))?;
        if let Err(error) = openid.jwks.prepare(id_token).await {
            return Err(match error {
                JwksError::Fetch(_) | JwksError::NotFetched => {
                    OAuthError::Unavailable(format!("cannot fetch the {kind} JWKS"))
                }
                _ => OAuthError::Provider(format!("the {kind} JWKS is unusable")),
            });
        }
        let expected = id_token::Expected {
            issuers: &openid.issuers,
            client_id: &self.config.client_id,
            nonce,
            leeway: ID_TOKEN_LEEWAY_SECS,
        };
        let claims = id_token::verify(
            &openid.jwks.verification_keys(),
            id_token,
            &expected,
            unix_now(),
        )
        .map_err(|why| OAuthError::Provider(format!("{kind} ID token refused: {why}")))?;
        let subject = str_of(&claims, "sub")
            .ok_or_else(|| OAuthError::Provider(format!("{kind} ID token: no sub")))?
            .to_owned();
        let mut profile = openid_profile(kind, subject, &claims);
        // The ID token usually carries the email; when it does not, the
        // userinfo endpoint may (Keycloak and others, depending on mappers).
        if profile.email.is_none()
            && let (Some(userinfo), Some(access_token)) =
                (&self.endpoints.userinfo, str_of(&answer, "access_token"))
        {
            let what = format!("{kind} userinfo endpoint");
            let request = self
                .http
                .client
                .get(userinfo.clone())
                .bearer_auth(access_token)
                .header("accept", "application/json");
            let info = self.http.json(&what, request).await?;
            // OpenID Connect Core 1.0, section 5.3.2: the answer is about the
            // ID token's user or it is not used.
            if str_of(&info, "sub") != Some(profile.subject.as_str()) {
                return Err(OAuthError::Provider(format!("{what}: another sub")));
            }
            let extra = openid_profile(kind, profile.subject.clone(), &info);
            profile.email = extra.email;
            profile.email_verified = extra.email_verified;
            profile.name = profile.name.or(extra.name);
            profile.phone = profile.phone.or(extra.phone);
        }
        Ok(profile)
    }

    async fn facebook(&self) -> Result<ExternalProfile, OAuthError> {
        let kind = self.kind();
        let secret = self.secret()?;
        // Facebook's documented exchange is a GET with the secret in the query;
        // no error of this module ever holds the URL.
        let request = self
            .http
            .client
            .get(self.endpoints.token.clone())
            .header("accept", "application/json")
            .query(&[
                ("client_id", self.config.client_id.as_str()),
                ("client_secret", secret),
                ("redirect_uri", self.redirect_uri.as_str()),
                ("code", self.code),
                ("code_verifier", self.pending.verifier.as_str()),
            ]);
        let answer = self
            .http
            .json(&format!("{kind} token endpoint"), request)
            .await?;
        let access_token = self.access_token(&answer)?;
        let proof = appsecret_proof(secret, access_token)?;
        let mut url = self.userinfo()?.clone();
        let has_fields = url.query_pairs().any(|(k, _)| k == "fields");
        {
            let mut query = url.query_pairs_mut();
            if !has_fields {
                query.append_pair("fields", "id,name,email");
            }
            query.append_pair("appsecret_proof", &proof);
        }
        let request = self
            .http
            .client
            .get(url)
            .bearer_auth(access_token)
            .header("accept", "application/json");
        let me = self
            .http
            .json(&format!("{kind} profile endpoint"), request)
            .await?;
        let subject = id_of(&me, "id")
            .ok_or_else(|| OAuthError::Provider(format!("{kind} profile endpoint: no id")))?;
        plain_profile(
            kind,
            subject,
            str_of(&me, "email"),
            None,
            str_of(&me, "name").map(str::to_owned),
        )
    }

    async fn vk(&self) -> Result<ExternalProfile, OAuthError> {
        let kind = self.kind();
        let device_id = self
            .device_id
            .filter(|d| !d.is_empty() && d.len() <= 512)
            .ok_or_else(|| OAuthError::Provider(format!("the {kind} callback has no device_id")))?;
        let answer = self
            .post_token(&[
                ("grant_type", "authorization_code"),
                ("code", self.code),
                ("code_verifier", &self.pending.verifier),
                ("client_id", &self.config.client_id),
                ("device_id", device_id),
                ("redirect_uri", self.redirect_uri.as_str()),
                ("state", &self.pending.state),
            ])
            .await?;
        let echoed = str_of(&answer, "state")
            .is_some_and(|s| bool::from(s.as_bytes().ct_eq(self.pending.state.as_bytes())));
        if !echoed {
            return Err(OAuthError::Provider(format!(
                "{kind} token endpoint: the state is not echoed"
            )));
        }
        let access_token = self.access_token(&answer)?;
        let request = self
            .http
            .client
            .post(self.userinfo()?.clone())
            .header("accept", "application/json")
            .form(&[
                ("client_id", self.config.client_id.as_str()),
                ("access_token", access_token),
            ]);
        let what = format!("{kind} profile endpoint");
        let info = self.http.json(&what, request).await?;
        let user = info
            .get("user")
            .and_then(Value::as_object)
            .ok_or_else(|| OAuthError::Provider(format!("{what}: no user")))?;
        let subject = id_of(user, "user_id")
            .ok_or_else(|| OAuthError::Provider(format!("{what}: no user_id")))?;
        if id_of(&answer, "user_id").is_some_and(|id| id != subject) {
            return Err(OAuthError::Provider(format!(
                "{what}: another user than the token's"
            )));
        }
        let name = join_names(str_of(user, "first_name"), str_of(user, "last_name"));
        plain_profile(
            kind,
            subject,
            str_of(user, "email"),
            str_of(user, "phone"),
            name,
        )
    }

    async fn yandex(&self) -> Result<ExternalProfile, OAuthError> {
        let kind = self.kind();
        let answer = self
            .post_token(&[
                ("grant_type", "authorization_code"),
                ("code", self.code),
                ("code_verifier", &self.pending.verifier),
                ("client_id", &self.config.client_id),
                ("client_secret", self.secret()?),
                ("redirect_uri", self.redirect_uri.as_str()),
            ])
            .await?;
        let access_token = self.access_token(&answer)?;
        let request = self
            .http
            .client
            .get(self.userinfo()?.clone())
            .header("authorization", format!("OAuth {access_token}"))
            .header("accept", "application/json");
        let what = format!("{kind} profile endpoint");
        let info = self.http.json(&what, request).await?;
        let subject =
            id_of(&info, "id").ok_or_else(|| OAuthError::Provider(format!("{what}: no id")))?;
        let phone = info
            .get("default_phone")
            .and_then(Value::as_object)
            .and_then(|p| str_of(p, "number"));
        let name = str_of(&info, "real_name")
            .or_else(|| str_of(&info, "display_name"))
            .map(str::to_owned);
        plain_profile(kind, subject, str_of(&info, "default_email"), phone, name)
    }
}

/// A profile from OpenID claims (ID token or userinfo): the email counts as
/// verified only with `email_verified: true`, a JSON boolean.
fn openid_profile(kind: ProviderKind, subject: String, claims: &Object) -> ExternalProfile {
    let email = str_of(claims, "email").and_then(normalise_email);
    let email_verified =
        email.is_some() && claims.get("email_verified") == Some(&Value::Bool(true));
    let name = str_of(claims, "name")
        .map(str::to_owned)
        .or_else(|| join_names(str_of(claims, "given_name"), str_of(claims, "family_name")));
    ExternalProfile {
        provider: kind,
        subject,
        email,
        email_verified,
        phone: str_of(claims, "phone_number").map(str::to_owned),
        name,
    }
}

/// A profile of a provider that cannot assert a verified email.
fn plain_profile(
    kind: ProviderKind,
    subject: String,
    email: Option<&str>,
    phone: Option<&str>,
    name: Option<String>,
) -> Result<ExternalProfile, OAuthError> {
    if subject.len() > 255 {
        return Err(OAuthError::Provider(format!(
            "{kind}: the user id is too long"
        )));
    }
    Ok(ExternalProfile {
        provider: kind,
        subject,
        email: email.and_then(normalise_email),
        email_verified: false,
        phone: phone.map(str::to_owned),
        name,
    })
}

/// Trimmed and lowercased; `None` when it cannot be an address.
fn normalise_email(email: &str) -> Option<String> {
    let email = email.trim().to_lowercase();
    let (local, domain) = email.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty() && email.len() <= 320).then_some(email)
}

fn join_names(first: Option<&str>, last: Option<&str>) -> Option<String> {
    match (first, last) {
        (Some(first), Some(last)) => Some(format!("{first} {last}")),
        (Some(one), None) | (None, Some(one)) => Some(one.to_owned()),
        (None, None) => None,
    }
}

/// Facebook's `appsecret_proof`: hex HMAC-SHA256 of the access token, keyed
/// with the app secret.
fn appsecret_proof(secret: &str, access_token: &str) -> Result<String, OAuthError> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| OAuthError::Internal("cannot key the HMAC".to_owned()))?;
    mac.update(access_token.as_bytes());
    Ok(hex(&mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            normalise_email("  Alice@Example.COM "),
            Some("alice@example.com".to_owned())
        );
        assert_eq!(normalise_email("not-an-address"), None);
        assert_eq!(normalise_email("@example.com"), None);
    }

    #[test]
    fn only_a_boolean_true_verifies_an_email() {
        let claims = |verified: Value| {
            let mut map = Object::new();
            map.insert("email".into(), "a@example.com".into());
            map.insert("email_verified".into(), verified);
            map
        };
        let verified =
            |v| openid_profile(ProviderKind::Oidc, "s".into(), &claims(v)).email_verified;
        assert!(verified(Value::Bool(true)));
        assert!(!verified(Value::Bool(false)));
        assert!(!verified(Value::String("true".into())));
    }

    #[test]
    fn appsecret_proof_is_hex_hmac_sha256() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        assert_eq!(
            appsecret_proof("key", "The quick brown fox jumps over the lazy dog").expect("hmac"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
