//! Password generation with the operating system's CSPRNG, honouring the environment variables
//! of AWS's rotation templates so existing deployments keep their settings.

use rand::rngs::OsRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::TryRngCore;
use secrecy::SecretString;

use crate::error::{Result, RotationError};

/// The punctuation GetRandomPassword draws from.
pub const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
/// Characters AWS's PostgreSQL template excludes by default (they break connection strings).
pub const DEFAULT_EXCLUDE_CHARACTERS: &str = ":/@\"'\\";

/// How passwords are generated: the same knobs as AWS's templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// PASSWORD_LENGTH (default 32).
    pub length: usize,
    /// EXCLUDE_CHARACTERS (default `:/@"'\`).
    pub exclude_characters: String,
    /// EXCLUDE_NUMBERS.
    pub exclude_numbers: bool,
    /// EXCLUDE_PUNCTUATION.
    pub exclude_punctuation: bool,
    /// EXCLUDE_UPPERCASE.
    pub exclude_uppercase: bool,
    /// EXCLUDE_LOWERCASE.
    pub exclude_lowercase: bool,
    /// REQUIRE_EACH_INCLUDED_TYPE (default true).
    pub require_each_included_type: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            length: 32,
            exclude_characters: DEFAULT_EXCLUDE_CHARACTERS.to_owned(),
            exclude_numbers: false,
            exclude_punctuation: false,
            exclude_uppercase: false,
            exclude_lowercase: false,
            require_each_included_type: true,
        }
    }
}

impl PasswordPolicy {
    /// Reads the policy through `lookup`, naming the variable whose value is invalid.
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self> {
        let defaults = PasswordPolicy::default();
        let flag = |name: &str, default: bool| -> Result<bool> {
            match lookup(name) {
                None => Ok(default),
                Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
                    "true" => Ok(true),
                    "false" | "" => Ok(false),
                    _ => Err(RotationError::Config(format!(
                        "{name} must be true or false, got {raw:?}"
                    ))),
                },
            }
        };
        let length = match lookup("PASSWORD_LENGTH") {
            None => defaults.length,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(n) if (4..=4096).contains(&n) => n,
                _ => {
                    return Err(RotationError::Config(format!(
                        "PASSWORD_LENGTH must be a whole number from 4 to 4096, got {raw:?}"
                    )))
                }
            },
        };
        let policy = PasswordPolicy {
            length,
            exclude_characters: lookup("EXCLUDE_CHARACTERS").unwrap_or(defaults.exclude_characters),
            exclude_numbers: flag("EXCLUDE_NUMBERS", false)?,
            exclude_punctuation: flag("EXCLUDE_PUNCTUATION", false)?,
            exclude_uppercase: flag("EXCLUDE_UPPERCASE", false)?,
            exclude_lowercase: flag("EXCLUDE_LOWERCASE", false)?,
            require_each_included_type: flag("REQUIRE_EACH_INCLUDED_TYPE", true)?,
        };
        policy.classes()?;
        Ok(policy)
    }

    /// The character classes in use, each without the excluded characters.
    fn classes(&self) -> Result<Vec<Vec<char>>> {
        let sets: [(&str, bool); 4] = [
            ("abcdefghijklmnopqrstuvwxyz", self.exclude_lowercase),
            ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", self.exclude_uppercase),
            ("0123456789", self.exclude_numbers),
            (PUNCTUATION, self.exclude_punctuation),
        ];
        let classes: Vec<Vec<char>> = sets
            .iter()
            .filter(|(_, excluded)| !excluded)
            .map(|(chars, _)| {
                chars
                    .chars()
                    .filter(|c| !self.exclude_characters.contains(*c))
                    .collect::<Vec<_>>()
            })
            .filter(|class| !class.is_empty())
            .collect();
        if classes.is_empty() {
            return Err(RotationError::Config(
                "the EXCLUDE_* variables leave no character to build a password from".into(),
            ));
        }
        if self.require_each_included_type && classes.len() > self.length {
            return Err(RotationError::Config(format!(
                "PASSWORD_LENGTH {} is shorter than the {} character types REQUIRE_EACH_INCLUDED_TYPE asks for",
                self.length,
                classes.len()
            )));
        }
        Ok(classes)
    }

    /// Generates a password from the OS CSPRNG (getrandom), one character of each included type
    /// first when REQUIRE_EACH_INCLUDED_TYPE is set, the rest uniform over all allowed characters.
    pub fn generate(&self) -> Result<SecretString> {
        let classes = self.classes()?;
        let all: Vec<char> = classes.iter().flatten().copied().collect();
        let mut rng = OsRng.unwrap_err();
        let mut chars: Vec<char> = Vec::with_capacity(self.length);
        if self.require_each_included_type {
            for class in &classes {
                chars.extend(class.choose(&mut rng));
            }
        }
        while chars.len() < self.length {
            chars.extend(all.choose(&mut rng));
        }
        chars.shuffle(&mut rng);
        Ok(SecretString::from(chars.into_iter().collect::<String>()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    fn policy(vars: &[(&str, &str)]) -> Result<PasswordPolicy> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PasswordPolicy::from_lookup(&|k| env.get(k).cloned())
    }

    #[test]
    fn default_policy_matches_aws_templates() {
        let p = policy(&[]).unwrap();
        assert_eq!(p, PasswordPolicy::default());
        for _ in 0..200 {
            let pw = p.generate().unwrap();
            let pw = pw.expose_secret();
            assert_eq!(pw.chars().count(), 32);
            assert!(
                !pw.chars().any(|c| DEFAULT_EXCLUDE_CHARACTERS.contains(c)),
                "{pw}"
            );
            assert!(pw.chars().any(|c| c.is_ascii_lowercase()));
            assert!(pw.chars().any(|c| c.is_ascii_uppercase()));
            assert!(pw.chars().any(|c| c.is_ascii_digit()));
            assert!(pw.chars().any(|c| c.is_ascii_punctuation()));
        }
    }

    #[test]
    fn honours_exclusions_and_length() {
        let p = policy(&[
            ("PASSWORD_LENGTH", "12"),
            ("EXCLUDE_PUNCTUATION", "true"),
            ("EXCLUDE_UPPERCASE", "TRUE"),
            ("EXCLUDE_CHARACTERS", "abc"),
        ])
        .unwrap();
        for _ in 0..200 {
            let pw = p.generate().unwrap();
            let pw = pw.expose_secret();
            assert_eq!(pw.len(), 12);
            assert!(
                pw.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "{pw}"
            );
            assert!(!pw.contains(['a', 'b', 'c']));
        }
    }

    #[test]
    fn passwords_differ() {
        let p = PasswordPolicy::default();
        let a = p.generate().unwrap();
        let b = p.generate().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn invalid_settings_name_the_variable() {
        for (vars, name) in [
            (vec![("PASSWORD_LENGTH", "3")], "PASSWORD_LENGTH"),
            (vec![("PASSWORD_LENGTH", "lots")], "PASSWORD_LENGTH"),
            (vec![("EXCLUDE_NUMBERS", "yes")], "EXCLUDE_NUMBERS"),
            (
                vec![
                    ("EXCLUDE_NUMBERS", "true"),
                    ("EXCLUDE_PUNCTUATION", "true"),
                    ("EXCLUDE_UPPERCASE", "true"),
                    ("EXCLUDE_LOWERCASE", "true"),
                ],
                "EXCLUDE_",
            ),
        ] {
            let err = policy(&vars).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }
}
