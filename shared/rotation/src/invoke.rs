//! Invoking a function through the Lambda Invoke API that `cargo lambda watch` serves.
//!
//! A function error comes back as HTTP 500 (or with `X-Amz-Function-Error`) and
//! `errorType`/`errorMessage`: it is reported, never retried (a rotation step must not run twice
//! behind the caller's back).

use std::time::Duration;

use serde_json::Value;

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The function ran and returned an error.
    #[error("{function}: {error_type}: {message}")]
    Function {
        /// The function name.
        function: String,
        /// The error type the function reported.
        error_type: String,
        /// The error message the function reported.
        message: String,
    },
    /// The Invoke API could not be reached or answered something unexpected.
    #[error("cannot invoke {function} at {endpoint}: {detail}")]
    Transport {
        /// The function name.
        function: String,
        /// The Invoke API endpoint.
        endpoint: String,
        /// What went wrong.
        detail: String,
    },
}

impl InvokeError {
    /// The function's error type, when the function ran and failed.
    pub fn error_type(&self) -> Option<&str> {
        match self {
            InvokeError::Function { error_type, .. } => Some(error_type),
            InvokeError::Transport { .. } => None,
        }
    }
}

/// A client of the Lambda Invoke API at one endpoint.
#[derive(Debug, Clone)]
pub struct LambdaInvoker {
    endpoint: String,
    http: reqwest::Client,
}

impl LambdaInvoker {
    /// A client for `endpoint` (e.g. `http://127.0.0.1:29001`); one invocation may take `timeout`.
    pub fn new(endpoint: &str, timeout: Duration) -> Result<Self, InvokeError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| InvokeError::Transport {
                function: String::new(),
                endpoint: endpoint.to_owned(),
                detail: e.to_string(),
            })?;
        Ok(LambdaInvoker {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// Invokes `function` synchronously with a JSON payload.
    pub async fn invoke(&self, function: &str, payload: &Value) -> Result<Value, InvokeError> {
        self.invoke_raw(function, payload.to_string()).await
    }

    /// Invokes `function` with a raw body (which may be invalid JSON, to test rejection).
    pub async fn invoke_raw(&self, function: &str, body: String) -> Result<Value, InvokeError> {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.endpoint
        );
        let transport = |detail: String| InvokeError::Transport {
            function: function.to_owned(),
            endpoint: self.endpoint.clone(),
            detail,
        };
        let response = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| transport(describe(&e)))?;
        let status = response.status();
        let function_error = response.headers().get("x-amz-function-error").is_some();
        let text = response.text().await.map_err(|e| transport(describe(&e)))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() && !function_error {
            return Ok(value);
        }
        if status.as_u16() == 500 || function_error {
            let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
            return Err(InvokeError::Function {
                function: function.to_owned(),
                error_type: field("errorType").unwrap_or_else(|| "Unhandled".into()),
                message: field("errorMessage").unwrap_or_else(|| value.to_string()),
            });
        }
        Err(transport(format!("HTTP {status}: {value}")))
    }
}

/// An HTTP error with its causes; a timeout says so first.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    if e.is_timeout() {
        format!("timed out waiting for the function ({text})")
    } else {
        text
    }
}
