//! `SHOW GRANTS` lines, read and rewritten for another account.
//!
//! The shapes MySQL (5.7, 8) and MariaDB print: privilege grants (`GRANT ... ON ... TO`), role
//! grants (`GRANT role, ... TO`), proxy grants, MySQL 8 partial revokes (`REVOKE ... ON ...
//! FROM`, with `partial_revokes=ON`) and MariaDB default roles (`SET DEFAULT ROLE ... FOR`).
//! A line is read with a small lexer that knows MySQL's quoting, so a quoted name or a
//! `REQUIRE SUBJECT` string can never be taken for a keyword or a grantee. The server's own
//! text before the grantee is reused verbatim (identifiers already quoted by the server); the
//! grantee is replaced, and only the grant and admin options are kept of what follows it
//! (password, TLS and limits are set separately).

/// One token of a line: its byte range, its text (unquoted for a quoted token), and whether it
/// was quoted.
#[derive(Debug)]
struct Token {
    start: usize,
    text: String,
    quoted: bool,
}

impl Token {
    fn is_keyword(&self, keyword: &str) -> bool {
        !self.quoted && self.text.eq_ignore_ascii_case(keyword)
    }
}

/// The tokens of a line: quoted strings and identifiers (`'..'`, `".."`, `` `..` ``, a doubled
/// quote standing for itself, backslash escapes in strings unless NO_BACKSLASH_ESCAPES), the
/// punctuation `@ , ( ) . ;` one character each, and words. None for an unterminated quote.
fn tokens(line: &str, no_backslash_escapes: bool) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if matches!(c, '\'' | '"' | '`') {
            chars.next();
            let mut text = String::new();
            let mut closed = false;
            while let Some((_, d)) = chars.next() {
                if d == c {
                    if chars.peek().is_some_and(|&(_, e)| e == c) {
                        chars.next();
                        text.push(c);
                    } else {
                        closed = true;
                        break;
                    }
                } else if d == '\\' && c != '`' && !no_backslash_escapes {
                    let (_, e) = chars.next()?;
                    text.push(match e {
                        'n' => '\n',
                        'r' => '\r',
                        't' => '\t',
                        '0' => '\0',
                        'Z' => '\u{1a}',
                        other => other,
                    });
                } else {
                    text.push(d);
                }
            }
            if !closed {
                return None;
            }
            out.push(Token {
                start,
                text,
                quoted: true,
            });
        } else if matches!(c, '@' | ',' | '(' | ')' | '.' | ';') {
            chars.next();
            out.push(Token {
                start,
                text: c.to_string(),
                quoted: false,
            });
        } else {
            let mut text = String::new();
            while let Some(&(_, d)) = chars.peek() {
                if d.is_whitespace()
                    || matches!(d, '\'' | '"' | '`' | '@' | ',' | '(' | ')' | '.' | ';')
                {
                    break;
                }
                text.push(d);
                chars.next();
            }
            out.push(Token {
                start,
                text,
                quoted: false,
            });
        }
    }
    Some(out)
}

/// What a line does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `GRANT <body> TO <account> [WITH GRANT OPTION | WITH ADMIN OPTION]`.
    Grant,
    /// `REVOKE <body> FROM <account>`: a MySQL 8 partial revoke.
    Revoke,
    /// `SET DEFAULT ROLE <role> FOR <account>` (MariaDB).
    DefaultRole,
}

/// One `SHOW GRANTS` line of an account, ready to be applied to another account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantLine {
    /// What the line does.
    pub verb: Verb,
    /// The server's text between the verb (`GRANT`, `REVOKE`, `SET DEFAULT ROLE`) and the
    /// grantee, e.g. ``SELECT ON `db`.*`` or `` `role` ``.
    pub body: String,
    /// `WITH GRANT OPTION` follows the grantee.
    pub grant_option: bool,
    /// `WITH ADMIN OPTION` follows the grantee (a role grant).
    pub admin_option: bool,
    /// A grant of roles (no `ON`), rather than of privileges on an object.
    pub role_grant: bool,
    /// A grant of `PROXY`.
    pub proxy_grant: bool,
    /// `GRANT USAGE ON *.*` without an option: grants nothing.
    pub grants_nothing: bool,
}

/// Why a line could not be read: never the line itself, which may hold a password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLine(pub &'static str);

impl GrantLine {
    /// Reads one `SHOW GRANTS FOR user@host` line.
    pub fn parse(
        line: &str,
        user: &str,
        host: &str,
        no_backslash_escapes: bool,
    ) -> Result<GrantLine, UnknownLine> {
        let tokens = tokens(line, no_backslash_escapes).ok_or(UnknownLine("unterminated quote"))?;
        let first = tokens.first().ok_or(UnknownLine("empty line"))?;
        let (verb, keyword, body_from) = if first.is_keyword("GRANT") {
            (Verb::Grant, "TO", 1)
        } else if first.is_keyword("REVOKE") {
            (Verb::Revoke, "FROM", 1)
        } else if first.is_keyword("SET")
            && tokens.get(1).is_some_and(|t| t.is_keyword("DEFAULT"))
            && tokens.get(2).is_some_and(|t| t.is_keyword("ROLE"))
        {
            (Verb::DefaultRole, "FOR", 3)
        } else {
            return Err(UnknownLine("neither GRANT, REVOKE nor SET DEFAULT ROLE"));
        };
        let at = (body_from..tokens.len().saturating_sub(3))
            .find(|&i| {
                tokens[i].is_keyword(keyword)
                    && tokens[i + 1].text == user
                    && tokens[i + 2].is_keyword("@")
                    && tokens[i + 3].text.eq_ignore_ascii_case(host)
            })
            .ok_or(UnknownLine("the grantee is not the account asked for"))?;
        let body_start = tokens[body_from].start;
        let body = line[body_start..tokens[at].start].trim().to_owned();
        if body.is_empty() {
            return Err(UnknownLine("nothing is granted"));
        }
        let head = &tokens[body_from..at];
        let tail = &tokens[at + 4..];
        let pair = |a: &str, b: &str| {
            tail.windows(2)
                .any(|w| w[0].is_keyword(a) && w[1].is_keyword(b))
        };
        let grant_option = verb == Verb::Grant && pair("GRANT", "OPTION");
        let admin_option = verb == Verb::Grant && pair("ADMIN", "OPTION");
        let has_on = head.iter().any(|t| t.is_keyword("ON"));
        let words: Vec<String> = head
            .iter()
            .map(|t| {
                if t.quoted {
                    format!("`{}`", t.text)
                } else {
                    t.text.to_ascii_uppercase()
                }
            })
            .collect();
        let grants_nothing = verb == Verb::Grant
            && words == ["USAGE", "ON", "*", ".", "*"]
            && !grant_option
            && !admin_option;
        Ok(GrantLine {
            verb,
            body,
            grant_option,
            admin_option,
            role_grant: verb == Verb::Grant && !has_on,
            proxy_grant: verb == Verb::Grant && head.first().is_some_and(|t| t.is_keyword("PROXY")),
            grants_nothing,
        })
    }

    /// The statement applying this line to `account` (an account already quoted).
    pub fn for_account(&self, account: &str) -> String {
        match self.verb {
            Verb::Grant => {
                let mut statement = format!("GRANT {} TO {account}", self.body);
                if self.grant_option {
                    statement.push_str(" WITH GRANT OPTION");
                }
                if self.admin_option {
                    statement.push_str(" WITH ADMIN OPTION");
                }
                statement
            }
            Verb::Revoke => format!("REVOKE {} FROM {account}", self.body),
            Verb::DefaultRole => format!("SET DEFAULT ROLE {} FOR {account}", self.body),
        }
    }

    /// The statement taking this grant away from `account`, for the grants `REVOKE ALL
    /// PRIVILEGES, GRANT OPTION` leaves: roles and proxies. None for any other line.
    pub fn undo(&self, account: &str) -> Option<String> {
        (self.role_grant || self.proxy_grant)
            .then(|| format!("REVOKE {} FROM {account}", self.body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PENDING: &str = "'app_clone'@'%'";

    fn copy(line: &str) -> Result<Option<String>, UnknownLine> {
        let parsed = GrantLine::parse(line, "app", "%", false)?;
        Ok((!parsed.grants_nothing).then(|| parsed.for_account(PENDING)))
    }

    #[test]
    fn mysql_8_lines_with_partial_revokes_are_copied_in_order() {
        // SHOW GRANTS FOR app@'%' on MySQL 8.0.36 with partial_revokes=ON, after
        // GRANT SELECT, INSERT ON *.* TO app; REVOKE INSERT, SELECT ON mysql.* FROM app; ...
        let shown = [
            "GRANT SELECT, INSERT ON *.* TO `app`@`%`",
            "GRANT APPLICATION_PASSWORD_ADMIN,XA_RECOVER_ADMIN ON *.* TO `app`@`%`",
            "GRANT SELECT (`c`), UPDATE (`c`) ON `shop`.`orders` TO `app`@`%` WITH GRANT OPTION",
            "REVOKE SELECT, INSERT ON `mysql`.* FROM `app`@`%`",
            "REVOKE INSERT ON `sys`.* FROM `app`@`%`",
            "GRANT `reporting`@`%`,`audit`@`localhost` TO `app`@`%` WITH ADMIN OPTION",
        ];
        let copied: Vec<String> = shown.iter().filter_map(|l| copy(l).unwrap()).collect();
        assert_eq!(
            copied,
            [
                "GRANT SELECT, INSERT ON *.* TO 'app_clone'@'%'",
                "GRANT APPLICATION_PASSWORD_ADMIN,XA_RECOVER_ADMIN ON *.* TO 'app_clone'@'%'",
                "GRANT SELECT (`c`), UPDATE (`c`) ON `shop`.`orders` TO 'app_clone'@'%' WITH GRANT OPTION",
                "REVOKE SELECT, INSERT ON `mysql`.* FROM 'app_clone'@'%'",
                "REVOKE INSERT ON `sys`.* FROM 'app_clone'@'%'",
                "GRANT `reporting`@`%`,`audit`@`localhost` TO 'app_clone'@'%' WITH ADMIN OPTION",
            ]
        );
        let roles = GrantLine::parse(shown[5], "app", "%", false).unwrap();
        assert!(roles.role_grant && roles.admin_option);
        assert_eq!(
            roles.undo(PENDING).unwrap(),
            "REVOKE `reporting`@`%`,`audit`@`localhost` FROM 'app_clone'@'%'"
        );
        let revoke = GrantLine::parse(shown[3], "app", "%", false).unwrap();
        assert_eq!(revoke.verb, Verb::Revoke);
        assert!(!revoke.role_grant && revoke.undo(PENDING).is_none());
    }

    #[test]
    fn mysql_5_7_and_ansi_quoted_lines_are_read() {
        assert_eq!(
            copy("GRANT USAGE ON *.* TO 'app'@'%'").unwrap(),
            None,
            "USAGE grants nothing"
        );
        assert_eq!(
            copy("GRANT SELECT ON \"shop\".* TO \"app\"@\"%\"")
                .unwrap()
                .unwrap(),
            "GRANT SELECT ON \"shop\".* TO 'app_clone'@'%'"
        );
        assert_eq!(
            copy("GRANT PROXY ON ''@'' TO 'app'@'%' WITH GRANT OPTION")
                .unwrap()
                .unwrap(),
            "GRANT PROXY ON ''@'' TO 'app_clone'@'%' WITH GRANT OPTION"
        );
    }

    #[test]
    fn mariadb_lines_keep_only_grant_and_admin_options() {
        let usage = "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*D821809F681A40A6E379B50D0463EFAE20BDD122' REQUIRE ISSUER 'x' SUBJECT '/CN=a''b WITH GRANT OPTION' WITH MAX_QUERIES_PER_HOUR 10 MAX_USER_CONNECTIONS 3 MAX_STATEMENT_TIME 2.500000";
        assert_eq!(
            copy(usage).unwrap(),
            None,
            "a quoted WITH GRANT OPTION is a subject, not an option"
        );
        assert_eq!(
            copy("GRANT PROCESS ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*AB' WITH GRANT OPTION MAX_QUERIES_PER_HOUR 3")
                .unwrap()
                .unwrap(),
            "GRANT PROCESS ON *.* TO 'app_clone'@'%' WITH GRANT OPTION"
        );
        assert_eq!(
            copy("GRANT `r5` TO `app`@`%` WITH ADMIN OPTION")
                .unwrap()
                .unwrap(),
            "GRANT `r5` TO 'app_clone'@'%' WITH ADMIN OPTION"
        );
        assert_eq!(
            copy("GRANT PROXY ON `m`@`%` TO `app`@`%`")
                .unwrap()
                .unwrap(),
            "GRANT PROXY ON `m`@`%` TO 'app_clone'@'%'"
        );
        let proxy =
            GrantLine::parse("GRANT PROXY ON `m`@`%` TO `app`@`%`", "app", "%", false).unwrap();
        assert_eq!(
            proxy.undo(PENDING).unwrap(),
            "REVOKE PROXY ON `m`@`%` FROM 'app_clone'@'%'"
        );
        let default =
            GrantLine::parse("SET DEFAULT ROLE `r4` FOR `app`@`%`", "app", "%", false).unwrap();
        assert_eq!(default.verb, Verb::DefaultRole);
        assert_eq!(default.body, "`r4`");
        assert_eq!(
            default.for_account(PENDING),
            "SET DEFAULT ROLE `r4` FOR 'app_clone'@'%'"
        );
    }

    #[test]
    fn quoted_keywords_and_grantee_look_alikes_are_not_taken_for_syntax() {
        // A table named like a grantee clause, and a role named TO.
        assert_eq!(
            copy("GRANT SELECT ON `x TO ``app```.`t` TO `app`@`%`")
                .unwrap()
                .unwrap(),
            "GRANT SELECT ON `x TO ``app```.`t` TO 'app_clone'@'%'"
        );
        let role = GrantLine::parse("GRANT `TO` TO `app`@`%`", "app", "%", false).unwrap();
        assert!(role.role_grant);
        assert_eq!(role.body, "`TO`");
        // Backslash escapes in strings, none with NO_BACKSLASH_ESCAPES.
        let line = r"GRANT USAGE ON *.* TO `app`@`%` REQUIRE SUBJECT 'a\' WITH GRANT OPTION'";
        assert!(
            GrantLine::parse(line, "app", "%", false)
                .unwrap()
                .grants_nothing
        );
        assert!(GrantLine::parse(line, "app", "%", true).is_err());
    }

    #[test]
    fn lines_of_other_accounts_or_unknown_shapes_are_refused() {
        for line in [
            "GRANT SELECT ON *.* TO `other`@`%`",
            "GRANT SELECT ON *.* TO `app`@`localhost`",
            "GRANT SELECT ON *.* TO `app`",
            "GRANT SELECT ON *.* TO `app`@`%",
            "ALTER USER `app`@`%` ACCOUNT LOCK",
            "GRANT TO `app`@`%`",
            "",
        ] {
            assert!(copy(line).is_err(), "{line}");
        }
        assert_eq!(
            GrantLine::parse(
                "GRANT SELECT ON *.* TO `App`@`LOCALHOST`",
                "App",
                "localhost",
                false
            )
            .unwrap()
            .for_account(PENDING),
            "GRANT SELECT ON *.* TO 'app_clone'@'%'",
            "host names compare without case, user names with"
        );
    }
}
