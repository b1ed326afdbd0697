//! Token verification against hostile input, and interoperability of the JWKS
//! with an independent JOSE implementation.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bff_auth::keys::{Algorithm, KeySet, PublicKey, SigningKey};
use bff_auth::token::{TokenError, TokenIssuer, TokenVerifier, ValidationPolicy, unix_now};

const ISS: &str = "https://bff.test";
const AUD: &str = "bff";

fn key(algorithm: Algorithm) -> SigningKey {
    SigningKey::generate(algorithm)
        .expect("generate")
        .signing_key()
        .expect("load")
}

fn setup(algorithm: Algorithm) -> (TokenIssuer, TokenVerifier) {
    let keys = KeySet::new(key(algorithm), Vec::new()).expect("keys");
    let issuer = TokenIssuer::new(keys.clone(), ISS, AUD, Duration::from_secs(900));
    let verifier = TokenVerifier::new(keys.verification_keys(), ValidationPolicy::new(ISS, AUD));
    (issuer, verifier)
}

fn b64(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}

fn parts(token: &str) -> (serde_json::Value, serde_json::Value, String) {
    let mut it = token.split('.');
    let decode =
        |p: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("b64")).expect("json");
    let header = decode(it.next().expect("header"));
    let payload = decode(it.next().expect("payload"));
    (header, payload, it.next().expect("signature").to_owned())
}

#[test]
fn valid_tokens_verify_for_every_algorithm() {
    for algorithm in Algorithm::ALL {
        let (issuer, verifier) = setup(algorithm);
        let token = issuer
            .issue("user-1", "session-1", "manager")
            .expect("issue");
        let claims = verifier.verify(&token.access_token).expect("verifies");
        assert_eq!(
            (
                claims.sub.as_str(),
                claims.sid.as_str(),
                claims.role.as_str()
            ),
            ("user-1", "session-1", "manager")
        );
        assert_eq!(claims.exp - claims.iat, 900);
        let (header, _, _) = parts(&token.access_token);
        assert_eq!(header["alg"], algorithm.name());
        assert_eq!(header["kid"], issuer.keys().signing_key().kid());
    }
}

#[test]
fn expired_and_not_yet_valid_tokens_are_refused_beyond_the_leeway() {
    let (issuer, verifier) = setup(Algorithm::EdDsa);
    let token = issuer
        .issue("u", "s", "customer")
        .expect("issue")
        .access_token;
    let now = unix_now();
    assert!(
        verifier.verify_at(&token, now + 900 + 10).is_ok(),
        "within the 30 s leeway"
    );
    assert_eq!(
        verifier.verify_at(&token, now + 900 + 31),
        Err(TokenError::Expired)
    );
    assert_eq!(
        verifier.verify_at(&token, now - 60),
        Err(TokenError::NotYetValid)
    );
}

#[test]
fn a_token_from_an_unknown_key_is_refused() {
    let (_, verifier) = setup(Algorithm::EdDsa);
    let (stranger, _) = setup(Algorithm::EdDsa);
    let token = stranger
        .issue("u", "s", "admin")
        .expect("issue")
        .access_token;
    assert_eq!(verifier.verify(&token), Err(TokenError::UnknownKey));
}

#[test]
fn alg_none_is_refused() {
    let (issuer, verifier) = setup(Algorithm::EdDsa);
    let token = issuer
        .issue("u", "s", "customer")
        .expect("issue")
        .access_token;
    let (mut header, payload, _) = parts(&token);
    for none in ["none", "None", "NONE"] {
        header["alg"] = none.into();
        let forged = format!("{}.{}.", b64(&header), b64(&payload));
        assert_eq!(
            verifier.verify(&forged),
            Err(TokenError::AlgorithmNotAllowed(none.to_owned()))
        );
    }
}

#[test]
fn an_hmac_token_keyed_with_the_public_key_is_refused() {
    for algorithm in Algorithm::ALL {
        let generated = SigningKey::generate(algorithm).expect("generate");
        let keys = KeySet::new(
            SigningKey::from_pem(generated.private_pem()).expect("load"),
            Vec::new(),
        )
        .expect("keys");
        let issuer = TokenIssuer::new(keys.clone(), ISS, AUD, Duration::from_secs(900));
        let verifier =
            TokenVerifier::new(keys.verification_keys(), ValidationPolicy::new(ISS, AUD));
        let token = issuer
            .issue("u", "s", "customer")
            .expect("issue")
            .access_token;
        let (mut header, mut payload, _) = parts(&token);
        header["alg"] = "HS256".into();
        payload["role"] = "admin".into();
        let signing_input = format!("{}.{}", b64(&header), b64(&payload));
        // The classic confusion attack: the public key, which anyone has, as an HMAC secret.
        for secret in [
            generated.public_pem().to_vec(),
            keys.jwks().to_string().into_bytes(),
        ] {
            let signer = josekit::jws::HS256
                .signer_from_bytes(&secret)
                .expect("hmac key");
            let signature =
                josekit::jws::JwsSigner::sign(&signer, signing_input.as_bytes()).expect("sign");
            let forged = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
            assert_eq!(
                verifier.verify(&forged),
                Err(TokenError::AlgorithmNotAllowed("HS256".into())),
                "{algorithm}"
            );
        }
    }
}

#[test]
fn a_tampered_payload_is_refused() {
    let (issuer, verifier) = setup(Algorithm::Es256);
    let token = issuer
        .issue("user-1", "s", "customer")
        .expect("issue")
        .access_token;
    let (header, mut payload, signature) = parts(&token);
    payload["role"] = "admin".into();
    let tampered = format!("{}.{}.{signature}", b64(&header), b64(&payload));
    assert_eq!(verifier.verify(&tampered), Err(TokenError::BadSignature));
}

#[test]
fn a_missing_kid_or_an_alg_that_does_not_fit_the_key_is_refused() {
    let (issuer, verifier) = setup(Algorithm::EdDsa);
    let token = issuer
        .issue("u", "s", "customer")
        .expect("issue")
        .access_token;
    let (header, payload, signature) = parts(&token);

    let mut no_kid = header.clone();
    no_kid.as_object_mut().expect("object").remove("kid");
    let forged = format!("{}.{}.{signature}", b64(&no_kid), b64(&payload));
    assert_eq!(verifier.verify(&forged), Err(TokenError::MissingKeyId));

    let mut other_alg = header.clone();
    other_alg["alg"] = "ES256".into();
    let forged = format!("{}.{}.{signature}", b64(&other_alg), b64(&payload));
    assert_eq!(verifier.verify(&forged), Err(TokenError::AlgorithmMismatch));

    let mut critical = header;
    critical["crit"] = serde_json::json!(["exp"]);
    let forged = format!("{}.{}.{signature}", b64(&critical), b64(&payload));
    assert_eq!(
        verifier.verify(&forged),
        Err(TokenError::UnsupportedCritical)
    );
}

#[test]
fn wrong_issuer_or_audience_is_refused() {
    let keys = KeySet::new(key(Algorithm::EdDsa), Vec::new()).expect("keys");
    let token = TokenIssuer::new(keys.clone(), ISS, AUD, Duration::from_secs(60))
        .issue("u", "s", "c")
        .expect("issue")
        .access_token;
    let other_issuer = TokenVerifier::new(
        keys.verification_keys(),
        ValidationPolicy::new("https://evil.test", AUD),
    );
    assert_eq!(other_issuer.verify(&token), Err(TokenError::WrongIssuer));
    let other_audience = TokenVerifier::new(
        keys.verification_keys(),
        ValidationPolicy::new(ISS, "orders"),
    );
    assert_eq!(
        other_audience.verify(&token),
        Err(TokenError::WrongAudience)
    );
}

#[test]
fn garbage_is_malformed() {
    let (_, verifier) = setup(Algorithm::EdDsa);
    for garbage in [
        "",
        "a.b",
        "a.b.c.d",
        "!!!.e30.e30",
        "e30.e30.!!!",
        &"a".repeat(9000),
    ] {
        assert!(verifier.verify(garbage).is_err(), "{garbage:.20}");
    }
    assert_eq!(
        verifier.verify("e30.e30.e30"),
        Err(TokenError::Malformed),
        "a header without alg"
    );
}

#[test]
fn rotation_keeps_tokens_of_the_retiring_key_valid_while_it_is_published() {
    let old = key(Algorithm::EdDsa);
    let next = key(Algorithm::EdDsa);
    // 1. The next key is published while the old one still signs.
    let step1 = KeySet::new(old.clone(), vec![next.public_key().clone()]).expect("keys");
    let old_token = TokenIssuer::new(step1.clone(), ISS, AUD, Duration::from_secs(900))
        .issue("u", "s", "c")
        .expect("issue");
    // 2. The next key signs; the old one stays published.
    let step2 = KeySet::new(next.clone(), vec![old.public_key().clone()]).expect("keys");
    let new_token = TokenIssuer::new(step2.clone(), ISS, AUD, Duration::from_secs(900))
        .issue("u", "s", "c")
        .expect("issue");
    let verifier = TokenVerifier::new(step2.verification_keys(), ValidationPolicy::new(ISS, AUD));
    assert!(verifier.verify(&old_token.access_token).is_ok());
    assert!(verifier.verify(&new_token.access_token).is_ok());
    // A verifier that fetched the JWKS during step 1 already accepts the new key's tokens.
    let early = TokenVerifier::new(step1.verification_keys(), ValidationPolicy::new(ISS, AUD));
    assert!(early.verify(&new_token.access_token).is_ok());
    // 3. The old key is retired: its tokens stop verifying.
    let step3 = KeySet::new(next, Vec::new()).expect("keys");
    let verifier = TokenVerifier::new(step3.verification_keys(), ValidationPolicy::new(ISS, AUD));
    assert_eq!(
        verifier.verify(&old_token.access_token),
        Err(TokenError::UnknownKey)
    );
    assert!(verifier.verify(&new_token.access_token).is_ok());
}

#[test]
fn the_jwks_verifies_tokens_in_an_independent_implementation() {
    for algorithm in Algorithm::ALL {
        let (issuer, _) = setup(algorithm);
        let token = issuer
            .issue("user-9", "session-9", "customer")
            .expect("issue")
            .access_token;
        // The other side has the JWKS document and nothing else.
        let jwks: jsonwebtoken::jwk::JwkSet =
            serde_json::from_value(issuer.keys().jwks()).expect("a JWKS jsonwebtoken reads");
        let kid = jsonwebtoken::decode_header(&token)
            .expect("header")
            .kid
            .expect("kid");
        let jwk = jwks.find(&kid).expect("the kid is in the JWKS");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("decoding key from the JWK");
        let alg = match algorithm {
            Algorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
            Algorithm::Es256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
        };
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.set_issuer(&[ISS]);
        validation.set_audience(&[AUD]);
        let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation)
            .expect("jsonwebtoken verifies it");
        assert_eq!(data.claims["sub"], "user-9", "{algorithm}");
        assert_eq!(data.claims["sid"], "session-9");
    }
}

#[test]
fn public_keys_load_from_the_jwks_they_were_published_in() {
    let signing = key(Algorithm::Es256);
    let jwks = KeySet::new(signing.clone(), Vec::new())
        .expect("keys")
        .jwks();
    let jwk = josekit::jwk::Jwk::from_bytes(jwks["keys"][0].to_string()).expect("jwk");
    let public = PublicKey::from_jwk(&jwk).expect("loads");
    assert_eq!(public.kid(), signing.kid());
    let mut forged = jwk.clone();
    forged.set_key_id("someone-elses-kid");
    assert!(
        PublicKey::from_jwk(&forged).is_err(),
        "a kid that is not the thumbprint is refused"
    );
}
