//! The function Secrets Manager invokes: runs whichever rotation step the event names, in-process.

use rotation::Caller;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    rotation::lambda::serve(Caller::Rotate).await
}
