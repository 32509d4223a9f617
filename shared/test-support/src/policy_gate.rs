//! The policy gate: an HTTP proxy between the functions and the local AWS APIs that refuses
//! every call the template's role for the calling function does not allow, as IAM would on
//! AWS. moto's own IAM enforcement cannot stand in for it (for Secrets Manager it checks every
//! call against resource `*` and applies no resource-tag condition: docs/testing.md).
//!
//! For each request the gate
//! 1. finds the calling function from the SDK user agent's app name
//!    (`app/secret-rotation-<function>`, set by `rotation::config::Config::load_aws`); a
//!    request without a known function is refused;
//! 2. derives the action (service prefix + operation, from `X-Amz-Target`, the query
//!    protocol's `Action`, or Lambda's REST path), the resource ARN (a secret's ARN and tags
//!    read from moto, an IAM user's ARN with its path, a DB instance's or cluster's ARN and
//!    tags, the event bus, `*` where AWS documents no resource) and the condition context;
//!    a Secrets Manager call on a secret encrypted with a customer managed key also needs the
//!    KMS call Secrets Manager makes on the caller's behalf (`kms:ViaService`,
//!    `kms:EncryptionContext:SecretARN`);
//! 3. evaluates each with the `iam-rs` evaluator against exactly the policies the template
//!    gives that function's role, resolved for the test bed ([`crate::template`]);
//! 4. refuses with AWS's AccessDenied shape for the protocol, or forwards the request
//!    unchanged to its next hop; and logs every decision (never a body) as one JSON line.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use iam_rs::{
    Arn, Context, ContextValue, Decision, IAMPolicy, IAMRequest, PolicyEvaluator, Principal,
    PrincipalId,
};
use serde_json::{json, Value};

use crate::forward::Host;
use crate::template::{Deployment, Resolved};

/// The prefix of the SDK app name every function sets (`rotation::config::app_name`).
pub const APP_PREFIX: &str = "secret-rotation-";

/// Calls that need no permission at all (AWS documents no IAM action for them).
const NEEDS_NO_PERMISSION: [&str; 1] = ["sts:GetCallerIdentity"];

/// One authorization question: may the role do `action` on `resource` in `context`?
#[derive(Debug, Clone)]
pub struct Check {
    /// `service:Operation`.
    pub action: String,
    /// The resource's ARN, or `*`.
    pub resource: String,
    /// The condition context (keys as AWS spells them).
    pub context: BTreeMap<String, ContextValue>,
}

impl Check {
    fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Check {
            action: action.into(),
            resource: resource.into(),
            context: BTreeMap::new(),
        }
    }

    fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.context
            .insert(key.into(), ContextValue::String(value.into()));
        self
    }
}

/// A function's role: its name and the policies the template gives it.
struct RolePolicies {
    role: String,
    evaluator: PolicyEvaluator,
}

/// Whether the identity policy `document` explicitly denies `action` on `resource` for a
/// request whose context holds `context` (condition keys and their values as strings, e.g.
/// `aws:TokenIssueTime`), evaluated as IAM evaluates it (the same evaluator as the gate).
pub fn explicitly_denies(
    document: &str,
    action: &str,
    resource: &str,
    context: &[(&str, &str)],
) -> Result<bool, String> {
    let policy = IAMPolicy::from_json(document).map_err(|e| format!("the policy: {e}"))?;
    let mut ctx = Context::new();
    for (key, value) in context {
        ctx.insert((*key).to_owned(), ContextValue::String((*value).to_owned()));
    }
    let arn = Arn::parse(resource).map_err(|e| format!("{resource}: {e}"))?;
    let request = IAMRequest::new_with_context(
        Principal::Aws(PrincipalId::String(
            "arn:aws:iam::123456789012:user/u".into(),
        )),
        action.to_owned(),
        arn,
        ctx,
    );
    PolicyEvaluator::with_policies(vec![policy])
        .evaluate(&request)
        .map(|r| r.decision == Decision::Deny)
        .map_err(|e| format!("evaluating the policy: {e}"))
}

/// The gate's decision on one request.
#[derive(Debug)]
pub enum Verdict {
    /// Forward the request.
    Allow,
    /// Refuse it: the check that failed (or none when no function identity was found) and why.
    Deny {
        /// The failed check.
        check: Option<Check>,
        /// The message of the AccessDenied answer.
        message: String,
    },
}

/// The policies of every function, and the lookups the gate makes in moto.
pub struct Gate {
    roles: BTreeMap<String, RolePolicies>,
    deployment: Deployment,
    secrets: aws_sdk_secretsmanager::Client,
    iam: aws_sdk_iam::Client,
    rds: aws_sdk_rds::Client,
    http: reqwest::Client,
    moto_url: String,
    recorder_url: String,
    recorder_services: Vec<String>,
    log: Mutex<std::fs::File>,
}

/// What the gate needs to start.
pub struct GateConfig<'a> {
    /// The template resolved for the test bed.
    pub template: &'a Resolved,
    /// moto's URL (the lookups, and the next hop of most services).
    pub moto_url: String,
    /// The recorder's URL (scripts/rds-recorder.py), the next hop of `recorder_services`.
    pub recorder_url: String,
    /// The SigV4 service names forwarded to the recorder (`rds`, `iam`, `sts`, ...).
    pub recorder_services: Vec<String>,
    /// The decision log (one JSON object per line).
    pub log: &'a Path,
    /// An AWS configuration whose endpoint is moto.
    pub aws: &'a aws_config::SdkConfig,
}

impl Gate {
    /// Builds the gate: every function's role policies, parsed by the evaluator.
    pub fn new(config: GateConfig<'_>) -> Result<Gate, String> {
        let mut roles = BTreeMap::new();
        for (function, role) in config.template.functions() {
            let mut policies = Vec::new();
            for document in config.template.role_policies(role) {
                let text = document.to_string();
                policies.push(
                    IAMPolicy::from_json(&text)
                        .map_err(|e| format!("{role}: the evaluator cannot read a policy: {e}"))?,
                );
            }
            roles.insert(
                function.clone(),
                RolePolicies {
                    role: role.clone(),
                    evaluator: PolicyEvaluator::with_policies(policies),
                },
            );
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(config.log)
            .map_err(|e| format!("{}: {e}", config.log.display()))?;
        Ok(Gate {
            roles,
            deployment: config.template.deployment().clone(),
            secrets: aws_sdk_secretsmanager::Client::new(config.aws),
            iam: aws_sdk_iam::Client::new(config.aws),
            rds: aws_sdk_rds::Client::new(config.aws),
            http: reqwest::Client::new(),
            moto_url: config.moto_url.trim_end_matches('/').to_owned(),
            recorder_url: config.recorder_url.trim_end_matches('/').to_owned(),
            recorder_services: config.recorder_services,
            log: Mutex::new(log),
        })
    }

    /// The functions the gate knows (their Cargo package names).
    pub fn functions(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }

    /// Handles one request: decides, logs, then refuses or forwards.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return plain(StatusCode::BAD_REQUEST, format!("policy gate: {e}")),
        };
        let call = Call::read(&parts, &body);
        let function = call.function.clone();
        let checks = self.checks(&call).await;
        let verdict = self.decide(function.as_deref(), &call, &checks);
        self.record(function.as_deref(), &call, &checks, &verdict);
        match verdict {
            Verdict::Allow => self.forward(&call.service, parts, body).await,
            Verdict::Deny { message, .. } => call.protocol.access_denied(&message),
        }
    }

    /// The decision on `checks` for `function`: every check must be allowed.
    pub fn decide(&self, function: Option<&str>, call: &Call, checks: &[Check]) -> Verdict {
        if checks.len() == 1 && NEEDS_NO_PERMISSION.contains(&checks[0].action.as_str()) {
            return Verdict::Allow;
        }
        let Some(role) = function.and_then(|f| self.roles.get(f)) else {
            return Verdict::Deny {
                check: None,
                message: format!(
                    "The request carries no known function identity (user agent app name {APP_PREFIX}<function>; known: {}): the policy gate refuses it",
                    self.roles.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            };
        };
        let principal = format!(
            "arn:{}:sts::{}:assumed-role/{}/{}",
            self.deployment.partition,
            self.deployment.account,
            role.role,
            function.unwrap_or_default()
        );
        if call.signed_by_other_key {
            return Verdict::Deny {
                check: checks.first().cloned(),
                message: format!(
                    "User: {principal} signed this request with a key that is not the function's own credentials; the policy gate evaluates only the role's calls"
                ),
            };
        }
        for check in checks {
            if !self.allowed(role, &principal, check) {
                return Verdict::Deny {
                    check: Some(check.clone()),
                    message: format!(
                        "User: {principal} is not authorized to perform: {} on resource: {} because no identity-based policy allows the {} action",
                        check.action, check.resource, check.action
                    ),
                };
            }
        }
        Verdict::Allow
    }

    fn allowed(&self, role: &RolePolicies, principal: &str, check: &Check) -> bool {
        let resource = if check.resource == "*" {
            // An action without a resource type: only a statement on "*" (or a pattern that
            // matches anything) applies.
            let service = check.action.split(':').next().unwrap_or_default();
            format!(
                "arn:{}:{service}:{}:{}:*",
                self.deployment.partition, self.deployment.region, self.deployment.account
            )
        } else {
            check.resource.clone()
        };
        let Ok(arn) = Arn::parse(&resource) else {
            return false;
        };
        let mut context = Context::new();
        for (k, v) in &check.context {
            context.insert(k.clone(), v.clone());
        }
        context.insert(
            "aws:PrincipalArn".into(),
            ContextValue::String(self.deployment.role_arn(&role.role)),
        );
        context.insert(
            "aws:PrincipalAccount".into(),
            ContextValue::String(self.deployment.account.clone()),
        );
        context.insert(
            "aws:RequestedRegion".into(),
            ContextValue::String(self.deployment.region.clone()),
        );
        let request = IAMRequest::new_with_context(
            Principal::Aws(PrincipalId::String(principal.to_owned())),
            check.action.clone(),
            arn,
            context,
        );
        matches!(
            role.evaluator.evaluate(&request).map(|r| r.decision),
            Ok(Decision::Allow)
        )
    }

    fn record(&self, function: Option<&str>, call: &Call, checks: &[Check], verdict: &Verdict) {
        let (decision, failed) = match verdict {
            Verdict::Allow => ("allow", None),
            Verdict::Deny { check, .. } => ("deny", check.as_ref()),
        };
        let line = json!({
            "function": function,
            "service": call.service,
            "checks": checks.iter().map(|c| json!({
                "action": c.action,
                "resource": c.resource,
                "context": c.context.keys().collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "decision": decision,
            "denied": failed.map(|c| json!({"action": c.action, "resource": c.resource})),
        });
        if let Ok(mut log) = self.log.lock() {
            let _ = writeln!(log, "{line}");
        }
    }

    async fn forward(
        &self,
        service: &str,
        parts: hyper::http::request::Parts,
        body: Bytes,
    ) -> Response<Full<Bytes>> {
        let upstream = if self.recorder_services.iter().any(|s| s == service) {
            &self.recorder_url
        } else {
            &self.moto_url
        };
        // The Host header goes along unchanged: the recorder checks SigV4 signatures, which
        // cover it.
        let answer = crate::forward::forward(&self.http, upstream, &parts, body, Host::Keep);
        answer
            .await
            .unwrap_or_else(|e| plain(StatusCode::BAD_GATEWAY, format!("policy gate: {e}")))
    }

    /// The authorization checks a call needs.
    pub async fn checks(&self, call: &Call) -> Vec<Check> {
        let d = &self.deployment;
        let (p, r, a) = (&d.partition, &d.region, &d.account);
        let op = call.operation.as_str();
        let action = format!("{}:{op}", call.service);
        match call.service.as_str() {
            "secretsmanager" => self.secrets_manager_checks(call, &action).await,
            "events" => {
                let entries = call.json["Entries"].as_array().cloned().unwrap_or_default();
                if op != "PutEvents" || entries.is_empty() {
                    return vec![Check::new(action, "*")];
                }
                entries
                    .iter()
                    .map(|e| {
                        let bus = e["EventBusName"].as_str().unwrap_or("default");
                        let arn = if bus.starts_with("arn:") {
                            bus.to_owned()
                        } else {
                            format!("arn:{p}:events:{r}:{a}:event-bus/{bus}")
                        };
                        let mut check = Check::new(&action, arn);
                        if let Some(source) = e["Source"].as_str() {
                            check = check.with("events:source", source);
                        }
                        if let Some(detail_type) = e["DetailType"].as_str() {
                            check = check.with("events:detail-type", detail_type);
                        }
                        check
                    })
                    .collect()
            }
            "states" => {
                let arn = call.json["stateMachineArn"].as_str().unwrap_or("*");
                vec![Check::new(action, arn)]
            }
            "lambda" => {
                let name = call.path.split('/').nth(3).unwrap_or_default();
                let name = percent_decode(name);
                let arn = if name.starts_with("arn:") {
                    name
                } else {
                    format!("arn:{p}:lambda:{r}:{a}:function:{name}")
                };
                vec![Check::new("lambda:InvokeFunction", arn)]
            }
            "rds" => self.rds_checks(call, &action).await,
            // CloudWatch signs as `monitoring`; its IAM prefix is `cloudwatch`, and PutMetricData
            // may be conditioned on the namespace. (A CBOR body, the rpcv2 protocol, is not read:
            // the namespace is then missing and a statement that requires it does not apply.)
            "monitoring" => {
                let mut check = Check::new(format!("cloudwatch:{op}"), "*");
                if let Some(namespace) = call
                    .form
                    .get("Namespace")
                    .cloned()
                    .or_else(|| call.json["Namespace"].as_str().map(str::to_owned))
                {
                    check = check.with("cloudwatch:namespace", namespace);
                }
                vec![check]
            }
            "iam" => self.iam_checks(call, &action).await,
            _ => vec![Check::new(action, "*")],
        }
    }

    async fn secrets_manager_checks(&self, call: &Call, action: &str) -> Vec<Check> {
        let d = &self.deployment;
        let Some(secret_id) = call.json["SecretId"].as_str() else {
            return vec![Check::new(action, "*")];
        };
        let described = self
            .secrets
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await;
        let mut check;
        let mut kms_key = None;
        match described {
            Ok(secret) => {
                let arn = secret.arn().unwrap_or(secret_id).to_owned();
                check = Check::new(action, &arn);
                for tag in secret.tags() {
                    if let (Some(k), Some(v)) = (tag.key(), tag.value()) {
                        check = check
                            .with(format!("aws:ResourceTag/{k}"), v)
                            .with(format!("secretsmanager:ResourceTag/{k}"), v);
                    }
                }
                if let Some(lambda) = secret.rotation_lambda_arn() {
                    check = check.with("secretsmanager:resource/AllowRotationLambdaArn", lambda);
                }
                kms_key = secret
                    .kms_key_id()
                    .filter(|k| !k.is_empty() && !k.contains("alias/aws/secretsmanager"))
                    .map(|k| {
                        if k.starts_with("arn:") {
                            k.to_owned()
                        } else {
                            format!("arn:{}:kms:{}:{}:key/{k}", d.partition, d.region, d.account)
                        }
                    })
                    .map(|key| (key, arn));
            }
            Err(_) => {
                let arn = if secret_id.starts_with("arn:") {
                    secret_id.to_owned()
                } else {
                    format!(
                        "arn:{}:secretsmanager:{}:{}:secret:{secret_id}",
                        d.partition, d.region, d.account
                    )
                };
                check = Check::new(action, arn);
            }
        }
        check = check.with("secretsmanager:SecretId", secret_id);
        if let Some(stage) = call.json["VersionStage"].as_str() {
            check = check.with("secretsmanager:VersionStage", stage);
        }
        if call.operation == "TagResource" {
            let keys: Vec<String> = call.json["Tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["Key"].as_str().map(str::to_owned))
                .collect();
            for tag in call.json["Tags"].as_array().into_iter().flatten() {
                if let (Some(k), Some(v)) = (tag["Key"].as_str(), tag["Value"].as_str()) {
                    check = check.with(format!("aws:RequestTag/{k}"), v);
                }
            }
            check
                .context
                .insert("aws:TagKeys".into(), ContextValue::StringList(keys));
        }
        if call.operation == "UntagResource" {
            let keys: Vec<String> = call.json["TagKeys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect();
            check
                .context
                .insert("aws:TagKeys".into(), ContextValue::StringList(keys));
        }
        let mut checks = vec![check];
        // The KMS call Secrets Manager makes on the caller's behalf for a customer managed key.
        let kms_action = match call.operation.as_str() {
            "GetSecretValue" => Some("kms:Decrypt"),
            "PutSecretValue" => Some("kms:GenerateDataKey"),
            _ => None,
        };
        if let (Some(kms_action), Some((key, secret_arn))) = (kms_action, kms_key) {
            checks.push(
                Check::new(kms_action, key)
                    .with(
                        "kms:ViaService",
                        format!("secretsmanager.{}.amazonaws.com", d.region),
                    )
                    .with("kms:EncryptionContext:SecretARN", secret_arn)
                    .with("kms:CallerAccount", d.account.clone()),
            );
        }
        checks
    }

    async fn rds_checks(&self, call: &Call, action: &str) -> Vec<Check> {
        let d = &self.deployment;
        let (kind, id, tag_prefix) = if let Some(id) = call.form.get("DBInstanceIdentifier") {
            ("db", id.clone(), "rds:db-tag")
        } else if let Some(id) = call.form.get("DBClusterIdentifier") {
            ("cluster", id.clone(), "rds:cluster-tag")
        } else {
            return vec![Check::new(action, "*")];
        };
        let arn = if id.starts_with("arn:") {
            id
        } else {
            format!(
                "arn:{}:rds:{}:{}:{kind}:{id}",
                d.partition, d.region, d.account
            )
        };
        let mut check = Check::new(action, &arn);
        if let Ok(out) = self
            .rds
            .list_tags_for_resource()
            .resource_name(&arn)
            .send()
            .await
        {
            for tag in out.tag_list() {
                if let (Some(k), Some(v)) = (tag.key(), tag.value()) {
                    check = check
                        .with(format!("aws:ResourceTag/{k}"), v)
                        .with(format!("{tag_prefix}/{k}"), v);
                }
            }
        }
        vec![check]
    }

    async fn iam_checks(&self, call: &Call, action: &str) -> Vec<Check> {
        // GetAccessKeyLastUsed names only the key: its resource is the key's user.
        let owner = match call.form.get("AccessKeyId") {
            Some(key) if !call.form.contains_key("UserName") => self
                .iam
                .get_access_key_last_used()
                .access_key_id(key)
                .send()
                .await
                .ok()
                .and_then(|o| o.user_name().map(str::to_owned)),
            _ => None,
        };
        let Some(user) = call.form.get("UserName").or(owner.as_ref()) else {
            return vec![Check::new(action, "*")];
        };
        let d = &self.deployment;
        let mut check = match self.iam.get_user().user_name(user).send().await {
            Ok(out) => match out.user() {
                Some(u) => {
                    let mut check = Check::new(action, u.arn());
                    for tag in u.tags() {
                        check = check
                            .with(format!("aws:ResourceTag/{}", tag.key()), tag.value())
                            .with(format!("iam:ResourceTag/{}", tag.key()), tag.value());
                    }
                    check
                }
                None => Check::new(
                    action,
                    format!("arn:{}:iam::{}:user/{user}", d.partition, d.account),
                ),
            },
            Err(_) => Check::new(
                action,
                format!("arn:{}:iam::{}:user/{user}", d.partition, d.account),
            ),
        };
        check = check.with("iam:UserName", user.clone());
        vec![check]
    }
}

/// The AWS protocol of a request: it decides the shape of an AccessDenied answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// AWS JSON 1.0/1.1 (`X-Amz-Target`): Secrets Manager, EventBridge, Step Functions.
    Json,
    /// The query protocol (form bodies with `Action`): IAM, STS, RDS.
    Query,
    /// REST JSON (Lambda's Invoke).
    RestJson,
}

impl Protocol {
    /// AWS's AccessDenied answer in this protocol.
    pub fn access_denied(self, message: &str) -> Response<Full<Bytes>> {
        match self {
            Protocol::Json => Response::builder()
                .status(StatusCode::BAD_REQUEST)
                .header("content-type", "application/x-amz-json-1.1")
                .header("x-amzn-errortype", "AccessDeniedException")
                .body(Full::new(Bytes::from(
                    json!({"__type": "AccessDeniedException", "Message": message}).to_string(),
                )))
                .expect("response"),
            Protocol::RestJson => Response::builder()
                .status(StatusCode::FORBIDDEN)
                .header("content-type", "application/json")
                .header("x-amzn-errortype", "AccessDeniedException")
                .body(Full::new(Bytes::from(
                    json!({"Type": "User", "Message": message}).to_string(),
                )))
                .expect("response"),
            Protocol::Query => Response::builder()
                .status(StatusCode::FORBIDDEN)
                .header("content-type", "text/xml")
                .body(Full::new(Bytes::from(format!(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
                    xml_escape(message),
                    uuid::Uuid::new_v4()
                ))))
                .expect("response"),
        }
    }
}

/// What the gate reads of a request.
#[derive(Debug, Clone)]
pub struct Call {
    /// The calling function, from the user agent's app name.
    pub function: Option<String>,
    /// The SigV4 signing service (`secretsmanager`, `rds`, ...).
    pub service: String,
    /// The operation (`GetSecretValue`, `DescribeDBInstances`, `Invoke`).
    pub operation: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The JSON body (JSON protocols), else null.
    pub json: Value,
    /// The form parameters (query protocol, body or URL).
    pub form: BTreeMap<String, String>,
    /// The request path.
    pub path: String,
    /// Whether the request is signed with another key than the gate's own credentials (the
    /// functions' role): an IAM user's key that a secret holds.
    pub signed_by_other_key: bool,
}

impl Call {
    /// Reads the function, service, operation and parameters of a request.
    pub fn read(parts: &hyper::http::request::Parts, body: &[u8]) -> Call {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let agents = format!("{} {}", header("user-agent"), header("x-amz-user-agent"));
        let function = agents
            .split_whitespace()
            .filter_map(|token| token.strip_prefix("app/"))
            .find_map(|app| app.strip_prefix(APP_PREFIX))
            .map(str::to_owned);
        let authorization = header("authorization");
        let credential = authorization
            .split("Credential=")
            .nth(1)
            .and_then(|c| c.split(',').next())
            .unwrap_or_default();
        let mut scope = credential.split('/');
        let key_id = scope.next().unwrap_or_default().to_owned();
        let service = scope.nth(2).unwrap_or_default().to_owned();
        let own_key = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default();
        let path = parts.uri.path().to_owned();
        let target = header("x-amz-target");
        let mut form: BTreeMap<String, String> = parts
            .uri
            .query()
            .map(|q| parse_form(q.as_bytes()))
            .unwrap_or_default();
        let (protocol, operation, json) = if !target.is_empty() {
            let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
            let json = serde_json::from_slice(body).unwrap_or(Value::Null);
            (Protocol::Json, operation, json)
        } else if path.starts_with("/2015-03-31/functions/") {
            (Protocol::RestJson, "Invoke".to_owned(), Value::Null)
        } else {
            form.extend(parse_form(body));
            let operation = match form.get("Action") {
                Some(action) => action.clone(),
                // The rpcv2 protocol names the operation in the path.
                None => path
                    .split_once("/operation/")
                    .map(|(_, op)| op.to_owned())
                    .unwrap_or_default(),
            };
            (Protocol::Query, operation, Value::Null)
        };
        Call {
            function,
            service,
            operation,
            protocol,
            json,
            form,
            path,
            signed_by_other_key: !key_id.is_empty() && key_id != own_key,
        }
    }
}

fn parse_form(text: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(text)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match (hex(bytes[i + 1]), bytes.get(i + 2).and_then(|b| hex(*b))) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)], uri: &str) -> hyper::http::request::Parts {
        let mut request = Request::builder().method("POST").uri(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.body(()).expect("request").into_parts().0
    }

    const SIGNED_SM: &str = "AWS4-HMAC-SHA256 Credential=testing/20261204/us-east-1/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date, Signature=00";

    #[test]
    fn the_function_comes_from_the_user_agents_app_name() {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        let call = Call::read(
            &parts(
                &[
                    ("user-agent", "aws-sdk-rust/1.3.9 os/linux lang/rust/1.95.0"),
                    (
                        "x-amz-user-agent",
                        "aws-sdk-rust/1.3.9 api/secretsmanager/1.90.0 os/linux app/secret-rotation-set-secret",
                    ),
                    ("x-amz-target", "secretsmanager.GetSecretValue"),
                    ("authorization", SIGNED_SM),
                ],
                "/",
            ),
            br#"{"SecretId":"rotation/a"}"#,
        );
        assert_eq!(call.function.as_deref(), Some("set-secret"));
        assert_eq!(
            (call.service.as_str(), call.operation.as_str()),
            ("secretsmanager", "GetSecretValue")
        );
        assert_eq!(call.protocol, Protocol::Json);
        assert_eq!(call.json["SecretId"], "rotation/a");
        assert!(!call.signed_by_other_key);

        let anonymous = Call::read(
            &parts(
                &[("user-agent", "curl/8"), ("authorization", SIGNED_SM)],
                "/",
            ),
            b"",
        );
        assert_eq!(anonymous.function, None);
        let other_app = Call::read(
            &parts(
                &[
                    ("x-amz-user-agent", "app/someone-else"),
                    ("authorization", SIGNED_SM),
                ],
                "/",
            ),
            b"",
        );
        assert_eq!(other_app.function, None);
    }

    #[test]
    fn query_and_rest_calls_are_read_from_form_and_path() {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        let iam = Call::read(
            &parts(
                &[(
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEKEY000001/20261204/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00",
                )],
                "/",
            ),
            b"Action=ListAccessKeys&Version=2010-05-08&UserName=app%2Bci",
        );
        assert_eq!(
            (iam.service.as_str(), iam.operation.as_str()),
            ("iam", "ListAccessKeys")
        );
        assert_eq!(iam.protocol, Protocol::Query);
        assert_eq!(iam.form["UserName"], "app+ci");
        assert!(
            iam.signed_by_other_key,
            "an IAM user's key, not the function's"
        );

        let invoke = Call::read(
            &parts(
                &[("authorization", "AWS4-HMAC-SHA256 Credential=testing/20261204/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=00")],
                "/2015-03-31/functions/rotate/invocations",
            ),
            b"{}",
        );
        assert_eq!(invoke.protocol, Protocol::RestJson);
        assert_eq!(invoke.service, "lambda");
    }

    #[tokio::test]
    async fn access_denied_has_awss_shape_per_protocol() {
        let json = Protocol::Json.access_denied("User: x is not authorized");
        assert_eq!(json.status(), StatusCode::BAD_REQUEST);
        let body = json.into_body().collect().await.expect("body").to_bytes();
        let body: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body["__type"], "AccessDeniedException");
        assert_eq!(body["Message"], "User: x is not authorized");

        let query = Protocol::Query.access_denied("a <b> & c");
        assert_eq!(query.status(), StatusCode::FORBIDDEN);
        let body = query.into_body().collect().await.expect("body").to_bytes();
        let body = String::from_utf8(body.to_vec()).expect("UTF-8");
        assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
        assert!(
            body.contains("<Message>a &lt;b&gt; &amp; c</Message>"),
            "{body}"
        );
    }

    #[test]
    fn form_values_are_percent_decoded() {
        let form = parse_form(b"Action=DescribeDBInstances&DBInstanceIdentifier=db-a%2Fb+c&X=%");
        assert_eq!(form["Action"], "DescribeDBInstances");
        assert_eq!(form["DBInstanceIdentifier"], "db-a/b c");
        assert_eq!(form["X"], "%");
    }
}
