//! The secret JSON of every provider: the profile (provider and strategy), the database secret
//! (PostgreSQL, MySQL/MariaDB, RDS master), the master user's secret, the IAM access key secret
//! and the keyring. Any text is parsed or refused with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotation::providers::database_secret::{DatabaseSecret, MasterSecret};
use rotation::providers::iam_secret::IamSecret;
use rotation::providers::{parse_object, profile};
use rotation_keyring::keyring::Keyring;
use secrecy::SecretString;

const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:fuzz";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let value = SecretString::from(text.to_owned());
    let _ = profile(&value, ARN, "AWSCURRENT").map_err(|e| e.to_string());
    let Ok(fields) = parse_object(&value, ARN, "AWSCURRENT") else {
        return;
    };
    let _ = MasterSecret::parse(&fields, ARN).map_err(|e| e.to_string());
    if let Ok(secret) = DatabaseSecret::parse(fields.clone(), ARN, "AWSCURRENT", 5432) {
        let _ = secret.endpoint();
        let _ = secret.next_version(&secret.username, &secret.password);
    }
    if let Ok(secret) = IamSecret::parse(fields.clone(), ARN, "AWSCURRENT") {
        let _ = format!("{secret:?}");
        let _ = secret.next_version("AKIAFUZZ", &secret.secret_access_key);
    }
    let _ = Keyring::from_object(fields).map_err(|e| e.to_string());
});
