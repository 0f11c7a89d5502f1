//! Fuzzes the per-line parsers: the trigger-call parser (`trigger_call::parse`, line by line
//! and on the whole text), `trigger_call::address` and the log scanner's `token_use`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trigger_doctor::evidence::{log_scan, trigger_call};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = trigger_call::parse(&text);
    for line in text.lines() {
        if let Some(call) = trigger_call::parse(line) {
            let _ = call.reaches_api();
        }
        let _ = trigger_call::address(line);
        let _ = log_scan::token_use(line);
    }
});
