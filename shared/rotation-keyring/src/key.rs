//! One key of a keyring: its id, creation time, state and 256-bit material.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretBox};

use crate::error::{KeyringError, Result};

/// Length of a key's material in bytes (AES-256).
pub const KEY_LEN: usize = 32;
/// Length of the random part of a key id in bytes.
pub const TAG_LEN: usize = 8;

/// A key's id: the rotation that created it (its generation, 1 for the first key, one more at
/// each rotation) and 8 random bytes that set it apart from keys of other keyrings.
///
/// Written `<generation>-<16 hex digits>`, e.g. `31-9f3c2a1b7d4e5f60`; a ciphertext's header
/// carries both parts in binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId {
    generation: u64,
    tag: [u8; TAG_LEN],
}

impl KeyId {
    /// A key id from its parts; generation 0 is not a key's.
    pub fn new(generation: u64, tag: [u8; TAG_LEN]) -> Result<Self> {
        if generation == 0 {
            return Err(KeyringError::Invalid(
                "a key's generation starts at 1".into(),
            ));
        }
        Ok(KeyId { generation, tag })
    }

    /// A fresh id for `generation`, its random part from the OS CSPRNG.
    pub(crate) fn random(generation: u64) -> Result<Self> {
        let mut tag = [0u8; TAG_LEN];
        aws_lc_rs::rand::fill(&mut tag)
            .map_err(|_| KeyringError::Crypto("the OS random generator failed"))?;
        KeyId::new(generation, tag)
    }

    /// The rotation that created the key.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The random part.
    pub fn tag(&self) -> [u8; TAG_LEN] {
        self.tag
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-", self.generation)?;
        self.tag.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl FromStr for KeyId {
    type Err = KeyringError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            KeyringError::Invalid(
                "a key id is `<generation>-<16 hex digits>`, e.g. `31-9f3c2a1b7d4e5f60`".into(),
            )
        };
        let (generation, tag_hex) = s.split_once('-').ok_or_else(bad)?;
        let generation: u64 = generation.parse().map_err(|_| bad())?;
        if tag_hex.len() != TAG_LEN * 2 || !tag_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut tag = [0u8; TAG_LEN];
        for (i, byte) in tag.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&tag_hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        KeyId::new(generation, tag).map_err(|_| bad())
    }
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// The newest key: encrypts and decrypts. A keyring has exactly one.
    Active,
    /// An earlier key: only decrypts, until retention destroys it.
    DecryptOnly,
}

impl KeyState {
    /// The JSON spelling: `active` or `decrypt-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::DecryptOnly => "decrypt-only",
        }
    }

    /// Parses the JSON spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(KeyState::Active),
            "decrypt-only" => Some(KeyState::DecryptOnly),
            _ => None,
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key with its material. Debug output never shows the material, and the material is
/// zeroed when the key is dropped.
pub struct Key {
    pub(crate) id: KeyId,
    pub(crate) created: SystemTime,
    pub(crate) state: KeyState,
    pub(crate) material: SecretBox<[u8; KEY_LEN]>,
}

impl Key {
    /// A fresh active key of `generation`, created at `now`, material from the OS CSPRNG.
    pub(crate) fn generate(generation: u64, now: SystemTime) -> Result<Self> {
        let mut failed = false;
        let material = SecretBox::init_with_mut(|m: &mut [u8; KEY_LEN]| {
            failed = aws_lc_rs::rand::fill(m).is_err();
        });
        if failed {
            return Err(KeyringError::Crypto("the OS random generator failed"));
        }
        Ok(Key {
            id: KeyId::random(generation)?,
            created: crate::time::truncate_to_millis(now),
            state: KeyState::Active,
            material,
        })
    }

    /// The same key in another state.
    pub(crate) fn with_state(&self, state: KeyState) -> Self {
        Key {
            state,
            ..self.clone()
        }
    }

    /// Whether two keys hold the same material (compared in constant time).
    pub(crate) fn same_material(&self, other: &Key) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(
            self.material.expose_secret(),
            other.material.expose_secret(),
        )
        .is_ok()
    }
}

impl Clone for Key {
    fn clone(&self) -> Self {
        Key {
            id: self.id,
            created: self.created,
            state: self.state,
            material: SecretBox::init_with_mut(|m: &mut [u8; KEY_LEN]| {
                m.copy_from_slice(self.material.expose_secret())
            }),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id.to_string())
            .field("created", &crate::time::format(self.created))
            .field("state", &self.state)
            .field("material", &"[REDACTED]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_round_trip_and_reject_bad_text() {
        let id = KeyId::new(31, [0x9f, 0x3c, 0x2a, 0x1b, 0x7d, 0x4e, 0x5f, 0x60]).unwrap();
        assert_eq!(id.to_string(), "31-9f3c2a1b7d4e5f60");
        assert_eq!("31-9f3c2a1b7d4e5f60".parse::<KeyId>().unwrap(), id);
        for bad in [
            "",
            "31",
            "0-9f3c2a1b7d4e5f60",
            "-1-9f3c2a1b7d4e5f60",
            "31-9f3c2a1b7d4e5f6",
            "31-9f3c2a1b7d4e5f6g",
            "x-9f3c2a1b7d4e5f60",
        ] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn generated_keys_differ_and_debug_hides_the_material() {
        let now = SystemTime::now();
        let a = Key::generate(1, now).unwrap();
        let b = Key::generate(1, now).unwrap();
        assert!(!a.same_material(&b));
        assert_ne!(a.id, b.id);
        assert!(a.same_material(&a.clone()));
        let debug = format!("{a:?}");
        assert!(debug.contains("[REDACTED]"), "{debug}");
        let raw = format!("{:?}", a.material.expose_secret());
        assert!(!debug.contains(&raw[..12]), "{debug}");
    }
}
