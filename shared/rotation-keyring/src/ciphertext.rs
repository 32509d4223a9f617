//! The ciphertext format, version 1: AES-256-GCM with the key's id in a header that is also
//! authenticated as associated data.
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..2 | magic `RK` (0x52 0x4B) |
//! | 2 | format version, 1 |
//! | 3..11 | key generation, unsigned 64-bit big-endian |
//! | 11..19 | key tag, the 8 random bytes of the key id |
//! | 19..31 | nonce, 12 random bytes (a fresh one per message, from aws-lc's CSPRNG) |
//! | 31.. | AES-256-GCM ciphertext followed by its 16-byte authentication tag |
//!
//! The associated data given to AES-GCM is bytes 0..19 (magic, version, key id) followed by
//! the caller's associated data, if any. Changing any byte of the header, the nonce, the body,
//! the tag or the caller's associated data makes decryption fail. Overhead: 47 bytes.
//!
//! A reader that meets another version refuses it ([`KeyringError::UnsupportedVersion`]);
//! a new format gets a new version number.

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use secrecy::ExposeSecret;

use crate::error::{KeyringError, Result};
use crate::key::{Key, KeyId, TAG_LEN};

/// The magic bytes every ciphertext starts with.
pub const MAGIC: [u8; 2] = *b"RK";
/// The format version this library writes and reads.
pub const VERSION: u8 = 1;
/// Length of the authenticated header: magic, version, key generation and key tag.
pub const HEADER_LEN: usize = 2 + 1 + 8 + TAG_LEN;
/// Length of AES-GCM's authentication tag.
pub const GCM_TAG_LEN: usize = 16;
/// Bytes a ciphertext adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + GCM_TAG_LEN;

/// The id of the key a ciphertext names in its header, after checking its magic bytes,
/// version and length.
pub fn key_id(ciphertext: &[u8]) -> Result<KeyId> {
    if ciphertext.len() < MAGIC.len() || ciphertext[..MAGIC.len()] != MAGIC {
        return Err(KeyringError::Malformed(
            "it does not start with the magic bytes `RK`".into(),
        ));
    }
    if ciphertext.len() <= MAGIC.len() {
        return Err(KeyringError::Malformed("it has no version byte".into()));
    }
    let version = ciphertext[MAGIC.len()];
    if version != VERSION {
        return Err(KeyringError::UnsupportedVersion(version));
    }
    if ciphertext.len() < OVERHEAD {
        return Err(KeyringError::Malformed(format!(
            "{} bytes is shorter than the {OVERHEAD} bytes of header, nonce and tag",
            ciphertext.len()
        )));
    }
    let mut generation = [0u8; 8];
    generation.copy_from_slice(&ciphertext[3..11]);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&ciphertext[11..HEADER_LEN]);
    KeyId::new(u64::from_be_bytes(generation), tag)
        .map_err(|_| KeyringError::Malformed("the header names key generation 0".into()))
}

fn header(id: KeyId) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..2].copy_from_slice(&MAGIC);
    header[2] = VERSION;
    header[3..11].copy_from_slice(&id.generation().to_be_bytes());
    header[11..].copy_from_slice(&id.tag());
    header
}

fn aead_key(key: &Key) -> Result<RandomizedNonceKey> {
    RandomizedNonceKey::new(&AES_256_GCM, key.material.expose_secret())
        .map_err(|_| KeyringError::Crypto("cannot load an AES-256-GCM key"))
}

fn associated_data(header: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(header.len() + aad.len());
    full.extend_from_slice(header);
    full.extend_from_slice(aad);
    full
}

/// Encrypts `plaintext` under `key`, binding `aad` (may be empty).
pub(crate) fn seal(key: &Key, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let header = header(key.id);
    let mut body = plaintext.to_vec();
    let nonce = aead_key(key)?
        .seal_in_place_append_tag(Aad::from(associated_data(&header, aad)), &mut body)
        .map_err(|_| KeyringError::Crypto("AES-256-GCM encryption failed"))?;
    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(nonce.as_ref());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decrypts a ciphertext whose header names `key` (checked by [`key_id`] first).
pub(crate) fn open(key: &Key, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    debug_assert_eq!(key_id(ciphertext).ok(), Some(key.id));
    let nonce = Nonce::try_assume_unique_for_key(&ciphertext[HEADER_LEN..HEADER_LEN + NONCE_LEN])
        .map_err(|_| KeyringError::Malformed("bad nonce".into()))?;
    let mut body = ciphertext[HEADER_LEN + NONCE_LEN..].to_vec();
    let plaintext_len = aead_key(key)?
        .open_in_place(
            nonce,
            Aad::from(associated_data(&ciphertext[..HEADER_LEN], aad)),
            &mut body,
        )
        .map_err(|_| KeyringError::Tampered)?
        .len();
    body.truncate(plaintext_len);
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn seals_and_opens_with_the_header_naming_the_key() {
        let key = Key::generate(7, SystemTime::now()).unwrap();
        let ciphertext = seal(&key, b"hello", b"row 1").unwrap();
        assert_eq!(ciphertext.len(), 5 + OVERHEAD);
        assert_eq!(&ciphertext[..3], b"RK\x01");
        assert_eq!(key_id(&ciphertext).unwrap(), key.id);
        assert_eq!(open(&key, &ciphertext, b"row 1").unwrap(), b"hello");
        assert!(matches!(
            open(&key, &ciphertext, b"row 2"),
            Err(KeyringError::Tampered)
        ));
        assert_ne!(
            seal(&key, b"hello", b"").unwrap()[HEADER_LEN..],
            seal(&key, b"hello", b"").unwrap()[HEADER_LEN..],
            "a fresh nonce per message"
        );
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let key = Key::generate(3, SystemTime::now()).unwrap();
        let ciphertext = seal(&key, b"attack at dawn", b"").unwrap();
        for i in 0..ciphertext.len() {
            for bit in 0..8 {
                let mut altered = ciphertext.clone();
                altered[i] ^= 1 << bit;
                let result = match key_id(&altered) {
                    Ok(id) if id == key.id => open(&key, &altered, b""),
                    Ok(_) => continue,
                    Err(e) => Err(e),
                };
                assert!(result.is_err(), "byte {i} bit {bit} went unnoticed");
            }
        }
    }

    #[test]
    fn short_foreign_and_future_inputs_are_refused_clearly() {
        assert!(matches!(key_id(b""), Err(KeyringError::Malformed(_))));
        assert!(matches!(key_id(b"XX\x01"), Err(KeyringError::Malformed(_))));
        assert!(matches!(
            key_id(b"RK\x02rest"),
            Err(KeyringError::UnsupportedVersion(2))
        ));
        let err = key_id(b"RK\x01short").unwrap_err().to_string();
        assert!(err.contains("47"), "{err}");
    }
}
