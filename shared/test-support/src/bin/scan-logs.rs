//! Searches the logs of a test run for every secret the run used, and fails on any hit.
//!
//! `scan-logs FILE...` reads the secrets from the stack's record (`ROTATION_SECRETS_RECORD`,
//! written by the harness: every password it generated, every secret value it created or read,
//! every RotationToken) and from moto's Secrets Manager (every secret field of every version of
//! every secret still there), then searches each FILE for each secret as written, JSON-escaped
//! and Debug-escaped. It prints counts, and for a hit the file, the line number and the
//! secret's length: never a secret. Exit status 1 on any hit, 2 when it cannot run.

use std::collections::BTreeSet;
use std::process::ExitCode;

use aho_corasick::AhoCorasick;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use test_support::stack::secrets_in;

/// Shorter secrets would match by chance; the suite's secrets are all far longer.
const MIN_LEN: usize = 12;

/// Every secret of every version of every secret in moto.
async fn secrets_in_moto() -> Result<Vec<SecretString>, String> {
    let aws = aws_config::load_from_env().await;
    let client = aws_sdk_secretsmanager::Client::new(&aws);
    let mut found = Vec::new();
    let mut pages = client
        .list_secrets()
        .include_planned_deletion(true)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| format!("ListSecrets: {e}"))?;
        for secret in page.secret_list() {
            let Some(arn) = secret.arn() else { continue };
            let versions = client
                .list_secret_version_ids()
                .secret_id(arn)
                .include_deprecated(true)
                .send()
                .await
                .map_err(|e| format!("ListSecretVersionIds: {e}"))?;
            for version in versions.versions() {
                let Some(id) = version.version_id() else {
                    continue;
                };
                let Ok(out) = client
                    .get_secret_value()
                    .secret_id(arn)
                    .version_id(id)
                    .send()
                    .await
                else {
                    continue;
                };
                if let Some(value) = out
                    .secret_string()
                    .and_then(|s| serde_json::from_str::<Value>(s).ok())
                {
                    found.extend(secrets_in(&value));
                }
            }
        }
    }
    Ok(found)
}

/// The recorded secrets, one JSON string per line.
fn recorded() -> Result<Vec<SecretString>, String> {
    let path = std::env::var("ROTATION_SECRETS_RECORD")
        .map_err(|_| "ROTATION_SECRETS_RECORD is not set (source scripts/stack.sh env)")?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| match serde_json::from_str::<Value>(line) {
            Ok(Value::String(s)) => Ok(SecretString::from(s)),
            _ => Err(format!("{path}: line {} is not a JSON string", i + 1)),
        })
        .collect()
}

/// The forms a secret may take in a log: as is, JSON-escaped, Debug-escaped.
fn forms(secret: &str) -> BTreeSet<String> {
    let json = Value::String(secret.to_owned()).to_string();
    let debug = format!("{secret:?}");
    [
        secret.to_owned(),
        json[1..json.len() - 1].to_owned(),
        debug[1..debug.len() - 1].to_owned(),
    ]
    .into_iter()
    .collect()
}

async fn run(files: &[String]) -> Result<usize, String> {
    let mut secrets = recorded()?;
    let recorded = secrets.len();
    let in_moto = secrets_in_moto().await?;
    let from_moto = in_moto.len();
    secrets.extend(in_moto);
    let unique: BTreeSet<String> = secrets
        .iter()
        .map(|s| s.expose_secret().to_owned())
        .filter(|s| s.len() >= MIN_LEN)
        .collect();
    let skipped = secrets
        .iter()
        .filter(|s| s.expose_secret().len() < MIN_LEN)
        .count();
    let secrets: Vec<&String> = unique.iter().collect();
    let mut patterns = Vec::new();
    let mut owner = Vec::new();
    for (i, secret) in secrets.iter().enumerate() {
        for form in forms(secret) {
            patterns.push(form);
            owner.push(i);
        }
    }
    let matcher = AhoCorasick::new(&patterns).map_err(|e| e.to_string())?;
    println!(
        "scan-logs: {} distinct secrets ({recorded} recorded by the tests, {} read from Secrets Manager, {skipped} shorter than {MIN_LEN} bytes skipped), {} search forms",
        secrets.len(),
        from_moto,
        patterns.len()
    );
    let mut hits = 0;
    for file in files {
        let bytes = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
        let text = String::from_utf8_lossy(&bytes);
        let lines = text.lines().count();
        let mut file_hits = 0;
        for found in matcher.find_overlapping_iter(text.as_ref()) {
            let line = text[..found.start()].matches('\n').count() + 1;
            let secret = secrets[owner[found.pattern().as_usize()]];
            println!(
                "scan-logs: HIT in {file} line {line}: a secret of {} bytes",
                secret.len()
            );
            file_hits += 1;
        }
        println!(
            "scan-logs: {file}: {lines} lines, {} bytes, {file_hits} hits",
            bytes.len()
        );
        hits += file_hits;
    }
    Ok(hits)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: scan-logs FILE...");
        return ExitCode::from(2);
    }
    match run(&files).await {
        Ok(0) => {
            println!("scan-logs: zero hits");
            ExitCode::SUCCESS
        }
        Ok(hits) => {
            println!("scan-logs: {hits} hits");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("scan-logs: {e}");
            ExitCode::from(2)
        }
    }
}
