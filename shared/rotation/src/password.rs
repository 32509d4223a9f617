//! Password generation with the operating system's CSPRNG, honouring the environment variables
//! of AWS's rotation templates so existing deployments keep their settings.

use rand::rngs::OsRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::TryRngCore;
use secrecy::SecretString;

use crate::config::variables::{
    Variable, EXCLUDE_CHARACTERS, EXCLUDE_LOWERCASE, EXCLUDE_NUMBERS, EXCLUDE_PUNCTUATION,
    EXCLUDE_UPPERCASE, PASSWORD_LENGTH, REQUIRE_EACH_INCLUDED_TYPE,
};
use crate::error::{Result, RotationError};

/// The punctuation GetRandomPassword draws from.
pub const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
/// Characters AWS's PostgreSQL template excludes by default (they break connection strings).
pub const DEFAULT_EXCLUDE_CHARACTERS: &str = match EXCLUDE_CHARACTERS.default_text() {
    Some(characters) => characters,
    None => panic!("EXCLUDE_CHARACTERS has a default"),
};

/// How passwords are generated: the same knobs as AWS's templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// [`PASSWORD_LENGTH`].
    pub length: usize,
    /// [`EXCLUDE_CHARACTERS`].
    pub exclude_characters: String,
    /// [`EXCLUDE_NUMBERS`].
    pub exclude_numbers: bool,
    /// [`EXCLUDE_PUNCTUATION`].
    pub exclude_punctuation: bool,
    /// [`EXCLUDE_UPPERCASE`].
    pub exclude_uppercase: bool,
    /// [`EXCLUDE_LOWERCASE`].
    pub exclude_lowercase: bool,
    /// [`REQUIRE_EACH_INCLUDED_TYPE`].
    pub require_each_included_type: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            length: PASSWORD_LENGTH.default_number() as usize,
            exclude_characters: DEFAULT_EXCLUDE_CHARACTERS.to_owned(),
            exclude_numbers: EXCLUDE_NUMBERS.default_flag(),
            exclude_punctuation: EXCLUDE_PUNCTUATION.default_flag(),
            exclude_uppercase: EXCLUDE_UPPERCASE.default_flag(),
            exclude_lowercase: EXCLUDE_LOWERCASE.default_flag(),
            require_each_included_type: REQUIRE_EACH_INCLUDED_TYPE.default_flag(),
        }
    }
}

impl PasswordPolicy {
    /// Reads the policy through `lookup`, naming the variable whose value is invalid.
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self> {
        let flag = |variable: &Variable| variable.flag(lookup).map_err(RotationError::Config);
        let length = PASSWORD_LENGTH
            .number(lookup)
            .map_err(RotationError::Config)?;
        let policy = PasswordPolicy {
            length: usize::try_from(length).unwrap_or(usize::MAX),
            exclude_characters: lookup(EXCLUDE_CHARACTERS.name)
                .unwrap_or_else(|| DEFAULT_EXCLUDE_CHARACTERS.to_owned()),
            exclude_numbers: flag(&EXCLUDE_NUMBERS)?,
            exclude_punctuation: flag(&EXCLUDE_PUNCTUATION)?,
            exclude_uppercase: flag(&EXCLUDE_UPPERCASE)?,
            exclude_lowercase: flag(&EXCLUDE_LOWERCASE)?,
            require_each_included_type: flag(&REQUIRE_EACH_INCLUDED_TYPE)?,
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
