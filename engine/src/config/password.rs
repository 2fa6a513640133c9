//! Console passwords: argon2id hashes in the PHC string format, the only form config holds.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Why a configured `password_hash` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PasswordHashError {
    #[error("password_hash is not a PHC string ({0}); make one with `junction hash-password`")]
    NotPhc(argon2::password_hash::Error),
    #[error("password_hash uses {0}; only argon2id is accepted (`junction hash-password` makes one)")]
    NotArgon2id(String),
}

/// Checks that `hash` is an argon2id PHC string.
pub fn check_hash(hash: &str) -> Result<(), PasswordHashError> {
    let parsed = PasswordHash::new(hash).map_err(PasswordHashError::NotPhc)?;
    if parsed.algorithm.as_str() != "argon2id" {
        return Err(PasswordHashError::NotArgon2id(parsed.algorithm.to_string()));
    }
    Ok(())
}

/// An argon2id hash of `password` with a fresh salt (the crate's default cost: 19 MiB, t=2).
pub fn hash(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt).expect("16 bytes always encode as a salt");
    Argon2::default().hash_password(password.as_bytes(), &salt).expect("argon2 hashes any password").to_string()
}

/// Whether `password` matches `hash` (false for a hash that does not parse). Takes tens of
/// milliseconds of CPU, by design: run it off the async threads.
pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse");
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        check_hash(&h).expect("argon2id");
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("correct horse", "not a hash"));
        assert!(matches!(check_hash("plain"), Err(PasswordHashError::NotPhc(_))));
        let argon2i = h.replacen("$argon2id$", "$argon2i$", 1);
        assert!(matches!(check_hash(&argon2i), Err(PasswordHashError::NotArgon2id(_))));
    }
}
