//! Reading a secret's versions and labels, the way an operator wants to see them.

pub use rotation::secrets_manager::{labels, version_with, Labels};

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
