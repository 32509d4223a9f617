//! Live sessions: the writer of one secret puts another user's name in its AWSCURRENT version
//! (with the only password it knows, its own user's), on a secret under a compromise response
//! (which terminates sessions) and with the in-use check on (which lists them). The rotation is
//! refused before any session is listed or terminated: the other user's session survives, and
//! nothing the step reports names it.

use rotation::compromise_marker as marker;
use rotation::Mode;
use serde_json::{json, Value};
use test_support::stack::record_value;
use test_support::{Db, Role, Stack};

use crate::in_use::{listed, marker_now, Held};

/// Every warning and the error of `run`, one text.
fn reported(run: &rotator::driver::RotationRun) -> String {
    run.steps
        .iter()
        .map(|s| match &s.result {
            Ok(report) => format!("{}\n{:?}", report.warnings.join("\n"), report.sessions),
            Err(e) => e.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_naming_another_user_gets_none_of_its_sessions_listed_or_terminated() {
    let stack = Stack::from_env().await;
    for db in Db::ALL {
        for alternating in [false, true] {
            let victim = Stack::unique(&format!("{}victim", db.prefix()));
            let victim_password = stack.create_db_user(db, &victim, Role::App).await;
            let application = Stack::unique("victimapp");
            let mut held = Held::open(&stack, db, &victim, &victim_password, &application).await;
            let victim_session = held.id().await;

            // The writer's own user and secret; the attack names the victim in it.
            let writer = Stack::unique(&format!("{}writer", db.prefix()));
            let writer_password = stack.create_db_user(db, &writer, Role::App).await;
            let mut value: Value = stack.db_secret(db, &writer, &writer_password);
            if alternating {
                value["masterarn"] = json!(stack.master_secret(db, false).await.arn);
            }
            let arn = stack
                .create_secret(&Stack::unique("tbsessions"), &value)
                .await;
            stack.tag_secret(&arn, marker::TAG, &marker_now()).await;
            value["username"] = json!(victim);
            record_value(&value);
            stack
                .secrets
                .put_secret_value()
                .secret_id(&arn)
                .secret_string(value.to_string())
                .send()
                .await
                .expect("PutSecretValue");
            stack.enable_rotation(&arn).await;
            let run = stack
                .driver(Mode::SecretsManager)
                .rotate(&arn)
                .await
                .expect("the driver ran");

            let failure = run.failure().expect("the attack is refused");
            assert_ne!(failure.error_type(), Some("CredentialInUse"), "{failure}");
            let text = reported(&run);
            assert!(
                !text.contains(&application),
                "{db:?} alternating={alternating}: the victim's session was listed: {text}"
            );
            assert!(
                listed(&stack, db, victim_session).await,
                "{db:?} alternating={alternating}: the victim's session was terminated"
            );
            stack.assert_db_login(db, &victim, &victim_password).await;
            stack.assert_db_login(db, &writer, &writer_password).await;
        }
    }
}
