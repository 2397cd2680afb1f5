//! Checking an ID token (OpenID Connect Core 3.1.3.7): the signature with one of the
//! provider's keys and an allowed algorithm, the issuer exactly, the audience, expiry and
//! issue time, the nonce of this sign-in, and `azp` when several audiences are named.

use std::str::FromStr;

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Clock difference tolerated with the provider, in seconds.
const LEEWAY_SECS: u64 = 60;

/// What this sign-in expects of its ID token.
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// `[[auth.oidc]] algorithms`, never `none` or an HMAC.
    pub algorithms: &'a [String],
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No key of the set has the token's key id (or fits its algorithm): the caller reads
    /// the keys again once, then gives up.
    NoKey,
    /// Anything else: why, for the log.
    Invalid(String),
}

/// The token's claims, once every check passed.
pub fn check(token: &str, keys: &JwkSet, expected: &Expected<'_>) -> Result<Map<String, Value>, Refusal> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| Refusal::Invalid(format!("not a signed JWT with a known algorithm ({e})")))?;
    let alg = header.alg;
    if !expected.algorithms.iter().any(|a| Algorithm::from_str(a).is_ok_and(|a| a == alg))
        || alg.family() == jsonwebtoken::AlgorithmFamily::Hmac
    {
        return Err(Refusal::Invalid(format!("signed with {alg:?}, which auth.oidc algorithms does not accept")));
    }
    let candidates: Vec<&Jwk> = keys
        .keys
        .iter()
        .filter(|k| header.kid.is_none() || k.common.key_id == header.kid)
        .filter(|k| usable_for(k, alg))
        .collect();
    if candidates.is_empty() {
        return Err(Refusal::NoKey);
    }
    let mut validation = Validation::new(alg);
    validation.algorithms = vec![alg];
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_issuer(&[expected.issuer]);
    validation.set_audience(&[expected.client_id]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let mut last = String::new();
    for jwk in candidates {
        let key = match DecodingKey::from_jwk(jwk) {
            Ok(key) => key,
            Err(e) => {
                last = format!("a key of the provider cannot be used ({e})");
                continue;
            }
        };
        match jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation) {
            Ok(data) => return claims_checked(data.claims, expected),
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                last = match e.kind() {
                    ErrorKind::InvalidSignature => "the signature does not verify".into(),
                    ErrorKind::ExpiredSignature => "the token has expired".into(),
                    ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
                    ErrorKind::InvalidIssuer => "the token names another issuer".into(),
                    ErrorKind::InvalidAudience => "the token is for another client (aud)".into(),
                    ErrorKind::MissingRequiredClaim(c) => format!("the token lacks the claim {c}"),
                    _ => format!("the token does not verify ({e})"),
                };
                // Another key with the same id cannot change a claim check.
                if !matches!(e.kind(), ErrorKind::InvalidSignature | ErrorKind::InvalidKeyFormat) {
                    break;
                }
            }
        }
    }
    Err(Refusal::Invalid(last))
}

/// A key may check `alg` when its use (if given) is signing and its algorithm (if given) is
/// `alg`; the key's type must fit too (the crypto provider refuses any other pairing).
fn usable_for(jwk: &Jwk, alg: Algorithm) -> bool {
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
        return false;
    }
    match &jwk.common.key_algorithm {
        None => true,
        Some(key_alg) => key_alg.to_string() == format!("{alg:?}"),
    }
}

fn claims_checked(claims: Map<String, Value>, expected: &Expected<'_>) -> Result<Map<String, Value>, Refusal> {
    if claims.get("iat").and_then(Value::as_i64).is_none() {
        return Err(Refusal::Invalid("the token lacks an issue time (iat)".into()));
    }
    match claims.get("nonce").and_then(Value::as_str) {
        Some(nonce) if nonce == expected.nonce => {}
        Some(_) => return Err(Refusal::Invalid("the token's nonce is not this sign-in's".into())),
        None => return Err(Refusal::Invalid("the token has no nonce".into())),
    }
    let several_audiences = claims.get("aud").and_then(Value::as_array).is_some_and(|a| a.len() > 1);
    match claims.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != expected.client_id => {
            return Err(Refusal::Invalid("the token was issued to another client (azp)".into()));
        }
        None if several_audiences => {
            return Err(Refusal::Invalid("the token names several audiences but no azp".into()));
        }
        _ => {}
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() && sub.len() <= 255 => Ok(claims),
        _ => Err(Refusal::Invalid("the token's subject (sub) is missing or not a short string".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use serde_json::json;

    struct Signer {
        key: EcdsaKeyPair,
        rng: SystemRandom,
        set: JwkSet,
    }

    fn signer() -> Signer {
        crate::auth::jwt::install();
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let point = key.public_key().as_ref();
        let set: JwkSet = serde_json::from_value(json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..]),
        }]}))
        .unwrap();
        Signer { key, rng, set }
    }

    impl Signer {
        fn sign(&self, header: Value, claims: Value) -> String {
            let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
            let sig = self.key.sign(&self.rng, input.as_bytes()).unwrap();
            format!("{input}.{}", B64.encode(sig.as_ref()))
        }
    }

    fn good_claims() -> Value {
        let now = crate::db::now();
        json!({"iss": "https://sso.example", "aud": "labbeam", "sub": "u1", "exp": now + 300, "iat": now,
               "nonce": "n1", "preferred_username": "ann"})
    }

    fn expected(algorithms: &[String]) -> Expected<'_> {
        Expected { issuer: "https://sso.example", client_id: "labbeam", nonce: "n1", algorithms }
    }

    fn algs() -> Vec<String> {
        vec!["ES256".into(), "RS256".into()]
    }

    #[test]
    fn a_good_token_gives_its_claims() {
        let s = signer();
        let t = s.sign(json!({"alg": "ES256", "kid": "k1"}), good_claims());
        assert_eq!(check(&t, &s.set, &expected(&algs())).unwrap()["preferred_username"], "ann");
    }

    #[test]
    fn every_claim_check_refuses() {
        let s = signer();
        let now = crate::db::now();
        let header = json!({"alg": "ES256", "kid": "k1"});
        let cases: Vec<(&str, Value)> = vec![
            ("iss", json!("https://evil.example")),
            ("aud", json!("other-client")),
            ("exp", json!(now - 3600)),
            ("nonce", json!("another")),
            ("sub", json!("")),
            ("azp", json!("other-client")),
            ("iat", json!("yesterday")),
        ];
        for (claim, value) in cases {
            let mut claims = good_claims();
            claims[claim] = value;
            let t = s.sign(header.clone(), claims);
            assert!(matches!(check(&t, &s.set, &expected(&algs())), Err(Refusal::Invalid(_))), "{claim}");
        }
        let mut claims = good_claims();
        claims["aud"] = json!(["labbeam", "other"]);
        let t = s.sign(header.clone(), claims);
        assert!(check(&t, &s.set, &expected(&algs())).is_err(), "several audiences without azp");
        let mut claims = good_claims();
        claims.as_object_mut().unwrap().remove("nonce");
        assert!(check(&s.sign(header, claims), &s.set, &expected(&algs())).is_err(), "no nonce");
    }

    #[test]
    fn none_hmac_unlisted_algorithms_and_unknown_keys_are_refused() {
        let s = signer();
        let body = B64.encode(good_claims().to_string());
        let none = format!("{}.{body}.", B64.encode(r#"{"alg":"none"}"#));
        assert!(matches!(check(&none, &s.set, &expected(&algs())), Err(Refusal::Invalid(_))));
        // HS256 "signed" with the public key's JSON as the secret: refused before any key.
        let input = format!("{}.{body}", B64.encode(r#"{"alg":"HS256","kid":"k1"}"#));
        let secret = serde_json::to_vec(&s.set.keys[0]).unwrap();
        let mac = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret), input.as_bytes());
        let hs = format!("{input}.{}", B64.encode(mac.as_ref()));
        let with_hs = vec!["ES256".to_string(), "HS256".to_string()];
        assert!(matches!(check(&hs, &s.set, &expected(&with_hs)), Err(Refusal::Invalid(_))));
        let t = s.sign(json!({"alg": "ES256", "kid": "k1"}), good_claims());
        assert!(matches!(check(&t, &s.set, &expected(&["RS256".to_string()])), Err(Refusal::Invalid(_))));
        let t = s.sign(json!({"alg": "ES256", "kid": "rotated"}), good_claims());
        assert_eq!(check(&t, &s.set, &expected(&algs())), Err(Refusal::NoKey));
        // Another key pair's signature with the right key id.
        let other = signer();
        let t = other.sign(json!({"alg": "ES256", "kid": "k1"}), good_claims());
        assert!(matches!(check(&t, &s.set, &expected(&algs())), Err(Refusal::Invalid(_))));
    }
}
