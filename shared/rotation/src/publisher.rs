//! Publishing rotation outcomes to EventBridge: one event when a rotation succeeded and one per
//! failed step, on the bus named by `ROTATION_EVENT_BUS` (no bus, no event).
//!
//! Publishing is best effort: the rotation's result does not depend on it (a finished rotation
//! must not be reported as failed because an event was lost). A failure to publish is logged as
//! a warning, and the metrics in the log still count the outcome.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use crate::telemetry::{StepTelemetry, EVENT_SOURCE};

/// Publishes the outcome events of [`StepTelemetry`] to one event bus.
#[derive(Debug, Clone)]
pub struct EventPublisher {
    client: Client,
    bus: String,
}

impl EventPublisher {
    /// A publisher to `bus` (a name or an ARN).
    pub fn new(aws: &aws_config::SdkConfig, bus: String) -> Self {
        EventPublisher {
            client: Client::new(aws),
            bus,
        }
    }

    /// Publishes the outcome if it is a rotation outcome (succeeded or failed); logs a warning
    /// when EventBridge refuses it.
    pub async fn publish(&self, outcome: &StepTelemetry) {
        let Some(detail_type) = outcome.detail_type() else {
            return;
        };
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(detail_type)
            .resources(&outcome.secret_arn)
            .detail(outcome.detail().to_string())
            .build();
        let problem = match self.client.put_events().entries(entry).send().await {
            Ok(out) if out.failed_entry_count() == 0 => return,
            Ok(out) => out
                .entries()
                .iter()
                .find_map(|e| {
                    e.error_code().map(|code| {
                        format!("{code}: {}", e.error_message().unwrap_or("no message"))
                    })
                })
                .unwrap_or_else(|| "the entry was refused".to_owned()),
            Err(e) => aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string(),
        };
        tracing::warn!(
            secret_arn = %outcome.secret_arn,
            event_bus = %self.bus,
            detail_type,
            problem = %problem,
            "cannot publish the rotation outcome to EventBridge"
        );
    }
}
