//! IAM users, access keys and their secrets on the stack's moto server, and proofs that a key
//! works (STS GetCallerIdentity signed with it names the user) or is revoked (IAM no longer
//! lists it and STS does not know it).

use aws_sdk_iam::error::ProvideErrorMetadata;
use rotation::Mode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::Stack;

/// An access key: its id and secret.
#[derive(Clone)]
pub struct AccessKey {
    /// The access key id.
    pub id: String,
    /// The secret access key.
    pub secret: SecretString,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessKey({})", self.id)
    }
}

/// An IAM user the test created and its access key.
#[derive(Debug, Clone)]
pub struct IamUser {
    /// The user name.
    pub user: String,
    /// Its access key.
    pub key: AccessKey,
}

/// An IAM user the test created, its first access key, and the rotating secret that holds it.
#[derive(Debug, Clone)]
pub struct IamTestUser {
    /// The ARN of the user's secret.
    pub secret_arn: String,
    /// The user name.
    pub user: String,
    /// The access key the secret was created with.
    pub key: AccessKey,
}

impl Stack {
    /// Creates an IAM user with one access key.
    pub async fn iam_user(&self, prefix: &str) -> IamUser {
        let user = Self::unique(prefix);
        self.iam
            .create_user()
            .user_name(&user)
            .path(crate::template::TEST_BED_IAM_PATH)
            .send()
            .await
            .expect("CreateUser");
        let key = self.create_access_key(&user).await;
        IamUser { user, key }
    }

    /// Creates an access key for `user` (as a crashed createSecret would leave one).
    pub async fn create_access_key(&self, user: &str) -> AccessKey {
        let out = self
            .iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .expect("CreateAccessKey");
        let key = out.access_key().expect("access key");
        let secret = SecretString::from(key.secret_access_key().to_owned());
        crate::stack::record_secret(&secret);
        AccessKey {
            id: key.access_key_id().to_owned(),
            secret,
        }
    }

    /// The secret JSON for `user`'s `key`, PascalCase as `aws iam create-access-key` prints it.
    pub fn iam_secret(user: &str, key: &AccessKey) -> Value {
        json!({
            "provider": "iam-access-key",
            "UserName": user,
            "AccessKeyId": key.id,
            "SecretAccessKey": key.secret.expose_secret(),
        })
    }

    /// An IAM user with one key, and its secret configured for the mode `functions` serve.
    pub async fn iam_user_with_secret(&self, prefix: &str, functions: Mode) -> IamTestUser {
        let IamUser { user, key } = self.iam_user(prefix).await;
        let secret_arn = self
            .create_rotating_secret(
                &Self::unique(prefix),
                &Self::iam_secret(&user, &key),
                functions,
            )
            .await;
        IamTestUser {
            secret_arn,
            user,
            key,
        }
    }

    /// The ids of `user`'s access keys, sorted.
    pub async fn access_keys(&self, user: &str) -> Vec<String> {
        let out = self
            .iam
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .expect("ListAccessKeys");
        let mut ids: Vec<String> = out
            .access_key_metadata()
            .iter()
            .filter_map(|k| k.access_key_id().map(str::to_owned))
            .collect();
        ids.sort();
        ids
    }

    /// The access key the version with `stage` holds (either spelling).
    pub async fn access_key(&self, secret_id: &str, stage: &str) -> AccessKey {
        let value = self.value(secret_id, stage).await;
        let field = |a: &str, b: &str| {
            value[a]
                .as_str()
                .or_else(|| value[b].as_str())
                .unwrap_or_else(|| panic!("{stage} has no {a}"))
                .to_owned()
        };
        AccessKey {
            id: field("AccessKeyId", "accessKeyId"),
            secret: SecretString::from(field("SecretAccessKey", "secretAccessKey")),
        }
    }

    /// The ARN STS GetCallerIdentity returns for a request signed with `key` (this marks the
    /// key as used in IAM, as any application request would).
    pub async fn caller_arn(&self, key: &AccessKey) -> Result<String, String> {
        let credentials = aws_sdk_sts::config::Credentials::new(
            key.id.as_str(),
            key.secret.expose_secret(),
            None,
            None,
            "integration-test",
        );
        let config = aws_sdk_sts::config::Builder::from(&self.aws)
            .credentials_provider(credentials)
            .build();
        aws_sdk_sts::Client::from_conf(config)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| aws_sdk_sts::error::DisplayErrorContext(e).to_string())
            .map(|out| out.arn().unwrap_or_default().to_owned())
    }

    /// The ARN of IAM user `user`.
    pub async fn user_arn(&self, user: &str) -> String {
        self.iam
            .get_user()
            .user_name(user)
            .send()
            .await
            .expect("GetUser")
            .user()
            .expect("user")
            .arn()
            .to_owned()
    }

    /// Asserts that `key` authenticates as `user`.
    pub async fn assert_key_works(&self, user: &str, key: &AccessKey) {
        let expected = self.user_arn(user).await;
        match self.caller_arn(key).await {
            Ok(arn) => assert_eq!(arn, expected, "key {} authenticates as another", key.id),
            Err(e) => panic!("key {} of {user} should work: {e}", key.id),
        }
    }

    /// Asserts that `key` is revoked: IAM no longer lists it, GetAccessKeyLastUsed does not
    /// know it, and a request signed with it is not `user`'s.
    pub async fn assert_key_revoked(&self, user: &str, key: &AccessKey) {
        assert!(
            !self.access_keys(user).await.contains(&key.id),
            "key {} of {user} still exists",
            key.id
        );
        let last_used = self
            .iam
            .get_access_key_last_used()
            .access_key_id(&key.id)
            .send()
            .await;
        assert!(
            last_used
                .as_ref()
                .err()
                .and_then(|e| e.as_service_error())
                .is_some_and(|e| e.code() == Some("NoSuchEntity")),
            "IAM still knows key {}",
            key.id
        );
        let expected = self.user_arn(user).await;
        if let Ok(arn) = self.caller_arn(key).await {
            assert_ne!(arn, expected, "revoked key {} still authenticates", key.id);
        }
    }
}
