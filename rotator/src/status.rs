//! `status`: a secret's versions with labels and dates, its provider and strategy (from
//! `providers::profile`), mode, schedule, last and next rotation, the timeline of its
//! credentials, and (databases) the live sessions of each credential.

use aws_sdk_secretsmanager::Client;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use rotation::providers;
use rotation::providers::sessions::Sessions;
use rotation::secrets_manager::{SecretsManager, AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotation::Mode;
use serde::Serialize;

use crate::diagnose::{CliError, Context};
use crate::timeline::{self, Life};

/// Credentials drawn in the timeline: the newest ones.
const TIMELINE_ROWS: usize = 10;

/// One version of the secret.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    /// Its id.
    pub id: String,
    /// Its staging labels.
    pub labels: Vec<String>,
    /// When it was created (RFC 3339).
    pub created: Option<String>,
    /// When it was last read (a date, as Secrets Manager records it).
    pub last_accessed: Option<String>,
    #[serde(skip)]
    created_secs: Option<i64>,
}

/// What `status` shows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The ARN.
    pub arn: String,
    /// The name.
    pub name: String,
    /// The rotation mode (`secrets-manager` or `workflow`), or why it is unknown.
    pub mode: String,
    /// The provider, from the current value.
    pub provider: Option<String>,
    /// The strategy.
    pub strategy: Option<String>,
    /// Rotations that retire every credential valid now.
    pub rotations_to_retire: Option<u8>,
    /// Why the provider is unknown.
    pub provider_error: Option<String>,
    /// Whether Secrets Manager's rotation is enabled.
    pub rotation_enabled: bool,
    /// The rotation function.
    pub rotation_lambda_arn: Option<String>,
    /// The schedule: `every N days`, or the expression, and the window.
    pub schedule: Option<String>,
    /// Last rotation (RFC 3339).
    pub last_rotated: Option<String>,
    /// Next scheduled rotation (RFC 3339).
    pub next_rotation: Option<String>,
    /// A rotation in progress: the AWSPENDING version, when not AWSCURRENT.
    pub pending: Option<String>,
    /// The versions, oldest first.
    pub versions: Vec<Version>,
    /// Each credential's periods.
    pub timeline: Vec<Life>,
    /// Databases: the live sessions of each credential (AWSCURRENT, and AWSPREVIOUS when it
    /// names another user).
    pub sessions: Vec<CredentialSessions>,
}

/// The live sessions of one credential, as its own login lists them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialSessions {
    /// The version's label (`AWSCURRENT`, `AWSPREVIOUS`).
    pub label: &'static str,
    /// The user.
    pub user: Option<String>,
    /// Its sessions other than the command's own login.
    pub sessions: Option<Sessions>,
    /// Why they are unknown: the database cannot be reached from here, the login is refused...
    pub unavailable: Option<String>,
}

/// What a login to a database from where the command runs may take.
const SESSIONS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The sessions of each credential of a database secret (AWSCURRENT, and AWSPREVIOUS when it
/// names another user: a single user's previous password no longer logs in), each listed by
/// the credential's own login (TLS verified as the functions verify it, with
/// `ROTATION_DB_CA_FILE` trusted too). A database this machine cannot reach is said so, never
/// an error of the whole status.
async fn credential_sessions(sm: &SecretsManager, arn: &str) -> Vec<CredentialSessions> {
    rotation::tls::install_default_provider();
    let ca_file = std::env::var_os(rotation::config::ENV_DB_CA_FILE)
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from);
    let tls = rotation::tls::client_config(ca_file.as_deref());
    let mut out = Vec::new();
    let mut current_user = None;
    for label in [AWSCURRENT, AWSPREVIOUS] {
        let value = match sm.get_value(arn, None, label).await {
            Ok(Some(value)) => value,
            Ok(None) => continue,
            Err(e) => {
                out.push(CredentialSessions {
                    label,
                    user: None,
                    sessions: None,
                    unavailable: Some(e.to_string()),
                });
                continue;
            }
        };
        let user = providers::parse_object(&value, arn, label)
            .ok()
            .and_then(|fields| fields.get("username")?.as_str().map(str::to_owned));
        if label == AWSPREVIOUS && user.is_some() && user == current_user {
            continue;
        }
        let listed = match &tls {
            Ok(tls) => providers::own_sessions(
                &value,
                arn,
                label,
                tls,
                ca_file.as_deref(),
                SESSIONS_TIMEOUT,
            )
            .await
            .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let (sessions, unavailable) = match listed {
            Ok(None) => return Vec::new(),
            Ok(Some(sessions)) => (Some(sessions), None),
            Err(e) => (None, Some(e)),
        };
        if label == AWSCURRENT {
            current_user = user.clone();
        }
        out.push(CredentialSessions {
            label,
            user,
            sessions,
            unavailable,
        });
    }
    out
}

fn date(d: Option<&DateTime>) -> Option<String> {
    d.and_then(|d| d.fmt(Format::DateTime).ok())
}

/// Reads the status of `secret`.
pub async fn read(client: &Client, context: &Context, secret: &str) -> Result<Status, CliError> {
    let aws_err = |op: &str, e: String| context.aws(secret, &format!("{op}: {e}"));
    let out = client
        .describe_secret()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| aws_err("DescribeSecret", rotation_keyring::aws_error::message(&e)))?;
    let arn = out.arn().unwrap_or(secret).to_owned();
    let tags = out
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
        .collect();
    let mode = Mode::of(&tags, &arn)
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let schedule = out.rotation_rules().map(|rules| {
        let mut text = match (
            rules.automatically_after_days(),
            rules.schedule_expression(),
        ) {
            (_, Some(expr)) => expr.to_owned(),
            (Some(days), None) => format!("every {days} days"),
            (None, None) => "none".to_owned(),
        };
        if let Some(window) = rules.duration() {
            text.push_str(&format!(", window {window}"));
        }
        text
    });
    let stages = out.version_ids_to_stages().cloned().unwrap_or_default();
    let listed = client
        .list_secret_version_ids()
        .secret_id(&arn)
        .include_deprecated(true)
        .send()
        .await
        .map_err(|e| {
            aws_err(
                "ListSecretVersionIds",
                rotation_keyring::aws_error::message(&e),
            )
        })?;
    let mut versions: Vec<Version> = listed
        .versions()
        .iter()
        .filter_map(|v| {
            let id = v.version_id()?.to_owned();
            let mut labels = stages.get(&id).cloned().unwrap_or_default();
            labels.sort();
            Some(Version {
                labels,
                created: date(v.created_date()),
                last_accessed: date(v.last_accessed_date()),
                created_secs: v.created_date().map(|d| d.secs()),
                id,
            })
        })
        .collect();
    // Creation dates have a resolution of a second: within one, AWSPREVIOUS before
    // AWSCURRENT, unlabelled (older) versions first.
    versions.sort_by_key(|v| {
        let rank = if v.labels.iter().any(|l| l == AWSCURRENT) {
            2
        } else {
            u8::from(v.labels.iter().any(|l| l == AWSPREVIOUS))
        };
        (v.created_secs, rank)
    });
    let current = versions
        .iter()
        .find(|v| v.labels.iter().any(|l| l == AWSCURRENT))
        .map(|v| v.id.clone());
    let pending = versions
        .iter()
        .find(|v| v.labels.iter().any(|l| l == AWSPENDING))
        .map(|v| v.id.clone())
        .filter(|p| Some(p) != current.as_ref());
    let sm = SecretsManager::new(client.clone());
    let profile = match sm.require_value(&arn, None, AWSCURRENT).await {
        Ok(value) => providers::profile(&value, &arn, AWSCURRENT).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    // Credentials that were current at some point: every version but a pending one.
    let created: Vec<(String, i64)> = versions
        .iter()
        .filter(|v| Some(&v.id) != pending.as_ref())
        .filter_map(|v| Some((v.id.clone(), v.created_secs?)))
        .collect();
    let profile_is_database = profile
        .as_ref()
        .is_ok_and(|p| matches!(p.provider, "postgres" | "mysql"));
    let grace = match &profile {
        Ok(p) => usize::from(p.rotations_to_retire.saturating_sub(1)),
        Err(_) => 0,
    };
    Ok(Status {
        name: out.name().unwrap_or(secret).to_owned(),
        mode,
        provider: profile.as_ref().ok().map(|p| p.provider.to_owned()),
        strategy: profile.as_ref().ok().map(|p| p.strategy.to_owned()),
        rotations_to_retire: profile.as_ref().ok().map(|p| p.rotations_to_retire),
        provider_error: profile.err(),
        rotation_enabled: out.rotation_enabled().unwrap_or(false),
        rotation_lambda_arn: out.rotation_lambda_arn().map(str::to_owned),
        schedule,
        last_rotated: date(out.last_rotated_date()),
        next_rotation: date(out.next_rotation_date()),
        pending,
        timeline: timeline::lives(&created, grace),
        sessions: if profile_is_database {
            credential_sessions(&sm, &arn).await
        } else {
            Vec::new()
        },
        versions,
        arn,
    })
}

/// Renders a status for the terminal.
pub fn render(s: &Status) -> String {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let mut out = format!("secret      {}\narn         {}\n", s.name, s.arn);
    out.push_str(&format!("mode        {}\n", s.mode));
    match (&s.provider, &s.strategy, &s.provider_error) {
        (Some(p), Some(st), _) => out.push_str(&format!(
            "provider    {p} / {st} ({} rotation(s) retire every valid credential)\n",
            s.rotations_to_retire.unwrap_or(1)
        )),
        (_, _, Some(e)) => out.push_str(&format!("provider    unknown: {e}\n")),
        _ => out.push_str("provider    unknown\n"),
    }
    out.push_str(&format!(
        "rotation    {}{}\nschedule    {}\nlast        {}\nnext        {}\n",
        if s.rotation_enabled {
            "enabled"
        } else {
            "disabled"
        },
        s.rotation_lambda_arn
            .as_ref()
            .map(|a| format!(" ({a})"))
            .unwrap_or_default(),
        or_dash(&s.schedule),
        or_dash(&s.last_rotated),
        or_dash(&s.next_rotation),
    ));
    if let Some(p) = &s.pending {
        out.push_str(&format!(
            "IN PROGRESS AWSPENDING is on {p}: resume it (`rotator rotate --local --resume {}`, or wait for Secrets Manager's retry) or abandon it: aws secretsmanager update-secret-version-stage --secret-id {} --version-stage AWSPENDING --remove-from-version-id {p}\n",
            s.name, s.name
        ));
    }
    if !s.sessions.is_empty() {
        out.push_str("\nsessions (each credential's own login lists them)\n");
        for c in &s.sessions {
            let user = c.user.as_deref().unwrap_or("?");
            match (&c.sessions, &c.unavailable) {
                (Some(found), _) => out.push_str(&format!("  {:<11} {}\n", c.label, found.describe())),
                (None, Some(why)) => out.push_str(&format!(
                    "  {:<11} user {user:?}: unknown, the database cannot be asked from here (the functions reach it from their network): {why}\n",
                    c.label
                )),
                (None, None) => {}
            }
        }
    }
    out.push_str("\nversions (oldest first)\n");
    for v in &s.versions {
        out.push_str(&format!(
            "  {}  created {}  last read {}  {}\n",
            v.id,
            or_dash(&v.created),
            or_dash(&v.last_accessed),
            if v.labels.is_empty() {
                "-".to_owned()
            } else {
                v.labels.join(", ")
            }
        ));
    }
    out.push_str(&format!(
        "\ntimeline (oldest version first, one block per rotation; {})\n",
        if s.rotations_to_retire.unwrap_or(1) > 1 {
            "dual-phase: a replaced credential stays valid until the next rotation"
        } else {
            "single-phase: a replaced credential is revoked at once"
        }
    ));
    let shown = s.timeline.len().saturating_sub(TIMELINE_ROWS);
    if shown > 0 {
        out.push_str(&format!("  ({shown} older versions not drawn)\n"));
    }
    out.push_str(&timeline::draw(&s.timeline[shown..], 8, |id| {
        let labels = s
            .versions
            .iter()
            .find(|v| v.id == id)
            .map(|v| v.labels.join(","))
            .unwrap_or_default();
        format!("{} {labels}", &id[..id.len().min(8)])
    }));
    out
}
