//! The `SHOW GRANTS` line reader used by MySQL grant mirroring: any line, in either quoting
//! mode, is read or refused without a panic, and a line it reads yields its statements.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotation::providers::mysql::grants::GrantLine;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    for no_backslash_escapes in [false, true] {
        if let Ok(parsed) = GrantLine::parse(line, "app", "%", no_backslash_escapes) {
            let _ = parsed.for_account("'app_clone'@'%'");
            let _ = parsed.undo("'app_clone'@'%'");
        }
    }
});
