//! Access tokens and device IDs from the OS random source.
//!
//! A token is `elx_` followed by 32 random bytes in URL-safe base64 (256
//! bits); a device ID is 16 random bytes in base32 (128 bits). Only the
//! SHA-256 of a token is stored, and lookups compare hashes in constant time.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Returns `n` bytes from the OS random source.
///
/// # Panics
///
/// Panics if the OS random source fails, which leaves no safe way to mint
/// credentials.
#[must_use]
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    bytes
}

/// Creates a new access token.
#[must_use]
pub fn new_access_token() -> String {
    let bytes: [u8; 32] = random_bytes();
    format!(
        "elx_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Creates a new device ID: 26 characters of RFC 4648 base32.
#[must_use]
pub fn new_device_id() -> String {
    let bytes: [u8; 16] = random_bytes();
    base32(&bytes)
}

/// Creates a random opaque ID of `chars` letters, for sessions, filters
/// and room IDs of old room versions.
#[must_use]
pub fn random_id(chars: usize) -> String {
    let bytes: [u8; 32] = random_bytes();
    let text = base32(&bytes);
    text[..chars.min(text.len())].to_owned()
}

fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Hex SHA-256 of a token, the key it is stored under.
#[must_use]
pub fn hash_token(token: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

/// Compares two token hashes in constant time.
#[must_use]
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_has_128_bits() {
        let id = new_device_id();
        assert_eq!(id.len(), 26);
        assert_ne!(id, new_device_id());
    }

    #[test]
    fn token_hash_is_stable_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(hashes_equal(&hash_token("x"), &hash_token("x")));
        assert!(!hashes_equal(&hash_token("x"), &hash_token("y")));
    }
}
