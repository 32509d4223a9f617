//! The attributes of an account besides its password and grants: TLS requirement, resource
//! limits, password lifetime and lock, read from the catalog and written as one `ALTER USER`.

/// The `REQUIRE` clause of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Require {
    /// `REQUIRE NONE`.
    None,
    /// `REQUIRE SSL`.
    Ssl,
    /// `REQUIRE X509`.
    X509,
    /// `REQUIRE ISSUER ... SUBJECT ... CIPHER ...` (the non-empty ones).
    Specified {
        /// `x509_issuer`.
        issuer: String,
        /// `x509_subject`.
        subject: String,
        /// `ssl_cipher`.
        cipher: String,
    },
}

impl Require {
    /// From `mysql.user`'s `ssl_type`, `x509_issuer`, `x509_subject`, `ssl_cipher`.
    pub fn from_columns(ssl_type: &str, issuer: &[u8], subject: &[u8], cipher: &[u8]) -> Self {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        match ssl_type {
            "ANY" => Require::Ssl,
            "X509" => Require::X509,
            "SPECIFIED" => Require::Specified {
                issuer: text(issuer),
                subject: text(subject),
                cipher: text(cipher),
            },
            _ => Require::None,
        }
    }

    fn clause(&self, quote: &dyn Fn(&str) -> String) -> String {
        match self {
            Require::None => "NONE".into(),
            Require::Ssl => "SSL".into(),
            Require::X509 => "X509".into(),
            Require::Specified {
                issuer,
                subject,
                cipher,
            } => {
                let parts: Vec<String> =
                    [("ISSUER", issuer), ("SUBJECT", subject), ("CIPHER", cipher)]
                        .into_iter()
                        .filter(|(_, value)| !value.is_empty())
                        .map(|(keyword, value)| format!("{keyword} {}", quote(value)))
                        .collect();
                if parts.is_empty() {
                    "SSL".into()
                } else {
                    parts.join(" AND ")
                }
            }
        }
    }
}

/// How long a password stays valid (`password_lifetime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// The server's `default_password_lifetime` (NULL in MySQL, -1 in MariaDB).
    Default,
    /// Never expires (0).
    Never,
    /// Expires after this many days.
    Days(u32),
}

impl Lifetime {
    /// From the catalog's number: NULL or negative is the default, 0 never.
    pub fn from_days(days: Option<i64>) -> Self {
        match days {
            None => Lifetime::Default,
            Some(d) if d < 0 => Lifetime::Default,
            Some(0) => Lifetime::Never,
            Some(d) => Lifetime::Days(u32::try_from(d).unwrap_or(u32::MAX)),
        }
    }
}

/// An account's attributes the pending user copies. The password itself is set separately, so
/// the "expired now" flag is not copied: a new password is not expired (an account to keep
/// out is locked, and the lock is copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// `REQUIRE`.
    pub require: Require,
    /// `MAX_QUERIES_PER_HOUR`.
    pub max_queries_per_hour: u64,
    /// `MAX_UPDATES_PER_HOUR`.
    pub max_updates_per_hour: u64,
    /// `MAX_CONNECTIONS_PER_HOUR`.
    pub max_connections_per_hour: u64,
    /// `MAX_USER_CONNECTIONS` (MariaDB allows -1: no connection at all).
    pub max_user_connections: i64,
    /// MariaDB's `MAX_STATEMENT_TIME` in seconds, as the server prints it (digits and a point).
    pub max_statement_time: Option<String>,
    /// `PASSWORD EXPIRE ...`.
    pub lifetime: Lifetime,
    /// `ACCOUNT LOCK`.
    pub locked: bool,
}

impl Attributes {
    /// The clauses of `ALTER USER <account> ...` that give an account these attributes.
    /// `quote` quotes a string literal for the session.
    pub fn clauses(&self, quote: &dyn Fn(&str) -> String) -> String {
        let mut sql = format!(
            "REQUIRE {} WITH MAX_QUERIES_PER_HOUR {} MAX_UPDATES_PER_HOUR {} MAX_CONNECTIONS_PER_HOUR {} MAX_USER_CONNECTIONS {}",
            self.require.clause(quote),
            self.max_queries_per_hour,
            self.max_updates_per_hour,
            self.max_connections_per_hour,
            self.max_user_connections,
        );
        if let Some(seconds) = &self.max_statement_time {
            sql.push_str(&format!(" MAX_STATEMENT_TIME {seconds}"));
        }
        sql.push_str(
            match self.lifetime {
                Lifetime::Default => " PASSWORD EXPIRE DEFAULT".to_owned(),
                Lifetime::Never => " PASSWORD EXPIRE NEVER".to_owned(),
                Lifetime::Days(days) => format!(" PASSWORD EXPIRE INTERVAL {days} DAY"),
            }
            .as_str(),
        );
        sql.push_str(if self.locked {
            " ACCOUNT LOCK"
        } else {
            " ACCOUNT UNLOCK"
        });
        sql
    }
}

/// Whether `text` is a number as MariaDB prints `max_statement_time` (so safe in SQL text).
pub fn is_decimal(text: &str) -> bool {
    !text.is_empty()
        && text.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.chars().filter(|&c| c == '.').count() <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(text: &str) -> String {
        super::super::quote(text, false)
    }

    #[test]
    fn every_attribute_is_written() {
        let attributes = Attributes {
            require: Require::from_columns("SPECIFIED", b"/CN=ca", b"/CN=a'b", b""),
            max_queries_per_hour: 10,
            max_updates_per_hour: 0,
            max_connections_per_hour: 5,
            max_user_connections: 3,
            max_statement_time: Some("2.500000".into()),
            lifetime: Lifetime::from_days(Some(30)),
            locked: true,
        };
        assert_eq!(
            attributes.clauses(&quote),
            "REQUIRE ISSUER '/CN=ca' AND SUBJECT '/CN=a''b' WITH MAX_QUERIES_PER_HOUR 10 \
             MAX_UPDATES_PER_HOUR 0 MAX_CONNECTIONS_PER_HOUR 5 MAX_USER_CONNECTIONS 3 \
             MAX_STATEMENT_TIME 2.500000 PASSWORD EXPIRE INTERVAL 30 DAY ACCOUNT LOCK"
        );
        let plain = Attributes {
            require: Require::from_columns("", b"", b"", b""),
            max_statement_time: None,
            lifetime: Lifetime::from_days(None),
            locked: false,
            ..attributes
        };
        assert_eq!(
            plain.clauses(&quote),
            "REQUIRE NONE WITH MAX_QUERIES_PER_HOUR 10 MAX_UPDATES_PER_HOUR 0 \
             MAX_CONNECTIONS_PER_HOUR 5 MAX_USER_CONNECTIONS 3 PASSWORD EXPIRE DEFAULT ACCOUNT UNLOCK"
        );
    }

    #[test]
    fn catalog_values_map_to_clauses() {
        assert_eq!(Lifetime::from_days(Some(-1)), Lifetime::Default);
        assert_eq!(Lifetime::from_days(Some(0)), Lifetime::Never);
        assert_eq!(Require::from_columns("ANY", b"", b"", b""), Require::Ssl);
        assert_eq!(Require::from_columns("X509", b"", b"", b""), Require::X509);
        assert!(is_decimal("0.000000") && is_decimal("12"));
        assert!(!is_decimal("1; DROP") && !is_decimal("") && !is_decimal("1.2.3"));
    }
}
