//! Many secrets at once: selection by name or tags (the shared [`plan::select`]), bounded
//! concurrency, live progress per secret, and the results table. One secret's failure never
//! stops the others.

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::Client;
use futures::stream::{self, StreamExt};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rotation::compromise::{plan, CompromiseRequest};

use crate::diagnose::{CliError, Context};
use crate::rotate::{Request, Rotator, SecretOutcome};

/// Parses `KEY=VALUE`.
pub fn parse_tag(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("expected KEY=VALUE, got {raw:?}")),
    }
}

/// The secrets named, plus those carrying all `tags`. More than one secret selected by tags
/// needs `all_matching`, so that a loose tag never rotates a fleet by surprise.
pub async fn select(
    client: &Client,
    context: &Context,
    secrets: &[String],
    tags: &BTreeMap<String, String>,
    all_matching: bool,
) -> Result<Vec<String>, CliError> {
    if tags.is_empty() {
        if secrets.is_empty() {
            return Err(CliError::Usage(
                "name at least one secret, or select them with --tag KEY=VALUE".to_owned(),
            ));
        }
        return Ok(secrets.to_vec());
    }
    let request = CompromiseRequest {
        secret_ids: Vec::new(),
        tags: tags.clone(),
        incident: None,
    };
    let tagged = plan::select(client, &request).await.map_err(|e| match e {
        rotation::compromise::CompromiseError::Request(message) => CliError::Usage(message),
        other => context.compromise("(tag selection)", &other),
    })?;
    if tagged.len() > 1 && !all_matching {
        return Err(CliError::Usage(format!(
            "{} secrets carry the tags {tags:?}; pass --all-matching to rotate all of them (try --dry-run first)",
            tagged.len()
        )));
    }
    let mut all = secrets.to_vec();
    all.extend(tagged.into_iter().filter(|arn| !secrets.contains(arn)));
    Ok(all)
}

/// Rotates `secrets`, at most `concurrency` at a time, with a progress line each (on stderr,
/// when it is a terminal and `progress` is on). Outcomes come back in the order given.
pub async fn run_all(
    rotator: &Rotator,
    secrets: &[String],
    request: Request,
    concurrency: usize,
    progress: bool,
) -> Vec<SecretOutcome> {
    let multi = MultiProgress::with_draw_target(if progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template("{spinner} [{elapsed:>4}] {prefix:.bold} {wide_msg}")
        .expect("a valid template");
    let mut outcomes: Vec<(usize, SecretOutcome)> = stream::iter(secrets.iter().enumerate())
        .map(|(i, secret)| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(style.clone());
            bar.set_prefix(secret.clone());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            async move { (i, rotator.run(secret, request, &bar).await) }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    outcomes.sort_by_key(|(i, _)| *i);
    outcomes.into_iter().map(|(_, o)| o).collect()
}

/// The results as text: per secret its rotations and steps with durations, what was retired,
/// and a summary table.
pub fn render(outcomes: &[SecretOutcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        let name = o
            .plan
            .as_ref()
            .map(|p| p.secret_name.as_str())
            .unwrap_or(&o.secret);
        match &o.plan {
            Some(p) => out.push_str(&format!(
                "{name}: {} / {}, {} mode\n",
                p.provider, p.strategy, p.mode
            )),
            None => out.push_str(&format!("{name}\n")),
        }
        if let Some(would) = &o.would {
            out.push_str(&format!("  dry run: {would}\n"));
        }
        if let Some(version) = &o.finished_pending {
            out.push_str(&format!(
                "  finished the rotation in progress first: version {version} (its pending credential predates the incident), then rotated as the provider needs\n"
            ));
        }
        for (n, r) in o.rotations.iter().enumerate() {
            out.push_str(&format!(
                "  rotation {} ({}{}): version {} in {} ms\n",
                n + 1,
                r.started_by,
                if r.resumed { ", resumed" } else { "" },
                r.version,
                r.ms
            ));
            for s in &r.steps {
                out.push_str(&format!(
                    "    {:<13} {:<14} {:<14} {:>7} ms\n",
                    s.step, s.function, s.outcome, s.ms
                ));
            }
        }
        if o.would.is_none() && o.succeeded() {
            for r in &o.retired {
                out.push_str(&format!(
                    "  retired: {} (version {}, was {})\n",
                    r.credential,
                    r.version,
                    r.labels.join(",")
                ));
            }
        }
        if let Some(e) = &o.error {
            out.push_str(&format!("  error: {e}\n"));
        }
        if let Some(state) = &o.state {
            out.push_str(&format!("  state now: {state}\n"));
        }
    }
    let width = outcomes
        .iter()
        .map(|o| name_of(o).len())
        .max()
        .unwrap_or(6)
        .max(6);
    out.push_str(&format!(
        "\n{:<width$}  {:<8}  {:>9}  {:>8}  {}\n",
        "secret", "result", "rotations", "ms", "detail"
    ));
    for o in outcomes {
        let (result, detail) = match (&o.error, &o.would) {
            (Some(_), _) => ("FAILED", o.error_kind.unwrap_or("Error").to_owned()),
            (None, Some(_)) => ("dry-run", "nothing changed".to_owned()),
            (None, None) => ("ok", format!("{} retired", o.retired.len())),
        };
        out.push_str(&format!(
            "{:<width$}  {:<8}  {:>9}  {:>8}  {}\n",
            name_of(o),
            result,
            o.rotations.len(),
            o.ms,
            detail
        ));
    }
    let failed = outcomes.iter().filter(|o| !o.succeeded()).count();
    out.push_str(&format!(
        "{} secret(s): {} succeeded, {failed} failed\n",
        outcomes.len(),
        outcomes.len() - failed
    ));
    out
}

fn name_of(o: &SecretOutcome) -> &str {
    o.plan
        .as_ref()
        .map(|p| p.secret_name.as_str())
        .unwrap_or(&o.secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags_naming_the_bad_one() {
        assert_eq!(
            parse_tag("team=payments").unwrap(),
            ("team".into(), "payments".into())
        );
        assert_eq!(parse_tag("k=").unwrap(), ("k".into(), String::new()));
        assert!(parse_tag("team").unwrap_err().contains("\"team\""));
        assert!(parse_tag("=x").is_err());
    }

    #[test]
    fn the_table_counts_failures() {
        let ok = SecretOutcome {
            secret: "a".into(),
            plan: None,
            rotations: Vec::new(),
            retired: Vec::new(),
            finished_pending: None,
            would: None,
            error: None,
            error_kind: None,
            state: None,
            ms: 5,
        };
        let failed = SecretOutcome {
            secret: "b".into(),
            error: Some("boom".into()),
            error_kind: Some("RotationFailed"),
            ..ok.clone()
        };
        let text = render(&[ok, failed]);
        assert!(
            text.contains("2 secret(s): 1 succeeded, 1 failed"),
            "{text}"
        );
        assert!(text.contains("FAILED"), "{text}");
    }
}
