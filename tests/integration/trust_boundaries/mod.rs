//! Attacks by a writer of one secret: whoever may call PutSecretValue on a rotated secret, and
//! knows no credential but the ones that secret holds, tries to make a rotation act on something
//! else (another role, the master, another host, another IAM user or DB instance, the
//! compromise trigger). Each test runs the attack through the real functions against the real
//! servers, checks that the rotation is refused with an error naming the rule, and then checks
//! that nothing changed: every other credential still works, no role, membership or grant was
//! added, and the master connected to no host its own secret does not name.

mod compromise;
mod database;
mod iam;
mod logs;
mod mysql_grants;
mod rds_master;
mod sessions;
