//! jsonwebtoken's crypto on `ring`, the one crypto library of the whole binary.
//!
//! jsonwebtoken 11 needs a crypto backend at run time. Its bundled ones pull aws-lc-rs or
//! RustCrypto's RSA and elliptic-curve code, a second crypto stack beside ring; this module
//! installs a provider on ring instead:
//! - signing: HS256 only (LabBeam's own session tokens, `auth::token`);
//! - verifying: HS256 for those, and the public-key algorithms identity providers sign ID
//!   tokens with (`oidc`): RS256/384/512, PS256/384/512, ES256/384 and EdDSA (Ed25519).
//!
//! A verifier is only made when the key's family matches the algorithm the token names, so
//! a token that says HS256 is never checked with a provider's public key used as an HMAC
//! secret (the "algorithm confusion" attack); which algorithms a caller accepts at all is its
//! `Validation` (sessions: HS256 only; ID tokens: `[[auth.oidc]] algorithms`, never HMAC).

use std::sync::Once;

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result as JwtResult};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature::{self as sig, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm};

/// Installs the provider (once per process; later calls do nothing).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only if another provider was installed first, which this binary never does.
        let _ = PROVIDER.install_default();
    });
}

static PROVIDER: CryptoProvider =
    CryptoProvider { signer_factory: signer, verifier_factory: verifier, key_utils: KeyUtils::new_unimplemented() };

struct Hs256(ring::hmac::Key);

impl signature::Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(ring::hmac::sign(&self.0, msg).as_ref().to_vec())
    }
}

impl signature::Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> Result<(), signature::Error> {
        ring::hmac::verify(&self.0, msg, sig).map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

/// A public key as ring takes it.
enum PublicKey {
    /// RSA modulus and exponent (a JWK's `n` and `e`).
    RsaComponents { n: Vec<u8>, e: Vec<u8> },
    /// The key's bytes: an RSA public key in DER, an uncompressed EC point, an Ed25519 key.
    Bytes(Vec<u8>),
}

struct PublicKeyVerifier {
    alg: Algorithm,
    ring_alg: &'static dyn VerificationAlgorithm,
    rsa_params: Option<&'static sig::RsaParameters>,
    key: PublicKey,
}

impl signature::Verifier<Vec<u8>> for PublicKeyVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let checked = match (&self.key, self.rsa_params) {
            (PublicKey::RsaComponents { n, e }, Some(params)) => {
                RsaPublicKeyComponents { n, e }.verify(params, msg, signature)
            }
            (PublicKey::RsaComponents { .. }, None) => return Err(signature::Error::new()),
            (PublicKey::Bytes(bytes), _) => UnparsedPublicKey::new(self.ring_alg, bytes).verify(msg, signature),
        };
        checked.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for PublicKeyVerifier {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn signer(alg: &Algorithm, key: &EncodingKey) -> JwtResult<Box<dyn JwtSigner>> {
    match alg {
        Algorithm::HS256 => Ok(Box::new(Hs256(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes())))),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> JwtResult<Box<dyn JwtVerifier>> {
    // The key decides what it may verify: an RSA, EC or Ed25519 key never checks an HMAC.
    if key.family() != alg.family() {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let (ring_alg, rsa_params): (&'static dyn VerificationAlgorithm, Option<&'static sig::RsaParameters>) = match alg {
        Algorithm::HS256 => {
            return Ok(Box::new(Hs256(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.try_get_as_bytes()?))));
        }
        Algorithm::RS256 => (&sig::RSA_PKCS1_2048_8192_SHA256, Some(&sig::RSA_PKCS1_2048_8192_SHA256)),
        Algorithm::RS384 => (&sig::RSA_PKCS1_2048_8192_SHA384, Some(&sig::RSA_PKCS1_2048_8192_SHA384)),
        Algorithm::RS512 => (&sig::RSA_PKCS1_2048_8192_SHA512, Some(&sig::RSA_PKCS1_2048_8192_SHA512)),
        Algorithm::PS256 => (&sig::RSA_PSS_2048_8192_SHA256, Some(&sig::RSA_PSS_2048_8192_SHA256)),
        Algorithm::PS384 => (&sig::RSA_PSS_2048_8192_SHA384, Some(&sig::RSA_PSS_2048_8192_SHA384)),
        Algorithm::PS512 => (&sig::RSA_PSS_2048_8192_SHA512, Some(&sig::RSA_PSS_2048_8192_SHA512)),
        Algorithm::ES256 => (&sig::ECDSA_P256_SHA256_FIXED, None),
        Algorithm::ES384 => (&sig::ECDSA_P384_SHA384_FIXED, None),
        Algorithm::EdDSA => (&sig::ED25519, None),
        // HS384/HS512: nothing of LabBeam's uses them.
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    let key = match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => PublicKey::RsaComponents { n: n.clone(), e: e.clone() },
        DecodingKeyKind::SecretOrDer(bytes) => PublicKey::Bytes(bytes.clone()),
    };
    Ok(Box::new(PublicKeyVerifier { alg: *alg, ring_alg, rsa_params, key }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use jsonwebtoken::{Validation, decode};
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::{Value, json};

    fn claims() -> Value {
        json!({"sub": "ann", "exp": crate::db::now() + 60})
    }

    fn token(header: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let signing_input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims().to_string()));
        format!("{signing_input}.{}", B64.encode(sign(signing_input.as_bytes())))
    }

    fn check(token: &str, key: &DecodingKey, alg: Algorithm) -> JwtResult<Value> {
        install();
        let mut v = Validation::new(alg);
        v.required_spec_claims.clear();
        v.validate_aud = false;
        decode::<Value>(token, key, &v).map(|d| d.claims)
    }

    #[test]
    fn es256_and_eddsa_signatures_verify_and_tampering_is_caught() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let point = ec.public_key().as_ref();
        let ec_key = DecodingKey::from_ec_components(&B64.encode(&point[1..33]), &B64.encode(&point[33..])).unwrap();
        let t = token(&json!({"alg": "ES256"}), |m| ec.sign(&rng, m).unwrap().as_ref().to_vec());
        assert_eq!(check(&t, &ec_key, Algorithm::ES256).unwrap()["sub"], "ann");
        let tampered = format!("{}x", &t[..t.len() - 1]);
        assert!(check(&tampered, &ec_key, Algorithm::ES256).is_err());

        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let ed_key = DecodingKey::from_ed_components(&B64.encode(ed.public_key().as_ref())).unwrap();
        let t = token(&json!({"alg": "EdDSA"}), |m| ed.sign(m).as_ref().to_vec());
        assert_eq!(check(&t, &ed_key, Algorithm::EdDSA).unwrap()["sub"], "ann");
        // The EC key cannot check an Ed25519 signature, nor the other way round.
        assert!(check(&t, &ec_key, Algorithm::EdDSA).is_err());
    }

    #[test]
    fn a_public_key_never_checks_an_hmac() {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let public = ed.public_key().as_ref().to_vec();
        let key = DecodingKey::from_ed_components(&B64.encode(&public)).unwrap();
        // An attacker who knows the public key signs HS256 with it as the secret.
        let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &public);
        let t = token(&json!({"alg": "HS256"}), |m| ring::hmac::sign(&hmac, m).as_ref().to_vec());
        let err = check(&t, &key, Algorithm::HS256).unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::InvalidAlgorithm);
    }
}
