//! Fuzzes the per-line parsers of the log scanner: `parse_trigger_command` and `token_use`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trigger_doctor::evidence::log_scan;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        if let Some(call) = log_scan::parse_trigger_command(line) {
            let _ = call.reaches_api();
        }
        let _ = log_scan::token_use(line);
    }
});
