//! The named values the stack's helpers hand a test: who a database user is, which secret holds
//! it, and with what password. Passwords stay [`SecretString`]s, so Debug output shows none.

use secrecy::SecretString;

/// A user name and its password: a database login, or what a version of a secret holds.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// Its password.
    pub password: SecretString,
}

/// A database user the test created, and the rotating secret that holds its credentials.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// The ARN of the user's secret.
    pub secret_arn: String,
    /// The user name.
    pub user: String,
    /// The password the user was created with (the secret's first AWSCURRENT).
    pub password: SecretString,
}

/// A master user (PostgreSQL: CREATEROLE; MariaDB: all privileges with grant option) and the
/// secret that holds its credentials, for the alternating-users strategy's `masterarn`.
#[derive(Debug, Clone)]
pub struct MasterSecret {
    /// The ARN of the master secret.
    pub arn: String,
    /// The master user name.
    pub user: String,
    /// Its password.
    pub password: SecretString,
}

/// An application user whose secret names a master secret (`masterarn`): what the
/// alternating-users strategy rotates.
#[derive(Debug, Clone)]
pub struct AlternatingUser {
    /// The application user and its secret (the user the rotations clone).
    pub app: TestUser,
    /// The master secret the application's secret names.
    pub master: MasterSecret,
}
