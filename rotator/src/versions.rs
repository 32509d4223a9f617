//! Reading a secret's versions and labels, the way an operator wants to see them.

use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::Client;

pub use rotation::secrets_manager::Labels;

/// The labelled versions of a secret, each with its labels sorted; versions without labels are
/// left out.
pub async fn labels(client: &Client, secret_id: &str) -> Result<Labels, String> {
    let out = client
        .describe_secret()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| format!("DescribeSecret {secret_id}: {}", DisplayErrorContext(e)))?;
    Ok(out
        .version_ids_to_stages()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, stages)| !stages.is_empty())
        .map(|(id, mut stages)| {
            stages.sort();
            (id, stages)
        })
        .collect())
}

/// The version carrying `stage`.
pub fn version_with<'a>(labels: &'a Labels, stage: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(_, stages)| stages.iter().any(|s| s == stage))
        .map(|(id, _)| id.as_str())
}

/// Renders labels as lines `  <version id>  AWSCURRENT, ...`.
pub fn render(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(id, stages)| format!("  {id}  {}\n", stages.join(", ")))
        .collect()
}

/// Renders labels on one line: `<version id>: AWSCURRENT; ...`.
pub fn render_inline(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(id, stages)| format!("{id}: {}", stages.join(",")))
        .collect::<Vec<_>>()
        .join("; ")
}
