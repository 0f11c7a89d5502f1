//! `trigger-doctor check-config` against the fake GitLab: the library's report, and the binary's
//! lines and exit code.

use serde_json::{json, Value};
use trigger_doctor::check_config::{self, Level, Options, Report, SetupCheck};
use trigger_doctor::config::Settings;
use trigger_doctor::gitlab::ProjectRef;
use trigger_doctor::timestamp::Timestamp;

use crate::fake_gitlab::{FakeGitlab, DEVELOPER};
use crate::helpers::{date_in, fixture_with};

const BOT_TOKEN: &str = "glpat-check-config-bot-token";
const HOOK_SECRET: &str = "check-config-hook-secret";
const SERVICE: &str = "https://td.example.com";

fn settings(gitlab: &FakeGitlab, extra: &[(&str, &str)]) -> Settings {
    let mut env: Vec<(String, String)> = vec![
        ("TRIGGER_DOCTOR__GITLAB__URL".into(), gitlab.url()),
        ("TRIGGER_DOCTOR__GITLAB__TOKEN".into(), BOT_TOKEN.into()),
        ("TRIGGER_DOCTOR__GITLAB__MAX_RETRIES".into(), "0".into()),
        (
            "TRIGGER_DOCTOR__WEBHOOK__SECRET_TOKENS".into(),
            HOOK_SECRET.into(),
        ),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings::load_from(None, &env).expect("test settings are valid")
}

fn options(projects: &[&str], url: Option<&str>) -> Options {
    Options {
        config_file: None,
        projects: projects.iter().map(|p| ProjectRef::parse(p)).collect(),
        service_url: url.map(str::to_string),
    }
}

/// GitLab's documented hook entity, pointing at `url`, with `edit` applied.
fn hook(id: u64, url: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let body = fixture_with("api-project-hook.json", |v| {
        v["id"] = json!(id);
        v["url"] = json!(url);
        edit(v);
    });
    serde_json::from_slice(&body).unwrap()
}

/// `grp/app` (id 1) with one complete hook to this service.
async fn fake_with_good_hook() -> FakeGitlab {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(1, "grp/app");
    gitlab.with(|s| {
        s.hooks.insert(
            1,
            vec![hook(7, &format!("{SERVICE}/webhooks/gitlab"), |_| {})],
        )
    });
    gitlab
}

fn find<'a>(report: &'a Report, subject: &str, level: Level) -> Vec<&'a SetupCheck> {
    report
        .checks
        .iter()
        .filter(|c| c.subject == subject && c.level == level)
        .collect()
}

#[tokio::test]
async fn a_complete_set_up_has_no_warnings_and_exits_zero() {
    let gitlab = fake_with_good_hook().await;
    let report = check_config::run(
        &settings(&gitlab, &[]),
        &options(&["grp/app"], Some(SERVICE)),
    )
    .await;
    let text = report.render();
    assert_eq!(report.exit_code(), 0, "{text}");
    assert_eq!(report.count(Level::Warning), 0, "{text}");
    for line in [
        "ok      token: \"trigger-doctor\" (id 1) is active\n",
        "ok      token: scopes: api\n",
        "ok      token: never expires\n",
        "ok      user: the bot is @trigger-doctor (id 99)\n",
        "ok      instance: GitLab 18.5.1-ee (revision abc123)\n",
        "ok      grp/app hook #7: https://td.example.com/webhooks/gitlab points at this service\n",
        "ok      grp/app hook #7: sends Pipeline events, Job events, Comments and Confidential comments\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    assert!(
        text.ends_with("summary: 12 ok, 0 warnings, 0 errors\n"),
        "{text}"
    );
    assert_eq!(gitlab.calls_to("/projects/grp%2Fapp/hooks"), 1);
}

#[tokio::test]
async fn a_token_expiring_within_two_weeks_is_a_warning_but_not_a_failure() {
    let gitlab = fake_with_good_hook().await;
    let date = date_in(5);
    gitlab.with(|s| s.token_self["expires_at"] = json!(date));
    let report = check_config::run(&settings(&gitlab, &[]), &options(&[], None)).await;
    let warnings = find(&report, "token", Level::Warning);
    assert_eq!(warnings.len(), 1, "{}", report.render());
    assert!(warnings[0]
        .message
        .starts_with(&format!("expires on {date} (in 4 days)")));
    assert_eq!(report.exit_code(), 0);

    let date = date_in(40);
    gitlab.with(|s| s.token_self["expires_at"] = json!(date));
    let report = check_config::run(&settings(&gitlab, &[]), &options(&[], None)).await;
    assert_eq!(report.count(Level::Warning), 0, "{}", report.render());
}

#[tokio::test]
async fn an_expired_revoked_or_read_only_token_fails_the_check() {
    let gitlab = FakeGitlab::start().await;
    gitlab.with(|s| {
        s.token_self["expires_at"] = json!(date_in(-1));
        s.token_self["revoked"] = json!(true);
        s.token_self["scopes"] = json!(["read_api", "read_user"]);
    });
    let report = check_config::run(&settings(&gitlab, &[]), &options(&[], None)).await;
    let errors = find(&report, "token", Level::Error);
    assert_eq!(errors.len(), 3, "{}", report.render());
    assert!(errors[0]
        .message
        .ends_with("is revoked; create a new one and set gitlab.token"));
    assert!(errors[1]
        .message
        .starts_with("scopes: read_api, read_user;"));
    assert!(errors[2].message.starts_with("expired on"));
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test]
async fn without_a_token_nothing_is_asked_of_gitlab_and_the_key_is_explained() {
    let gitlab = FakeGitlab::start().await;
    let report = check_config::run(
        &settings(&gitlab, &[("TRIGGER_DOCTOR__GITLAB__TOKEN", "")]),
        &options(&["grp/app"], None),
    )
    .await;
    let errors = find(&report, "gitlab.token", Level::Error);
    assert_eq!(errors.len(), 1, "{}", report.render());
    assert!(errors[0].message.contains("set gitlab.token"));
    assert!(errors[0].message.contains("api scope"));
    assert_eq!(report.exit_code(), 1);
    assert_eq!(gitlab.total_calls(), 0);
}

#[tokio::test]
async fn gitlab_down_is_one_error_and_no_further_calls() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(1, "grp/app");
    gitlab.with(|s| s.outage = 100);
    let report = check_config::run(&settings(&gitlab, &[]), &options(&["grp/app"], None)).await;
    let errors = find(&report, "GitLab", Level::Error);
    assert_eq!(errors.len(), 1, "{}", report.render());
    assert!(errors[0]
        .message
        .starts_with(&format!("cannot reach {}", gitlab.url())));
    assert_eq!(report.count(Level::Error), 1);
    assert_eq!(gitlab.total_calls(), 1);
}

#[tokio::test]
async fn a_developer_bot_is_told_that_hooks_need_maintainer() {
    let gitlab = fake_with_good_hook().await;
    gitlab.with(|s| s.bot_access.insert(1, DEVELOPER));
    let report = check_config::run(&settings(&gitlab, &[]), &options(&["1"], None)).await;
    let warnings = find(&report, "grp/app", Level::Warning);
    assert_eq!(warnings.len(), 1, "{}", report.render());
    assert!(warnings[0].message.contains("403"));
    assert!(warnings[0].message.contains("Maintainer"));
    assert_eq!(report.exit_code(), 0);
}

#[tokio::test]
async fn a_missing_project_and_a_project_without_our_hook_are_errors() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(2, "grp/other");
    gitlab.with(|s| {
        s.hooks.insert(
            2,
            vec![
                hook(1, "https://ci.example.com/notify", |_| {}),
                hook(2, "https://old-td.example.com/webhooks/gitlab", |_| {}),
            ],
        )
    });
    let report = check_config::run(
        &settings(&gitlab, &[]),
        &options(&["grp/gone", "grp/other"], Some(SERVICE)),
    )
    .await;
    let gone = find(&report, "grp/gone", Level::Error);
    assert_eq!(gone.len(), 1, "{}", report.render());
    assert!(gone[0]
        .message
        .starts_with("no such project, or the bot cannot see it"));
    let other = find(&report, "grp/other", Level::Error);
    assert_eq!(other.len(), 1, "{}", report.render());
    assert!(other[0].message.starts_with(
        "none of its 2 webhooks points at this service (https://td.example.com/webhooks/gitlab)"
    ));
    assert!(other[0]
        .message
        .ends_with("another trigger-doctor: https://old-td.example.com/webhooks/gitlab"));
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test]
async fn a_hook_missing_events_without_ssl_verification_and_paused_is_reported_line_by_line() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(1, "grp/app");
    let until = Timestamp(Timestamp::now().0 + 3_600_000);
    gitlab.with(|s| {
        s.hooks.insert(
            1,
            vec![hook(
                9,
                "https://deliver:hook-user-password@td.example.com/webhooks/gitlab",
                |v| {
                    v["job_events"] = json!(false);
                    // A nullable column with no default: old hooks answer null.
                    v["confidential_note_events"] = json!(null);
                    v["enable_ssl_verification"] = json!(false);
                    v["alert_status"] = json!("temporarily_disabled");
                    v["disabled_until"] = json!(until.to_rfc3339());
                },
            )],
        )
    });
    let report = check_config::run(
        &settings(&gitlab, &[]),
        &options(&["grp/app"], Some(SERVICE)),
    )
    .await;
    let text = report.render();
    let warnings = find(&report, "grp/app hook #9", Level::Warning);
    assert_eq!(warnings.len(), 3, "{text}");
    assert!(warnings[0].message.starts_with(
        "https://***@td.example.com/webhooks/gitlab: GitLab paused this webhook until"
    ));
    assert!(warnings[1].message.starts_with("does not send Job events"));
    assert!(warnings[1].message.contains("Confidential comments"));
    assert!(!warnings[1].message.contains("Pipeline events"));
    assert!(warnings[2]
        .message
        .contains("enable_ssl_verification is false"));
    assert!(!text.contains("hook-user-password"), "{text}");
    assert_eq!(report.exit_code(), 0);

    gitlab.with(|s| {
        let h = &mut s.hooks.get_mut(&1).unwrap()[0];
        h["alert_status"] = json!("disabled");
        h["pipeline_events"] = json!(false);
    });
    let report = check_config::run(&settings(&gitlab, &[]), &options(&["grp/app"], None)).await;
    let errors = find(&report, "grp/app hook #9", Level::Error);
    assert_eq!(errors.len(), 2, "{}", report.render());
    assert!(errors[0].message.contains("GitLab disabled this webhook"));
    assert!(errors[1]
        .message
        .starts_with("does not send Pipeline events"));
}

#[tokio::test]
async fn secrets_never_appear_in_the_report() {
    let gitlab = fake_with_good_hook().await;
    let chat = "https://hooks.slack.com/services/T0/B0/chat-route-secret";
    let report = check_config::run(
        &settings(
            &gitlab,
            &[(
                "TRIGGER_DOCTOR__NOTIFY__SLACK__ROUTES",
                &format!("grp/**={chat}"),
            )],
        ),
        &options(&["grp/app"], None),
    )
    .await;
    let text = report.render();
    assert!(text.contains("to chat for 1 route (grp/**)"), "{text}");
    for secret in [BOT_TOKEN, HOOK_SECRET, "chat-route-secret"] {
        assert!(!text.contains(secret), "{secret} in:\n{text}");
    }
}

#[tokio::test]
async fn the_fake_lists_hooks_only_to_maintainers() {
    let gitlab = fake_with_good_hook().await;
    let get = || async {
        reqwest::get(format!("{}/api/v4/projects/grp%2Fapp/hooks", gitlab.url()))
            .await
            .unwrap()
    };
    let answer = get().await;
    assert_eq!(answer.status(), 200);
    let hooks: Vec<Value> = answer.json().await.unwrap();
    assert_eq!(hooks[0]["id"], 7);
    gitlab.with(|s| s.bot_access.insert(1, DEVELOPER));
    assert_eq!(get().await.status(), 403);
}

/// Runs the binary against the fake with the test token and webhook secret.
async fn run_binary(gitlab: &FakeGitlab, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_trigger-doctor"));
    for (key, _) in std::env::vars() {
        if key.starts_with("TRIGGER_DOCTOR__") {
            cmd.env_remove(key);
        }
    }
    cmd.env("TRIGGER_DOCTOR__GITLAB__URL", gitlab.url())
        .env("TRIGGER_DOCTOR__GITLAB__TOKEN", BOT_TOKEN)
        .env("TRIGGER_DOCTOR__GITLAB__MAX_RETRIES", "0")
        .env("TRIGGER_DOCTOR__WEBHOOK__SECRET_TOKENS", HOOK_SECRET)
        .arg("check-config")
        .args(args);
    // The fake answers on this runtime while the command runs on another thread.
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_command_prints_one_line_per_check_and_exits_zero_when_all_is_well() {
    let gitlab = fake_with_good_hook().await;
    let out = run_binary(&gitlab, &["--project", "grp/app", "--url", SERVICE]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.starts_with("ok      configuration: valid"), "{text}");
    assert!(text.contains("ok      grp/app hook #7: "), "{text}");
    assert!(
        text.ends_with("summary: 12 ok, 0 warnings, 0 errors\n"),
        "{text}"
    );
    assert!(!text.contains(BOT_TOKEN) && !text.contains(HOOK_SECRET));
}

#[tokio::test]
async fn the_command_exits_one_when_a_project_has_no_hook() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(1, "grp/app").add_project(2, "grp/lib");
    gitlab.with(|s| {
        s.hooks.insert(
            1,
            vec![hook(7, &format!("{SERVICE}/webhooks/gitlab"), |_| {})],
        )
    });
    let out = run_binary(&gitlab, &["--project", "grp/app", "--project", "2"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("error   grp/lib: has no webhook"), "{text}");
    assert!(text.ends_with("1 error\n"), "{text}");
}
