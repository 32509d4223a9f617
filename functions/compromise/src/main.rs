//! The compromise response: rotates every secret a "Secret Compromised" event names, as many
//! times as its provider needs to retire every credential valid before the incident.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    rotation::compromise::lambda::serve().await
}
