//! The OAuth client against fake providers on loopback (wiremock), one server
//! per provider per test. Each fake checks what its real provider checks:
//! the client id and secret, the PKCE verifier against the challenge of the
//! authorization request, `redirect_uri` equality, single-use codes, VK ID's
//! `device_id` and `state`, Yandex's `Authorization: OAuth` header and
//! Facebook's `appsecret_proof`; the OpenID fakes serve discovery, a JWKS and
//! ID tokens signed with a test RSA key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_auth::keys::{Algorithm, SigningKey};
use bff_auth::oauth::{
    CallbackParams, ExternalProfile, MemoryStateStore, OAuthClient, OAuthError, PendingAuth,
    ProviderConfig, ProviderKind, pkce_challenge,
};
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const CLIENT_ID: &str = "test-client";
const SECRET: &str = "test-client-secret";
const KID: &str = "test-key-1";
const BINDING: [u8; 32] = [7; 32];

/// What the authorization server recorded when it issued a code.
#[derive(Clone)]
struct Grant {
    challenge: String,
    redirect_uri: String,
    nonce: Option<String>,
    state: String,
    device_id: String,
    access_token: String,
    used: bool,
}

/// How the OpenID fake spoils its next ID tokens.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Tamper {
    Nothing,
    Nonce,
    Audience,
    Issuer,
    Signature,
    AlgNone,
    Hs256WithPublicKey,
    Expired,
    UnknownKid,
}

struct FakeState {
    grants: HashMap<String, Grant>,
    tamper: Tamper,
    /// The user's email, or none.
    email: Option<String>,
    /// OpenID: whether the email goes in the ID token (else only userinfo).
    email_in_id_token: bool,
    /// Answers the token endpoint gives instead of checking anything.
    token_answer: Option<ResponseTemplate>,
    /// Answers the profile endpoint gives instead of checking anything.
    profile_answer: Option<ResponseTemplate>,
}

/// A fake provider: its server, and what its endpoints share.
struct Fake {
    server: MockServer,
    core: Core,
}

impl std::ops::Deref for Fake {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

/// What the endpoints of a fake share (not the server: no cycle).
#[derive(Clone)]
struct Core {
    kind: ProviderKind,
    uri: String,
    key: SigningKey,
    public_pem: Vec<u8>,
    state: Arc<Mutex<FakeState>>,
}

fn refused(why: &str) -> ResponseTemplate {
    ResponseTemplate::new(400)
        .set_body_json(json!({"error": "invalid_grant", "error_description": why}))
}

fn random_token() -> String {
    bff_auth::random::base64url(24).expect("random")
}

fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("hmac");
    mac.update(message);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn params_of(request: &Request) -> HashMap<String, String> {
    if request.method == wiremock::http::Method::GET {
        request.url.query_pairs().into_owned().collect()
    } else {
        url::form_urlencoded::parse(&request.body)
            .into_owned()
            .collect()
    }
}

fn now() -> i64 {
    bff_auth::token::unix_now()
}

impl Fake {
    async fn start(kind: ProviderKind) -> Self {
        let server = MockServer::start().await;
        let generated = SigningKey::generate(Algorithm::Rs256).expect("keygen");
        let core = Core {
            kind,
            uri: server.uri(),
            key: generated.signing_key().expect("key"),
            public_pem: generated.public_pem().to_vec(),
            state: Arc::new(Mutex::new(FakeState {
                grants: HashMap::new(),
                tamper: Tamper::Nothing,
                email: Some("Alice@Example.com ".to_owned()),
                email_in_id_token: true,
                token_answer: None,
                profile_answer: None,
            })),
        };
        let fake = Self { server, core };
        let (token_method, token_path, profile_method, profile_path) = match kind {
            ProviderKind::Google | ProviderKind::Oidc => ("POST", "/token", "GET", "/userinfo"),
            ProviderKind::Facebook => ("GET", "/v24.0/oauth/access_token", "GET", "/v24.0/me"),
            ProviderKind::Vk => ("POST", "/oauth2/auth", "POST", "/oauth2/user_info"),
            ProviderKind::Yandex => ("POST", "/token", "GET", "/info"),
        };
        Mock::given(method(token_method))
            .and(path(token_path))
            .respond_with(TokenEndpoint(fake.core.clone()))
            .mount(&fake.server)
            .await;
        Mock::given(method(profile_method))
            .and(path(profile_path))
            .respond_with(ProfileEndpoint(fake.core.clone()))
            .mount(&fake.server)
            .await;
        if kind.is_openid() {
            let uri = fake.server.uri();
            Mock::given(method("GET"))
                .and(path("/.well-known/openid-configuration"))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                    "issuer": uri,
                    "authorization_endpoint": format!("{uri}/authorize"),
                    "token_endpoint": format!("{uri}/token"),
                    "userinfo_endpoint": format!("{uri}/userinfo"),
                    "jwks_uri": format!("{uri}/jwks"),
                    "id_token_signing_alg_values_supported": ["RS256"],
                })))
                .mount(&fake.server)
                .await;
            // A kid as Google names them, not an RFC 7638 thumbprint.
            let mut jwk = fake.key.public_key().jwk().as_ref().clone();
            jwk.insert("kid".into(), KID.into());
            Mock::given(method("GET"))
                .and(path("/jwks"))
                .respond_with(
                    ResponseTemplate::new(200).set_body_json(json!({"keys": [Value::Object(jwk)]})),
                )
                .mount(&fake.server)
                .await;
        }
        fake
    }
}

impl Core {
    fn uri(&self) -> String {
        self.uri.clone()
    }

    fn set(&self, change: impl FnOnce(&mut FakeState)) {
        change(&mut self.state.lock().expect("lock"));
    }

    fn config(&self) -> ProviderConfig {
        let mut config = ProviderConfig::new(self.kind, CLIENT_ID);
        if self.kind != ProviderKind::Vk {
            config.client_secret = Some(SECRET.into());
        }
        let at = |p: &str| Some(Url::parse(&format!("{}{p}", self.uri())).expect("url"));
        match self.kind {
            ProviderKind::Google | ProviderKind::Oidc => config.issuer = at(""),
            ProviderKind::Facebook => {
                config.authorize_url = at("/v24.0/dialog/oauth");
                config.token_url = at("/v24.0/oauth/access_token");
                config.userinfo_url = at("/v24.0/me");
            }
            ProviderKind::Vk => {
                config.authorize_url = at("/authorize");
                config.token_url = at("/oauth2/auth");
                config.userinfo_url = at("/oauth2/user_info");
            }
            ProviderKind::Yandex => {
                config.authorize_url = at("/authorize");
                config.token_url = at("/token");
                config.userinfo_url = at("/info?format=json");
            }
        }
        config
    }

    fn client(&self) -> OAuthClient {
        OAuthClient::new(
            vec![self.config()],
            Arc::new(MemoryStateStore::new()),
            Url::parse("https://bff.example.com/").expect("url"),
        )
        .expect("valid configuration")
    }

    /// The user at the provider's authorization endpoint: checks the request
    /// as the provider would, consents, and returns the callback's parameters.
    fn authorize(&self, authorize_url: &Url) -> CallbackParams {
        assert!(
            authorize_url.as_str().starts_with(&self.uri()),
            "{authorize_url}"
        );
        let q: HashMap<String, String> = authorize_url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], CLIENT_ID);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"].len(), 43);
        assert!(q["state"].len() >= 43, "VK ID wants at least 43 characters");
        assert_eq!(
            q["redirect_uri"],
            format!(
                "https://bff.example.com/api/v1/auth/oauth/{}/callback",
                self.kind.as_str()
            )
        );
        let scope = &q["scope"];
        match self.kind {
            ProviderKind::Google | ProviderKind::Oidc => {
                assert_eq!(scope, "openid email profile");
                assert!(q["nonce"].len() >= 43);
            }
            ProviderKind::Facebook => assert_eq!(scope, "email public_profile"),
            ProviderKind::Vk => assert_eq!(scope, "email"),
            ProviderKind::Yandex => assert_eq!(scope, "login:email login:info"),
        }
        if !self.kind.is_openid() {
            assert!(!q.contains_key("nonce"));
        }
        let code = random_token();
        let device_id = random_token();
        self.set(|s| {
            s.grants.insert(
                code.clone(),
                Grant {
                    challenge: q["code_challenge"].clone(),
                    redirect_uri: q["redirect_uri"].clone(),
                    nonce: q.get("nonce").cloned(),
                    state: q["state"].clone(),
                    device_id: device_id.clone(),
                    access_token: random_token(),
                    used: false,
                },
            );
        });
        CallbackParams {
            code: Some(code),
            state: Some(q["state"].clone()),
            device_id: (self.kind == ProviderKind::Vk).then_some(device_id),
            ..Default::default()
        }
    }

    fn grant_by_token(&self, token: &str) -> Option<Grant> {
        let state = self.state.lock().expect("lock");
        state
            .grants
            .values()
            .find(|g| g.access_token == token)
            .cloned()
    }

    fn id_token(&self, grant: &Grant, tamper: Tamper, email: Option<&str>) -> String {
        let uri = self.uri();
        let mut claims = json!({
            "iss": uri,
            "aud": CLIENT_ID,
            "azp": CLIENT_ID,
            "sub": "1234567890",
            "iat": now(),
            "exp": now() + 300,
            "nonce": grant.nonce.clone().unwrap_or_default(),
            "name": "Alice Example",
        });
        if let Some(email) = email {
            claims["email"] = email.into();
            claims["email_verified"] = true.into();
        }
        let mut header = json!({"alg": "RS256", "kid": KID, "typ": "JWT"});
        match tamper {
            Tamper::Nonce => claims["nonce"] = "another-nonce".into(),
            Tamper::Audience => {
                claims["aud"] = "another-client".into();
                claims["azp"] = "another-client".into();
            }
            Tamper::Issuer => claims["iss"] = "https://evil.example".into(),
            Tamper::Expired => {
                claims["iat"] = (now() - 7200).into();
                claims["exp"] = (now() - 3600).into();
            }
            Tamper::UnknownKid => header["kid"] = "rotated-key-2".into(),
            Tamper::AlgNone => header["alg"] = "none".into(),
            Tamper::Hs256WithPublicKey => header["alg"] = "HS256".into(),
            Tamper::Nothing | Tamper::Signature => {}
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match tamper {
            Tamper::AlgNone => Vec::new(),
            Tamper::Hs256WithPublicKey => {
                let mut mac =
                    hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.public_pem).expect("hmac");
                mac.update(input.as_bytes());
                mac.finalize().into_bytes().to_vec()
            }
            Tamper::Signature => SigningKey::generate(Algorithm::Rs256)
                .expect("keygen")
                .signing_key()
                .expect("key")
                .sign(input.as_bytes())
                .expect("sign"),
            _ => self.key.sign(input.as_bytes()).expect("sign"),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// The token endpoint: what the real ones check before issuing tokens.
struct TokenEndpoint(Core);

impl Respond for TokenEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let fake = &self.0;
        if let Some(answer) = fake.state.lock().expect("lock").token_answer.clone() {
            return answer;
        }
        let p = params_of(request);
        let get = |name: &str| p.get(name).map(String::as_str).unwrap_or_default();
        if get("client_id") != CLIENT_ID {
            return ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"}));
        }
        if fake.kind != ProviderKind::Vk && get("client_secret") != SECRET {
            return ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"}));
        }
        if fake.kind != ProviderKind::Facebook && get("grant_type") != "authorization_code" {
            return refused("grant_type");
        }
        let grant = {
            let mut state = fake.state.lock().expect("lock");
            match state.grants.get_mut(get("code")) {
                // A code works once; a second use is refused.
                Some(grant) if !grant.used => {
                    grant.used = true;
                    grant.clone()
                }
                _ => return refused("unknown or used code"),
            }
        };
        if pkce_challenge(get("code_verifier")) != grant.challenge {
            return refused("code_verifier does not match the code_challenge");
        }
        if get("redirect_uri") != grant.redirect_uri {
            return refused("redirect_uri differs from the authorization request's");
        }
        let (tamper, email, in_id_token) = {
            let s = fake.state.lock().expect("lock");
            (s.tamper, s.email.clone(), s.email_in_id_token)
        };
        match fake.kind {
            ProviderKind::Google | ProviderKind::Oidc => {
                let email = email.as_deref().filter(|_| in_id_token);
                ResponseTemplate::new(200).set_body_json(json!({
                    "access_token": grant.access_token,
                    "token_type": "Bearer",
                    "expires_in": 3599,
                    "id_token": fake.id_token(&grant, tamper, email),
                }))
            }
            ProviderKind::Vk => {
                if get("device_id") != grant.device_id {
                    return refused("device_id differs from the callback's");
                }
                if get("state") != grant.state {
                    return refused("state differs");
                }
                ResponseTemplate::new(200).set_body_json(json!({
                    "access_token": grant.access_token,
                    "refresh_token": random_token(),
                    "id_token": "not.checked.here",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "user_id": 1234567890,
                    "state": grant.state,
                    "scope": "email",
                }))
            }
            ProviderKind::Facebook | ProviderKind::Yandex => ResponseTemplate::new(200)
                .set_body_json(json!({
                    "access_token": grant.access_token,
                    "token_type": "bearer",
                    "expires_in": 5183944,
                })),
        }
    }
}

/// The profile endpoint: what the real ones check before answering.
struct ProfileEndpoint(Core);

impl Respond for ProfileEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let fake = &self.0;
        if let Some(answer) = fake.state.lock().expect("lock").profile_answer.clone() {
            return answer;
        }
        let unauthorized = || {
            ResponseTemplate::new(401).set_body_json(json!({"error": {"message": "invalid token"}}))
        };
        let header = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let query: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        let email = fake.state.lock().expect("lock").email.clone();
        match fake.kind {
            ProviderKind::Google | ProviderKind::Oidc => {
                let Some(_) = header
                    .strip_prefix("Bearer ")
                    .and_then(|t| fake.grant_by_token(t))
                else {
                    return unauthorized();
                };
                let mut info = json!({"sub": "1234567890", "name": "Alice Example"});
                if let Some(email) = email {
                    info["email"] = email.into();
                    info["email_verified"] = true.into();
                }
                ResponseTemplate::new(200).set_body_json(info)
            }
            ProviderKind::Facebook => {
                let Some(token) = header.strip_prefix("Bearer ") else {
                    return unauthorized();
                };
                if fake.grant_by_token(token).is_none() {
                    return unauthorized();
                }
                // Graph API apps with "Require App Secret" refuse calls without it.
                if query.get("appsecret_proof")
                    != Some(&hmac_hex(SECRET.as_bytes(), token.as_bytes()))
                {
                    return ResponseTemplate::new(400).set_body_json(
                        json!({"error": {"message": "Invalid appsecret_proof", "code": 100}}),
                    );
                }
                assert_eq!(query["fields"], "id,name,email");
                let mut me = json!({"id": "10203040506070", "name": "Alice Example"});
                if let Some(email) = email {
                    me["email"] = email.into();
                }
                ResponseTemplate::new(200).set_body_json(me)
            }
            ProviderKind::Vk => {
                let p = params_of(request);
                if p.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
                    return unauthorized();
                }
                if p.get("access_token")
                    .and_then(|t| fake.grant_by_token(t))
                    .is_none()
                {
                    return unauthorized();
                }
                let mut user = json!({
                    "user_id": "1234567890", "first_name": "Alice", "last_name": "Example",
                    "phone": "79991234567", "avatar": "https://example.com/a.png",
                });
                if let Some(email) = email {
                    user["email"] = email.into();
                }
                ResponseTemplate::new(200).set_body_json(json!({"user": user}))
            }
            ProviderKind::Yandex => {
                if query.contains_key("oauth_token") {
                    return unauthorized();
                }
                let Some(_) = header
                    .strip_prefix("OAuth ")
                    .and_then(|t| fake.grant_by_token(t))
                else {
                    return unauthorized();
                };
                assert_eq!(query.get("format").map(String::as_str), Some("json"));
                let mut info = json!({
                    "id": "1000034426", "login": "alice", "client_id": CLIENT_ID,
                    "real_name": "Alice Example", "display_name": "alice",
                    "default_phone": {"id": 12345678, "number": "+79037659418"},
                });
                if let Some(email) = email {
                    info["default_email"] = email.into();
                }
                ResponseTemplate::new(200).set_body_json(info)
            }
        }
    }
}

/// Runs the flow from `start` to `finish` against `fake`.
async fn flow(fake: &Fake, client: &OAuthClient) -> Result<ExternalProfile, OAuthError> {
    let (pending, params) = started(fake, client).await;
    client.finish(&pending, &params).await
}

async fn started(fake: &Fake, client: &OAuthClient) -> (PendingAuth, CallbackParams) {
    let url = client
        .start(
            fake.kind,
            BINDING,
            json!({"redirect_uri": "https://app.example.com/"}),
        )
        .await
        .expect("started");
    let params = fake.authorize(&url);
    let pending = client
        .take_state(fake.kind, &params, BINDING)
        .await
        .expect("a valid state");
    assert_eq!(pending.provider, fake.kind);
    assert_eq!(pending.data["redirect_uri"], "https://app.example.com/");
    (pending, params)
}

fn provider_error(result: Result<ExternalProfile, OAuthError>) -> String {
    match result {
        Err(OAuthError::Provider(message)) => message,
        other => panic!("expected a provider error, got {other:?}"),
    }
}

#[tokio::test]
async fn google_happy_path_asserts_a_verified_email() {
    let fake = Fake::start(ProviderKind::Google).await;
    let profile = flow(&fake, &fake.client()).await.expect("signed in");
    assert_eq!(
        profile,
        ExternalProfile {
            provider: ProviderKind::Google,
            subject: "1234567890".into(),
            email: Some("alice@example.com".into()),
            email_verified: true,
            phone: None,
            name: Some("Alice Example".into()),
        }
    );
}

#[tokio::test]
async fn oidc_reads_the_email_from_userinfo_when_the_id_token_has_none() {
    let fake = Fake::start(ProviderKind::Oidc).await;
    fake.set(|s| s.email_in_id_token = false);
    let profile = flow(&fake, &fake.client()).await.expect("signed in");
    assert_eq!(profile.provider, ProviderKind::Oidc);
    assert_eq!(profile.subject, "1234567890");
    assert_eq!(profile.email.as_deref(), Some("alice@example.com"));
    assert!(profile.email_verified);
}

#[tokio::test]
async fn facebook_happy_path_never_verifies_the_email() {
    let fake = Fake::start(ProviderKind::Facebook).await;
    let profile = flow(&fake, &fake.client()).await.expect("signed in");
    assert_eq!(
        profile,
        ExternalProfile {
            provider: ProviderKind::Facebook,
            subject: "10203040506070".into(),
            email: Some("alice@example.com".into()),
            email_verified: false,
            phone: None,
            name: Some("Alice Example".into()),
        }
    );
}

#[tokio::test]
async fn vk_happy_path_with_device_id_and_echoed_state() {
    let fake = Fake::start(ProviderKind::Vk).await;
    let profile = flow(&fake, &fake.client()).await.expect("signed in");
    assert_eq!(
        profile,
        ExternalProfile {
            provider: ProviderKind::Vk,
            subject: "1234567890".into(),
            email: Some("alice@example.com".into()),
            email_verified: false,
            phone: Some("79991234567".into()),
            name: Some("Alice Example".into()),
        }
    );
}

#[tokio::test]
async fn vk_without_device_id_is_refused_before_any_exchange() {
    let fake = Fake::start(ProviderKind::Vk).await;
    let client = fake.client();
    let (pending, mut params) = started(&fake, &client).await;
    params.device_id = None;
    let message = provider_error(client.finish(&pending, &params).await);
    assert!(message.contains("device_id"), "{message}");
}

#[tokio::test]
async fn vk_token_answer_must_echo_the_state() {
    let fake = Fake::start(ProviderKind::Vk).await;
    fake.set(|s| {
        s.token_answer = Some(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": "t", "token_type": "Bearer", "user_id": 1, "state": "another-state",
        })));
    });
    let message = provider_error(flow(&fake, &fake.client()).await);
    assert!(message.contains("state"), "{message}");
}

#[tokio::test]
async fn yandex_happy_path_with_the_oauth_header() {
    let fake = Fake::start(ProviderKind::Yandex).await;
    let profile = flow(&fake, &fake.client()).await.expect("signed in");
    assert_eq!(
        profile,
        ExternalProfile {
            provider: ProviderKind::Yandex,
            subject: "1000034426".into(),
            email: Some("alice@example.com".into()),
            email_verified: false,
            phone: Some("+79037659418".into()),
            name: Some("Alice Example".into()),
        }
    );
}

#[tokio::test]
async fn a_provider_without_email_gives_a_profile_without_email() {
    for kind in [
        ProviderKind::Facebook,
        ProviderKind::Vk,
        ProviderKind::Yandex,
    ] {
        let fake = Fake::start(kind).await;
        fake.set(|s| s.email = None);
        let profile = flow(&fake, &fake.client()).await.expect("signed in");
        assert_eq!(profile.email, None, "{kind}");
        assert!(!profile.email_verified);
    }
    let fake = Fake::start(ProviderKind::Google).await;
    fake.set(|s| s.email = None);
    let profile = flow(&fake, &fake.client()).await.expect("signed in");
    assert_eq!((profile.email, profile.email_verified), (None, false));
}

#[tokio::test]
async fn id_tokens_that_fail_a_check_are_refused() {
    let cases = [
        (Tamper::Nonce, "wrong nonce"),
        (Tamper::Audience, "wrong aud"),
        (Tamper::Issuer, "wrong iss"),
        (Tamper::Signature, "bad signature"),
        (Tamper::AlgNone, "algorithm not allowed"),
        (Tamper::Hs256WithPublicKey, "algorithm not allowed"),
        (Tamper::Expired, "expired"),
        (Tamper::UnknownKid, "unknown kid"),
    ];
    let fake = Fake::start(ProviderKind::Google).await;
    let client = fake.client();
    for (tamper, why) in cases {
        fake.set(|s| s.tamper = tamper);
        let message = provider_error(flow(&fake, &client).await);
        assert!(message.contains(why), "{tamper:?}: {message}");
        assert!(message.contains("ID token refused"), "{message}");
    }
    // An unknown kid refetches at most once per interval: the first fetch was
    // moments ago, so the JWKS was read exactly once for all of the above.
    let jwks_reads = fake
        .server
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.url.path() == "/jwks")
        .count();
    assert_eq!(jwks_reads, 1);
    fake.set(|s| s.tamper = Tamper::Nothing);
    flow(&fake, &client)
        .await
        .expect("a good token still passes");
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_once_the_interval_allows() {
    let fake = Fake::start(ProviderKind::Oidc).await;
    let client = fake.client().with_jwks_refetch_interval(Duration::ZERO);
    fake.set(|s| s.tamper = Tamper::UnknownKid);
    provider_error(flow(&fake, &client).await);
    provider_error(flow(&fake, &client).await);
    let jwks_reads = fake
        .server
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.url.path() == "/jwks")
        .count();
    // The first token's lookup is the first fetch itself; the second token,
    // naming the same unknown kid, may refetch since the interval is zero.
    assert_eq!(jwks_reads, 2);
}

#[tokio::test]
async fn a_code_works_once_at_the_provider() {
    for kind in ProviderKind::ALL {
        let fake = Fake::start(kind).await;
        let client = fake.client();
        let (pending, params) = started(&fake, &client).await;
        client.finish(&pending, &params).await.expect("first use");
        let message = provider_error(client.finish(&pending, &params).await);
        assert!(
            message.contains("400") && message.contains("invalid_grant"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn a_code_with_another_authorizations_verifier_is_refused() {
    // Code injection: a code issued for one authorization, redeemed with
    // another's state and therefore its verifier.
    for kind in ProviderKind::ALL {
        let fake = Fake::start(kind).await;
        let client = fake.client();
        let url_a = client.start(kind, BINDING, json!({})).await.expect("a");
        let url_b = client.start(kind, BINDING, json!({})).await.expect("b");
        let params_a = fake.authorize(&url_a);
        let params_b = fake.authorize(&url_b);
        let injected = CallbackParams {
            code: params_a.code.clone(),
            ..params_b.clone()
        };
        let pending = client
            .take_state(kind, &injected, BINDING)
            .await
            .expect("b's state");
        let message = provider_error(client.finish(&pending, &injected).await);
        assert!(message.contains("invalid_grant"), "{kind}: {message}");
    }
}

#[tokio::test]
async fn token_endpoint_failures_are_errors_not_panics() {
    let fake = Fake::start(ProviderKind::Yandex).await;
    let client = fake
        .client()
        .with_http_timeouts(Duration::from_secs(1), Duration::from_millis(300));
    let answers = [
        (
            ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_grant"})),
            "400 (invalid_grant)",
        ),
        (
            ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"})),
            "401",
        ),
        (ResponseTemplate::new(500).set_body_string("oops"), "500"),
        (
            ResponseTemplate::new(200).set_body_string("<html>not json</html>"),
            "JSON",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"token_type": "bearer"})),
            "no access_token",
        ),
        (
            ResponseTemplate::new(302).insert_header("location", "https://evil.example/"),
            "302",
        ),
    ];
    for (answer, expected) in answers {
        fake.set(|s| s.token_answer = Some(answer));
        let message = provider_error(flow(&fake, &client).await);
        assert!(message.contains(expected), "{expected}: {message}");
        assert!(!message.contains(SECRET));
    }
    fake.set(|s| {
        s.token_answer = Some(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "t"}))
                .set_delay(Duration::from_secs(2)),
        );
    });
    let result = flow(&fake, &client).await;
    assert!(
        matches!(&result, Err(OAuthError::Unavailable(m)) if m.contains("timed out")),
        "{result:?}"
    );
}

#[tokio::test]
async fn facebook_errors_never_show_the_secret_in_the_token_url() {
    let fake = Fake::start(ProviderKind::Facebook).await;
    let client = fake
        .client()
        .with_http_timeouts(Duration::from_secs(1), Duration::from_millis(300));
    fake.set(|s| {
        s.token_answer = Some(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)));
    });
    let error = flow(&fake, &client).await.expect_err("timed out");
    assert!(!format!("{error} {error:?}").contains(SECRET));
}

#[tokio::test]
async fn an_oversized_answer_is_refused() {
    let fake = Fake::start(ProviderKind::Vk).await;
    let huge = format!(r#"{{"access_token": "{}"}}"#, "a".repeat(2 * 1024 * 1024));
    fake.set(|s| {
        s.token_answer = Some(ResponseTemplate::new(200).set_body_raw(huge, "application/json"))
    });
    let message = provider_error(flow(&fake, &fake.client()).await);
    assert!(message.contains("1 MiB"), "{message}");
}

#[tokio::test]
async fn profile_endpoint_failures_are_errors() {
    for kind in [
        ProviderKind::Facebook,
        ProviderKind::Vk,
        ProviderKind::Yandex,
    ] {
        let fake = Fake::start(kind).await;
        let client = fake.client();
        for (answer, expected) in [
            (ResponseTemplate::new(401), "401"),
            (ResponseTemplate::new(500), "500"),
            (
                ResponseTemplate::new(200).set_body_json(json!({"name": "No Id"})),
                "no ",
            ),
        ] {
            fake.set(|s| s.profile_answer = Some(answer));
            let message = provider_error(flow(&fake, &client).await);
            assert!(message.contains(expected), "{kind} {expected}: {message}");
        }
    }
    let fake = Fake::start(ProviderKind::Oidc).await;
    fake.set(|s| {
        s.email_in_id_token = false;
        s.profile_answer = Some(ResponseTemplate::new(500));
    });
    let message = provider_error(flow(&fake, &fake.client()).await);
    assert!(
        message.contains("userinfo endpoint answered 500"),
        "{message}"
    );
}

#[tokio::test]
async fn userinfo_about_another_user_is_refused() {
    let fake = Fake::start(ProviderKind::Oidc).await;
    fake.set(|s| {
        s.email_in_id_token = false;
        s.profile_answer = Some(ResponseTemplate::new(200).set_body_json(
            json!({"sub": "someone-else", "email": "victim@example.com", "email_verified": true}),
        ));
    });
    let message = provider_error(flow(&fake, &fake.client()).await);
    assert!(message.contains("another sub"), "{message}");
}

#[tokio::test]
async fn the_provider_error_is_denied_with_its_code() {
    let fake = Fake::start(ProviderKind::Google).await;
    let client = fake.client();
    let url = client
        .start(fake.kind, BINDING, json!({}))
        .await
        .expect("started");
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned());
    let params = CallbackParams {
        state,
        error: Some("access_denied".into()),
        error_description: Some("The user denied".into()),
        ..Default::default()
    };
    let pending = client
        .take_state(fake.kind, &params, BINDING)
        .await
        .expect("valid state");
    assert_eq!(
        client.finish(&pending, &params).await,
        Err(OAuthError::Denied("access_denied".into()))
    );
    let odd = CallbackParams {
        error: Some("<script>".into()),
        ..params
    };
    assert_eq!(
        client.finish(&pending, &odd).await,
        Err(OAuthError::Denied("invalid_error".into()))
    );
}

#[tokio::test]
async fn state_is_one_time_bound_to_provider_and_browser() {
    let google = Fake::start(ProviderKind::Google).await;
    let yandex = Fake::start(ProviderKind::Yandex).await;
    let client = OAuthClient::new(
        vec![google.config(), yandex.config()],
        Arc::new(MemoryStateStore::new()),
        Url::parse("https://bff.example.com").expect("url"),
    )
    .expect("valid");
    let start = |kind| {
        let client = client.clone();
        async move {
            let url = client
                .start(kind, BINDING, json!({}))
                .await
                .expect("started");
            CallbackParams {
                state: url
                    .query_pairs()
                    .find(|(k, _)| k == "state")
                    .map(|(_, v)| v.into_owned()),
                code: Some("code".into()),
                ..Default::default()
            }
        }
    };
    let invalid = |r: Result<PendingAuth, OAuthError>| matches!(r, Err(OAuthError::InvalidState));

    // Sequential replay.
    let params = start(ProviderKind::Google).await;
    client
        .take_state(ProviderKind::Google, &params, BINDING)
        .await
        .expect("first use");
    assert!(invalid(
        client
            .take_state(ProviderKind::Google, &params, BINDING)
            .await
    ));

    // Two concurrent callbacks: exactly one wins.
    let params = start(ProviderKind::Google).await;
    let (a, b) = tokio::join!(
        client.take_state(ProviderKind::Google, &params, BINDING),
        client.take_state(ProviderKind::Google, &params, BINDING),
    );
    assert_eq!(usize::from(a.is_ok()) + usize::from(b.is_ok()), 1);

    // Issued for another provider, and then gone.
    let params = start(ProviderKind::Google).await;
    assert!(invalid(
        client
            .take_state(ProviderKind::Yandex, &params, BINDING)
            .await
    ));
    assert!(invalid(
        client
            .take_state(ProviderKind::Google, &params, BINDING)
            .await
    ));

    // Another browser.
    let params = start(ProviderKind::Yandex).await;
    assert!(invalid(
        client
            .take_state(ProviderKind::Yandex, &params, [8; 32])
            .await
    ));

    // Missing, unknown, tampered.
    let mut params = start(ProviderKind::Yandex).await;
    let missing = CallbackParams::default();
    assert!(invalid(
        client
            .take_state(ProviderKind::Yandex, &missing, BINDING)
            .await
    ));
    let unknown = CallbackParams {
        state: Some(bff_auth::random::base64url(32).expect("random")),
        ..Default::default()
    };
    assert!(invalid(
        client
            .take_state(ProviderKind::Yandex, &unknown, BINDING)
            .await
    ));
    // Its last character changed (to one it is not already).
    params.state = params.state.map(|s| {
        let last = if s.ends_with('A') { 'B' } else { 'A' };
        format!("{}{last}", &s[..s.len() - 1])
    });
    assert!(invalid(
        client
            .take_state(ProviderKind::Yandex, &params, BINDING)
            .await
    ));

    // A disabled provider is not found.
    assert!(matches!(
        client.start(ProviderKind::Vk, BINDING, json!({})).await,
        Err(OAuthError::UnknownProvider)
    ));
}

#[tokio::test]
async fn state_expires_after_its_ttl() {
    let fake = Fake::start(ProviderKind::Facebook).await;
    let client = fake.client().with_state_ttl(Duration::from_millis(100));
    let url = client
        .start(fake.kind, BINDING, json!({}))
        .await
        .expect("started");
    let params = fake.authorize(&url);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(matches!(
        client.take_state(fake.kind, &params, BINDING).await,
        Err(OAuthError::InvalidState)
    ));
}

#[tokio::test]
async fn callback_urls_and_default_endpoints() {
    let mut facebook = ProviderConfig::new(ProviderKind::Facebook, "app");
    facebook.client_secret = Some(SECRET.into());
    let vk = ProviderConfig::new(ProviderKind::Vk, "app");
    let mut yandex = ProviderConfig::new(ProviderKind::Yandex, "app");
    yandex.client_secret = Some(SECRET.into());
    let client = OAuthClient::new(
        vec![facebook, vk, yandex],
        Arc::new(MemoryStateStore::new()),
        Url::parse("https://bff.example.com/base/").expect("url"),
    )
    .expect("valid");
    assert_eq!(
        client.callback_url(ProviderKind::Vk).as_str(),
        "https://bff.example.com/base/api/v1/auth/oauth/vk/callback"
    );
    assert!(client.is_enabled(ProviderKind::Vk) && !client.is_enabled(ProviderKind::Google));
    for (kind, prefix) in [
        (
            ProviderKind::Facebook,
            "https://www.facebook.com/v24.0/dialog/oauth?",
        ),
        (ProviderKind::Vk, "https://id.vk.ru/authorize?"),
        (ProviderKind::Yandex, "https://oauth.yandex.ru/authorize?"),
    ] {
        let url = client
            .start(kind, BINDING, json!({}))
            .await
            .expect("started");
        assert!(url.as_str().starts_with(prefix), "{url}");
    }
    let secret_missing = OAuthClient::new(
        vec![ProviderConfig::new(ProviderKind::Google, "app")],
        Arc::new(MemoryStateStore::new()),
        Url::parse("https://bff.example.com").expect("url"),
    );
    assert!(matches!(secret_missing, Err(OAuthError::Config(m)) if m.contains("google")));
}

#[tokio::test]
async fn discovery_must_name_the_configured_issuer() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": "https://evil.example",
            "authorization_endpoint": "https://evil.example/authorize",
            "token_endpoint": "https://evil.example/token",
            "jwks_uri": "https://evil.example/jwks",
        })))
        .mount(&server)
        .await;
    let mut oidc = ProviderConfig::new(ProviderKind::Oidc, CLIENT_ID);
    oidc.client_secret = Some(SECRET.into());
    oidc.issuer = Some(Url::parse(&server.uri()).expect("url"));
    let client = OAuthClient::new(
        vec![oidc],
        Arc::new(MemoryStateStore::new()),
        Url::parse("https://bff.example.com").expect("url"),
    )
    .expect("valid");
    let result = client.start(ProviderKind::Oidc, BINDING, json!({})).await;
    assert!(
        matches!(&result, Err(OAuthError::Provider(m)) if m.contains("another issuer")),
        "{result:?}"
    );
}

#[tokio::test]
async fn pending_auth_debug_hides_the_verifier() {
    let fake = Fake::start(ProviderKind::Google).await;
    let client = fake.client();
    let (pending, params) = started(&fake, &client).await;
    let debug = format!("{pending:?} {params:?}");
    let state = params.state.clone().expect("state");
    assert!(!debug.contains(&state), "{debug}");
    assert!(
        !debug.contains(params.code.as_deref().expect("code")),
        "{debug}"
    );
}

/// With `otel`, each call to the provider is a client span of the caller's
/// trace, and carries it: the discovery, JWKS and token requests
/// all name the trace and their own span, never the caller's.
#[cfg(feature = "otel")]
#[tokio::test]
async fn provider_calls_carry_the_trace_context() {
    use opentelemetry::trace::TraceContextExt;
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;

    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "test");
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    // The process's default, not this thread's: with one dispatcher, tracing
    // caches a callsite's interest from whichever thread reaches it first,
    // and the other tests of this binary run on threads of their own.
    tracing::subscriber::set_global_default(subscriber).expect("the only test that sets it");

    let fake = Fake::start(ProviderKind::Oidc).await;
    let client = fake.client();
    let caller = tracing::info_span!("callback");
    let context = caller.context();
    let span_context = context.span().span_context().clone();
    flow(&fake, &client)
        .instrument(caller.clone())
        .await
        .expect("signed in");
    let requests = fake.server.received_requests().await.expect("recorded");
    let paths: Vec<&str> = requests.iter().map(|r| r.url.path()).collect();
    for wanted in ["/.well-known/openid-configuration", "/jwks", "/token"] {
        assert!(paths.contains(&wanted), "{wanted} in {paths:?}");
    }
    for request in &requests {
        let traceparent = request
            .headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{} carries a traceparent", request.url.path()));
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts.len(), 4, "{traceparent}");
        assert_eq!(
            parts[1],
            span_context.trace_id().to_string(),
            "the caller's trace"
        );
        assert_ne!(
            parts[2],
            span_context.span_id().to_string(),
            "a span of its own"
        );
        assert!(
            request.headers.get("tracestate").is_none(),
            "no empty tracestate"
        );
    }
}
