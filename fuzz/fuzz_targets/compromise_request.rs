//! The compromise request parser: any JSON document is a request or a clear refusal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotation::compromise::request::CompromiseRequest;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = CompromiseRequest::from_value(&value).map_err(|e| e.to_string());
});
