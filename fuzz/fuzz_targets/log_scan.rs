//! Fuzzes the job log scanner: `scan_str` on the text, `scan_reader` with 1 KiB chunks on the raw bytes.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use trigger_doctor::evidence::log_scan::{self, ScanOptions};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = log_scan::scan_str(&text);

    let opts = ScanOptions {
        chunk_bytes: 1024,
        max_signals: 50,
    };
    let _ = log_scan::scan_reader(Cursor::new(data), &opts).expect("reading from memory");
});
