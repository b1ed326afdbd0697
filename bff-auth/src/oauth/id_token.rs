//! OpenID Connect ID-token verification (OpenID Connect Core 1.0, section
//! 3.1.3.7) with the keys of the issuer's JWKS.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::keys::{Algorithm, VerificationKeys};
use crate::token::MAX_TOKEN_LEN;

/// What an ID token must match.
pub(crate) struct Expected<'a> {
    /// Accepted `iss` values (Google has two spellings).
    pub(crate) issuers: &'a [String],
    /// The client id: in `aud`, and `azp` when present.
    pub(crate) client_id: &'a str,
    /// The nonce sent with the authorization request.
    pub(crate) nonce: &'a str,
    /// Tolerated clock skew, in seconds.
    pub(crate) leeway: i64,
}

/// Verifies `token` as of `now` and returns its claims, or why it was refused.
///
/// The header's `alg` must be one of the crate's asymmetric algorithms (never
/// `none`, never HMAC, so a public key cannot be used as an HMAC secret) and
/// the algorithm of the key its `kid` names; the signature must verify; then
/// `iss`, `aud`, `azp`, `exp`, `iat`, `nbf`, `nonce` and `sub` are checked.
pub(crate) fn verify(
    keys: &VerificationKeys,
    token: &str,
    expected: &Expected<'_>,
    now: i64,
) -> Result<Map<String, Value>, &'static str> {
    if token.len() > MAX_TOKEN_LEN {
        return Err("too long");
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS");
    };
    let header = decode(header_b64).ok_or("malformed header")?;
    let alg = header.get("alg").and_then(Value::as_str).ok_or("no alg")?;
    let algorithm = Algorithm::from_jose_name(alg).ok_or("algorithm not allowed")?;
    if header.contains_key("crit") {
        return Err("unsupported critical header");
    }
    let kid = header.get("kid").and_then(Value::as_str).ok_or("no kid")?;
    let key = keys.get(kid).ok_or("unknown kid")?;
    if key.algorithm() != algorithm {
        return Err("algorithm does not match the key");
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| "malformed signature")?;
    let signing_input_len = header_b64.len() + 1 + payload_b64.len();
    if !key.verify(&token.as_bytes()[..signing_input_len], &signature) {
        return Err("bad signature");
    }
    let claims = decode(payload_b64).ok_or("malformed claims")?;
    check_claims(&claims, expected, now)?;
    Ok(claims)
}

fn check_claims(
    claims: &Map<String, Value>,
    expected: &Expected<'_>,
    now: i64,
) -> Result<(), &'static str> {
    let iss = claims.get("iss").and_then(Value::as_str).ok_or("no iss")?;
    if !expected.issuers.iter().any(|i| i == iss) {
        return Err("wrong iss");
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => return Err("no aud"),
    };
    if !audiences.contains(&expected.client_id) {
        return Err("wrong aud");
    }
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == expected.client_id => {}
        Some(_) => return Err("wrong azp"),
        // Several audiences: the token must say it was issued to this client.
        None if audiences.len() > 1 => return Err("several audiences and no azp"),
        None => {}
    }
    let exp = seconds(claims, "exp").ok_or("no exp")?;
    if exp <= now.saturating_sub(expected.leeway) {
        return Err("expired");
    }
    let iat = seconds(claims, "iat").ok_or("no iat")?;
    if iat > now.saturating_add(expected.leeway) {
        return Err("issued in the future");
    }
    if seconds(claims, "nbf").is_some_and(|nbf| nbf > now.saturating_add(expected.leeway)) {
        return Err("not yet valid");
    }
    let nonce = claims
        .get("nonce")
        .and_then(Value::as_str)
        .ok_or("no nonce")?;
    if !bool::from(nonce.as_bytes().ct_eq(expected.nonce.as_bytes())) {
        return Err("wrong nonce");
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() && sub.len() <= 255 => Ok(()),
        _ => Err("no usable sub"),
    }
}

/// A NumericDate claim; a fractional one is rounded down.
fn seconds(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    let value = claims.get(name)?;
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f.floor() as i64)
    })
}

fn decode(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;

    fn sign(key: &SigningKey, header: Value, claims: &Value) -> String {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{h}.{p}");
        let sig = URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes()).expect("sign"));
        format!("{input}.{sig}")
    }

    #[test]
    fn claims_are_checked() {
        let key = SigningKey::generate(Algorithm::Rs256)
            .expect("gen")
            .signing_key()
            .expect("load");
        let keys = VerificationKeys::new(vec![key.public_key().clone()]).expect("keys");
        let issuers = vec!["https://issuer.example".to_owned()];
        let expected = Expected {
            issuers: &issuers,
            client_id: "client",
            nonce: "n-0",
            leeway: 30,
        };
        let now = 1_700_000_000;
        let header = serde_json::json!({"alg": "RS256", "kid": key.kid()});
        let good = serde_json::json!({
            "iss": "https://issuer.example", "aud": "client", "sub": "42",
            "exp": now + 60, "iat": now, "nonce": "n-0",
        });
        assert!(verify(&keys, &sign(&key, header.clone(), &good), &expected, now).is_ok());
        let cases = [
            (
                "aud",
                serde_json::json!(["client", "other"]),
                "several audiences and no azp",
            ),
            ("azp", serde_json::json!("other"), "wrong azp"),
            ("exp", serde_json::json!(now - 31), "expired"),
            ("iat", serde_json::json!(now + 3600), "issued in the future"),
            ("nonce", serde_json::json!("n-1"), "wrong nonce"),
            ("sub", serde_json::json!(""), "no usable sub"),
        ];
        for (name, value, why) in cases {
            let mut claims = good.clone();
            claims[name] = value;
            assert_eq!(
                verify(&keys, &sign(&key, header.clone(), &claims), &expected, now).err(),
                Some(why),
                "{name}"
            );
        }
        let mut with_azp = good.clone();
        with_azp["aud"] = serde_json::json!(["client", "other"]);
        with_azp["azp"] = serde_json::json!("client");
        assert!(verify(&keys, &sign(&key, header, &with_azp), &expected, now).is_ok());
    }
}
