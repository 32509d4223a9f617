//! The rotation event parser: any JSON document either parses into an event or is refused with
//! an error; a parsed event survives its own round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotation::event::RotationEvent;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(event) = RotationEvent::from_value(&value) {
        let again = RotationEvent::from_value(&event.to_value())
            .expect("an event's own JSON parses again");
        assert_eq!(again.step, event.step);
        assert_eq!(again.secret_id, event.secret_id);
        assert_eq!(again.client_request_token, event.client_request_token);
    } else {
        // The error's message is built without panicking.
        let _ = RotationEvent::from_value(&value).map_err(|e| e.to_string());
    }
});
