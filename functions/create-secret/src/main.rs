//! Runs only the createSecret step (workflow mode and per-step local invocation).

use rotation::{Caller, Step};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    rotation::lambda::serve(Caller::Step(Step::Create)).await
}
