//! The SAM template (`infra/template.yaml`), read once for everything that needs it: the
//! `template` tests read its long form ([`raw`]), and the policy gate reads the policies it
//! gives each function's role with the parameters the test bed deploys with resolved
//! ([`Deployment::resolve`]). Nothing of the template is copied by hand.
//!
//! CloudFormation's short-form tags become their long forms (`!Ref x` → `{"Ref": x}`,
//! `!Sub s` → `{"Fn::Sub": s}`, `!GetAtt A.B` → `{"Fn::GetAtt": ["A", "B"]}`); resolving
//! evaluates `Ref`, `Fn::Sub`, `Fn::If`, `Fn::GetAtt`, `Fn::Join`, `Fn::Select`, the condition
//! functions and the pseudo parameters `AWS::Partition`, `AWS::AccountId`, `AWS::Region`,
//! `AWS::StackName` and `AWS::NoValue`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Map, Value};
use serde_yaml_ng::value::TaggedValue;

/// The template's path in the workspace.
pub fn path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../infra/template.yaml"
    ))
}

/// The template as JSON in CloudFormation's long form, intrinsics unresolved.
pub fn raw() -> Value {
    let text = std::fs::read_to_string(path()).expect("infra/template.yaml");
    from_yaml(&text)
}

/// A template's text (YAML with short-form tags) as JSON in the long form.
pub fn from_yaml(text: &str) -> Value {
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).expect("valid YAML");
    to_json(yaml)
}

/// Converts YAML to JSON, turning `!Ref x` into `{"Ref": x}` and `!Name v` into
/// `{"Fn::Name": v}` (`!GetAtt A.B` into `{"Fn::GetAtt": ["A", "B"]}`).
fn to_json(yaml: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => serde_json::to_value(n).expect("number"),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.as_str().expect("string keys").to_owned(), to_json(v)))
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let TaggedValue { tag, value } = *tagged;
            let name = tag.to_string();
            let name = name.trim_start_matches('!');
            let value = to_json(value);
            match name {
                "Ref" | "Condition" => json!({ name: value }),
                "GetAtt" => match value {
                    Value::String(s) => {
                        let (resource, attribute) = s.split_once('.').expect("!GetAtt A.B");
                        json!({"Fn::GetAtt": [resource, attribute]})
                    }
                    other => json!({"Fn::GetAtt": other}),
                },
                other => json!({ format!("Fn::{other}"): value }),
            }
        }
    }
}

/// Where and with which parameters the template is deployed: what resolving it needs.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The partition (`aws`, `aws-cn`, `aws-us-gov`).
    pub partition: String,
    /// The account id.
    pub account: String,
    /// The Region.
    pub region: String,
    /// The stack's name.
    pub stack_name: String,
    /// Parameter values given at deployment (the others take their defaults).
    pub parameters: BTreeMap<String, String>,
}

/// The secret name prefix the test bed deploys with (`SecretNamePrefix`).
pub const TEST_BED_SECRET_PREFIX: &str = "rotation/";
/// Where the test bed's master secrets live (`MasterSecretNamePattern` is this and `*`).
pub const TEST_BED_MASTER_PREFIX: &str = "rotation-masters/";
/// The IAM path of the users the test bed's IAM access key provider may rotate (`IamUserPath`).
pub const TEST_BED_IAM_PATH: &str = "/rotation/";
/// The tag key that scopes the DB instances and clusters the functions may describe or modify.
pub const RDS_SCOPE_TAG: &str = "rotation-scope";
/// The test bed's `RdsScopeTagValue`.
pub const TEST_BED_RDS_SCOPE: &str = "test-bed";
/// The test bed's `SecretsKmsKeyArn` (moto stores a secret's key without using it; the policy
/// gate checks the KMS call Secrets Manager would make with it).
pub const TEST_BED_SECRETS_KEY: &str =
    "arn:aws:kms:us-east-1:123456789012:key/0e5ec2e7-0000-4000-8000-000000000001";
/// The test bed's `MasterSecretsKmsKeyArn`: the master secrets' own key.
pub const TEST_BED_MASTERS_KEY: &str =
    "arn:aws:kms:us-east-1:123456789012:key/0e5ec2e7-0000-4000-8000-000000000002";

impl Deployment {
    /// The deployment the local stack plays: moto's account and Region, every provider on and
    /// scoped ([`TEST_BED_SECRET_PREFIX`], [`TEST_BED_MASTER_PREFIX`], [`TEST_BED_IAM_PATH`],
    /// [`TEST_BED_RDS_SCOPE`]), customer managed keys for the secrets and for the masters
    /// ([`TEST_BED_SECRETS_KEY`], [`TEST_BED_MASTERS_KEY`]), and the stack's event bus
    /// (`ROTATION_EVENT_BUS`).
    pub fn test_bed() -> Self {
        let bus = std::env::var("ROTATION_EVENT_BUS")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "rotation-local".to_owned());
        let parameters = [
            ("SecretNamePrefix", TEST_BED_SECRET_PREFIX.to_owned()),
            (
                "MasterSecretNamePattern",
                format!("{TEST_BED_MASTER_PREFIX}*"),
            ),
            ("IamUserPath", TEST_BED_IAM_PATH.to_owned()),
            ("RdsScopeTagValue", TEST_BED_RDS_SCOPE.to_owned()),
            ("RdsMasterRotation", "true".to_owned()),
            ("SecretsKmsKeyArn", TEST_BED_SECRETS_KEY.to_owned()),
            ("MasterSecretsKmsKeyArn", TEST_BED_MASTERS_KEY.to_owned()),
            ("EventBusName", bus),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Deployment {
            partition: "aws".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
            stack_name: "secret-rotation".into(),
            parameters,
        }
    }

    /// The template with every intrinsic function evaluated for this deployment: conditions
    /// decided, `!If` branches chosen, `AWS::NoValue` removed, and resources that a false
    /// condition leaves out dropped. Physical names are the test bed's: a function is named
    /// after its Cargo package, every other resource after its logical id.
    pub fn resolve(&self, template: &Value) -> Result<Resolved, String> {
        let mut resolver = Resolver {
            deployment: self,
            template,
            parameters: BTreeMap::new(),
            conditions: BTreeMap::new(),
        };
        resolver.read_parameters()?;
        let mut resources = Map::new();
        for (id, resource) in template["Resources"]
            .as_object()
            .ok_or("the template has no Resources")?
        {
            if let Some(condition) = resource["Condition"].as_str() {
                if !resolver.condition(condition)? {
                    continue;
                }
            }
            let value = resolver.eval(resource)?;
            resources.insert(id.clone(), strip(value));
        }
        Ok(Resolved {
            functions: function_roles(template),
            resources,
            deployment: self.clone(),
        })
    }

    /// The ARN of the role with logical id `role` in this deployment.
    pub fn role_arn(&self, role: &str) -> String {
        format!("arn:{}:iam::{}:role/{role}", self.partition, self.account)
    }
}

/// A function and the logical id of its role, for each `AWS::Serverless::Function` whose
/// `CodeUri` names a package of `functions/`.
fn function_roles(template: &Value) -> BTreeMap<String, String> {
    template["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .filter_map(|(_, r)| {
            let package = r["Properties"]["CodeUri"].as_str()?.rsplit('/').next()?;
            let role = &r["Properties"]["Role"];
            let role = role["Fn::GetAtt"][0].as_str().or(role["Ref"].as_str())?;
            Some((package.to_owned(), role.to_owned()))
        })
        .collect()
}

/// The template resolved for one deployment ([`Deployment::resolve`]).
#[derive(Debug, Clone)]
pub struct Resolved {
    functions: BTreeMap<String, String>,
    resources: Map<String, Value>,
    deployment: Deployment,
}

impl Resolved {
    /// The logical id of the role of `function` (its Cargo package name, e.g. `set-secret`).
    pub fn role_of(&self, function: &str) -> Option<&str> {
        self.functions.get(function).map(String::as_str)
    }

    /// Every function (Cargo package name) and its role's logical id.
    pub fn functions(&self) -> &BTreeMap<String, String> {
        &self.functions
    }

    /// The identity policies the template gives the role `role`: its inline policies'
    /// documents, as deployed.
    pub fn role_policies(&self, role: &str) -> Vec<Value> {
        self.resources
            .get(role)
            .and_then(|r| r["Properties"]["Policies"].as_array())
            .into_iter()
            .flatten()
            .map(|p| p["PolicyDocument"].clone())
            .collect()
    }

    /// A resolved resource, by logical id (None when its condition left it out).
    pub fn resource(&self, id: &str) -> Option<&Value> {
        self.resources.get(id)
    }

    /// The deployment this was resolved for.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }
}

/// What `AWS::NoValue` resolves to until [`strip`] removes it.
const NO_VALUE: &str = "\u{0}AWS::NoValue";

/// Removes every `AWS::NoValue` from arrays and objects.
fn strip(value: Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .filter(|v| v != NO_VALUE)
                .map(strip)
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| v != NO_VALUE)
                .map(|(k, v)| (k, strip(v)))
                .collect(),
        ),
        other => other,
    }
}

struct Resolver<'a> {
    deployment: &'a Deployment,
    template: &'a Value,
    parameters: BTreeMap<String, Value>,
    conditions: BTreeMap<String, bool>,
}

impl Resolver<'_> {
    fn read_parameters(&mut self) -> Result<(), String> {
        let declared = self.template["Parameters"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for name in self.deployment.parameters.keys() {
            if !declared.contains_key(name) {
                return Err(format!("the template declares no parameter {name}"));
            }
        }
        for (name, declaration) in declared {
            let text = match self.deployment.parameters.get(&name) {
                Some(given) => given.clone(),
                None => match &declaration["Default"] {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Null => return Err(format!("parameter {name} has no value")),
                    other => other.to_string(),
                },
            };
            let value = if declaration["Type"] == "CommaDelimitedList" {
                Value::Array(
                    text.split(',')
                        .map(|s| Value::String(s.to_owned()))
                        .collect(),
                )
            } else {
                Value::String(text)
            };
            self.parameters.insert(name, value);
        }
        Ok(())
    }

    fn condition(&mut self, name: &str) -> Result<bool, String> {
        if let Some(known) = self.conditions.get(name) {
            return Ok(*known);
        }
        let definition = self.template["Conditions"][name].clone();
        if definition.is_null() {
            return Err(format!("no condition {name}"));
        }
        let value = self.truth(&definition)?;
        self.conditions.insert(name.to_owned(), value);
        Ok(value)
    }

    fn truth(&mut self, value: &Value) -> Result<bool, String> {
        match self.eval(value)? {
            Value::Bool(b) => Ok(b),
            Value::String(s) if s == "true" => Ok(true),
            Value::String(s) if s == "false" => Ok(false),
            other => Err(format!("not a condition: {other}")),
        }
    }

    fn reference(&self, name: &str) -> Result<Value, String> {
        let d = self.deployment;
        Ok(match name {
            "AWS::Partition" => d.partition.clone().into(),
            "AWS::AccountId" => d.account.clone().into(),
            "AWS::Region" => d.region.clone().into(),
            "AWS::StackName" => d.stack_name.clone().into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            "AWS::NoValue" => NO_VALUE.into(),
            _ => match self.parameters.get(name) {
                Some(v) => v.clone(),
                None => self.resource_ref(name)?.into(),
            },
        })
    }

    fn resource(&self, id: &str) -> Result<&Value, String> {
        let resource = &self.template["Resources"][id];
        if resource.is_null() {
            return Err(format!("no resource or parameter {id}"));
        }
        Ok(resource)
    }

    /// What `!Ref` of a resource gives, in the test bed's naming.
    fn resource_ref(&self, id: &str) -> Result<String, String> {
        let resource = self.resource(id)?;
        let d = self.deployment;
        Ok(match resource["Type"].as_str().unwrap_or_default() {
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => self.function_name(id)?,
            "AWS::StepFunctions::StateMachine" => format!(
                "arn:{}:states:{}:{}:stateMachine:{id}",
                d.partition, d.region, d.account
            ),
            "AWS::SQS::Queue" => {
                format!("https://sqs.{}.amazonaws.com/{}/{id}", d.region, d.account)
            }
            "AWS::Events::EventBus" => self.bus_name(id)?,
            _ => id.to_owned(),
        })
    }

    fn function_name(&self, id: &str) -> Result<String, String> {
        let resource = self.resource(id)?;
        resource["Properties"]["CodeUri"]
            .as_str()
            .and_then(|c| c.rsplit('/').next())
            .map(str::to_owned)
            .ok_or_else(|| format!("{id} has no CodeUri"))
    }

    fn bus_name(&self, id: &str) -> Result<String, String> {
        let name = self.resource(id)?["Properties"]["Name"].clone();
        match Resolver::eval_const(self, &name)? {
            Value::String(s) => Ok(s),
            _ => Ok(id.to_owned()),
        }
    }

    /// [`Resolver::eval`] for a value that needs no condition (a resource's name).
    fn eval_const(&self, value: &Value) -> Result<Value, String> {
        let mut inner = Resolver {
            deployment: self.deployment,
            template: self.template,
            parameters: self.parameters.clone(),
            conditions: self.conditions.clone(),
        };
        inner.eval(value)
    }

    /// What `!GetAtt id.attribute` gives, in the test bed's naming.
    fn attribute(&self, id: &str, attribute: &str) -> Result<String, String> {
        let resource = self.resource(id)?;
        let d = self.deployment;
        let (p, r, a) = (&d.partition, &d.region, &d.account);
        Ok(
            match (resource["Type"].as_str().unwrap_or_default(), attribute) {
                ("AWS::Serverless::Function" | "AWS::Lambda::Function", "Arn") => {
                    format!(
                        "arn:{p}:lambda:{r}:{a}:function:{}",
                        self.function_name(id)?
                    )
                }
                ("AWS::IAM::Role", "Arn") => d.role_arn(id),
                ("AWS::Events::EventBus", "Arn") => {
                    format!("arn:{p}:events:{r}:{a}:event-bus/{}", self.bus_name(id)?)
                }
                ("AWS::Events::Rule", "Arn") => format!("arn:{p}:events:{r}:{a}:rule/{id}"),
                ("AWS::Logs::LogGroup", "Arn") => {
                    format!("arn:{p}:logs:{r}:{a}:log-group:{id}:*")
                }
                ("AWS::SQS::Queue", "Arn") => format!("arn:{p}:sqs:{r}:{a}:{id}"),
                ("AWS::StepFunctions::StateMachine", "Arn") => self.resource_ref(id)?,
                (_, attribute) => format!("{id}.{attribute}"),
            },
        )
    }

    fn eval(&mut self, value: &Value) -> Result<Value, String> {
        match value {
            Value::Array(items) => items
                .iter()
                .map(|v| self.eval(v))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Value::Object(map) if map.len() == 1 => {
                let (key, arg) = map.iter().next().expect("one entry");
                self.function(key, arg)
            }
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, v) in map {
                    out.insert(k.clone(), self.eval(v)?);
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    fn function(&mut self, key: &str, arg: &Value) -> Result<Value, String> {
        let list = |arg: &Value, n: usize| -> Result<Vec<Value>, String> {
            match arg.as_array() {
                Some(items) if items.len() == n => Ok(items.clone()),
                _ => Err(format!("{key} takes {n} arguments")),
            }
        };
        match key {
            "Ref" => self.reference(arg.as_str().ok_or("!Ref takes a name")?),
            "Condition" => Ok(Value::Bool(
                self.condition(arg.as_str().ok_or("Condition takes a name")?)?,
            )),
            "Fn::GetAtt" => {
                let parts = match arg {
                    Value::String(s) => s.split_once('.').map(|(a, b)| vec![a.into(), b.into()]),
                    Value::Array(items) => Some(items.clone()),
                    _ => None,
                }
                .ok_or("!GetAtt takes A.B")?;
                let id = parts[0].as_str().ok_or("!GetAtt resource")?;
                let attribute = parts[1].as_str().ok_or("!GetAtt attribute")?;
                self.attribute(id, attribute).map(Value::String)
            }
            "Fn::Sub" => {
                let (text, vars) = match arg {
                    Value::String(s) => (s.clone(), Map::new()),
                    Value::Array(items) if items.len() == 2 => (
                        items[0].as_str().ok_or("!Sub text")?.to_owned(),
                        self.eval(&items[1])?
                            .as_object()
                            .cloned()
                            .ok_or("!Sub variables")?,
                    ),
                    _ => return Err("!Sub takes a string or [string, map]".into()),
                };
                self.sub(&text, &vars).map(Value::String)
            }
            "Fn::Join" => {
                let args = list(arg, 2)?;
                let delimiter = args[0].as_str().ok_or("!Join delimiter")?.to_owned();
                let items = self.eval(&args[1])?;
                let parts = items
                    .as_array()
                    .ok_or("!Join list")?
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned).ok_or("!Join of a non-string"))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Value::String(parts.join(&delimiter)))
            }
            "Fn::Select" => {
                let args = list(arg, 2)?;
                let index: usize = match self.eval(&args[0])? {
                    Value::Number(n) => n.as_u64().unwrap_or(0) as usize,
                    Value::String(s) => s.parse().map_err(|_| "!Select index")?,
                    _ => return Err("!Select index".into()),
                };
                let items = self.eval(&args[1])?;
                items
                    .get(index)
                    .cloned()
                    .ok_or_else(|| "!Select out of range".into())
            }
            "Fn::If" => {
                let args = list(arg, 3)?;
                let name = args[0].as_str().ok_or("!If condition name")?;
                if self.condition(name)? {
                    self.eval(&args[1])
                } else {
                    self.eval(&args[2])
                }
            }
            "Fn::Equals" => {
                let args = list(arg, 2)?;
                Ok(Value::Bool(self.eval(&args[0])? == self.eval(&args[1])?))
            }
            "Fn::Not" => {
                let args = list(arg, 1)?;
                Ok(Value::Bool(!self.truth(&args[0])?))
            }
            "Fn::And" | "Fn::Or" => {
                let items = arg.as_array().ok_or("!And/!Or take a list")?.clone();
                let mut results = Vec::new();
                for item in &items {
                    results.push(self.truth(item)?);
                }
                Ok(Value::Bool(if key == "Fn::And" {
                    results.iter().all(|b| *b)
                } else {
                    results.iter().any(|b| *b)
                }))
            }
            key if key.starts_with("Fn::") => Err(format!("{key} is not supported")),
            _ => {
                let mut out = Map::new();
                out.insert(key.to_owned(), self.eval(arg)?);
                Ok(Value::Object(out))
            }
        }
    }

    /// `${Name}` and `${Resource.Attribute}` replaced; `${!Literal}` stays `${Literal}`.
    fn sub(&mut self, text: &str, vars: &Map<String, Value>) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or("!Sub: unclosed ${")?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(v.as_str().ok_or("!Sub variable of a non-string")?);
            } else if let Some((id, attribute)) = name.split_once('.') {
                out.push_str(&self.attribute(id, attribute)?);
            } else {
                match self.reference(name)? {
                    Value::String(s) => out.push_str(&s),
                    other => return Err(format!("!Sub of ${{{name}}}, a list: {other}")),
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_bed_resolves_every_role_of_the_template() {
        let resolved = Deployment::test_bed().resolve(&raw()).expect("resolves");
        assert_eq!(resolved.role_of("rotate"), Some("RotateRole"));
        for (function, role) in resolved.functions() {
            let policies = resolved.role_policies(role);
            assert!(!policies.is_empty(), "{function}: {role} has no policy");
            let text = serde_json::to_string(&policies).expect("JSON");
            assert!(!text.contains("Fn::"), "{role}: unresolved: {text}");
            assert!(!text.contains("AWS::NoValue"), "{role}: {text}");
        }
    }

    #[test]
    fn sub_if_and_conditions_follow_cloudformation() {
        let template = from_yaml(
            r#"
Parameters:
  Prefix: {Type: String, Default: "a/"}
  Empty: {Type: String, Default: ""}
  List: {Type: CommaDelimitedList, Default: ""}
Conditions:
  HasEmpty: !Not [!Equals [!Ref Empty, ""]]
  HasList: !Not [!Equals [!Join ["", !Ref List], ""]]
  Both: !And [!Condition HasEmpty, !Condition HasList]
Resources:
  R:
    Type: AWS::IAM::Role
    Properties:
      X: !Sub arn:${AWS::Partition}:s:${AWS::Region}:${AWS::AccountId}:secret:${Prefix}* ${!Literal}
      Y: [!If [HasEmpty, one, !Ref AWS::NoValue], two]
      Z: !If [Both, yes, no]
      A: !GetAtt R.Arn
"#,
        );
        let mut d = Deployment::test_bed();
        d.parameters.clear();
        let resolved = d.resolve(&template).expect("resolves");
        let r = &resolved.resource("R").expect("R")["Properties"];
        assert_eq!(
            r["X"],
            "arn:aws:s:us-east-1:123456789012:secret:a/* ${Literal}"
        );
        assert_eq!(r["Y"], json!(["two"]));
        assert_eq!(r["Z"], "no");
        assert_eq!(r["A"], "arn:aws:iam::123456789012:role/R");
    }
}
