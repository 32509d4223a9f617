//! The SAM template (infra/template.yaml), read as YAML with CloudFormation's short-form tags
//! turned into their long forms, asserts the security-relevant facts: one role per function,
//! who may write and read secret values, where the VPC goes, and the workflow's task order.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};
use test_support::template::{Deployment, RDS_SCOPE_TAG};

/// Every function: logical id and the Cargo package its CodeUri names.
const FUNCTIONS: [(&str, &str); 6] = [
    ("RotateFunction", "rotate"),
    ("CreateSecretFunction", "create-secret"),
    ("SetSecretFunction", "set-secret"),
    ("TestSecretFunction", "test-secret"),
    ("FinishSecretFunction", "finish-secret"),
    ("CompromiseFunction", "compromise"),
];

/// The template in CloudFormation's long form: the one reader the policy gate uses too.
fn template() -> Value {
    test_support::template::raw()
}

fn resources(t: &Value) -> &Map<String, Value> {
    t["Resources"].as_object().expect("Resources")
}

/// The logical id a `!GetAtt X.Arn` (or `!Ref X`) points to.
fn target(value: &Value) -> Option<&str> {
    value["Fn::GetAtt"][0].as_str().or(value["Ref"].as_str())
}

/// Every statement of a role's inline policies, both branches of an `!If` included.
fn statements(role: &Value) -> Vec<Value> {
    fn flatten(value: &Value, out: &mut Vec<Value>) {
        match value {
            Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
            Value::Object(map) if map.contains_key("Fn::If") => {
                let branches = map["Fn::If"].as_array().expect("!If [c, a, b]");
                flatten(&branches[1], out);
                flatten(&branches[2], out);
            }
            Value::Object(map) if map.contains_key("Ref") => {} // AWS::NoValue
            other => out.push(other.clone()),
        }
    }
    let mut policies = Vec::new();
    flatten(&role["Properties"]["Policies"], &mut policies);
    let mut out = Vec::new();
    for policy in policies {
        flatten(&policy["PolicyDocument"]["Statement"], &mut out);
    }
    out
}

fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// IAM's action matching: `*` and `?` wildcards, case-insensitive.
fn action_matches(pattern: &str, action: &str) -> bool {
    fn matches(p: &[u8], a: &[u8]) -> bool {
        match (p.first(), a.first()) {
            (None, None) => true,
            (Some(b'*'), _) => matches(&p[1..], a) || (!a.is_empty() && matches(p, &a[1..])),
            (Some(b'?'), Some(_)) => matches(&p[1..], &a[1..]),
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => matches(&p[1..], &a[1..]),
            _ => false,
        }
    }
    matches(pattern.as_bytes(), action.as_bytes())
}

/// Whether an Allow statement grants `action`.
fn statement_grants(statement: &Value, action: &str) -> bool {
    statement["Effect"] == "Allow"
        && as_list(&statement["Action"])
            .iter()
            .any(|a| action_matches(a.as_str().unwrap_or_default(), action))
}

/// Whether any statement of `role` grants `action`.
fn grants(role: &Value, action: &str) -> bool {
    statements(role).iter().any(|s| statement_grants(s, action))
}

/// Every IAM role of the template.
fn roles(t: &Value) -> BTreeMap<String, Value> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::IAM::Role")
        .map(|(id, r)| (id.clone(), r.clone()))
        .collect()
}

fn role_of<'a>(t: &'a Value, function: &str) -> &'a str {
    target(&resources(t)[function]["Properties"]["Role"])
        .unwrap_or_else(|| panic!("{function} has no Role of its own"))
}

fn roles_granting(t: &Value, action: &str) -> BTreeSet<String> {
    roles(t)
        .into_iter()
        .filter(|(_, role)| grants(role, action))
        .map(|(id, _)| id)
        .collect()
}

fn role_set(t: &Value, functions: &[&str]) -> BTreeSet<String> {
    functions.iter().map(|f| role_of(t, f).to_owned()).collect()
}

#[test]
fn the_action_matcher_understands_wildcards() {
    assert!(action_matches(
        "secretsmanager:*",
        "secretsmanager:PutSecretValue"
    ));
    assert!(action_matches("*", "secretsmanager:GetSecretValue"));
    assert!(action_matches(
        "SecretsManager:Put*",
        "secretsmanager:PutSecretValue"
    ));
    assert!(!action_matches(
        "secretsmanager:Describe*",
        "secretsmanager:GetSecretValue"
    ));
}

#[test]
fn short_form_tags_are_read_as_their_long_forms() {
    let t = template();
    let rotate = &resources(&t)["RotateFunction"]["Properties"];
    assert_eq!(rotate["Role"], json!({"Fn::GetAtt": ["RotateRole", "Arn"]}));
    assert_eq!(
        rotate["LoggingConfig"]["LogGroup"],
        json!({"Ref": "RotateLogGroup"})
    );
    assert!(rotate["VpcConfig"]["Fn::If"].is_array());
    let secrets = &statements(&roles(&t)["RotateRole"])[0]["Resource"];
    assert!(secrets["Fn::Sub"]
        .as_str()
        .unwrap()
        .contains("${SecretNamePrefix}*"));
}

#[test]
fn every_function_is_arm64_al2023_with_its_own_role_and_log_group() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"], json!(["arm64"]));
    assert_eq!(globals["MemorySize"], 128);
    let functions: BTreeSet<&str> = resources(&t)
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(functions, FUNCTIONS.iter().map(|(id, _)| *id).collect());
    let mut seen_roles = BTreeSet::new();
    for (id, package) in FUNCTIONS {
        let function = &resources(&t)[id];
        let props = &function["Properties"];
        assert_eq!(
            function["Metadata"]["BuildMethod"], "rust-cargolambda",
            "{id}"
        );
        assert_eq!(props["CodeUri"], format!("../functions/{package}"), "{id}");
        for key in ["Runtime", "Architectures"] {
            assert!(props.get(key).is_none(), "{id} overrides {key}");
        }
        assert_eq!(props["LoggingConfig"]["LogFormat"], "JSON", "{id}");
        let role = role_of(&t, id);
        assert_eq!(resources(&t)[role]["Type"], "AWS::IAM::Role", "{id}");
        assert!(
            seen_roles.insert(role.to_owned()),
            "{id} shares the role {role}"
        );
        let trust = &resources(&t)[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"];
        assert_eq!(
            trust[0]["Principal"]["Service"], "lambda.amazonaws.com",
            "{role}"
        );
        let log_group = target(&props["LoggingConfig"]["LogGroup"]).expect("own log group");
        assert_eq!(
            resources(&t)[log_group]["Properties"]["RetentionInDays"],
            json!({"Ref": "LogRetentionDays"}),
            "{log_group}"
        );
        // Its logs permission names its own log group, nothing wider.
        let logs: Vec<Value> = statements(&resources(&t)[role])
            .into_iter()
            .filter(|s| statement_grants(s, "logs:PutLogEvents"))
            .collect();
        assert_eq!(logs.len(), 1, "{role}");
        assert_eq!(target(&logs[0]["Resource"]), Some(log_group), "{role}");
    }
}

#[test]
fn only_the_create_step_and_rotate_can_write_secret_values() {
    let t = template();
    for action in [
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecret",
        "secretsmanager:CreateSecret",
    ] {
        let expected = if action == "secretsmanager:PutSecretValue" {
            role_set(&t, &["RotateFunction", "CreateSecretFunction"])
        } else {
            BTreeSet::new()
        };
        assert_eq!(roles_granting(&t, action), expected, "{action}");
    }
}

#[test]
fn only_the_functions_that_run_create_secret_or_bound_incidents_list_every_version() {
    // createSecret's race check reads deprecated versions, which DescribeSecret does not list;
    // the compromise response finds its incident's versions and counts the last hour's.
    let t = template();
    assert_eq!(
        roles_granting(&t, "secretsmanager:ListSecretVersionIds"),
        role_set(
            &t,
            &[
                "RotateFunction",
                "CreateSecretFunction",
                "CompromiseFunction"
            ]
        )
    );
}

#[test]
fn steps_that_do_not_need_secret_values_cannot_read_them() {
    let t = template();
    assert_eq!(
        roles_granting(&t, "secretsmanager:GetSecretValue"),
        role_set(
            &t,
            &[
                "RotateFunction",
                "CreateSecretFunction",
                "SetSecretFunction",
                "TestSecretFunction",
                "CompromiseFunction",
            ]
        ),
        "finish-secret, the workflow and the schedules must not read secret values"
    );
    // Only the label move is finish-secret's; only setSecret and rotate read master secrets.
    let finish = &roles(&t)[role_of(&t, "FinishSecretFunction")];
    assert!(grants(finish, "secretsmanager:UpdateSecretVersionStage"));
    assert!(!grants(finish, "kms:Decrypt"));
    for (id, may) in [
        ("RotateFunction", true),
        ("SetSecretFunction", true),
        ("CreateSecretFunction", false),
        ("TestSecretFunction", false),
    ] {
        let reads_master = statements(&roles(&t)[role_of(&t, id)]).iter().any(|s| {
            s["Resource"]["Fn::Sub"]
                .as_str()
                .is_some_and(|r| r.contains("${MasterSecretNamePattern}"))
        });
        assert_eq!(reads_master, may, "{id} reading master secrets");
    }
}

#[test]
fn secret_permissions_are_scoped_by_parameter_never_star() {
    let t = template();
    for (id, role) in roles(&t) {
        for s in statements(&role) {
            let actions = as_list(&s["Action"]);
            let on_secrets = actions.iter().any(|a| {
                let a = a.as_str().unwrap_or_default();
                a.starts_with("secretsmanager:") && a != "secretsmanager:ListSecrets"
            });
            if !on_secrets {
                continue;
            }
            for resource in as_list(&s["Resource"]) {
                let scoped = resource["Fn::Sub"].as_str().is_some_and(|r| {
                    r.contains("${SecretNamePrefix}") || r.contains("${MasterSecretNamePattern}")
                }) || resource["Ref"]
                    .as_str()
                    .is_some_and(|r| r.ends_with("SecretArn"));
                assert!(scoped, "{id}: {s} is not scoped by a parameter");
            }
        }
    }
    // The step functions act only on secrets tagged for workflow mode.
    for id in [
        "CreateSecretFunction",
        "SetSecretFunction",
        "TestSecretFunction",
        "FinishSecretFunction",
    ] {
        let first = &statements(&roles(&t)[role_of(&t, id)])[0];
        assert_eq!(
            first["Condition"]["StringEquals"]["secretsmanager:ResourceTag/rotation-mode"],
            "workflow",
            "{id}"
        );
    }
}

#[test]
fn only_database_facing_functions_are_in_the_vpc() {
    let t = template();
    for (id, _) in FUNCTIONS {
        let in_vpc = resources(&t)[id]["Properties"].get("VpcConfig").is_some();
        let database_facing = matches!(
            id,
            "RotateFunction" | "SetSecretFunction" | "TestSecretFunction"
        );
        assert_eq!(in_vpc, database_facing, "{id} VpcConfig");
        let role = &roles(&t)[role_of(&t, id)];
        assert_eq!(
            grants(role, "ec2:CreateNetworkInterface"),
            database_facing,
            "{id} ENI rights"
        );
    }
}

#[test]
fn secrets_manager_mode_rotate_may_be_invoked_only_by_secrets_manager_of_this_account() {
    let t = template();
    let permissions: Vec<&Value> = resources(&t)
        .values()
        .filter(|r| {
            r["Type"] == "AWS::Lambda::Permission"
                && target(&r["Properties"]["FunctionName"]) == Some("RotateFunction")
        })
        .collect();
    assert_eq!(permissions.len(), 1);
    let p = &permissions[0]["Properties"];
    assert_eq!(p["Principal"], "secretsmanager.amazonaws.com");
    assert_eq!(p["SourceAccount"], json!({"Ref": "AWS::AccountId"}));
    let schedule = &resources(&t)["ExampleRotationSchedule"];
    assert_eq!(schedule["Type"], "AWS::SecretsManager::RotationSchedule");
    assert_eq!(
        target(&schedule["Properties"]["RotationLambdaARN"]),
        Some("RotateFunction")
    );
    assert_eq!(
        schedule["Properties"]["RotationRules"]["ScheduleExpression"],
        json!({"Ref": "RotationScheduleExpression"})
    );
}

#[test]
fn the_workflow_runs_create_set_test_finish_each_on_its_function_with_retries_and_a_catch() {
    let t = template();
    let machine = &resources(&t)["RotationWorkflow"]["Properties"];
    let definition = &machine["Definition"];
    let states = definition["States"].as_object().expect("States");
    let mut order = Vec::new();
    let mut name = definition["StartAt"].as_str().expect("StartAt").to_owned();
    loop {
        let state = &states[&name];
        match state["Type"].as_str().unwrap() {
            "Choice" => {
                // Every branch of the token choice must lead to the same next state.
                let next = state["Default"].as_str().unwrap();
                let after = |s: &str| states[s]["Next"].as_str().unwrap().to_owned();
                for choice in state["Choices"].as_array().unwrap() {
                    assert_eq!(after(choice["Next"].as_str().unwrap()), after(next));
                }
                name = next.to_owned();
            }
            "Task" => {
                order.push(name.clone());
                let params = &state["Parameters"];
                let substitution = params["FunctionName"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("${")
                    .trim_end_matches('}');
                let function = target(&machine["DefinitionSubstitutions"][substitution])
                    .expect("a function ARN");
                let step = params["Payload"]["Step"].as_str().unwrap().to_owned();
                let package = FUNCTIONS.iter().find(|(id, _)| *id == function).unwrap().1;
                assert_eq!(
                    package,
                    rotation::Step::ALL
                        .iter()
                        .find(|s| s.as_str() == step)
                        .expect("a known step")
                        .function_name(),
                    "{name} sends {step} to {function}"
                );
                for retry in state["Retry"].as_array().expect("Retry") {
                    let attempts = retry["MaxAttempts"].as_u64().unwrap();
                    assert!((1..=5).contains(&attempts), "{name}: bounded attempts");
                    assert!(
                        retry["BackoffRate"].as_f64().unwrap() > 1.0,
                        "{name}: backoff"
                    );
                    assert!(
                        !as_list(&retry["ErrorEquals"]).contains(&json!("States.ALL")),
                        "{name} must not retry every error (WrongMode, InvalidSecret are final)"
                    );
                }
                let catch = &state["Catch"][0];
                assert_eq!(catch["ErrorEquals"], json!(["States.ALL"]), "{name}");
                assert_eq!(
                    states[catch["Next"].as_str().unwrap()]["Type"],
                    "Fail",
                    "{name}"
                );
                assert!(
                    catch["ResultPath"].is_string(),
                    "{name} records the failure"
                );
                name = state["Next"].as_str().unwrap().to_owned();
            }
            "Pass" => {
                let token = &state["Parameters"]["ClientRequestToken.$"];
                assert!(token.is_string(), "{name} sets the ClientRequestToken");
                name = state["Next"].as_str().unwrap().to_owned();
            }
            "Succeed" => break,
            other => panic!("unexpected state {name} of type {other}"),
        }
    }
    assert_eq!(
        order,
        ["CreateSecret", "SetSecret", "TestSecret", "FinishSecret"]
    );
    assert_eq!(
        states["GenerateToken"]["Parameters"]["ClientRequestToken.$"],
        "States.UUID()"
    );
    // Its role invokes exactly the four step functions.
    let role = &roles(&t)[target(&machine["RoleArn"]).unwrap()];
    let invoked: BTreeSet<String> = statements(role)
        .iter()
        .filter(|s| statement_grants(s, "lambda:InvokeFunction"))
        .flat_map(|s| as_list(&s["Resource"]))
        .map(|r| target(&r).expect("a function of this stack").to_owned())
        .collect();
    let steps = [
        "CreateSecretFunction",
        "SetSecretFunction",
        "TestSecretFunction",
        "FinishSecretFunction",
    ];
    assert_eq!(invoked, steps.map(str::to_owned).into());
}

#[test]
fn schedules_compromise_path_and_alarms_are_wired() {
    let t = template();
    let r = resources(&t);
    let workflow = &r["WorkflowSchedule"]["Properties"]["Target"];
    assert_eq!(target(&workflow["Arn"]), Some("RotationWorkflow"));
    let keyring = &r["KeyringSchedule"]["Properties"]["Target"];
    assert_eq!(
        keyring["Arn"]["Fn::Sub"],
        "arn:${AWS::Partition}:scheduler:::aws-sdk:secretsmanager:rotateSecret"
    );
    let keyring_role = &roles(&t)[target(&keyring["RoleArn"]).unwrap()];
    assert!(grants(keyring_role, "secretsmanager:RotateSecret"));
    assert!(!grants(keyring_role, "secretsmanager:GetSecretValue"));
    assert_ne!(target(&workflow["RoleArn"]), target(&keyring["RoleArn"]));

    let rule = &r["CompromiseRule"]["Properties"];
    assert_eq!(
        rule["EventPattern"]["detail-type"],
        json!(["Secret Compromised"])
    );
    assert_eq!(
        rule["EventPattern"]["source"],
        json!(["secret-rotation.incident"])
    );
    assert_eq!(
        target(&rule["Targets"][0]["Arn"]),
        Some("CompromiseFunction")
    );
    assert!(rule["Targets"][0]["DeadLetterConfig"].is_object());

    let alarm = |metric: &str| {
        r.values()
            .find(|a| {
                a["Type"] == "AWS::CloudWatch::Alarm" && a["Properties"]["MetricName"] == metric
            })
            .unwrap_or_else(|| panic!("no alarm on {metric}"))["Properties"]
            .clone()
    };
    assert_eq!(
        alarm("RotationFailed")["ComparisonOperator"],
        "GreaterThanOrEqualToThreshold"
    );
    let stale = alarm("RotationSucceeded");
    assert_eq!(stale["ComparisonOperator"], "LessThanThreshold");
    assert_eq!(stale["TreatMissingData"], "breaching");
    for a in [alarm("RotationFailed"), stale] {
        assert_eq!(a["Namespace"], json!({"Ref": "MetricsNamespace"}));
        assert_eq!(a["Dimensions"][0]["Value"], rotation::metrics::SERVICE);
    }
    assert_eq!(
        t["Globals"]["Function"]["Environment"]["Variables"]["ROTATION_EVENT_BUS"],
        json!({"Ref": "EventBus"})
    );
}

/// The Lambda permissions of the template, by the logical id of the function they name.
fn permissions_of(t: &Value, function: &str) -> Vec<Value> {
    resources(t)
        .values()
        .filter(|r| {
            r["Type"] == "AWS::Lambda::Permission"
                && target(&r["Properties"]["FunctionName"]) == Some(function)
        })
        .map(|r| r["Properties"].clone())
        .collect()
}

#[test]
fn every_lambda_permission_names_its_only_caller() {
    let t = template();
    let r = resources(&t);
    let prefix_arn = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretNamePrefix}*";
    for (id, _) in FUNCTIONS {
        let permissions = permissions_of(&t, id);
        assert_eq!(permissions.len(), 1, "{id}: one caller, one permission");
        let p = &permissions[0];
        assert_eq!(p["Action"], "lambda:InvokeFunction", "{id}");
        match id {
            "RotateFunction" => {
                assert_eq!(p["Principal"], "secretsmanager.amazonaws.com");
                assert_eq!(p["SourceAccount"], json!({"Ref": "AWS::AccountId"}));
                assert_eq!(p["SourceArn"], json!({"Fn::Sub": prefix_arn}));
            }
            "CompromiseFunction" => {
                assert_eq!(p["Principal"], "events.amazonaws.com");
                assert_eq!(p["SourceAccount"], json!({"Ref": "AWS::AccountId"}));
                assert_eq!(target(&p["SourceArn"]), Some("CompromiseRule"));
                assert_eq!(
                    target(&r["CompromiseRule"]["Properties"]["Targets"][0]["Arn"]),
                    Some(id)
                );
            }
            _ => {
                // A step function: the role the state machine runs as, and nobody else.
                assert_eq!(
                    p["Principal"],
                    json!({"Fn::GetAtt": ["RotationWorkflowRole", "Arn"]}),
                    "{id}"
                );
                assert_eq!(
                    target(&r["RotationWorkflow"]["Properties"]["RoleArn"]),
                    Some("RotationWorkflowRole")
                );
            }
        }
    }
    // No permission lets a service in without naming the source it acts for.
    for (id, p) in r
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Lambda::Permission")
    {
        let p = &p["Properties"];
        assert_ne!(p["Principal"], "*", "{id}");
        if p["Principal"]
            .as_str()
            .is_some_and(|s| s.ends_with(".amazonaws.com"))
        {
            assert!(p.get("SourceArn").is_some(), "{id} has no SourceArn");
            assert!(
                p.get("SourceAccount").is_some(),
                "{id} has no SourceAccount"
            );
        }
    }
}

#[test]
fn only_the_incident_responder_role_may_send_incident_events() {
    let t = template();
    let incident = rotation::compromise::request::SOURCE;
    let parameter = &t["Parameters"]["IncidentResponderRoleArn"];
    assert_eq!(parameter["Type"], "String");
    assert_eq!(
        t["Conditions"]["HasIncidentResponder"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "IncidentResponderRoleArn"}, ""]}]})
    );
    let bus = &resources(&t)["EventBus"]["Properties"];
    let statements = as_list(&bus["Policy"]["Statement"]);
    let deny: Vec<&Value> = statements
        .iter()
        .filter(|s| s["Effect"] == "Deny" && statement_grants_any(s, "events:PutEvents"))
        .collect();
    assert_eq!(deny.len(), 1, "{statements:?}");
    let deny = deny[0];
    assert_eq!(deny["Principal"], "*");
    assert_eq!(
        deny["Resource"]["Fn::Sub"],
        "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"
    );
    // With a responder: every principal but that role is denied the incident source. Without:
    // every principal is.
    let branches = deny["Condition"]["Fn::If"].as_array().expect("!If");
    assert_eq!(branches[0], "HasIncidentResponder");
    for branch in &branches[1..] {
        assert_eq!(branch["StringEquals"]["events:source"], incident);
    }
    assert_eq!(
        branches[1]["ArnNotEquals"]["aws:PrincipalArn"],
        json!({"Ref": "IncidentResponderRoleArn"})
    );
    assert_eq!(branches[2].as_object().unwrap().len(), 1, "{}", branches[2]);
    // The rule starts the response only on that source.
    assert_eq!(
        resources(&t)["CompromiseRule"]["Properties"]["EventPattern"]["source"],
        json!([incident])
    );
}

/// Whether a statement (Allow or Deny) names `action`.
fn statement_grants_any(statement: &Value, action: &str) -> bool {
    as_list(&statement["Action"])
        .iter()
        .any(|a| action_matches(a.as_str().unwrap_or_default(), action))
}

#[test]
fn the_functions_may_publish_only_their_outcome_source() {
    let t = template();
    let publishers = roles_granting(&t, "events:PutEvents");
    let expected = role_set(
        &t,
        &[
            "RotateFunction",
            "CreateSecretFunction",
            "SetSecretFunction",
            "TestSecretFunction",
            "FinishSecretFunction",
        ],
    );
    assert_eq!(publishers, expected, "who may PutEvents");
    for id in &publishers {
        for s in statements(&roles(&t)[id]) {
            if statement_grants(&s, "events:PutEvents") {
                assert_eq!(
                    s["Condition"],
                    json!({"StringEquals": {"events:source": rotation::telemetry::EVENT_SOURCE}}),
                    "{id}: {s}"
                );
                assert_ne!(
                    rotation::telemetry::EVENT_SOURCE,
                    rotation::compromise::request::SOURCE
                );
            }
        }
    }
}

#[test]
fn the_compromise_function_retries_without_rerunning_and_records_incidents_only() {
    let t = template();
    let r = resources(&t);
    let function = &r["CompromiseFunction"]["Properties"];
    let retries = &function["EventInvokeConfig"];
    assert!(
        retries["MaximumRetryAttempts"]
            .as_u64()
            .is_some_and(|n| n <= 2),
        "{retries}"
    );
    assert!(retries["MaximumEventAgeInSeconds"].as_u64().is_some());
    let variables = &function["Environment"]["Variables"];
    for name in [
        rotation::config::ENV_COMPROMISE_MAX_SECRETS,
        rotation::config::ENV_COMPROMISE_MAX_ROTATIONS_PER_HOUR,
    ] {
        assert!(variables[name].is_string(), "{name} is not set");
    }
    // The compromise role sets and removes two tags on secrets, the incident record and the
    // compromise marker, and nothing else, and moves no label, writes no value.
    let role = &roles(&t)[role_of(&t, "CompromiseFunction")];
    for action in ["secretsmanager:TagResource", "secretsmanager:UntagResource"] {
        let tagging: Vec<Value> = statements(role)
            .into_iter()
            .filter(|s| statement_grants(s, action))
            .collect();
        assert_eq!(tagging.len(), 1, "{action}");
        assert_eq!(
            tagging[0]["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"],
            json!([
                rotation::compromise::incident::RECORD_TAG,
                rotation::compromise::marker::TAG
            ]),
            "{action}"
        );
    }
    assert!(grants(role, "secretsmanager:ListSecretVersionIds"));
    for action in [
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
        "events:PutEvents",
    ] {
        assert!(!grants(role, action), "compromise may {action}");
    }
}

#[test]
fn kms_is_usable_only_through_secrets_manager_for_the_stacks_secrets() {
    let t = template();
    let mut seen = 0;
    for (id, role) in roles(&t) {
        for s in statements(&role) {
            if !statement_grants(&s, "kms:Decrypt") {
                continue;
            }
            seen += 1;
            assert_eq!(
                s["Condition"]["StringEquals"]["kms:ViaService"]["Fn::Sub"],
                "secretsmanager.${AWS::Region}.amazonaws.com",
                "{id}"
            );
            let contexts =
                as_list(&s["Condition"]["StringLike"]["kms:EncryptionContext:SecretARN"]);
            assert!(!contexts.is_empty(), "{id}");
            for c in contexts {
                let c = c["Fn::Sub"].as_str().unwrap_or_default();
                assert!(
                    c.contains("${SecretNamePrefix}") || c.contains("${MasterSecretNamePattern}"),
                    "{id}: {c}"
                );
            }
        }
    }
    assert_eq!(
        seen, 7,
        "rotate, create, set, test and compromise decrypt secrets; rotate and set also the masters' own key"
    );
}

#[test]
fn the_workflow_resumes_through_create_secrets_token_and_the_timeouts_fit_the_waits() {
    use rotation::config::variables::{PUBLISH_TIMEOUT, RDS_WAIT, WORKFLOW_RESUME_AFTER};
    let t = template();
    let r = resources(&t);
    let definition = &r["RotationWorkflow"]["Properties"]["Definition"];
    // A run that ended (TimeoutSeconds) left a pending version old enough to be resumed.
    assert_eq!(
        definition["TimeoutSeconds"].as_u64(),
        Some(WORKFLOW_RESUME_AFTER.default_number()),
        "the state machine's TimeoutSeconds is ROTATION_WORKFLOW_RESUME_AFTER_SECONDS' default"
    );
    let states = &definition["States"];
    for step in ["SetSecret", "TestSecret", "FinishSecret"] {
        assert_eq!(
            states[step]["Parameters"]["Payload"]["ClientRequestToken.$"], "$.create.report.token",
            "{step} takes the token createSecret reported (a resumed version's)"
        );
    }
    let retried = as_list(&states["SetSecret"]["Retry"][1]["ErrorEquals"]);
    for error in ["Rds", "Iam", "Timeout"] {
        assert!(retried.contains(&json!(error)), "{error} is retried");
    }
    // The slowest waits fit their functions' timeouts with the reserve for reporting.
    let reserve = PUBLISH_TIMEOUT.default_number() / 1000 + 1;
    let timeout = |function: &str| {
        r[function]["Properties"]["Timeout"]
            .as_u64()
            .or_else(|| t["Globals"]["Function"]["Timeout"].as_u64())
            .unwrap()
    };
    for function in ["RotateFunction", "SetSecretFunction"] {
        assert!(
            timeout(function) >= RDS_WAIT.default_number() + reserve,
            "{function}: {} s cannot hold rds-master's wait",
            timeout(function)
        );
    }
    assert!(
        timeout("TestSecretFunction")
            >= rotation::config::variables::IAM_PROPAGATION_TIMEOUT.default_number() + reserve
    );
    for alarm in ["WorkflowStuckAlarm", "RotationFunctionErrorsAlarm"] {
        assert_eq!(r[alarm]["Type"], "AWS::CloudWatch::Alarm", "{alarm}");
    }
    assert_eq!(r["WorkflowStuckAlarm"]["Properties"]["Threshold"], 3);
}

/// The statements of `role` as `deployment` deploys it (conditions decided).
fn deployed_statements(deployment: &Deployment, role: &str) -> Vec<Value> {
    let resolved = deployment
        .resolve(&template())
        .expect("the template resolves");
    resolved
        .role_policies(role)
        .iter()
        .flat_map(|p| as_list(&p["Statement"]))
        .collect()
}

/// The logical ids of the roles that `deployment` lets do `action`.
fn deployed_roles_granting(deployment: &Deployment, action: &str) -> BTreeSet<String> {
    roles(&template())
        .keys()
        .filter(|id| {
            deployed_statements(deployment, id)
                .iter()
                .any(|s| statement_grants(s, action))
        })
        .cloned()
        .collect()
}

/// The template's defaults: every provider parameter empty.
fn defaults() -> Deployment {
    let mut d = Deployment::test_bed();
    d.parameters.clear();
    d
}

const PROVIDER_ACTIONS: [&str; 9] = [
    "iam:ListAccessKeys",
    "iam:GetAccessKeyLastUsed",
    "iam:CreateAccessKey",
    "iam:DeleteAccessKey",
    "iam:PutUserPolicy",
    "rds:DescribeDBInstances",
    "rds:DescribeDBClusters",
    "rds:ModifyDBInstance",
    "rds:ModifyDBCluster",
];

#[test]
fn a_provider_left_off_grants_nothing() {
    let off = defaults();
    for action in PROVIDER_ACTIONS {
        assert!(
            deployed_roles_granting(&off, action).is_empty(),
            "{action} is granted with every provider off"
        );
    }
    // rds-master needs discovery: the flag alone grants nothing.
    let mut flag_only = defaults();
    flag_only
        .parameters
        .insert("RdsMasterRotation".into(), "true".into());
    assert!(deployed_roles_granting(&flag_only, "rds:ModifyDBInstance").is_empty());
}

#[test]
fn each_provider_permission_goes_only_to_the_steps_that_call_it() {
    let t = template();
    let on = Deployment::test_bed();
    let iam = role_set(&t, &["RotateFunction", "CreateSecretFunction"]);
    for action in &PROVIDER_ACTIONS[..5] {
        assert_eq!(deployed_roles_granting(&on, action), iam, "{action}");
    }
    let discovery = role_set(
        &t,
        &[
            "RotateFunction",
            "CreateSecretFunction",
            "SetSecretFunction",
            "TestSecretFunction",
        ],
    );
    for action in &PROVIDER_ACTIONS[5..7] {
        assert_eq!(deployed_roles_granting(&on, action), discovery, "{action}");
    }
    let master = role_set(&t, &["RotateFunction", "SetSecretFunction"]);
    for action in &PROVIDER_ACTIONS[7..] {
        assert_eq!(deployed_roles_granting(&on, action), master, "{action}");
    }
}

#[test]
fn provider_permissions_are_scoped_by_user_path_and_resource_tag() {
    let on = Deployment::test_bed();
    for s in deployed_statements(&on, "RotateRole") {
        if statement_grants(&s, "iam:CreateAccessKey") || statement_grants(&s, "iam:PutUserPolicy")
        {
            assert_eq!(
                s["Resource"], "arn:aws:iam::123456789012:user/rotation/*",
                "{s}"
            );
        }
        if statement_grants(&s, "rds:DescribeDBInstances")
            || statement_grants(&s, "rds:ModifyDBInstance")
        {
            assert_eq!(
                s["Condition"]["StringEquals"][format!("aws:ResourceTag/{RDS_SCOPE_TAG}")],
                "test-bed",
                "{s}"
            );
            for r in as_list(&s["Resource"]) {
                let r = r.as_str().unwrap_or_default();
                assert!(
                    r.starts_with("arn:aws:rds:us-east-1:123456789012:db:")
                        || r.starts_with("arn:aws:rds:us-east-1:123456789012:cluster:"),
                    "{r}"
                );
            }
        }
    }
}

#[test]
fn both_modes_read_the_same_master_secrets() {
    let on = Deployment::test_bed();
    let masters = |role: &str| -> Vec<Value> {
        deployed_statements(&on, role)
            .into_iter()
            .filter(|s| s["Sid"] == "ReadMasterSecrets" || s["Sid"] == "MasterSecretsKey")
            .collect()
    };
    let rotate = masters("RotateRole");
    assert!(!rotate.is_empty());
    assert_eq!(rotate, masters("SetSecretRole"));
    let read = &rotate[0];
    assert!(statement_grants(read, "secretsmanager:GetSecretValue"));
    assert!(
        statement_grants(read, "secretsmanager:DescribeSecret"),
        "an RDS-managed master's tags"
    );
    for role in ["CreateSecretRole", "TestSecretRole", "FinishSecretRole"] {
        assert!(masters(role).is_empty(), "{role} reads master secrets");
    }
}

#[test]
fn every_arn_names_the_deployments_partition() {
    let mut china = Deployment::test_bed();
    china.partition = "aws-cn".into();
    for key in ["SecretsKmsKeyArn", "MasterSecretsKmsKeyArn"] {
        china.parameters.insert(
            key.into(),
            "arn:aws-cn:kms:cn-north-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                .into(),
        );
    }
    let resolved = china.resolve(&template()).expect("the template resolves");
    for (id, _) in resources(&template()) {
        let Some(resource) = resolved.resource(id) else {
            continue;
        };
        let text = resource.to_string();
        assert!(
            !text.contains("arn:aws:"),
            "{id} names the aws partition: {text}"
        );
    }
}
