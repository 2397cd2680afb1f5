//! Session tokens: HS256 JWTs whose `jti` names a row of the sessions table.
//!
//! Signed and checked with jsonwebtoken on ring (`auth::jwt`). Only HS256 is accepted;
//! `alg: none`, other algorithms, wrong keys and expired tokens are refused.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::AuthError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Session id (row of `sessions`).
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Self {
        super::jwt::install();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation }
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| AuthError::Internal(format!("token signing failed: {e}")))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::SessionExpired,
                _ => AuthError::InvalidToken,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

    fn claims(exp_in: i64) -> Claims {
        let now = crate::db::now();
        Claims { sub: "1".into(), jti: "abc".into(), iat: now, exp: now + exp_in }
    }

    #[test]
    fn round_trip() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef");
        let c = claims(60);
        assert_eq!(keys.verify(&keys.sign(&c).unwrap()).unwrap(), c);
    }

    #[test]
    fn wrong_key_expired_and_tampered_tokens_are_refused() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef");
        let other = TokenKeys::new(b"another secret of thirty-two b!!");
        assert_eq!(keys.verify(&other.sign(&claims(60)).unwrap()), Err(AuthError::InvalidToken));
        assert_eq!(keys.verify(&keys.sign(&claims(-60)).unwrap()), Err(AuthError::SessionExpired));
        let token = keys.sign(&claims(60)).unwrap();
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = B64.encode(br#"{"sub":"2","jti":"abc","iat":1,"exp":99999999999}"#);
        parts[1] = &forged;
        assert_eq!(keys.verify(&parts.join(".")), Err(AuthError::InvalidToken));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef");
        let body = B64.encode(serde_json::to_vec(&claims(60)).unwrap());
        for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"HS512","typ":"JWT"}"#] {
            let t = format!("{}.{}.", B64.encode(header), body);
            assert_eq!(keys.verify(&t), Err(AuthError::InvalidToken), "{header}");
        }
        assert_eq!(keys.verify("garbage"), Err(AuthError::InvalidToken));
    }
}
