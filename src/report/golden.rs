//! Golden files for the report tests: the rendered comment or chat message is compared with
//! `tests/golden/<name>`; `TRIGGER_DOCTOR_UPDATE_GOLDEN=1 cargo test` rewrites the files after a
//! deliberate change, for review in the diff.

/// Asserts that `actual` is the content of `tests/golden/<name>` (or rewrites it when
/// `TRIGGER_DOCTOR_UPDATE_GOLDEN` is set).
pub(crate) fn assert_golden(name: &str, actual: &str) {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("TRIGGER_DOCTOR_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(
        actual, expected,
        "{name} changed: review it, then TRIGGER_DOCTOR_UPDATE_GOLDEN=1 cargo test"
    );
}
