#![doc = include_str!("../README.md")]

pub mod aws_error;
pub mod cache;
pub mod error;

pub use cache::{Error, Failure, SecretCache, Stats, Version, AWSCURRENT, AWSPREVIOUS};
pub use error::FetchError;
