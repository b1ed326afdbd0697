//! Signing and verification keys, and the JWKS document that publishes them.
//!
//! A [`KeySet`] holds one active [`SigningKey`] and any number of
//! verification-only [`PublicKey`]s; all of them are published in the JWKS so
//! that tokens signed by a key being rotated in or out keep verifying. Every
//! key's `kid` is its RFC 7638 JWK thumbprint, so it is stable, unique and
//! derived from the key alone.
//!
//! EdDSA (Ed25519) is the default algorithm; ES256 (P-256) and RS256 (2048-bit
//! or larger RSA) are supported. Keys load from PEM (PKCS#8 private keys, or
//! SubjectPublicKeyInfo public keys for verification-only keys).
//!
//! ```
//! use bff_auth::keys::{Algorithm, KeySet, SigningKey};
//!
//! let generated = SigningKey::generate(Algorithm::EdDsa).expect("keygen");
//! let key = SigningKey::from_pem(generated.private_pem()).expect("loads");
//! let keys = KeySet::new(key, Vec::new()).expect("key set");
//! let jwks = keys.jwks();
//! assert_eq!(jwks["keys"][0]["kty"], "OKP");
//! assert!(jwks["keys"][0].get("d").is_none(), "never a private part");
//! ```

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jwk::KeyPair;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{ES256, EdDSA, JwsSigner, JwsVerifier, RS256};
use openssl::pkey::{Id, PKey};
use sha2::{Digest, Sha256};

/// A signature algorithm this crate signs and verifies with. Nothing else is
/// accepted: not `none`, not HMAC, not any algorithm a token's header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// EdDSA over Ed25519 (the default).
    EdDsa,
    /// ECDSA over P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 3] = [Algorithm::EdDsa, Algorithm::Es256, Algorithm::Rs256];

    /// The JOSE name (`EdDSA`, `ES256`, `RS256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    /// The algorithm with this exact JOSE name.
    pub fn from_jose_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = KeyError;

    /// Case-insensitive: `eddsa` (or `ed25519`), `es256`, `rs256`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "eddsa" | "ed25519" => Ok(Self::EdDsa),
            "es256" => Ok(Self::Es256),
            "rs256" => Ok(Self::Rs256),
            _ => Err(KeyError::UnsupportedAlgorithm(s.to_owned())),
        }
    }
}

/// Why a key could not be generated, loaded or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The algorithm is not one of [`Algorithm::ALL`].
    #[error("unsupported signature algorithm {0:?}; use EdDSA, ES256 or RS256")]
    UnsupportedAlgorithm(String),
    /// The PEM holds no key of a supported kind.
    #[error("not a PKCS#8 Ed25519, P-256 or RSA key, nor such a public key")]
    UnsupportedKey,
    /// An RSA key shorter than 2048 bits.
    #[error("RSA keys must have at least 2048 bits")]
    WeakRsaKey,
    /// A JWK without the members its key type needs.
    #[error("malformed JWK: {0}")]
    MalformedJwk(String),
    /// Two keys of one set share a `kid`.
    #[error("duplicate key id {0}")]
    DuplicateKid(String),
    /// The cryptographic library failed.
    #[error("key operation failed")]
    Crypto(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl KeyError {
    fn crypto(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Crypto(Box::new(error))
    }
}

/// A freshly generated key pair, as PEM.
pub struct GeneratedKey {
    algorithm: Algorithm,
    kid: String,
    private_pem: Vec<u8>,
    public_pem: Vec<u8>,
}

impl GeneratedKey {
    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The key id (RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key, PKCS#8 PEM. Keep it secret: write it with mode 0600.
    pub fn private_pem(&self) -> &[u8] {
        &self.private_pem
    }

    /// The public key, SubjectPublicKeyInfo PEM.
    pub fn public_pem(&self) -> &[u8] {
        &self.public_pem
    }

    /// The key, ready to sign (for keys that never touch a file: tests, examples).
    pub fn signing_key(&self) -> Result<SigningKey, KeyError> {
        SigningKey::from_pem(&self.private_pem)
    }
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A public key that verifies signatures, with its JWK.
#[derive(Clone)]
pub struct PublicKey {
    kid: String,
    algorithm: Algorithm,
    verifier: Verifier,
    jwk: Jwk,
}

/// What checks a signature.
#[derive(Clone)]
enum Verifier {
    /// Ed25519 with ed25519-dalek (curve25519-dalek picks its AVX2 backend at
    /// run time): about twice as fast as OpenSSL 3.0's Ed25519 on the
    /// machines measured (docs/benchmarks.md). RFC 8032's cofactorless check,
    /// as OpenSSL and Go make it: a non-canonical `S` is refused, and a
    /// small-order key cannot be loaded.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// ES256 and RS256 through josekit (OpenSSL).
    Jose(Arc<dyn JwsVerifier>),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

impl PublicKey {
    /// Loads a public key from a SubjectPublicKeyInfo PEM, or the public half of a
    /// PKCS#8 private key PEM.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        if let Ok(key) = SigningKey::from_pem(pem) {
            return Ok(key.public);
        }
        let pkey = PKey::public_key_from_pem(pem).map_err(|_| KeyError::UnsupportedKey)?;
        let mut jwk = match pkey.id() {
            Id::ED25519 => {
                let raw = pkey.raw_public_key().map_err(KeyError::crypto)?;
                let mut jwk = Jwk::new("OKP");
                jwk.set_curve("Ed25519");
                set_b64(&mut jwk, "x", &raw)?;
                jwk
            }
            Id::EC => {
                let ec = pkey.ec_key().map_err(KeyError::crypto)?;
                if ec.group().curve_name() != Some(openssl::nid::Nid::X9_62_PRIME256V1) {
                    return Err(KeyError::UnsupportedKey);
                }
                let mut ctx = openssl::bn::BigNumContext::new().map_err(KeyError::crypto)?;
                let point = ec
                    .public_key()
                    .to_bytes(
                        ec.group(),
                        openssl::ec::PointConversionForm::UNCOMPRESSED,
                        &mut ctx,
                    )
                    .map_err(KeyError::crypto)?;
                // An uncompressed P-256 point is 0x04 || X (32 bytes) || Y (32 bytes).
                let (x, y) = point
                    .get(1..)
                    .filter(|xy| xy.len() == 64)
                    .map(|xy| xy.split_at(32))
                    .ok_or(KeyError::UnsupportedKey)?;
                let mut jwk = Jwk::new("EC");
                jwk.set_curve("P-256");
                set_b64(&mut jwk, "x", x)?;
                set_b64(&mut jwk, "y", y)?;
                jwk
            }
            Id::RSA => {
                let rsa = pkey.rsa().map_err(KeyError::crypto)?;
                let mut jwk = Jwk::new("RSA");
                set_b64(&mut jwk, "n", &rsa.n().to_vec())?;
                set_b64(&mut jwk, "e", &rsa.e().to_vec())?;
                jwk
            }
            _ => return Err(KeyError::UnsupportedKey),
        };
        let algorithm = algorithm_of_jwk(&jwk)?;
        jwk.set_algorithm(algorithm.name());
        Self::from_jwk(&jwk)
    }

    /// Loads a public key from a JWK (as found in a JWKS). Private members, if
    /// any, are dropped; `kid` is recomputed from the key and must match when given.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        Self::load_jwk(jwk, false)
    }

    /// Loads a public key from another issuer's JWK, keeping the `kid` the
    /// issuer gave it: issuers such as Google name keys freely, not by RFC 7638
    /// thumbprint. A JWK without a `kid` gets its thumbprint. The `kid` is only
    /// a label to find the key by; the signature check is what trusts it.
    pub fn from_issuer_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        Self::load_jwk(jwk, true)
    }

    fn load_jwk(jwk: &Jwk, issuer_kid: bool) -> Result<Self, KeyError> {
        let algorithm = algorithm_of_jwk(jwk)?;
        if let Some(alg) = jwk.algorithm().filter(|alg| *alg != algorithm.name()) {
            return Err(KeyError::MalformedJwk(format!(
                "alg {alg} does not fit a {} key",
                jwk.key_type()
            )));
        }
        let mut public = jwk
            .to_public_key()
            .map_err(|e| KeyError::MalformedJwk(e.to_string()))?;
        let kid = match jwk.key_id() {
            Some(given) if issuer_kid => {
                if given.is_empty() || given.len() > 256 {
                    return Err(KeyError::MalformedJwk("unusable kid".to_owned()));
                }
                given.to_owned()
            }
            _ => thumbprint(&public)?,
        };
        if !issuer_kid && jwk.key_id().is_some_and(|given| given != kid) {
            return Err(KeyError::MalformedJwk(
                "kid is not the key's RFC 7638 thumbprint".to_owned(),
            ));
        }
        public.set_key_id(&kid);
        public.set_algorithm(algorithm.name());
        public.set_key_use("sig");
        let verifier = match algorithm {
            Algorithm::EdDsa => {
                let x: [u8; ed25519_dalek::PUBLIC_KEY_LENGTH] = jwk_bytes(&public, "x")?
                    .try_into()
                    .map_err(|_| KeyError::MalformedJwk("x is not 32 bytes".to_owned()))?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|_| KeyError::MalformedJwk("x is not an Ed25519 point".to_owned()))?;
                if key.is_weak() {
                    return Err(KeyError::MalformedJwk(
                        "x is a small-order Ed25519 point".to_owned(),
                    ));
                }
                Verifier::Ed25519(key)
            }
            Algorithm::Es256 => Verifier::Jose(Arc::new(
                ES256.verifier_from_jwk(&public).map_err(KeyError::crypto)?,
            )),
            Algorithm::Rs256 => {
                if modulus_bits(&jwk_bytes(&public, "n")?) < 2048 {
                    return Err(KeyError::WeakRsaKey);
                }
                Verifier::Jose(Arc::new(
                    RS256.verifier_from_jwk(&public).map_err(KeyError::crypto)?,
                ))
            }
        };
        Ok(Self {
            kid,
            algorithm,
            verifier,
            jwk: public,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key verifies; a token naming another is refused.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The public JWK (`kty`, curve or modulus, `kid`, `alg`, `use`).
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Whether `signature` is this key's signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.verifier {
            Verifier::Ed25519(key) => {
                ed25519_dalek::Signature::from_slice(signature).is_ok_and(|signature| {
                    ed25519_dalek::Verifier::verify(key, message, &signature).is_ok()
                })
            }
            Verifier::Jose(verifier) => verifier.verify(message, signature).is_ok(),
        }
    }
}

/// The private key that signs tokens, with its public half.
#[derive(Clone)]
pub struct SigningKey {
    signer: Arc<dyn JwsSigner>,
    public: PublicKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid)
            .field("algorithm", &self.public.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a new key pair (RSA keys have 2048 bits).
    pub fn generate(algorithm: Algorithm) -> Result<GeneratedKey, KeyError> {
        let pair: Box<dyn KeyPair> = match algorithm {
            Algorithm::EdDsa => Box::new(
                EdDSA
                    .generate_key_pair(EdCurve::Ed25519)
                    .map_err(KeyError::crypto)?,
            ),
            Algorithm::Es256 => Box::new(ES256.generate_key_pair().map_err(KeyError::crypto)?),
            Algorithm::Rs256 => Box::new(RS256.generate_key_pair(2048).map_err(KeyError::crypto)?),
        };
        let kid = thumbprint(&pair.to_jwk_public_key())?;
        Ok(GeneratedKey {
            algorithm,
            kid,
            private_pem: pair.to_pem_private_key(),
            public_pem: pair.to_pem_public_key(),
        })
    }

    /// Loads a PKCS#8 private key PEM; the algorithm follows from the key type.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let private = if let Ok(pair) = EdDSA.key_pair_from_pem(pem) {
            pair.to_jwk_key_pair()
        } else if let Ok(pair) = ES256.key_pair_from_pem(pem) {
            pair.to_jwk_key_pair()
        } else if let Ok(pair) = RS256.key_pair_from_pem(pem) {
            pair.to_jwk_key_pair()
        } else {
            return Err(KeyError::UnsupportedKey);
        };
        let public = PublicKey::from_jwk(&private)?;
        let signer: Arc<dyn JwsSigner> = match public.algorithm {
            Algorithm::EdDsa => {
                Arc::new(EdDSA.signer_from_jwk(&private).map_err(KeyError::crypto)?)
            }
            Algorithm::Es256 => {
                Arc::new(ES256.signer_from_jwk(&private).map_err(KeyError::crypto)?)
            }
            Algorithm::Rs256 => {
                Arc::new(RS256.signer_from_jwk(&private).map_err(KeyError::crypto)?)
            }
        };
        Ok(Self { signer, public })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.public.algorithm
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `message` (a JWS signing input).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.signer.sign(message).map_err(KeyError::crypto)
    }
}

/// The keys of one issuer: the active signing key and every published key.
#[derive(Debug, Clone)]
pub struct KeySet {
    signing: SigningKey,
    published: VerificationKeys,
}

impl KeySet {
    /// A set signing with `signing` and also publishing `verification_only`
    /// (the next key during a rotation, or the previous one until its tokens expire).
    pub fn new(signing: SigningKey, verification_only: Vec<PublicKey>) -> Result<Self, KeyError> {
        let mut keys = vec![signing.public.clone()];
        keys.extend(verification_only);
        let published = VerificationKeys::new(keys)?;
        Ok(Self { signing, published })
    }

    /// The active signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// Every published key, as a handle verifiers share.
    pub fn verification_keys(&self) -> VerificationKeys {
        self.published.clone()
    }

    /// The JWKS document (RFC 7517): public parts only.
    pub fn jwks(&self) -> serde_json::Value {
        self.published.jwks()
    }
}

/// The keys a verifier accepts, by `kid`. A cheap, shareable handle whose
/// content can be replaced (a JWKS client does, when the issuer rotates).
#[derive(Debug, Clone, Default)]
pub struct VerificationKeys {
    inner: Arc<RwLock<Arc<KeyMap>>>,
}

#[derive(Debug, Default)]
struct KeyMap {
    by_kid: HashMap<String, Arc<PublicKey>>,
    order: Vec<String>,
}

impl VerificationKeys {
    /// A handle on `keys`.
    pub fn new(keys: Vec<PublicKey>) -> Result<Self, KeyError> {
        let handle = Self::default();
        handle.replace(keys)?;
        Ok(handle)
    }

    /// Replaces the keys.
    pub fn replace(&self, keys: Vec<PublicKey>) -> Result<(), KeyError> {
        let mut map = KeyMap::default();
        for key in keys {
            if map.by_kid.contains_key(&key.kid) {
                return Err(KeyError::DuplicateKid(key.kid));
            }
            map.order.push(key.kid.clone());
            map.by_kid.insert(key.kid.clone(), Arc::new(key));
        }
        let map = Arc::new(map);
        match self.inner.write() {
            Ok(mut guard) => *guard = map,
            // A writer panicked mid-swap of an `Arc`: the old value is intact; replace it.
            Err(poisoned) => *poisoned.into_inner() = map,
        }
        Ok(())
    }

    fn snapshot(&self) -> Arc<KeyMap> {
        match self.inner.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<Arc<PublicKey>> {
        self.snapshot().by_kid.get(kid).cloned()
    }

    /// Whether a key with this `kid` is published.
    pub fn contains(&self, kid: &str) -> bool {
        self.snapshot().by_kid.contains_key(kid)
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.snapshot().order.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The JWKS document of these keys.
    pub fn jwks(&self) -> serde_json::Value {
        let map = self.snapshot();
        let keys: Vec<serde_json::Value> = map
            .order
            .iter()
            .filter_map(|kid| map.by_kid.get(kid))
            .map(|key| serde_json::Value::Object(key.jwk.as_ref().clone()))
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

fn algorithm_of_jwk(jwk: &Jwk) -> Result<Algorithm, KeyError> {
    match (jwk.key_type(), jwk.curve()) {
        ("OKP", Some("Ed25519")) => Ok(Algorithm::EdDsa),
        ("EC", Some("P-256")) => Ok(Algorithm::Es256),
        ("RSA", _) => Ok(Algorithm::Rs256),
        (kty, crv) => Err(KeyError::MalformedJwk(format!(
            "unsupported key type {kty} {crv:?}"
        ))),
    }
}

fn set_b64(jwk: &mut Jwk, name: &str, bytes: &[u8]) -> Result<(), KeyError> {
    jwk.set_parameter(
        name,
        Some(serde_json::Value::String(URL_SAFE_NO_PAD.encode(bytes))),
    )
    .map_err(|e| KeyError::MalformedJwk(e.to_string()))
}

fn jwk_str<'a>(jwk: &'a Jwk, name: &str) -> Result<&'a str, KeyError> {
    jwk.parameter(name)
        .and_then(|v| v.as_str())
        .ok_or_else(|| KeyError::MalformedJwk(format!("missing {name}")))
}

fn jwk_bytes(jwk: &Jwk, name: &str) -> Result<Vec<u8>, KeyError> {
    URL_SAFE_NO_PAD
        .decode(jwk_str(jwk, name)?)
        .map_err(|_| KeyError::MalformedJwk(format!("{name} is not base64url")))
}

/// The bit length of a big-endian unsigned integer (an RSA modulus).
fn modulus_bits(bytes: &[u8]) -> usize {
    let significant = bytes
        .iter()
        .position(|b| *b != 0)
        .map_or(&[][..], |i| &bytes[i..]);
    match significant.first() {
        Some(first) => (significant.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    }
}

/// The RFC 7638 thumbprint: SHA-256 over the required members in lexical order.
fn thumbprint(jwk: &Jwk) -> Result<String, KeyError> {
    let canonical = match jwk.key_type() {
        "OKP" => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            jwk_str(jwk, "crv")?,
            jwk_str(jwk, "x")?
        ),
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk_str(jwk, "crv")?,
            jwk_str(jwk, "x")?,
            jwk_str(jwk, "y")?
        ),
        "RSA" => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            jwk_str(jwk, "e")?,
            jwk_str(jwk, "n")?
        ),
        other => {
            return Err(KeyError::MalformedJwk(format!(
                "unsupported key type {other}"
            )));
        }
    };
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_round_trips_through_pem_and_jwk() {
        for algorithm in Algorithm::ALL {
            let generated = SigningKey::generate(algorithm).expect("generate");
            let key = SigningKey::from_pem(generated.private_pem()).expect("private pem");
            assert_eq!(key.algorithm(), algorithm);
            assert_eq!(key.kid(), generated.kid());
            let from_public = PublicKey::from_pem(generated.public_pem()).expect("public pem");
            assert_eq!(from_public.kid(), key.kid(), "{algorithm}");
            let from_jwk = PublicKey::from_jwk(key.public_key().jwk()).expect("jwk");
            assert_eq!(from_jwk.kid(), key.kid());
            let signature = key.sign(b"message").expect("sign");
            assert!(from_public.verify(b"message", &signature));
            assert!(!from_public.verify(b"massage", &signature));
        }
    }

    #[test]
    fn the_jwks_has_no_private_members() {
        let signing = SigningKey::generate(Algorithm::Rs256)
            .expect("gen")
            .signing_key()
            .expect("load");
        let next = PublicKey::from_pem(
            SigningKey::generate(Algorithm::EdDsa)
                .expect("gen")
                .public_pem(),
        )
        .expect("load");
        let set = KeySet::new(signing, vec![next]).expect("set");
        let jwks = set.jwks();
        let keys = jwks["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 2);
        for key in keys {
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(key.get(private).is_none(), "{private} in {key}");
            }
            assert_eq!(key["use"], "sig");
            assert!(key["kid"].is_string() && key["alg"].is_string());
        }
    }

    #[test]
    fn rfc_7638_thumbprint_example() {
        // The RSA example of RFC 7638, section 3.1.
        let jwk = Jwk::from_bytes(br#"{"kty":"RSA","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}"#).expect("jwk");
        assert_eq!(
            thumbprint(&jwk).expect("thumbprint"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn modulus_bits_count_from_the_first_set_bit() {
        assert_eq!(modulus_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(modulus_bits(&[0x01]), 1);
        assert_eq!(
            modulus_bits(&[0x7f; 256]),
            2047,
            "256 bytes are not always 2048 bits"
        );
        assert_eq!(modulus_bits(&[]), 0);
    }

    #[test]
    fn weak_and_foreign_keys_are_refused() {
        let weak = openssl::rsa::Rsa::generate(1024)
            .and_then(PKey::from_rsa)
            .and_then(|k| k.public_key_to_pem())
            .expect("rsa");
        assert!(matches!(
            PublicKey::from_pem(&weak),
            Err(KeyError::WeakRsaKey)
        ));
        let p384 = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SECP384R1)
            .and_then(|g| openssl::ec::EcKey::generate(&g))
            .and_then(PKey::from_ec_key)
            .and_then(|k| k.public_key_to_pem())
            .expect("p384");
        assert!(matches!(
            PublicKey::from_pem(&p384),
            Err(KeyError::UnsupportedKey)
        ));
        assert!(
            PublicKey::from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .is_err()
        );
    }

    fn ed25519_jwk(x: &[u8]) -> Jwk {
        let mut jwk = Jwk::new("OKP");
        jwk.set_curve("Ed25519");
        set_b64(&mut jwk, "x", x).expect("x");
        jwk
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn ed25519_verifies_rfc_8032s_test_vector() {
        // RFC 8032, section 7.1, TEST 2 (one-byte message 0x72).
        let key = PublicKey::from_jwk(&ed25519_jwk(&hex(
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        )))
        .expect("key");
        let signature = hex(concat!(
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da",
            "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
        ));
        assert!(key.verify(&[0x72], &signature));
        assert!(!key.verify(&[0x73], &signature));
        assert!(!key.verify(&[0x72], &signature[..63]), "a short signature");
    }

    #[test]
    fn ed25519_refuses_what_openssl_refuses_and_small_order_keys() {
        let signing = SigningKey::generate(Algorithm::EdDsa)
            .expect("gen")
            .signing_key()
            .expect("load");
        let public = PublicKey::from_jwk(signing.public_key().jwk()).expect("jwk");
        let openssl = EdDSA
            .verifier_from_jwk(signing.public_key().jwk())
            .expect("josekit verifier");
        let signature = signing.sign(b"message").expect("sign");
        assert!(public.verify(b"message", &signature));
        assert!(openssl.verify(b"message", &signature).is_ok());

        // S + L: the same signature made malleable, refused by both.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut malleable = signature.clone();
        let mut carry = 0u16;
        for (byte, l) in malleable[32..].iter_mut().zip(L) {
            let sum = u16::from(*byte) + u16::from(l) + carry;
            *byte = (sum & 0xff) as u8;
            carry = sum >> 8;
        }
        assert!(!public.verify(b"message", &malleable));
        assert!(openssl.verify(b"message", &malleable).is_err());

        // The identity point (a small-order key) and a wrong length.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            PublicKey::from_jwk(&ed25519_jwk(&identity)),
            Err(KeyError::MalformedJwk(_))
        ));
        assert!(matches!(
            PublicKey::from_jwk(&ed25519_jwk(&[7u8; 31])),
            Err(KeyError::MalformedJwk(_))
        ));
    }
}
