//! Social login against fake providers on loopback (one wiremock server per
//! provider per test) that check what the real ones check: the PKCE verifier
//! against the challenge, `redirect_uri` equality, single-use codes, the client
//! credentials, VK ID's `device_id` and echoed `state`, Yandex's
//! `Authorization: OAuth` header, Facebook's `appsecret_proof`, and, for
//! Google and OIDC, discovery, a JWKS and RS256 ID tokens carrying the nonce.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_app::config::ServeArgs;
use hmac::{Hmac, KeyInit, Mac};
use josekit::jwk::Jwk;
use josekit::jws::{JwsHeader, RS256};
use josekit::jwt::{self, JwtPayload};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::{SEED_PASSWORD, TestApp, assert_problem};

const FRONTEND: &str = "https://app.example.com/auth/done";
const CLIENT_ID: &str = "test-client";
const CLIENT_SECRET: &str = "test-secret";

/// What the person at the provider is.
#[derive(Clone, Debug)]
struct Person {
    subject: String,
    email: Option<String>,
    email_verified: bool,
    name: String,
}

impl Person {
    fn new(subject: &str, email: Option<&str>, verified: bool) -> Self {
        Self {
            subject: subject.to_owned(),
            email: email.map(str::to_owned),
            email_verified: verified,
            name: "Social Person".to_owned(),
        }
    }
}

/// One authorization the fake granted, waiting for its code to be exchanged.
#[derive(Clone, Debug)]
struct Grant {
    challenge: String,
    redirect_uri: String,
    nonce: Option<String>,
    state: String,
    device_id: String,
    person: Person,
}

#[derive(Default)]
struct FakeState {
    grants: HashMap<String, Grant>,
    tokens: HashMap<String, Person>,
}

/// A provider on loopback.
struct Fake {
    kind: &'static str,
    server: MockServer,
    state: Arc<Mutex<FakeState>>,
    key: Option<(String, Jwk)>,
}

impl Fake {
    async fn start(kind: &'static str) -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(FakeState::default()));
        let openid = matches!(kind, "google" | "oidc");
        let key = openid.then(|| {
            let pair = RS256.generate_key_pair(2048).expect("rsa key");
            let mut public = pair.to_jwk_public_key();
            public.set_key_id("test-key-1");
            public.set_algorithm("RS256");
            public.set_key_use("sig");
            (
                String::from_utf8(pair.to_pem_private_key()).expect("pem"),
                public,
            )
        });
        let fake = Self {
            kind,
            server,
            state,
            key,
        };
        fake.mount().await;
        fake
    }

    fn uri(&self) -> String {
        self.server.uri()
    }

    async fn mount(&self) {
        if let Some((_, public)) = &self.key {
            let issuer = self.uri();
            Mock::given(method("GET"))
                .and(path("/.well-known/openid-configuration"))
                .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                    "issuer": issuer,
                    "authorization_endpoint": format!("{issuer}/authorize"),
                    "token_endpoint": format!("{issuer}/token"),
                    "userinfo_endpoint": format!("{issuer}/userinfo"),
                    "jwks_uri": format!("{issuer}/jwks"),
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                })))
                .mount(&self.server)
                .await;
            Mock::given(method("GET"))
                .and(path("/jwks"))
                .respond_with(
                    ResponseTemplate::new(200).set_body_json(json!({"keys": [public.as_ref()]})),
                )
                .mount(&self.server)
                .await;
        }
        let (token_method, token_path, info_method, info_path) = match self.kind {
            "facebook" => ("GET", "/oauth/access_token", "GET", "/me"),
            "vk" => ("POST", "/oauth2/auth", "POST", "/oauth2/user_info"),
            "yandex" => ("POST", "/token", "GET", "/info"),
            _ => ("POST", "/token", "GET", "/userinfo"),
        };
        Mock::given(method(token_method))
            .and(path(token_path))
            .respond_with(TokenEndpoint {
                kind: self.kind,
                issuer: self.uri(),
                state: Arc::clone(&self.state),
                key: self.key.as_ref().map(|(pem, _)| pem.clone()),
            })
            .mount(&self.server)
            .await;
        Mock::given(method(info_method))
            .and(path(info_path))
            .respond_with(ProfileEndpoint {
                kind: self.kind,
                state: Arc::clone(&self.state),
            })
            .mount(&self.server)
            .await;
    }

    /// Settings pointing the app's provider at this fake.
    fn configure(&self, c: &mut ServeArgs) {
        let url = |p: &str| Some(format!("{}{p}", self.uri()).parse().expect("url"));
        let o = &mut c.oauth;
        o.oauth_redirect_uris = vec![FRONTEND.to_owned(), "http://127.0.0.1:3000/".to_owned()];
        let secret = Some(SecretString::from(CLIENT_SECRET));
        match self.kind {
            "google" => {
                o.oauth_google_client_id = Some(CLIENT_ID.to_owned());
                o.oauth_google_client_secret = secret;
                o.oauth_google_issuer = self.uri().parse().expect("issuer");
            }
            "oidc" => {
                o.oauth_oidc_client_id = Some(CLIENT_ID.to_owned());
                o.oauth_oidc_client_secret = secret;
                o.oauth_oidc_issuer = Some(self.uri().parse().expect("issuer"));
            }
            "facebook" => {
                o.oauth_facebook_client_id = Some(CLIENT_ID.to_owned());
                o.oauth_facebook_client_secret = secret;
                o.oauth_facebook_authorize_url = url("/dialog/oauth");
                o.oauth_facebook_token_url = url("/oauth/access_token");
                o.oauth_facebook_userinfo_url = url("/me");
            }
            "vk" => {
                o.oauth_vk_client_id = Some(CLIENT_ID.to_owned());
                o.oauth_vk_authorize_url = url("/authorize");
                o.oauth_vk_token_url = url("/oauth2/auth");
                o.oauth_vk_userinfo_url = url("/oauth2/user_info");
            }
            "yandex" => {
                o.oauth_yandex_client_id = Some(CLIENT_ID.to_owned());
                o.oauth_yandex_client_secret = secret;
                o.oauth_yandex_authorize_url = url("/authorize");
                o.oauth_yandex_token_url = url("/token");
                o.oauth_yandex_userinfo_url = url("/info");
            }
            other => panic!("unknown provider {other}"),
        }
    }

    /// The person consents: a code for the authorization URL the app sent
    /// the browser to, after the checks an authorization server makes there.
    fn authorize(&self, authorize_url: &Url, person: &Person) -> (String, String, String) {
        let query: HashMap<String, String> = authorize_url.query_pairs().into_owned().collect();
        assert_eq!(query["response_type"], "code", "{authorize_url}");
        assert_eq!(query["client_id"], CLIENT_ID);
        assert_eq!(query["code_challenge_method"], "S256");
        let state = query["state"].clone();
        assert!(state.len() >= 43, "state {state:?} is too short");
        assert!(
            query["redirect_uri"].ends_with(&format!("/api/v1/auth/oauth/{}/callback", self.kind)),
            "{authorize_url}"
        );
        let nonce = query.get("nonce").cloned();
        if self.key.is_some() {
            assert!(
                nonce.as_ref().is_some_and(|n| n.len() >= 16),
                "{authorize_url}"
            );
            assert!(query["scope"].split(' ').any(|s| s == "openid"));
        }
        let code = format!("code-{}", uuid::Uuid::now_v7().simple());
        let device_id = format!("device-{}", uuid::Uuid::now_v7().simple());
        self.state.lock().expect("fake").grants.insert(
            code.clone(),
            Grant {
                challenge: query["code_challenge"].clone(),
                redirect_uri: query["redirect_uri"].clone(),
                nonce,
                state: state.clone(),
                device_id: device_id.clone(),
                person: person.clone(),
            },
        );
        (code, state, device_id)
    }
}

fn form(request: &Request) -> HashMap<String, String> {
    let mut pairs: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
    pairs.extend(url::form_urlencoded::parse(&request.body).into_owned());
    pairs
}

fn oauth_error(status: u16, error: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error": error}))
}

struct TokenEndpoint {
    kind: &'static str,
    issuer: String,
    state: Arc<Mutex<FakeState>>,
    key: Option<String>,
}

impl Respond for TokenEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let params = form(request);
        let mut state = self.state.lock().expect("fake");
        // Single use: a code is gone once presented, right or wrong.
        let Some(grant) = params.get("code").and_then(|c| state.grants.remove(c)) else {
            return oauth_error(400, "invalid_grant");
        };
        if params.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
            return oauth_error(401, "invalid_client");
        }
        if self.kind != "vk"
            && params.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
        {
            return oauth_error(401, "invalid_client");
        }
        if params.get("redirect_uri") != Some(&grant.redirect_uri) {
            return oauth_error(400, "invalid_grant");
        }
        let verifier = params.get("code_verifier").cloned().unwrap_or_default();
        if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge {
            return oauth_error(400, "invalid_grant");
        }
        if self.kind == "vk" {
            if params.get("grant_type").map(String::as_str) != Some("authorization_code")
                || params.get("device_id") != Some(&grant.device_id)
                || params.get("state") != Some(&grant.state)
            {
                return oauth_error(400, "invalid_request");
            }
        } else if self.kind != "facebook"
            && params.get("grant_type").map(String::as_str) != Some("authorization_code")
        {
            return oauth_error(400, "unsupported_grant_type");
        }
        let access_token = format!("at-{}", uuid::Uuid::now_v7().simple());
        state
            .tokens
            .insert(access_token.clone(), grant.person.clone());
        let mut body =
            json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 3600});
        if self.kind == "vk" {
            body["user_id"] = json!(grant.person.subject.parse::<u64>().unwrap_or(1));
            body["state"] = json!(grant.state);
            body["refresh_token"] = json!("vk-refresh");
        }
        if let Some(pem) = &self.key {
            body["id_token"] = json!(id_token(
                pem,
                &self.issuer,
                &grant.person,
                grant.nonce.as_deref()
            ));
        }
        ResponseTemplate::new(200).set_body_json(body)
    }
}

/// An RS256 ID token for `person`.
fn id_token(pem: &str, issuer: &str, person: &Person, nonce: Option<&str>) -> String {
    let mut header = JwsHeader::new();
    header.set_token_type("JWT");
    header.set_key_id("test-key-1");
    let mut payload = JwtPayload::new();
    payload.set_issuer(issuer);
    payload.set_subject(&person.subject);
    payload.set_audience(vec![CLIENT_ID]);
    let now = std::time::SystemTime::now();
    payload.set_issued_at(&now);
    payload.set_expires_at(&(now + std::time::Duration::from_secs(300)));
    if let Some(nonce) = nonce {
        payload
            .set_claim("nonce", Some(json!(nonce)))
            .expect("claim");
    }
    if let Some(email) = &person.email {
        payload
            .set_claim("email", Some(json!(email)))
            .expect("claim");
        payload
            .set_claim("email_verified", Some(json!(person.email_verified)))
            .expect("claim");
    }
    payload
        .set_claim("name", Some(json!(person.name)))
        .expect("claim");
    let signer = RS256.signer_from_pem(pem.as_bytes()).expect("signer");
    jwt::encode_with_signer(&payload, &header, &signer).expect("signed")
}

struct ProfileEndpoint {
    kind: &'static str,
    state: Arc<Mutex<FakeState>>,
}

impl Respond for ProfileEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let params = form(request);
        let header = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let token = match self.kind {
            // Yandex takes the token in its own header scheme, never the query.
            "yandex" => header.strip_prefix("OAuth ").map(str::to_owned),
            "vk" => params.get("access_token").cloned(),
            "facebook" => params
                .get("access_token")
                .cloned()
                .or_else(|| header.strip_prefix("Bearer ").map(str::to_owned)),
            _ => header.strip_prefix("Bearer ").map(str::to_owned),
        };
        let state = self.state.lock().expect("fake");
        let Some(person) = token.as_ref().and_then(|t| state.tokens.get(t)) else {
            return oauth_error(401, "invalid_token");
        };
        match self.kind {
            "facebook" => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(CLIENT_SECRET.as_bytes()).expect("key");
                mac.update(token.as_deref().unwrap_or_default().as_bytes());
                let proof: String = mac
                    .finalize()
                    .into_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                if params.get("appsecret_proof") != Some(&proof) {
                    return oauth_error(400, "invalid appsecret_proof");
                }
                ResponseTemplate::new(200).set_body_json(
                    json!({"id": person.subject, "name": person.name, "email": person.email}),
                )
            }
            "vk" => {
                if params.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
                    return oauth_error(400, "invalid_client");
                }
                ResponseTemplate::new(200).set_body_json(json!({"user": {
                    "user_id": person.subject, "first_name": "Social", "last_name": "Person",
                    "email": person.email, "phone": "79991234567",
                }}))
            }
            "yandex" => ResponseTemplate::new(200).set_body_json(json!({
                "id": person.subject, "login": "social", "real_name": person.name,
                "default_email": person.email, "default_phone": {"id": 1, "number": "+79991234567"},
            })),
            _ => ResponseTemplate::new(200).set_body_json(json!({
                "sub": person.subject, "email": person.email,
                "email_verified": person.email_verified, "name": person.name,
            })),
        }
    }
}

/// A browser: what `start` answered, its binding cookie.
struct Flow {
    authorize_url: Url,
    cookie: String,
}

fn set_cookie(response: &reqwest::Response) -> String {
    let header = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-bff_oauth="))
        .expect("binding cookie")
        .to_owned();
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(header.contains(attribute), "{header}");
    }
    assert!(!header.to_ascii_lowercase().contains("domain="), "{header}");
    header.split(';').next().expect("pair").to_owned()
}

async fn start(app: &TestApp, provider: &str, redirect_uri: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/api/v1/auth/oauth/{provider}/start")))
        .query(&[("redirect_uri", redirect_uri)])
        .send()
        .await
        .expect("sent")
}

async fn begin(app: &TestApp, provider: &str) -> Flow {
    let response = start(app, provider, FRONTEND).await;
    assert_eq!(response.status(), 302);
    let cookie = set_cookie(&response);
    let location = response.headers()["location"].to_str().expect("ascii");
    Flow {
        authorize_url: Url::parse(location).expect("url"),
        cookie,
    }
}

async fn callback(
    app: &TestApp,
    provider: &str,
    query: &[(&str, &str)],
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(&format!("/api/v1/auth/oauth/{provider}/callback")))
        .query(query);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.expect("sent")
}

/// The frontend URL a callback sent the browser to, and its query.
fn landing(response: &reqwest::Response) -> HashMap<String, String> {
    assert_eq!(response.status(), 302, "{response:?}");
    let location =
        Url::parse(response.headers()["location"].to_str().expect("ascii")).expect("url");
    assert_eq!(
        format!(
            "{}://{}{}",
            location.scheme(),
            location.host_str().unwrap_or(""),
            location.path()
        ),
        FRONTEND
    );
    location.query_pairs().into_owned().collect()
}

/// The whole flow for `person`: what the frontend was told.
async fn sign_in(app: &TestApp, fake: &Fake, person: &Person) -> HashMap<String, String> {
    let flow = begin(app, fake.kind).await;
    let (code, state, device_id) = fake.authorize(&flow.authorize_url, person);
    let mut query = vec![("code", code.as_str()), ("state", state.as_str())];
    if fake.kind == "vk" {
        query.push(("device_id", device_id.as_str()));
    }
    landing(&callback(app, fake.kind, &query, Some(&flow.cookie)).await)
}

async fn exchange(app: &TestApp, login_code: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/oauth/exchange",
        &json!({"login_code": login_code}),
    )
    .await
}

async fn tokens(app: &TestApp, landed: &HashMap<String, String>) -> Value {
    let code = landed
        .get("login_code")
        .unwrap_or_else(|| panic!("{landed:?}"));
    let response = exchange(app, code).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

/// How many accounts have `email`.
async fn users_with_email(app: &TestApp, email: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(&app.db)
        .await
        .expect("count")
}

/// Starts linking `provider` to the account of `token`: the authorization URL
/// and the binding cookie.
async fn start_link(app: &TestApp, token: &str, provider: &str) -> (Url, String) {
    let response = app
        .authed(
            Method::POST,
            &format!("/api/v1/me/identities/{provider}"),
            token,
        )
        .json(&json!({"redirect_uri": FRONTEND}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let cookie = set_cookie(&response);
    let body: Value = response.json().await.expect("json");
    let url = Url::parse(body["authorize_url"].as_str().expect("url")).expect("url");
    (url, cookie)
}

async fn spawn(fake: &Fake) -> TestApp {
    TestApp::spawn_with(|c| fake.configure(c)).await
}

#[tokio::test]
async fn every_provider_signs_in_start_to_exchange() {
    for (kind, subject, email, verified) in [
        ("google", "g-123", Some("g.person@example.com"), true),
        ("oidc", "o-123", Some("o.person@example.com"), true),
        (
            "facebook",
            "1234567890",
            Some("f.person@example.com"),
            false,
        ),
        ("vk", "987654321", Some("v.person@example.com"), false),
        ("yandex", "55501", Some("y.person@example.com"), false),
    ] {
        let fake = Fake::start(kind).await;
        let app = spawn(&fake).await;
        let mut events = app.events().await;
        let person = Person::new(subject, email, verified);
        let landed = sign_in(&app, &fake, &person).await;
        let body = tokens(&app, &landed).await;
        let token = body["access_token"].as_str().expect("token");
        let me = app.get_json_authed("/api/v1/me", token).await;
        assert_eq!(
            me["email"],
            email.map_or(Value::Null, |e| json!(e)),
            "{kind}"
        );
        assert_eq!(
            me["email_verified_at"].is_string(),
            verified,
            "{kind}: {me}"
        );
        assert_eq!(me["role"], "customer");
        let registered = events.next().await;
        assert_eq!(registered.payload["type"], "user.registered", "{kind}");
        // The same identity again: the same account.
        let again = tokens(&app, &sign_in(&app, &fake, &person).await).await;
        assert_eq!(again["user"]["id"], body["user"]["id"], "{kind}");
        let identities = app.get_json_authed("/api/v1/me/identities", token).await;
        assert_eq!(identities["items"][0]["provider"], kind);
        let audit: i64 =
            sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'auth.oauth_login'")
                .fetch_one(&app.db)
                .await
                .expect("audit");
        assert_eq!(audit, 2, "{kind}");
    }
}

#[tokio::test]
async fn a_bad_state_is_400_and_creates_nothing() {
    let fake = Fake::start("google").await;
    let app = TestApp::spawn_with(|c| {
        fake.configure(c);
        c.oauth.oauth_state_ttl = std::time::Duration::from_millis(300);
    })
    .await;
    let person = Person::new("g-1", Some("someone@example.com"), true);
    let flow = begin(&app, "google").await;
    let (code, state, _) = fake.authorize(&flow.authorize_url, &person);
    let cookie = Some(flow.cookie.as_str());
    let mut tampered = state.clone();
    tampered.replace_range(0..1, if state.starts_with('A') { "B" } else { "A" });
    for (query, cookie) in [
        (vec![("code", code.as_str())], cookie),
        (
            vec![
                ("code", code.as_str()),
                ("state", "unknown-state-value-that-is-long-enough-000000"),
            ],
            cookie,
        ),
        (
            vec![("code", code.as_str()), ("state", tampered.as_str())],
            cookie,
        ),
        (
            vec![("code", code.as_str()), ("state", state.as_str())],
            None,
        ),
        (
            vec![("code", code.as_str()), ("state", state.as_str())],
            Some("__Host-bff_oauth=someone-else"),
        ),
    ] {
        let response = callback(&app, "google", &query, cookie).await;
        assert!(response.headers().get("location").is_none());
        assert_problem(response, 400, "bad_request").await;
    }
    // Expired.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let response = callback(
        &app,
        "google",
        &[("code", &code), ("state", &state)],
        cookie,
    )
    .await;
    assert_problem(response, 400, "bad_request").await;
    assert_eq!(users_with_email(&app, "someone@example.com").await, 0);
}

#[tokio::test]
async fn a_state_works_once_even_under_concurrent_callbacks_and_only_for_its_provider() {
    let google = Fake::start("google").await;
    let yandex = Fake::start("yandex").await;
    let app = TestApp::spawn_with(|c| {
        google.configure(c);
        yandex.configure(c);
    })
    .await;
    let person = Person::new("g-2", Some("twice@example.com"), true);
    let flow = begin(&app, "google").await;
    let (code, state, _) = google.authorize(&flow.authorize_url, &person);
    let query = [("code", code.as_str()), ("state", state.as_str())];
    // Issued for Google, presented at Yandex's callback: refused, and spent.
    let foreign = callback(&app, "yandex", &query, Some(&flow.cookie)).await;
    assert_problem(foreign, 400, "bad_request").await;
    let replay = callback(&app, "google", &query, Some(&flow.cookie)).await;
    assert_problem(replay, 400, "bad_request").await;

    let flow = begin(&app, "google").await;
    let (code, state, _) = google.authorize(&flow.authorize_url, &person);
    let query = [("code", code.as_str()), ("state", state.as_str())];
    let (first, second) = tokio::join!(
        callback(&app, "google", &query, Some(&flow.cookie)),
        callback(&app, "google", &query, Some(&flow.cookie)),
    );
    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [302, 400]);
}

#[tokio::test]
async fn redirect_uri_tricks_are_refused_without_a_location() {
    let fake = Fake::start("google").await;
    let app = spawn(&fake).await;
    for bad in [
        "https://app.example.com.evil.com/auth/done",
        "https://app.example.com@evil.com/auth/done",
        "//evil.com",
        "/\\evil.com",
        "%2F%2Fevil.com",
        "https:evil.com",
        "javascript:alert(1)",
        "https://app.example.com:8443/auth/done",
        "http://app.example.com/auth/done",
        "https://app.example.com/auth/done#x",
    ] {
        let response = start(&app, "google", bad).await;
        assert!(response.headers().get("location").is_none(), "{bad}");
        assert_problem(response, 400, "bad_request").await;
    }
    // An unknown or disabled provider is 404.
    assert_problem(start(&app, "myspace", FRONTEND).await, 404, "not_found").await;
    assert_problem(start(&app, "vk", FRONTEND).await, 404, "not_found").await;
}

#[tokio::test]
async fn provider_failures_reach_the_frontend_as_error_codes() {
    let fake = Fake::start("yandex").await;
    let app = spawn(&fake).await;
    let person = Person::new("y-1", Some("y@example.com"), false);

    // The person said no.
    let flow = begin(&app, "yandex").await;
    let state = flow
        .authorize_url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .expect("state")
        .1
        .into_owned();
    let response = callback(
        &app,
        "yandex",
        &[("error", "access_denied"), ("state", &state)],
        Some(&flow.cookie),
    )
    .await;
    assert_eq!(
        landing(&response).get("error").map(String::as_str),
        Some("access_denied")
    );

    // A code the provider does not know (the token endpoint answers 400).
    let flow = begin(&app, "yandex").await;
    let (_, state, _) = fake.authorize(&flow.authorize_url, &person);
    let response = callback(
        &app,
        "yandex",
        &[("code", "forged"), ("state", &state)],
        Some(&flow.cookie),
    )
    .await;
    assert_eq!(
        landing(&response).get("error").map(String::as_str),
        Some("provider_error")
    );

    assert_eq!(users_with_email(&app, "y@example.com").await, 0);
}

#[tokio::test]
async fn a_verified_email_links_only_to_a_verified_account() {
    let google = Fake::start("google").await;
    let facebook = Fake::start("facebook").await;
    let app = TestApp::spawn_with(|c| {
        google.configure(c);
        facebook.configure(c);
    })
    .await;
    // The seeded customer's email is verified: Google's verified email links.
    let existing = app.login("customer@example.com", SEED_PASSWORD).await;
    let landed = sign_in(
        &app,
        &google,
        &Person::new("g-3", Some("customer@example.com"), true),
    )
    .await;
    let body = tokens(&app, &landed).await;
    assert_eq!(body["user"]["id"], existing["user"]["id"]);
    // Facebook never asserts verification: the same email is a conflict.
    let landed = sign_in(
        &app,
        &facebook,
        &Person::new("f-3", Some("manager@example.com"), false),
    )
    .await;
    assert_eq!(
        landed.get("error").map(String::as_str),
        Some("account_conflict")
    );
    let linked: i64 =
        sqlx::query_scalar("SELECT count(*) FROM user_identities WHERE provider = 'facebook'")
            .fetch_one(&app.db)
            .await
            .expect("count");
    assert_eq!(linked, 0);
    // A provider with no email: an account without one.
    let landed = sign_in(&app, &facebook, &Person::new("f-4", None, false)).await;
    let body = tokens(&app, &landed).await;
    assert!(body["user"]["email"].is_null(), "{body}");
}

#[tokio::test]
async fn an_unverified_local_email_is_never_taken_over() {
    let google = Fake::start("google").await;
    let app = spawn(&google).await;
    // Someone registered the victim's address without verifying it (a
    // pre-account takeover attempt).
    sqlx::query(
        "INSERT INTO users (id, email, password_hash) VALUES ($1, 'victim@example.com', 'x')",
    )
    .bind(uuid::Uuid::now_v7())
    .execute(&app.db)
    .await
    .expect("insert");
    let landed = sign_in(
        &app,
        &google,
        &Person::new("g-4", Some("victim@example.com"), true),
    )
    .await;
    assert_eq!(
        landed.get("error").map(String::as_str),
        Some("account_conflict")
    );
}

#[tokio::test]
async fn identities_are_linked_listed_and_unlinked() {
    let google = Fake::start("google").await;
    let yandex = Fake::start("yandex").await;
    let app = TestApp::spawn_with(|c| {
        google.configure(c);
        yandex.configure(c);
    })
    .await;
    let customer = app.login("customer@example.com", SEED_PASSWORD).await;
    let token = customer["access_token"].as_str().expect("token");

    // Link Yandex to the signed-in customer.
    let (authorize_url, cookie) = start_link(&app, token, "yandex").await;
    let person = Person::new("y-77", Some("other.address@example.com"), false);
    let (code, state, _) = yandex.authorize(&authorize_url, &person);
    let landed = landing(
        &callback(
            &app,
            "yandex",
            &[("code", &code), ("state", &state)],
            Some(&cookie),
        )
        .await,
    );
    assert_eq!(landed.get("linked").map(String::as_str), Some("yandex"));
    let list = app.get_json_authed("/api/v1/me/identities", token).await;
    assert_eq!(list["items"][0]["provider"], "yandex");
    assert_eq!(list["items"][0]["email"], "other.address@example.com");
    // Signing in with it now signs in the customer.
    let body = tokens(&app, &sign_in(&app, &yandex, &person).await).await;
    assert_eq!(body["user"]["id"], customer["user"]["id"]);

    // Another account trying to link the same identity: identity_in_use.
    let manager = app.login("manager@example.com", SEED_PASSWORD).await;
    let manager_token = manager["access_token"].as_str().expect("token");
    let (authorize_url, cookie) = start_link(&app, manager_token, "yandex").await;
    let (code, state, _) = yandex.authorize(&authorize_url, &person);
    let landed = landing(
        &callback(
            &app,
            "yandex",
            &[("code", &code), ("state", &state)],
            Some(&cookie),
        )
        .await,
    );
    assert_eq!(
        landed.get("error").map(String::as_str),
        Some("identity_in_use")
    );

    // The customer has a password, so the identity can go.
    let response = app
        .authed(Method::DELETE, "/api/v1/me/identities/yandex", token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 204);
    let response = app
        .authed(Method::DELETE, "/api/v1/me/identities/yandex", token)
        .send()
        .await
        .expect("sent");
    assert_problem(response, 404, "not_found").await;

    // A social-only account cannot drop its last way in.
    let social = tokens(
        &app,
        &sign_in(
            &app,
            &google,
            &Person::new("g-9", Some("only.social@example.com"), true),
        )
        .await,
    )
    .await;
    let social_token = social["access_token"].as_str().expect("token");
    let response = app
        .authed(Method::DELETE, "/api/v1/me/identities/google", social_token)
        .send()
        .await
        .expect("sent");
    assert_problem(response, 409, "conflict").await;
    // Its password login answers as a wrong password does.
    let login = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"identifier": "only.social@example.com", "password": "anything at all"}),
        )
        .await;
    assert_problem(login, 401, "invalid_credentials").await;
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE action LIKE 'auth.identity_%' ORDER BY id",
    )
    .fetch_all(&app.db)
    .await
    .expect("audit");
    assert_eq!(actions, ["auth.identity_linked", "auth.identity_unlinked"]);
}

#[tokio::test]
async fn a_blocked_account_is_told_so_and_login_codes_are_single_use() {
    let google = Fake::start("google").await;
    let app = spawn(&google).await;
    let person = Person::new("g-5", Some("blockme@example.com"), true);
    let landed = sign_in(&app, &google, &person).await;
    let code = landed["login_code"].clone();
    assert!(code.len() >= 43, "{code}");
    let body = tokens(&app, &landed).await;
    assert_problem(exchange(&app, &code).await, 400, "code_invalid").await;
    assert_problem(exchange(&app, "not-a-code").await, 400, "code_invalid").await;

    // A code whose session ended before the exchange is worthless.
    let landed = sign_in(&app, &google, &person).await;
    let admin = app.login("admin@example.com", SEED_PASSWORD).await;
    let admin_token = admin["access_token"].as_str().expect("token");
    let user_id = body["user"]["id"].as_str().expect("id");
    let blocked = app
        .authed(
            Method::POST,
            &format!("/api/v1/admin/users/{user_id}/block"),
            admin_token,
        )
        .send()
        .await
        .expect("sent");
    assert!(blocked.status().is_success(), "{blocked:?}");
    assert_problem(
        exchange(&app, &landed["login_code"]).await,
        400,
        "code_invalid",
    )
    .await;
    // Blocked: the frontend is told.
    let landed = sign_in(&app, &google, &person).await;
    assert_eq!(
        landed.get("error").map(String::as_str),
        Some("account_blocked")
    );
}

#[tokio::test]
async fn a_provider_missing_a_required_setting_stops_the_start_naming_it() {
    let mut config = crate::helpers::default_config();
    let database = crate::helpers::TestDatabase::new(&config);
    config.database.database_url = database.url.clone();
    config.http.http_addr = "127.0.0.1:0".parse().expect("addr");
    let run = uuid::Uuid::now_v7().simple().to_string();
    config.redis.redis_prefix = format!("test:{run}:");
    config.nats.nats_prefix = format!("TEST_{run}_");
    let _streams = crate::helpers::TestStreams::new(&config);
    config.oauth.oauth_google_client_id = Some(CLIENT_ID.to_owned());
    let error = bff_app::startup::Application::build(&config)
        .await
        .expect_err("no secret");
    assert!(
        error.to_string().contains("BFF_OAUTH_GOOGLE_CLIENT_SECRET"),
        "{error}"
    );
    config.oauth.oauth_google_client_id = None;
    config.oauth.oauth_oidc_client_id = Some(CLIENT_ID.to_owned());
    config.oauth.oauth_oidc_client_secret = Some(SecretString::from(CLIENT_SECRET));
    let error = bff_app::startup::Application::build(&config)
        .await
        .expect_err("no issuer");
    assert!(
        error.to_string().contains("BFF_OAUTH_OIDC_ISSUER"),
        "{error}"
    );
}

#[tokio::test]
async fn a_failing_profile_endpoint_is_a_provider_error_and_creates_nothing() {
    let fake = Fake::start("yandex").await;
    Mock::given(method("GET"))
        .and(path("/broken-info"))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream exploded"))
        .mount(&fake.server)
        .await;
    let app = TestApp::spawn_with(|c| {
        fake.configure(c);
        c.oauth.oauth_yandex_userinfo_url =
            Some(format!("{}/broken-info", fake.uri()).parse().expect("url"));
    })
    .await;
    let person = Person::new("y-500", Some("broken@example.com"), false);
    let landed = sign_in(&app, &fake, &person).await;
    assert_eq!(
        landed.get("error").map(String::as_str),
        Some("provider_error")
    );
    assert!(!landed.contains_key("login_code"));
    assert_eq!(users_with_email(&app, "broken@example.com").await, 0);
}

#[tokio::test]
async fn social_login_as_a_navigation_ends_in_the_browser_session_cookie() {
    let google = Fake::start("google").await;
    let app = spawn(&google).await;
    let person = Person::new("g-nav", Some("navigator@example.com"), true);
    let response = app
        .client
        .get(app.url("/bff/login/google"))
        .query(&[("return_to", "/account?tab=1")])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 302);
    let binding = set_cookie(&response);
    let authorize_url =
        Url::parse(response.headers()["location"].to_str().expect("ascii")).expect("url");
    let (code, state, _) = google.authorize(&authorize_url, &person);
    let landed = callback(
        &app,
        "google",
        &[("code", &code), ("state", &state)],
        Some(&binding),
    )
    .await;
    assert_eq!(landed.status(), 302);
    assert_eq!(landed.headers()["location"], "/account?tab=1");
    let session = landed
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-Http-bff="))
        .expect("session cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_owned();
    let me = app
        .client
        .get(app.url("/bff/user"))
        .header("cookie", &session)
        .header("x-csrf", "1")
        .send()
        .await
        .expect("sent");
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.expect("json");
    assert_eq!(me["user"]["email"], "navigator@example.com");

    // A refusal lands on the same origin with the error.
    let response = app
        .client
        .get(app.url("/bff/login/google"))
        .send()
        .await
        .expect("sent");
    let binding = set_cookie(&response);
    let authorize_url =
        Url::parse(response.headers()["location"].to_str().expect("ascii")).expect("url");
    let state = authorize_url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .expect("state")
        .1
        .into_owned();
    let landed = callback(
        &app,
        "google",
        &[("error", "access_denied"), ("state", &state)],
        Some(&binding),
    )
    .await;
    assert_eq!(landed.headers()["location"], "/?error=access_denied");
    assert!(
        landed
            .headers()
            .get_all("set-cookie")
            .iter()
            .all(|v| !v.to_str().unwrap_or("").starts_with("__Host-Http-bff="))
    );

    for bad in [
        "//evil.test",
        "/\\evil.test",
        "https://evil.test/",
        "javascript:alert(1)",
        "/a\nb",
        "/%2F%2Fevil.test",
        "account",
    ] {
        let response = app
            .client
            .get(app.url("/bff/login/google"))
            .query(&[("return_to", bad)])
            .send()
            .await
            .expect("sent");
        assert!(response.headers().get("location").is_none(), "{bad:?}");
        assert_problem(response, 400, "bad_request").await;
    }
}
