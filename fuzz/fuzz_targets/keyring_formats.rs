//! The `rotation-keyring` crate's formats: the keyring's JSON text (parse, rotate, serialize,
//! parse again) and the ciphertext format (header, decryption with a parsed keyring).
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use rotation_keyring::ciphertext;
use rotation_keyring::keyring::Keyring;
use secrecy::ExposeSecret;

fuzz_target!(|data: &[u8]| {
    let _ = ciphertext::key_id(data).map_err(|e| e.to_string());
    // The input split in two: a keyring's JSON text, and a ciphertext for it.
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (json, rest) = data.split_at(split);
    let Ok(text) = std::str::from_utf8(json) else {
        return;
    };
    let keyring = match Keyring::parse(text) {
        Ok(keyring) => keyring,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = keyring.keys();
    let _ = keyring.active_key();
    let _ = keyring.self_test();
    let ciphertext = rest.get(1..).unwrap_or_default();
    let _ = keyring.decrypt(ciphertext, b"aad").map_err(|e| e.to_string());
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    if let Ok(rotated) = keyring.rotate(now) {
        let again = Keyring::parse(rotated.keyring.to_json().expose_secret())
            .expect("a rotated keyring's own JSON parses again");
        assert_eq!(again.keys().len(), rotated.keyring.keys().len());
        let _ = again.check_successor_of(&keyring);
    }
});
