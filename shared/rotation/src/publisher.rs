//! Publishing rotation outcomes to EventBridge: one event when a rotation succeeded and one per
//! failed step, on the bus named by `ROTATION_EVENT_BUS` (no bus, no event).
//!
//! Publishing is best effort: the rotation's result does not depend on it (a finished rotation
//! must not be reported as failed because an event was lost). A failure to publish is logged as
//! a warning, and the metrics in the log still count the outcome.
//!
//! Publishing is bounded, so that a failing step reports its own error before Lambda's
//! deadline even when EventBridge hangs (a VPC without an EventBridge endpoint or NAT): one
//! PutEvents call, its SDK retries included, takes at most `ROTATION_PUBLISH_TIMEOUT_MILLISECONDS`
//! and never more than the invocation has left, less [`crate::config::REPORT_MARGIN`].

use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use crate::config::REPORT_MARGIN;
use crate::deadline::Deadline;
use crate::telemetry::{StepTelemetry, DETAIL_TYPE_ROLLED_BACK, EVENT_SOURCE};

/// Publishes the outcome events of [`StepTelemetry`] to one event bus.
#[derive(Debug, Clone)]
pub struct EventPublisher {
    client: Client,
    bus: String,
    timeout: Duration,
}

impl EventPublisher {
    /// A publisher to `bus` (a name or an ARN), each call bounded by `timeout` (retries
    /// included: the SDK's operation timeout, and the same bound around the call).
    pub fn new(aws: &aws_config::SdkConfig, bus: String, timeout: Duration) -> Self {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(timeout)
            .operation_attempt_timeout(timeout)
            .operation_timeout(timeout)
            .build();
        let config = aws_sdk_eventbridge::config::Builder::from(aws)
            .timeout_config(timeouts)
            .build();
        EventPublisher {
            client: Client::from_conf(config),
            bus,
            timeout,
        }
    }

    /// Publishes the outcome if it is a rotation outcome (succeeded or failed), within the
    /// publish timeout and the invocation's `deadline`; logs a warning when EventBridge refuses
    /// it, does not answer in time, or there is no time left.
    pub async fn publish(&self, outcome: &StepTelemetry, deadline: Deadline) {
        let Some(detail_type) = outcome.detail_type() else {
            return;
        };
        if let Err(problem) = self
            .send(
                detail_type,
                &outcome.secret_arn,
                &outcome.detail(),
                deadline,
            )
            .await
        {
            tracing::warn!(
                secret_arn = %outcome.secret_arn,
                event_bus = %self.bus,
                detail_type,
                problem = %problem,
                "cannot publish the rotation outcome to EventBridge"
            );
        }
    }

    /// Publishes a rollback of the secret `secret_arn` ([`DETAIL_TYPE_ROLLED_BACK`], `detail`
    /// as docs/outcomes.md describes it), within the publish timeout; the error says why it
    /// was not published.
    pub async fn publish_rollback(
        &self,
        secret_arn: &str,
        detail: &serde_json::Value,
    ) -> Result<(), String> {
        self.send(DETAIL_TYPE_ROLLED_BACK, secret_arn, detail, Deadline::NONE)
            .await
    }

    /// One PutEvents of one outcome event about `resource`, bounded by the publish timeout and
    /// `deadline`.
    async fn send(
        &self,
        detail_type: &str,
        resource: &str,
        detail: &serde_json::Value,
        deadline: Deadline,
    ) -> Result<(), String> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(detail_type)
            .resources(resource)
            .detail(detail.to_string())
            .build();
        let bound = deadline.remaining().map_or(self.timeout, |left| {
            self.timeout.min(left.saturating_sub(REPORT_MARGIN))
        });
        let sent = if bound.is_zero() {
            None
        } else {
            tokio::time::timeout(bound, self.client.put_events().entries(entry).send())
                .await
                .ok()
        };
        let problem = match sent {
            None => format!(
                "no answer within {} ms (ROTATION_PUBLISH_TIMEOUT_MILLISECONDS, and the invocation's deadline)",
                bound.as_millis()
            ),
            Some(Ok(out)) if out.failed_entry_count() == 0 => return Ok(()),
            Some(Ok(out)) => out
                .entries()
                .iter()
                .find_map(|e| {
                    e.error_code().map(|code| {
                        format!("{code}: {}", e.error_message().unwrap_or("no message"))
                    })
                })
                .unwrap_or_else(|| "the entry was refused".to_owned()),
            Some(Err(e)) => aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string(),
        };
        Err(problem)
    }
}
