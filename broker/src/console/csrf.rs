//! CSRF tokens. Each session (and, before sign-in, each browser: a
//! pre-session cookie) has a random 256-bit secret. A form carries the
//! secret masked by a fresh random pad, `base64url(pad || pad XOR secret)`,
//! so that the token differs in every response and a compressed page never
//! repeats a secret an attacker could guess byte by byte (BREACH). A
//! submitted token is unmasked and compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use crate::service::users::random_bytes;

/// A fresh token for `secret` (a base64url secret as the store keeps it).
pub fn mask(secret: &str) -> String {
    let s = B64.decode(secret).unwrap_or_default();
    let pad = random_bytes::<32>();
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&pad);
    out.extend(s.iter().zip(pad.iter().cycle()).map(|(a, b)| a ^ b));
    B64.encode(out)
}

/// Whether `token` is a masking of `secret`. A secret that does not decode
/// (or is empty) matches nothing: fail closed.
pub fn check(secret: &str, token: &str) -> bool {
    let (Ok(s), Ok(t)) = (B64.decode(secret), B64.decode(token.trim())) else {
        return false;
    };
    if s.is_empty() || s.len() > 32 || t.len() != 32 + s.len() {
        return false;
    }
    let (pad, masked) = t.split_at(32);
    let diff = masked
        .iter()
        .zip(pad.iter())
        .zip(s.iter())
        .fold(0u8, |acc, ((m, p), s)| acc | (m ^ p ^ s));
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::users::random_token;

    #[test]
    fn a_token_checks_against_its_secret_only_and_changes_every_time() {
        let secret = random_token();
        let (a, b) = (mask(&secret), mask(&secret));
        assert_ne!(a, b, "masked anew in each response");
        assert!(check(&secret, &a) && check(&secret, &b));
        assert!(!check(&random_token(), &a));
        let mut bytes = B64.decode(&a).unwrap();
        bytes[40] ^= 1;
        assert!(!check(&secret, &B64.encode(bytes)));
        for bad in ["", "!!", &secret] {
            assert!(!check(&secret, bad), "{bad:?}");
        }
        assert!(!check("", &mask("")), "no secret: nothing matches");
    }
}
