//! Filled in by the trust-boundaries work: attacks on mysql_grants.
