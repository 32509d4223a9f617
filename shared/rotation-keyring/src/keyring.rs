//! The keyring: its JSON format, encryption and decryption, rotation with retention, and the
//! checks the rotation function makes.
//!
//! The secret's JSON (one object; any other top-level field is carried to the next version):
//!
//! ```json
//! {
//!   "provider": "keyring",
//!   "retentionRotations": 6,
//!   "retentionHours": 6.5,
//!   "keys": [
//!     {"id": "31-9f3c2a1b7d4e5f60", "created": "2025-01-31T10:00:00.123Z",
//!      "state": "active", "material": "<base64 of 32 bytes>"},
//!     {"id": "30-0c1d2e3f40516273", "created": "2025-01-31T09:00:00.087Z",
//!      "state": "decrypt-only", "material": "<base64 of 32 bytes>"}
//!   ]
//! }
//! ```
//!
//! `keys` may be empty (a new keyring: the first rotation creates the first key). Otherwise
//! exactly one key is `active` and it is the newest generation; generations are unique.

use std::sync::Arc;
use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rotation_json::{Fields, MakeError};
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};
use serde_json::{Map, Value};

use crate::ciphertext;
use crate::error::{KeyringError, Result};
use crate::key::{Key, KeyId, KeyState, KEY_LEN};
use crate::retention::Retention;

/// The value of the secret's `provider` field.
pub const PROVIDER: &str = "keyring";
/// Most keys a keyring may hold: a Secrets Manager secret holds at most 64 KB.
pub const MAX_KEYS: usize = 401;

const KEY_FIELDS: [&str; 4] = ["id", "created", "state", "material"];

/// A key's public facts: id, creation time and state (never the material).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's id.
    pub id: KeyId,
    /// When the key was created.
    pub created: SystemTime,
    /// Whether it encrypts or only decrypts.
    pub state: KeyState,
}

/// A parsed keyring. Debug output never shows key material.
#[derive(Debug, Clone)]
pub struct Keyring {
    retention: Retention,
    /// Newest generation first.
    keys: Vec<Arc<Key>>,
    /// Every top-level field but `keys`, carried to the next version unchanged.
    fields: Map<String, Value>,
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The keyring after the rotation.
    pub keyring: Keyring,
    /// The new active key.
    pub added: KeyId,
    /// The keys the rotation destroyed (left out of the new keyring).
    pub destroyed: Vec<KeyId>,
}

impl Keyring {
    /// Parses and validates a keyring's JSON. Errors name the field, never a value.
    pub fn parse(text: &str) -> Result<Self> {
        Self::from_object(rotation_json::parse_object(
            text,
            "the keyring",
            KeyringError::Invalid,
        )?)
    }

    /// Parses and validates a keyring from a JSON object.
    pub fn from_object(mut fields: Map<String, Value>) -> Result<Self> {
        let top = Fields::new(&fields, KeyringError::Invalid);
        if top.required_str("provider")? != PROVIDER {
            return Err(top.error("provider", format!("expected \"{PROVIDER}\"")));
        }
        let retention = Retention::new(
            top.optional_u32("retentionRotations")?,
            top.optional_f64("retentionHours")?,
        )?;
        let entries = top.required_array("keys")?;
        if entries.len() > MAX_KEYS {
            return Err(top.error("keys", format!("holds more than {MAX_KEYS} keys")));
        }
        let mut keys = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| parse_key(&top, i, entry).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        keys.sort_by_key(|k| std::cmp::Reverse(k.id.generation()));
        if let Some(pair) = keys
            .windows(2)
            .find(|w| w[0].id.generation() == w[1].id.generation())
        {
            return Err(top.error(
                "keys",
                format!(
                    "two keys of generation {}; generations are unique",
                    pair[0].id.generation()
                ),
            ));
        }
        let active: Vec<_> = keys
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .collect();
        match (keys.first(), active.as_slice()) {
            (None, _) => {}
            (Some(newest), [only]) if only.id == newest.id => {}
            (Some(_), []) => return Err(top.error("keys", "no key is `active`")),
            (Some(_), [_]) => {
                return Err(top.error("keys", "the `active` key must be the newest generation"))
            }
            (Some(_), _) => return Err(top.error("keys", "more than one key is `active`")),
        }
        fields.remove("keys");
        Ok(Keyring {
            retention,
            keys,
            fields,
        })
    }

    /// The keyring as the secret's JSON, key material included.
    pub fn to_json(&self) -> SecretString {
        let mut fields = self.fields.clone();
        let keys = self
            .keys
            .iter()
            .map(|k| {
                let mut entry = Map::new();
                entry.insert("id".into(), Value::String(k.id.to_string()));
                entry.insert(
                    "created".into(),
                    Value::String(crate::time::format(k.created)),
                );
                entry.insert("state".into(), Value::String(k.state.as_str().into()));
                entry.insert(
                    "material".into(),
                    Value::String(STANDARD.encode(k.material.expose_secret())),
                );
                Value::Object(entry)
            })
            .collect();
        fields.insert("keys".into(), Value::Array(keys));
        SecretString::from(Value::Object(fields).to_string())
    }

    /// The keyring's retention.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// The keys, newest first, without their material.
    pub fn keys(&self) -> Vec<KeyInfo> {
        self.keys
            .iter()
            .map(|k| KeyInfo {
                id: k.id,
                created: k.created,
                state: k.state,
            })
            .collect()
    }

    /// The active key's id, unless the keyring is empty.
    pub fn active_key(&self) -> Option<KeyId> {
        self.keys.first().map(|k| k.id)
    }

    fn newest_generation(&self) -> u64 {
        self.keys.first().map_or(0, |k| k.id.generation())
    }

    fn destroyed_reason(&self, key: &Key, now: SystemTime) -> Option<String> {
        self.retention.destroyed_reason(
            key.id.generation(),
            key.created,
            self.newest_generation(),
            now,
        )
    }

    /// Encrypts with the active key; `aad` (may be empty) must be given again to decrypt.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.encrypt_at(plaintext, aad, SystemTime::now())
    }

    /// [`Keyring::encrypt`] as of `now`: refuses an active key already past retention (what
    /// it encrypted could not be decrypted).
    pub fn encrypt_at(&self, plaintext: &[u8], aad: &[u8], now: SystemTime) -> Result<Vec<u8>> {
        let key = self.keys.first().ok_or_else(|| {
            KeyringError::NoActiveKey("the keyring has no key yet: rotate it once".into())
        })?;
        if let Some(reason) = self.destroyed_reason(key, now) {
            return Err(KeyringError::NoActiveKey(format!(
                "the active key {} is {reason}: the keyring has not been rotated in time",
                key.id
            )));
        }
        ciphertext::seal(key, plaintext, aad)
    }

    /// Decrypts with the key the ciphertext's header names, refusing a destroyed key.
    pub fn decrypt(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.decrypt_at(ciphertext, aad, SystemTime::now())
    }

    /// [`Keyring::decrypt`] as of `now`.
    pub fn decrypt_at(&self, ciphertext: &[u8], aad: &[u8], now: SystemTime) -> Result<Vec<u8>> {
        let key = self.resolve(ciphertext::key_id(ciphertext)?)?;
        if let Some(reason) = self.destroyed_reason(key, now) {
            return Err(KeyringError::Destroyed {
                key: key.id,
                reason,
            });
        }
        ciphertext::open(key, ciphertext, aad)
    }

    /// The key with `id`, whatever its retention; a clear error when it is not here.
    fn resolve(&self, id: KeyId) -> Result<&Key> {
        match self
            .keys
            .iter()
            .find(|k| k.id.generation() == id.generation())
        {
            Some(key) if key.id == id => Ok(key),
            Some(key) => Err(KeyringError::UnknownKey {
                key: id,
                newer: false,
                reason: format!(
                    "this keyring's key of generation {} is {}: the ciphertext comes from another keyring",
                    id.generation(),
                    key.id
                ),
            }),
            None if id.generation() > self.newest_generation() => Err(KeyringError::UnknownKey {
                key: id,
                newer: true,
                reason: format!(
                    "newer than this keyring's newest generation {}",
                    self.newest_generation()
                ),
            }),
            None => Err(KeyringError::Destroyed {
                key: id,
                reason: "a rotation left it out of the keyring (past retention)".into(),
            }),
        }
    }

    /// A rotation at `now`: a fresh active key from the OS CSPRNG, the previous active key
    /// decrypt-only, and every key past retention destroyed (left out).
    pub fn rotate(&self, now: SystemTime) -> Result<Rotated> {
        let generation = self
            .newest_generation()
            .checked_add(1)
            .ok_or_else(|| KeyringError::Invalid("the key generation overflowed".into()))?;
        let new = Key::generate(generation, now)?;
        let added = new.id;
        let mut next = Keyring {
            retention: self.retention,
            keys: vec![Arc::new(new)],
            fields: self.fields.clone(),
        };
        let mut destroyed = Vec::new();
        for key in &self.keys {
            if next.destroyed_reason(key, now).is_some() {
                destroyed.push(key.id);
            } else {
                next.keys
                    .push(Arc::new(key.with_state(KeyState::DecryptOnly)));
            }
        }
        if next.keys.len() > MAX_KEYS {
            return Err(KeyringError::Invalid(format!(
                "the keyring would hold more than {MAX_KEYS} keys (a secret holds at most 64 KB): set `retentionRotations`, or rotate less often"
            )));
        }
        Ok(Rotated {
            keyring: next,
            added,
            destroyed,
        })
    }

    /// Checks that this keyring is what one rotation of `previous` makes: same settings, a new
    /// active key newer than all of `previous`'s, and every other key one of `previous`'s,
    /// unchanged but for its state.
    pub fn check_successor_of(&self, previous: &Keyring) -> Result<()> {
        if self.fields != previous.fields {
            return Err(KeyringError::Invalid(
                "the pending keyring's settings (fields other than `keys`) differ from the current keyring's".into(),
            ));
        }
        let Some(active) = self.keys.first() else {
            return Err(KeyringError::Invalid(
                "the pending keyring has no active key".into(),
            ));
        };
        if active.id.generation() <= previous.newest_generation() {
            return Err(KeyringError::Invalid(format!(
                "the pending keyring's active key {} is not newer than the current keyring's keys",
                active.id
            )));
        }
        for key in &self.keys[1..] {
            let same = previous
                .keys
                .iter()
                .any(|p| p.id == key.id && p.created == key.created && p.same_material(key));
            if !same {
                return Err(KeyringError::Invalid(format!(
                    "the pending keyring's key {} is not the current keyring's key of that id",
                    key.id
                )));
            }
        }
        Ok(())
    }

    /// The keys of `other` still within retention at `now` that this keyring lacks (or holds
    /// with other material): what `other` decrypts and this keyring would not. A keyring may
    /// replace `other` for its consumers only when this is empty.
    pub fn missing_keys_of(&self, other: &Keyring, now: SystemTime) -> Vec<KeyId> {
        other
            .keys
            .iter()
            .filter(|k| other.destroyed_reason(k, now).is_none())
            .filter(|k| {
                !self
                    .keys
                    .iter()
                    .any(|mine| mine.id == k.id && mine.same_material(k))
            })
            .map(|k| k.id)
            .collect()
    }

    /// Proves every key works: each one encrypts a probe, and the probe decrypts through the
    /// header's key id. Retention is not checked here (a key may age out while a rotation
    /// waits). Returns how many keys were tested.
    pub fn self_test(&self) -> Result<usize> {
        if self.keys.is_empty() {
            return Err(KeyringError::NoActiveKey("the keyring has no key".into()));
        }
        let mut probe = [0u8; 32];
        aws_lc_rs::rand::fill(&mut probe)
            .map_err(|_| KeyringError::Crypto("the OS random generator failed"))?;
        for key in &self.keys {
            let sealed = ciphertext::seal(key, &probe, b"keyring self-test")?;
            let found = self.resolve(ciphertext::key_id(&sealed)?)?;
            let opened = ciphertext::open(found, &sealed, b"keyring self-test")?;
            if opened != probe {
                return Err(KeyringError::Tampered);
            }
        }
        Ok(self.keys.len())
    }
}

/// The key at `keys[index]` of the keyring `top` reads.
fn parse_key(
    top: &Fields<'_, impl MakeError<Error = KeyringError> + Clone>,
    index: usize,
    entry: &Value,
) -> Result<Key> {
    let fields = top.nested(&format!("keys[{index}]"), entry)?;
    fields.only(&KEY_FIELDS)?;
    let id: KeyId = fields
        .required_str("id")?
        .parse()
        .map_err(|e| fields.error("id", e))?;
    let created = crate::time::parse(fields.required_str("created")?).ok_or_else(|| {
        fields.error(
            "created",
            "expected an RFC 3339 time, e.g. 2025-01-31T10:00:00Z",
        )
    })?;
    let state = KeyState::parse(fields.required_str("state")?)
        .ok_or_else(|| fields.error("state", "expected \"active\" or \"decrypt-only\""))?;
    let material = decode_material(fields.required_str("material")?).ok_or_else(|| {
        fields.error(
            "material",
            format!("expected the base64 of {KEY_LEN} bytes"),
        )
    })?;
    Ok(Key {
        id,
        created,
        state,
        material,
    })
}

fn decode_material(text: &str) -> Option<SecretBox<[u8; KEY_LEN]>> {
    let mut buffer = SecretBox::new(Box::new([0u8; KEY_LEN + 16]));
    let len = STANDARD
        .decode_slice(text.as_bytes(), buffer.expose_secret_mut())
        .ok()?;
    if len != KEY_LEN {
        return None;
    }
    Some(SecretBox::init_with_mut(|m: &mut [u8; KEY_LEN]| {
        m.copy_from_slice(&buffer.expose_secret()[..KEY_LEN])
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn empty(retention: Value) -> Keyring {
        let mut value = json!({"provider": "keyring", "keys": [], "team": "payments"});
        for (k, v) in retention.as_object().unwrap() {
            value[k] = v.clone();
        }
        Keyring::parse(&value.to_string()).unwrap()
    }

    fn reparse(keyring: &Keyring) -> Keyring {
        Keyring::parse(keyring.to_json().expose_secret()).unwrap()
    }

    #[test]
    fn thirty_rotations_keep_retention_plus_one_keys_and_decrypt_exactly_the_retained() {
        let mut keyring = empty(json!({"retentionRotations": 6}));
        let now = SystemTime::now();
        let mut sealed = Vec::new();
        for round in 1..=30u64 {
            let rotated = keyring.rotate(now).unwrap();
            assert_eq!(rotated.added.generation(), round);
            keyring = reparse(&rotated.keyring);
            assert_eq!(keyring.keys().len(), round.min(7) as usize);
            assert_eq!(keyring.self_test().unwrap(), keyring.keys().len());
            sealed.push(
                keyring
                    .encrypt_at(format!("m{round}").as_bytes(), b"", now)
                    .unwrap(),
            );
            for (i, c) in sealed.iter().enumerate() {
                let generation = i as u64 + 1;
                match keyring.decrypt_at(c, b"", now) {
                    Ok(p) => {
                        assert!(
                            round - generation <= 6,
                            "key {generation} retained too long"
                        );
                        assert_eq!(p, format!("m{generation}").as_bytes());
                    }
                    Err(KeyringError::Destroyed { key, .. }) => {
                        assert!(round - generation > 6, "key {generation} destroyed early");
                        assert_eq!(key.generation(), generation);
                    }
                    Err(e) => panic!("unexpected {e}"),
                }
            }
        }
    }

    #[test]
    fn hours_retention_refuses_an_old_key_even_from_a_keyring_that_still_carries_it() {
        let keyring = empty(json!({"retentionHours": 2}));
        let t0 = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let first = keyring.rotate(t0).unwrap().keyring;
        let c = first.encrypt_at(b"data", b"", t0).unwrap();
        let second = first.rotate(t0 + hour).unwrap().keyring;
        assert_eq!(second.decrypt_at(&c, b"", t0 + hour).unwrap(), b"data");
        let late = t0 + 2 * hour;
        assert_eq!(
            second.keys().len(),
            2,
            "no rotation yet: the old key is still there"
        );
        assert!(matches!(
            second.decrypt_at(&c, b"", late),
            Err(KeyringError::Destroyed { .. })
        ));
        assert!(matches!(
            first.encrypt_at(b"x", b"", late),
            Err(KeyringError::NoActiveKey(_))
        ));
        let third = second.rotate(late).unwrap();
        assert_eq!(third.destroyed, vec![first.active_key().unwrap()]);
        assert_eq!(third.keyring.keys().len(), 2);
    }

    #[test]
    fn any_altered_byte_fails_through_the_keyring() {
        let keyring = empty(json!({"retentionRotations": 3}));
        let keyring = keyring.rotate(SystemTime::now()).unwrap().keyring;
        let keyring = keyring.rotate(SystemTime::now()).unwrap().keyring;
        let c = keyring.encrypt(b"pay 100 to alice", b"invoice 7").unwrap();
        assert_eq!(
            keyring.decrypt(&c, b"invoice 7").unwrap(),
            b"pay 100 to alice"
        );
        for i in 0..c.len() {
            for bit in 0..8 {
                let mut altered = c.clone();
                altered[i] ^= 1 << bit;
                assert!(
                    keyring.decrypt(&altered, b"invoice 7").is_err(),
                    "byte {i} bit {bit} went unnoticed"
                );
            }
        }
        assert!(matches!(
            keyring.decrypt(&c[..c.len() - 1], b"invoice 7"),
            Err(KeyringError::Tampered)
        ));
        assert!(matches!(
            keyring.decrypt(&c, b"invoice 8"),
            Err(KeyringError::Tampered)
        ));
    }

    #[test]
    fn json_round_trips_and_carries_other_fields() {
        let keyring = empty(json!({"retentionRotations": 3, "retentionHours": 1.5}));
        let rotated = keyring.rotate(SystemTime::now()).unwrap().keyring;
        let rotated = rotated.rotate(SystemTime::now()).unwrap().keyring;
        let text = rotated.to_json();
        let value: Value = serde_json::from_str(text.expose_secret()).unwrap();
        assert_eq!(value["team"], "payments");
        assert_eq!(value["retentionHours"], 1.5);
        assert_eq!(value["keys"][0]["state"], "active");
        assert_eq!(value["keys"][1]["state"], "decrypt-only");
        let again = reparse(&rotated);
        assert_eq!(again.keys(), rotated.keys());
        let c = rotated.encrypt(b"x", b"").unwrap();
        assert_eq!(again.decrypt(&c, b"").unwrap(), b"x");
    }

    #[test]
    fn a_key_of_another_keyring_or_a_future_key_is_unknown() {
        let a = empty(json!({"retentionRotations": 2}))
            .rotate(SystemTime::now())
            .unwrap()
            .keyring;
        let b = empty(json!({"retentionRotations": 2}))
            .rotate(SystemTime::now())
            .unwrap()
            .keyring;
        let c = a.encrypt(b"x", b"").unwrap();
        assert!(matches!(
            b.decrypt(&c, b""),
            Err(KeyringError::UnknownKey { newer: false, .. })
        ));
        let newer = a.rotate(SystemTime::now()).unwrap().keyring;
        let c = newer.encrypt(b"x", b"").unwrap();
        assert!(matches!(
            a.decrypt(&c, b""),
            Err(KeyringError::UnknownKey { newer: true, .. })
        ));
    }

    #[test]
    fn successor_check_accepts_a_rotation_and_refuses_anything_else() {
        let current = empty(json!({"retentionRotations": 2}))
            .rotate(SystemTime::now())
            .unwrap()
            .keyring;
        let pending = current.rotate(SystemTime::now()).unwrap().keyring;
        pending.check_successor_of(&current).unwrap();
        assert!(current.check_successor_of(&current).is_err());
        let foreign = empty(json!({"retentionRotations": 2}))
            .rotate(SystemTime::now())
            .unwrap()
            .keyring
            .rotate(SystemTime::now())
            .unwrap()
            .keyring;
        assert!(foreign.check_successor_of(&current).is_err());
        let settings = json!({"retentionRotations": 2});
        let first = empty(settings.clone()).rotate(SystemTime::now()).unwrap();
        first.keyring.check_successor_of(&empty(settings)).unwrap();
        assert!(pending
            .check_successor_of(&empty(json!({"retentionRotations": 5})))
            .is_err());
    }

    #[test]
    fn invalid_keyrings_name_the_field_and_never_the_material() {
        let material = STANDARD.encode([7u8; 32]);
        let key = |id: &str, state: &str, material: &str| json!({"id": id, "created": "2025-01-31T10:00:00Z", "state": state, "material": material});
        let cases = [
            (json!({"keys": []}), "`provider`"),
            (json!({"provider": "postgres", "keys": []}), "`provider`"),
            (
                json!({"provider": "keyring", "keys": []}),
                "retentionRotations",
            ),
            (
                json!({"provider": "keyring", "retentionRotations": 2}),
                "`keys`",
            ),
            (
                json!({"provider": "keyring", "retentionRotations": "6", "keys": []}),
                "`retentionRotations`",
            ),
            (
                json!({"provider": "keyring", "retentionRotations": 2, "keys": [key("1-0011223344556677", "active", "c2hvcnQ=")]}),
                "`keys[0].material`",
            ),
            (
                json!({"provider": "keyring", "retentionRotations": 2, "keys": [key("one", "active", &material)]}),
                "`keys[0].id`",
            ),
            (
                json!({"provider": "keyring", "retentionRotations": 2, "keys": [key("1-0011223344556677", "retired", &material)]}),
                "`keys[0].state`",
            ),
            (
                json!({"provider": "keyring", "retentionRotations": 2, "keys": [key("2-0011223344556677", "active", &material), key("1-0011223344556678", "active", &material)]}),
                "more than one key",
            ),
            (
                json!({"provider": "keyring", "retentionRotations": 2, "keys": [key("2-0011223344556677", "decrypt-only", &material), key("1-0011223344556678", "active", &material)]}),
                "newest generation",
            ),
            (
                json!({"provider": "keyring", "retentionRotations": 2, "keys": [key("1-0011223344556677", "active", &material), key("1-0011223344556678", "decrypt-only", &material)]}),
                "generation 1",
            ),
        ];
        for (value, expected) in cases {
            let err = Keyring::parse(&value.to_string()).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} should mention {expected}");
            assert!(!err.contains(&material), "{err}");
        }
        let mut extra = key("1-0011223344556677", "active", &material);
        extra["note"] = json!("x");
        let err = Keyring::parse(
            &json!({"provider": "keyring", "retentionRotations": 2, "keys": [extra]}).to_string(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`keys[0].note`"), "{err}");
        let err = Keyring::parse("{\"provider\": \"keyring\", \"keys\": [\"").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn debug_never_shows_material() {
        let keyring = empty(json!({"retentionRotations": 2}))
            .rotate(SystemTime::now())
            .unwrap()
            .keyring;
        let json = keyring.to_json();
        let value: Value = serde_json::from_str(json.expose_secret()).unwrap();
        let material = value["keys"][0]["material"].as_str().unwrap().to_owned();
        let debug = format!("{keyring:?}");
        assert!(!debug.contains(&material), "{debug}");
        assert!(debug.contains("[REDACTED]"), "{debug}");
    }
}
