//! Filled in by the trust-boundaries work: attacks on rds_master.
