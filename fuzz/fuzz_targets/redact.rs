//! Fuzzes the secret redaction functions: `redact`, `redact_url`, `token_kind`, `fingerprint`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trigger_doctor::redact;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    let once = redact::redact(&text);
    let twice = redact::redact(&once);
    assert_eq!(
        twice.as_ref(),
        once.as_ref(),
        "redacting the output of redact changed it again"
    );

    let _ = redact::redact_url(&text);
    let _ = redact::token_kind(&text).as_str();
    let _ = redact::fingerprint(&text);
});
