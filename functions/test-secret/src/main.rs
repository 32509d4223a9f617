//! Runs only the testSecret step (workflow mode and per-step local invocation).

use rotation::{Caller, Step};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    rotation::lambda::serve(Caller::Step(Step::Test)).await
}
