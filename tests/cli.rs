//! The command line, run as a user would run it.

use std::process::Command;

fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trigger-doctor"));
    // The tests' own environment must not leak into the configuration.
    for (key, _) in std::env::vars() {
        if key.starts_with("TRIGGER_DOCTOR__") {
            cmd.env_remove(key);
        }
    }
    // Nothing listens there: the commands tested here must not need GitLab.
    cmd.env("TRIGGER_DOCTOR__GITLAB__URL", "http://127.0.0.1:9");
    cmd
}

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/gitlab/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn classify_reads_stdin_and_prints_the_json_contract() {
    use std::io::Write;
    let mut child = binary()
        .args(["classify", "--json", "--failure-reason", "script_failure"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            std::fs::read(format!(
                "{}/tests/corpus/classify/001-curl-dns.log",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
            .as_slice(),
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdict["trigger_failure"], true);
    assert_eq!(verdict["causes"][0]["id"], "network.dns");
    assert_eq!(verdict["causes"][0]["confidence"], "high");
}

#[test]
fn help_lists_every_command() {
    let out = binary().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for word in ["serve", "replay", "classify", "check-config", "--config"] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
}

#[test]
fn replay_prints_one_outcome_per_payload() {
    let out = binary()
        .args([
            "replay",
            &fixture("webhook-pipeline.json"),
            &fixture("webhook-job.json"),
            &fixture("webhook-note-mr.json"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["outcome"]["event"], "pipeline");
    assert_eq!(
        lines[0]["outcome"]["recognition"]["kind"],
        "pipeline_succeeded"
    );
    assert_eq!(lines[0]["outcome"]["gitlab_calls"], 0);
    assert_eq!(lines[1]["outcome"]["event"], "job");
    assert_eq!(lines[2]["outcome"]["event"], "note");
}

#[test]
fn replay_of_an_undecodable_payload_names_the_json_path_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("webhook-job.json")).unwrap())
            .unwrap();
    v["build_id"] = "nineteen".into();
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = binary()
        .args(["replay", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        line["error"].as_str().unwrap().contains("build_id"),
        "{line}"
    );
}

#[test]
fn serve_without_a_webhook_secret_refuses_to_start_naming_the_key() {
    let out = binary()
        .arg("serve")
        .env("TRIGGER_DOCTOR__SERVER__LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("webhook.secret_tokens"), "{err}");
}

#[test]
fn a_bad_config_file_key_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("td.toml");
    std::fs::write(&path, "[worker]\nconcurency = 3\n").unwrap();
    let out = binary()
        .args(["--config", path.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("worker.concurency"), "{err}");
}

#[test]
fn check_config_with_a_bad_key_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("td.toml");
    std::fs::write(&path, "[gitlab]\ntokn = \"glpat-not-printed\"\n").unwrap();
    let out = binary()
        .args(["check-config", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("error   configuration: config key `gitlab.tokn`"),
        "{text}"
    );
    assert!(
        text.ends_with("summary: 0 ok, 0 warnings, 1 error\n"),
        "{text}"
    );
    assert!(!text.contains("glpat-not-printed"), "{text}");
}

#[test]
fn check_config_with_a_bad_environment_value_exits_2_naming_the_key() {
    let out = binary()
        .arg("check-config")
        .env("TRIGGER_DOCTOR__GITLAB__TIMEOUT_SECONDS", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("gitlab.timeout_seconds"), "{text}");
}

#[test]
fn the_shipped_config_files_are_valid() {
    for file in ["config/default.toml", "config/example.toml"] {
        let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
        let settings =
            trigger_doctor::config::Settings::load_from(Some(std::path::Path::new(&path)), &[]);
        assert!(settings.is_ok(), "{file}: {:?}", settings.err());
    }
}

/// Runs `classify` (text verdict) over `input` and returns its exit status and output.
fn classify_text(input: &[u8]) -> (Option<i32>, String) {
    use std::io::Write;
    let mut child = binary()
        .arg("classify")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[test]
fn classify_reads_multibyte_and_invalid_text_without_panicking() {
    for input in [
        "HTTP/1.1 403 ſecret= token".as_bytes(),
        "curl /trigger/pipeline é".as_bytes(),
        "$ curl -F token=$TRIGGER_TOKN https://gitlab.example.com/api/v4/projects/é/trigger/pipeline\n{\"error\":\"token is missing\"}".as_bytes(),
        b"curl \xff\xfe /trigger/pipeline \xc3",
    ] {
        let (code, text) = classify_text(input);
        assert_eq!(code, Some(0), "{text}");
        assert!(!text.contains("panicked"), "{text}");
    }
}

#[test]
fn check_config_never_prints_a_password_from_a_malformed_store_url() {
    for url in [
        "host=127.0.0.1 password=hunter2-db",
        "postgres:/u:hunter2-db@h/db",
        "postgres//u:hunter2-db@h/db",
    ] {
        let out = binary()
            .arg("check-config")
            .env("TRIGGER_DOCTOR__STORE__URL", url)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("store.url"), "{text}");
        assert!(!text.contains("hunter2-db"), "{text}");
    }
    // The same value read from a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("url");
    std::fs::write(&path, "host=db password=hunter2-db\n").unwrap();
    let out = binary()
        .arg("check-config")
        .env("TRIGGER_DOCTOR__STORE__URL_FILE", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2-db"));
}
