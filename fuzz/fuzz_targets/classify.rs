//! Fuzzes the text classifier: `classify` without a failure reason and with a bridge failure reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trigger_doctor::classify;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = classify::classify(&text, None);
    let _ = classify::classify(&text, Some("downstream_pipeline_creation_failed"));
});
