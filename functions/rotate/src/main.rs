//! The function Secrets Manager invokes: runs whichever rotation step the event names, in-process.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    rotation::lambda::serve(None).await
}
