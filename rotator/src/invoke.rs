//! The Lambda Invoke API client (it lives in the shared engine, [`rotation::invoke`]).

pub use rotation::invoke::{InvokeError, LambdaInvoker};
