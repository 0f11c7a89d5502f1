//! Diagnoses end to end: a webhook through the real server and worker, checked live against
//! the stateful fake GitLab. Each test asserts the top cause, its verdict, and that the
//! findings carry evidence and linked fix steps.

use serde_json::{json, Value};
use trigger_doctor::worker::Settled;

use crate::fake_gitlab::{BridgeOutcome, FakeGitlab, DEVELOPER, MAINTAINER};
use crate::helpers::*;

/// A personal access token of the right shape that was never valid.
const FAKE_PAT: &str = "glpat-AbCdEfGhIjKlMnOpQrSt";
const SHA: &str = "95d49d1efbd941908580e79d65e4b5ecaf4a8305";

/// Each scenario runs as its own test on every GitLab version of the matrix: 16.11, 17.11,
/// 18.6 and 19.x (routes, parameters and fields that depend on the version follow it), and on
/// an instance that does not let the bot read its version.
macro_rules! on_every_version {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                use crate::fake_gitlab::on_version;
                #[tokio::test]
                async fn gitlab_16_11() {
                    on_version("16.11.10", super::$name).await
                }
                #[tokio::test]
                async fn gitlab_17_11() {
                    on_version("17.11.6-ee", super::$name).await
                }
                #[tokio::test]
                async fn gitlab_18_6() {
                    on_version("18.6.1-ee", super::$name).await
                }
                #[tokio::test]
                async fn gitlab_19_3() {
                    on_version("19.3.0-ee", super::$name).await
                }
                #[tokio::test]
                async fn version_unknown() {
                    on_version("", super::$name).await
                }
            }
        )+
    };
}

on_every_version!(
    a_misnamed_token_variable_is_found_with_the_name_it_should_have,
    a_protected_token_variable_on_a_feature_branch_is_found,
    a_personal_access_token_sent_to_the_trigger_api_is_the_wrong_kind,
    expired_trigger_tokens_explain_a_404_from_the_trigger_api,
    a_trigger_token_expired_long_ago_is_not_ruled_out_by_the_listing,
    without_maintainer_the_variable_checks_say_what_they_could_not_read,
    a_failed_downstream_pipeline_is_reported_as_such,
    a_missing_downstream_project_is_not_found,
    a_renamed_downstream_project_is_found_under_its_new_path,
    a_reporter_on_the_downstream_project_lacks_the_role,
    a_protected_target_branch_the_user_may_not_push_or_merge_to_is_found,
    a_missing_downstream_branch_is_ref_not_found,
    a_downstream_pipeline_that_would_be_empty_is_found_by_the_lint_dry_run,
    restricted_pipeline_variables_downstream_are_found,
    the_same_project_as_downstream_is_an_invalid_trigger,
    a_dns_failure_to_the_instance_host_is_network_dns,
    a_url_with_an_old_hostname_is_api_url_host,
    a_job_token_from_a_project_not_on_the_allowlist_is_found,
    a_job_token_printed_as_a_jwt_is_a_job_token_and_is_never_stored,
    gitlab_answering_502_is_retried_and_the_diagnosis_completes_once_it_recovers,
    curl_trigger_failures_each_get_their_cause,
    bridge_failure_reasons_each_get_their_cause,
    an_undefined_token_variable_is_found,
    a_token_variable_scoped_to_another_environment_is_found,
    a_crafted_url_cannot_make_the_bot_probe_an_internal_address,
    an_explicitly_allowed_host_is_probed_and_the_result_is_evidence,
    with_values_readable_a_personal_token_in_the_trigger_variable_is_the_wrong_kind,
    by_default_variable_values_are_not_used,
    a_trigger_token_owner_who_is_only_reporter_downstream_is_found,
    a_job_log_with_hostile_unicode_lines_is_diagnosed_without_stalling_the_worker,
    a_custom_ci_file_path_is_read_when_ci_lint_gives_no_merged_yaml,
    a_developer_bot_cannot_see_the_pipeline_variables_setting_and_says_so,
    a_protected_token_variable_on_the_second_page_of_variables_is_found,
    a_rate_limited_ci_lint_is_replaced_by_the_files_and_the_diagnosis_goes_on,
);

/// Upstream `grp/upstream` (1) and downstream `grp/app` (42).
async fn instance() -> FakeGitlab {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "grp/upstream")
        .add_project(42, "grp/app");
    gitlab
}

/// A failed curl-style job 901 of pipeline 31 on `ref` whose log is `log`.
fn job_hook(git_ref: &str) -> Vec<u8> {
    let git_ref = git_ref.to_string();
    fixture_with("webhook-job-go-gitlab.json", move |v| {
        v["build_id"] = 901.into();
        v["build_name"] = "trigger-app".into();
        v["build_status"] = "failed".into();
        v["build_failure_reason"] = "script_failure".into();
        v["project_id"] = 1.into();
        v["pipeline_id"] = 31.into();
        v["ref"] = git_ref.into();
        v["sha"] = SHA.into();
    })
}

/// Adds the failed curl-style job 901 of pipeline 31 ("trigger-app") with this log.
fn failed_trigger_job(gitlab: &FakeGitlab, log: &str) {
    gitlab.add_job(1, 31, 901, "trigger-app", "failed", log);
}

fn curl_log(token: &str, answer: &str) -> String {
    format!(
        "Running with gitlab-runner 17.5.0 (a1b2c3d4) on docker-runner-1 xYz12\n\
         $ curl --fail-with-body -X POST -F token={token} -F ref=main \"$CI_API_V4_URL/projects/42/trigger/pipeline\"\n\
         {answer}\n\
         ERROR: Job failed: exit code 22\n"
    )
}

fn variable(key: &str, protected: bool, scope: &str) -> Value {
    json!({"key": key, "value": "x", "protected": protected, "masked": true, "hidden": false, "environment_scope": scope, "variable_type": "env_var"})
}

async fn diagnose(gitlab: &FakeGitlab, event: &str, body: Vec<u8>) -> Value {
    diagnose_with(gitlab, &[], event, body).await
}

async fn diagnose_with(
    gitlab: &FakeGitlab,
    extra: &[(&str, &str)],
    event: &str,
    body: Vec<u8>,
) -> Value {
    let url = gitlab.url();
    // Posting is covered by the notify tests; these look at the diagnosis alone.
    let mut env = vec![
        ("TRIGGER_DOCTOR__GITLAB__URL", url.as_str()),
        ("TRIGGER_DOCTOR__NOTIFY__GITLAB_COMMENTS", "false"),
    ];
    env.extend_from_slice(extra);
    let app = spawn_app_with(&env).await;
    assert_eq!(app.deliver(event, body, "key").await.status(), 202);
    let settled = app.worker.run_once("test").await.unwrap().unwrap();
    assert!(matches!(settled, Settled::Done(_)), "{settled:?}");
    let record = &app.store.find_by_dedup_key("key").await.unwrap()[0];
    let outcome: Value = serde_json::from_str(&record.outcomes[0]).unwrap();
    assert_eq!(
        outcome["diagnoses"].as_array().map(Vec::len),
        Some(1),
        "{outcome:#}"
    );
    outcome["diagnoses"][0].clone()
}

fn finding<'a>(d: &'a Value, cause: &str) -> &'a Value {
    d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["cause"] == cause)
        .unwrap_or_else(|| panic!("no finding for {cause}"))
}

/// The top finding is `cause` with `verdict`, with evidence and at least one linked fix step.
fn assert_top(d: &Value, cause: &str, verdict: &str) {
    let top = &d["findings"][0];
    assert_eq!(top["cause"], cause, "{:#}", d["findings"]);
    assert_eq!(top["verdict"], verdict, "{top:#}");
    assert!(!top["evidence"].as_array().unwrap().is_empty(), "{top:#}");
    let fix = top["fix"].as_array().unwrap();
    assert!(!fix.is_empty(), "{top:#}");
    assert!(fix.iter().any(|s| s["link"].is_string()), "{top:#}");
    assert!(
        d["gitlab_calls"].as_u64().unwrap() <= 15,
        "P5: {} calls",
        d["gitlab_calls"]
    );
}

async fn a_misnamed_token_variable_is_found_with_the_name_it_should_have() {
    let gitlab = instance().await;
    failed_trigger_job(
        &gitlab,
        &curl_log("$TRIGGER_TOKN", r#"{"error":"token is missing"}"#),
    );
    gitlab.with(|s| {
        s.variables
            .insert(1, vec![variable("TRIGGER_TOKEN", false, "*")]);
    });
    let d = diagnose(&gitlab, "Job Hook", job_hook("main")).await;
    // Likely, not confirmed: instance variables are for administrators only, so the bot cannot
    // rule out that TRIGGER_TOKN is defined there.
    assert_top(&d, "variable.misnamed", "likely");
    assert!(finding(&d, "variable.misnamed")["summary"]
        .as_str()
        .unwrap()
        .contains("TRIGGER_TOKEN"));
}

async fn a_protected_token_variable_on_a_feature_branch_is_found() {
    let gitlab = instance().await;
    failed_trigger_job(
        &gitlab,
        &curl_log("$DEPLOY_TOKEN", r#"{"error":"token is missing"}"#),
    );
    gitlab.with(|s| {
        s.variables
            .insert(1, vec![variable("DEPLOY_TOKEN", true, "*")]);
        s.branches.insert(
            (1, "feature/login".into()),
            json!({"name": "feature/login", "protected": false}),
        );
    });
    let d = diagnose(&gitlab, "Job Hook", job_hook("feature/login")).await;
    assert_top(&d, "variable.protected_ref", "confirmed");
}

async fn a_personal_access_token_sent_to_the_trigger_api_is_the_wrong_kind() {
    let gitlab = instance().await;
    failed_trigger_job(
        &gitlab,
        &curl_log(FAKE_PAT, r#"{"message":"404 Not Found"}"#),
    );
    let d = diagnose(&gitlab, "Job Hook", job_hook("main")).await;
    assert_top(&d, "token.wrong_kind", "confirmed");
    let text = d.to_string();
    assert!(
        !text.contains("AbCdEfGhIjKlMnOpQrSt"),
        "the token never reaches the stored diagnosis"
    );
}

async fn expired_trigger_tokens_explain_a_404_from_the_trigger_api() {
    let gitlab = instance().await;
    let d = diagnose(&gitlab, "Job Hook", expired_trigger_token(&gitlab, 3)).await;
    assert_eq!(finding(&d, "project.not_found")["verdict"], "ruled_out");
    let (version, has_expiry) = gitlab.with(|s| (s.version.clone(), s.at_least(17, 0)));
    if has_expiry {
        assert_top(&d, "token.expired", "confirmed");
    } else {
        // Trigger tokens have no expiry before 17.0: the listing shows none, and a bot that
        // knows the version says so.
        let expired = finding(&d, "token.expired");
        let verdict = if version.is_empty() {
            "unknown"
        } else {
            "ruled_out"
        };
        assert_eq!(expired["verdict"], verdict, "{expired:#}");
        assert_ne!(d["findings"][0]["cause"], "token.expired");
    }
}

async fn a_trigger_token_expired_long_ago_is_not_ruled_out_by_the_listing() {
    let gitlab = instance().await;
    let d = diagnose(&gitlab, "Job Hook", expired_trigger_token(&gitlab, 45)).await;
    let expired = finding(&d, "token.expired");
    let (version, cleaned_up, has_expiry) =
        gitlab.with(|s| (s.version.clone(), s.at_least(18, 5), s.at_least(17, 0)));
    let verdict = match (cleaned_up, has_expiry) {
        // Deleted 30 days after it expired: GitLab no longer lists it.
        (true, _) => "unknown",
        (false, true) => "confirmed",
        (false, false) if version.is_empty() => "unknown",
        (false, false) => "ruled_out",
    };
    assert_eq!(expired["verdict"], verdict, "{version}: {expired:#}");
    if cleaned_up {
        assert!(expired["summary"].as_str().unwrap().contains("30 days"));
    }
}

/// A curl job whose trigger call got a 404 while grp/app's only trigger token expired
/// `days_ago`. Returns the Job Hook.
fn expired_trigger_token(gitlab: &FakeGitlab, days_ago: i64) -> Vec<u8> {
    failed_trigger_job(
        gitlab,
        &curl_log("$DEPLOY_TOKEN", r#"{"message":"404 Not Found"}"#),
    );
    let expired = hours_from_now(-days_ago * 24);
    gitlab.with(|s| {
        s.variables.insert(1, vec![variable("DEPLOY_TOKEN", false, "*")]);
        s.triggers.insert(42, vec![json!({"id": 10, "description": "from upstream", "token": "glpt", "expires_at": expired, "owner": {"id": 7, "username": "dev", "state": "active"}})]);
    });
    job_hook("main")
}

async fn without_maintainer_the_variable_checks_say_what_they_could_not_read() {
    let gitlab = instance().await;
    failed_trigger_job(
        &gitlab,
        &curl_log("$DEPLOY_TOKEN", r#"{"message":"404 Not Found"}"#),
    );
    gitlab.with(|s| {
        s.bot_access.insert(1, DEVELOPER);
        s.bot_access.insert(42, DEVELOPER);
    });
    let d = diagnose(&gitlab, "Job Hook", job_hook("main")).await;
    let undefined = finding(&d, "variable.undefined");
    assert_eq!(undefined["verdict"], "unknown", "{undefined:#}");
    assert!(
        undefined["summary"]
            .as_str()
            .unwrap()
            .contains("Maintainer"),
        "{undefined:#}"
    );
    let expired = finding(&d, "token.expired");
    assert_eq!(expired["verdict"], "unknown", "{expired:#}");
    assert!(
        expired["summary"]
            .as_str()
            .unwrap()
            .contains("Maintainer on grp/app"),
        "{expired:#}"
    );
}

async fn a_failed_downstream_pipeline_is_reported_as_such() {
    let gitlab = instance().await;
    gitlab.add_pipeline(1, 32, "failed", "main", SHA);
    gitlab.add_bridge(1, 32, 950, "deploy", BridgeOutcome::DownstreamFailed(700));
    let body = fixture_with("webhook-pipeline.json", |v| {
        v["object_attributes"]["id"] = 32.into();
        v["object_attributes"]["status"] = "failed".into();
        v["project"]["id"] = 1.into();
        v["builds"] = json!([]);
    });
    let d = diagnose(&gitlab, "Pipeline Hook", body).await;
    let top = &d["findings"][0];
    assert_eq!(top["cause"], "downstream.failed");
    assert_eq!(top["verdict"], "confirmed");
    assert_eq!(
        d["findings"].as_array().unwrap().len(),
        1,
        "no trigger checks when the trigger worked"
    );
}

// ---- Trigger (bridge) jobs: the upstream pipeline's configuration says where they point. ----

fn bridge_config(project: &str, branch: &str) -> String {
    format!("stages: [deploy]\ndeploy-app:\n  stage: deploy\n  trigger:\n    project: {project}\n    branch: {branch}\n")
}

/// A failed pipeline 40 of `grp/upstream` whose trigger job `deploy-app` failed with `reason`,
/// its configuration pointing at `project` on `branch`.
fn failed_bridge(
    gitlab: &FakeGitlab,
    reason: &'static str,
    project: &str,
    branch: &str,
) -> Vec<u8> {
    gitlab.add_pipeline(1, 40, "failed", "main", SHA);
    gitlab.add_bridge(1, 40, 950, "deploy-app", BridgeOutcome::Failed(reason));
    let config = bridge_config(project, branch);
    gitlab.with(|s| {
        s.lint.insert(
            (1, String::new()),
            json!({"valid": true, "errors": [], "warnings": [], "merged_yaml": config}),
        );
        s.members.insert((42, 1), 30);
    });
    fixture_with("webhook-pipeline.json", |v| {
        v["object_attributes"]["id"] = 40.into();
        v["object_attributes"]["status"] = "failed".into();
        v["object_attributes"]["sha"] = SHA.into();
        v["object_attributes"]["protected_ref"] = true.into();
        v["project"]["id"] = 1.into();
        v["project"]["path_with_namespace"] = "grp/upstream".into();
        v["user"]["id"] = 1.into();
        v["builds"] = json!([]);
    })
}

async fn a_missing_downstream_project_is_not_found() {
    let gitlab = instance().await;
    let body = failed_bridge(
        &gitlab,
        "downstream_bridge_project_not_found",
        "grp/ap",
        "main",
    );
    gitlab.with(|s| s.projects.remove(&42));
    let d = diagnose(&gitlab, "Pipeline Hook", body).await;
    let top = &d["findings"][0];
    assert_eq!(top["cause"], "project.not_found", "{:#}", d["findings"]);
    assert!(matches!(
        top["verdict"].as_str(),
        Some("confirmed" | "likely")
    ));
    assert!(!top["fix"].as_array().unwrap().is_empty());
}

async fn a_renamed_downstream_project_is_found_under_its_new_path() {
    let gitlab = instance().await;
    let d = diagnose(
        &gitlab,
        "Pipeline Hook",
        bridge_into_renamed_project(&gitlab),
    )
    .await;
    assert_top(&d, "project.renamed", "confirmed");
    assert!(d["findings"][0].to_string().contains("grp/app"));
}

/// A failed bridge into grp/old-app, renamed to grp/app. Returns the Pipeline Hook.
fn bridge_into_renamed_project(gitlab: &FakeGitlab) -> Vec<u8> {
    let body = failed_bridge(
        gitlab,
        "downstream_bridge_project_not_found",
        "grp/old-app",
        "main",
    );
    gitlab.with(|s| {
        s.redirects.insert("grp/old-app".into(), 42);
    });
    body
}

async fn a_reporter_on_the_downstream_project_lacks_the_role() {
    let gitlab = instance().await;
    let body = failed_bridge(
        &gitlab,
        "insufficient_bridge_permissions",
        "grp/app",
        "main",
    );
    gitlab.with(|s| {
        s.members.insert((42, 1), 20);
    });
    let d = diagnose(&gitlab, "Pipeline Hook", body).await;
    assert_top(&d, "permission.role", "confirmed");
}

async fn a_protected_target_branch_the_user_may_not_push_or_merge_to_is_found() {
    let gitlab = instance().await;
    let body = failed_bridge(
        &gitlab,
        "insufficient_bridge_permissions",
        "grp/app",
        "release/1.0",
    );
    gitlab.with(|s| {
        s.branches.insert(
            (42, "release/1.0".into()),
            json!({"name": "release/1.0", "protected": true}),
        );
        s.protected_branches.insert(
            42,
            serde_json::from_slice::<Vec<Value>>(&fixture("api-protected-branches.json")).unwrap(),
        );
    });
    let d = diagnose(&gitlab, "Pipeline Hook", body).await;
    assert_top(&d, "permission.protected_ref", "confirmed");
    assert_eq!(finding(&d, "permission.role")["verdict"], "ruled_out");
}

async fn a_missing_downstream_branch_is_ref_not_found() {
    let gitlab = instance().await;
    let body = failed_bridge(
        &gitlab,
        "downstream_pipeline_creation_failed",
        "grp/app",
        "does-not-exist",
    );
    let d = diagnose(&gitlab, "Pipeline Hook", body).await;
    assert_top(&d, "ref.not_found", "confirmed");
}

async fn a_downstream_pipeline_that_would_be_empty_is_found_by_the_lint_dry_run() {
    let gitlab = instance().await;
    let d = diagnose(
        &gitlab,
        "Pipeline Hook",
        bridge_into_empty_pipeline(&gitlab),
    )
    .await;
    assert_top(&d, "config.downstream_empty", "confirmed");
}

/// A failed bridge into grp/app whose rules leave no job on `main` (the CI lint dry run
/// says so). Returns the Pipeline Hook.
fn bridge_into_empty_pipeline(gitlab: &FakeGitlab) -> Vec<u8> {
    let body = failed_bridge(
        gitlab,
        "downstream_pipeline_creation_failed",
        "grp/app",
        "main",
    );
    gitlab.with(|s| {
        s.lint.insert(
            (42, "main".into()),
            json!({"valid": false, "errors": ["Pipeline will not run for the selected trigger. The rules configuration prevented any jobs from being added to the pipeline."], "warnings": []}),
        );
    });
    body
}

/// A failed bridge into grp/app that sends a pipeline variable, where grp/app lets no one
/// set pipeline variables (`bot_access` is the bot's role on grp/app). Returns the delivery.
fn bridge_into_restricted_pipeline_variables(gitlab: &FakeGitlab, bot_access: u32) -> Vec<u8> {
    let body = failed_bridge(
        gitlab,
        "downstream_pipeline_creation_failed",
        "grp/app",
        "main",
    );
    let config = "stages: [deploy]\ndeploy-app:\n  stage: deploy\n  variables:\n    RELEASE: '1.2'\n  trigger:\n    project: grp/app\n    branch: main\n";
    gitlab.with(|s| {
        s.lint.insert(
            (1, String::new()),
            json!({"valid": true, "errors": [], "warnings": [], "merged_yaml": config}),
        );
        let p = s.projects.get_mut(&42).unwrap();
        p["ci_pipeline_variables_minimum_override_role"] = "no_one_allowed".into();
        p["restrict_user_defined_variables"] = true.into();
        s.bot_access.insert(42, bot_access);
    });
    body
}

async fn restricted_pipeline_variables_downstream_are_found() {
    let gitlab = instance().await;
    let body = bridge_into_restricted_pipeline_variables(&gitlab, MAINTAINER);
    let d = diagnose(&gitlab, "Pipeline Hook", body).await;
    assert_top(&d, "permission.pipeline_variables", "confirmed");
}

async fn the_same_project_as_downstream_is_an_invalid_trigger() {
    let gitlab = instance().await;
    let body = failed_bridge(&gitlab, "invalid_bridge_trigger", "grp/upstream", "main");
    let d = diagnose(&gitlab, "Pipeline Hook", body).await;
    assert_top(&d, "config.same_project", "confirmed");
}

// ---- curl-style triggers: the job log says what happened. ----

async fn a_dns_failure_to_the_instance_host_is_network_dns() {
    let gitlab = instance().await;
    let log = "Running with gitlab-runner 17.5.0 (a1b2c3d4) on docker-runner-1 xYz12\n\
               $ curl --fail -X POST -F token=$DEPLOY_TOKEN -F ref=main \"$CI_API_V4_URL/projects/42/trigger/pipeline\"\n\
               curl: (6) Could not resolve host: 127.0.0.1\n\
               ERROR: Job failed: exit code 6\n";
    gitlab.add_job(1, 31, 901, "trigger-app", "failed", log);
    let d = diagnose(&gitlab, "Job Hook", job_hook("main")).await;
    let top = &d["findings"][0];
    assert_eq!(top["cause"], "network.dns", "{:#}", d["findings"]);
    // The runner that ran the job, from the Job Hook.
    assert!(
        top.to_string()
            .contains("4-blue.shared.runners-manager.gitlab.com"),
        "the runner is named: {top:#}"
    );
}

async fn a_url_with_an_old_hostname_is_api_url_host() {
    let gitlab = instance().await;
    let log = "Running with gitlab-runner 17.5.0 (a1b2c3d4) on docker-runner-1 xYz12\n\
               $ curl --fail -X POST -F token=$DEPLOY_TOKEN -F ref=main https://git.old-example.net/api/v4/projects/42/trigger/pipeline\n\
               curl: (6) Could not resolve host: git.old-example.net\n\
               ERROR: Job failed: exit code 6\n";
    gitlab.add_job(1, 31, 901, "trigger-app", "failed", log);
    let d = diagnose(&gitlab, "Job Hook", job_hook("main")).await;
    assert_top(&d, "api_url.host", "confirmed");
}

async fn a_job_token_from_a_project_not_on_the_allowlist_is_found() {
    let gitlab = instance().await;
    failed_trigger_job(
        &gitlab,
        &curl_log("$CI_JOB_TOKEN", r#"{"message":"404 Not Found"}"#),
    );
    gitlab.with(|s| {
        s.job_token_allowlist.insert(
            42,
            vec![json!({"id": 7, "path_with_namespace": "other/project"})],
        );
        s.members.insert((42, 2_967_854), 30);
    });
    let d = diagnose(&gitlab, "Job Hook", job_hook("main")).await;
    assert_top(&d, "permission.job_token_allowlist", "confirmed");
}

/// From 19.0 a job token is a JSON Web Token; a script that prints it (decoded, re-encoded)
/// shows one in the log. It is read as a job token and never stored.
async fn a_job_token_printed_as_a_jwt_is_a_job_token_and_is_never_stored() {
    const JWT: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImFiYyJ9.eyJzdWIiOiJqb2JfOTAxIiwiaXNzIjoiZ2l0bGFiIn0.c2lnbmF0dXJlLW9mLXRoZS1qb2ItdG9rZW4";
    let gitlab = instance().await;
    failed_trigger_job(&gitlab, &curl_log(JWT, r#"{"message":"404 Not Found"}"#));
    gitlab.with(|s| {
        s.job_token_allowlist.insert(
            42,
            vec![json!({"id": 7, "path_with_namespace": "other/project"})],
        );
        s.members.insert((42, 2_967_854), 30);
    });
    let d = diagnose(&gitlab, "Job Hook", job_hook("main")).await;
    assert_top(&d, "permission.job_token_allowlist", "confirmed");
    assert_eq!(finding(&d, "token.wrong_kind")["verdict"], "ruled_out");
    let text = d.to_string();
    assert!(
        !text.contains("c2lnbmF0dXJlLW9mLXRoZS1qb2ItdG9rZW4"),
        "{text}"
    );
    assert!(
        !text.contains("eyJzdWIiOiJqb2JfOTAxIiwiaXNzIjoiZ2l0bGFiIn0"),
        "{text}"
    );
}

async fn gitlab_answering_502_is_retried_and_the_diagnosis_completes_once_it_recovers() {
    let gitlab = instance().await;
    failed_trigger_job(
        &gitlab,
        &curl_log(FAKE_PAT, r#"{"message":"404 Not Found"}"#),
    );
    gitlab.with(|s| s.outage = 1);
    let app = spawn_app_with(&[
        ("TRIGGER_DOCTOR__GITLAB__URL", &gitlab.url()),
        ("TRIGGER_DOCTOR__WORKER__RETRY_BASE_SECONDS", "1"),
        ("TRIGGER_DOCTOR__NOTIFY__GITLAB_COMMENTS", "false"),
    ])
    .await;
    app.deliver("Job Hook", job_hook("main"), "key").await;
    let first = app.worker.run_once("test").await.unwrap().unwrap();
    assert!(matches!(first, Settled::Retried(..)), "{first:?}");
    let record = &app.store.find_by_dedup_key("key").await.unwrap()[0];
    assert!(
        record.last_error.as_deref().unwrap().contains("502"),
        "{:?}",
        record.last_error
    );
    // GitLab is back; the retry is due within a second (back-off 1 s with jitter).
    app.clock.advance(std::time::Duration::from_secs(1));
    let settled = app
        .worker
        .run_once("test")
        .await
        .unwrap()
        .expect("the retry came due");
    assert!(matches!(settled, Settled::Done(_)), "{settled:?}");
    let record = &app.store.find_by_dedup_key("key").await.unwrap()[0];
    let outcome: Value = serde_json::from_str(&record.outcomes[0]).unwrap();
    assert_eq!(
        outcome["diagnoses"][0]["findings"][0]["cause"],
        "token.wrong_kind"
    );
}

/// One curl-style failure per row: the log's answer, and the cause that must come first.
async fn curl_trigger_failures_each_get_their_cause() {
    let call = "$ curl --fail-with-body -X POST -F token=$DEPLOY_TOKEN -F ref=main";
    let rows: &[(&str, &str, &str)] = &[
        ("token.revoked", &format!("{call} \"$CI_API_V4_URL/projects/42/trigger/pipeline\"\nHTTP/2 401\n{{\"error\":\"invalid_token\",\"error_description\":\"Token was revoked. You have to re-authorize from the user.\"}}"), "confirmed"),
        ("token.missing_scope", "$ curl -sS -i --request POST --header \"PRIVATE-TOKEN: $BOT_TOKEN\" \"$CI_API_V4_URL/projects/42/pipeline?ref=main\"\nHTTP/2 403\n{\"error\":\"insufficient_scope\",\"error_description\":\"The request requires higher privileges than provided by the access token.\",\"scope\":\"api\"}", "confirmed"),
        ("network.connect", &format!("{call} https://127.0.0.1/api/v4/projects/42/trigger/pipeline\ncurl: (7) Failed to connect to 127.0.0.1 port 443 after 3 ms: Connection refused"), "confirmed"),
        ("network.timeout", &format!("{call} https://127.0.0.1/api/v4/projects/42/trigger/pipeline\ncurl: (28) Failed to connect to 127.0.0.1 port 443 after 130001 ms: Connection timed out"), "confirmed"),
        ("network.tls", &format!("{call} https://127.0.0.1/api/v4/projects/42/trigger/pipeline\ncurl: (60) SSL certificate problem: unable to get local issuer certificate"), "confirmed"),
        ("network.proxy", &format!("{call} https://127.0.0.1/api/v4/projects/42/trigger/pipeline\ncurl: (56) CONNECT tunnel failed, response 403"), "confirmed"),
        ("api_url.scheme", &format!("{call} http://127.0.0.1/api/v4/projects/42/trigger/pipeline\nHTTP/1.1 301 Moved Permanently\nHTTP/1.1 405 Not Allowed"), "confirmed"),
        ("api_url.path", &format!("{call} \"$CI_SERVER_URL/projects/42/trigger/pipeline\"\nHTTP/2 404"), "confirmed"),
        ("instance.unavailable", &format!("{call} \"$CI_API_V4_URL/projects/42/trigger/pipeline\"\nHTTP/2 502\n<html><head><title>502 Bad Gateway</title></head></html>"), "confirmed"),
        ("instance.rate_limited", &format!("{call} \"$CI_API_V4_URL/projects/42/trigger/pipeline\"\nHTTP/2 429\nRetry later"), "confirmed"),
        ("config.downstream_invalid", &format!("{call} \"$CI_API_V4_URL/projects/42/trigger/pipeline\"\n{{\"message\":{{\"base\":[\"Missing CI config file\"]}}}}"), "confirmed"),
    ];
    let mut failures = Vec::new();
    for (cause, log, verdict) in rows {
        let gitlab = instance().await;
        let log = format!("Running with gitlab-runner 17.5.0 (a1b2c3d4) on docker-runner-1 xYz12\n{log}\nERROR: Job failed: exit code 22\n");
        gitlab.add_job(1, 31, 901, "trigger-app", "failed", &log);
        gitlab.with(|s| {
            s.variables.insert(
                1,
                vec![
                    variable("DEPLOY_TOKEN", false, "*"),
                    variable("BOT_TOKEN", false, "*"),
                ],
            );
        });
        // Runners reach this instance over HTTPS (the fake itself speaks plain HTTP).
        let d = diagnose_with(
            &gitlab,
            &[("TRIGGER_DOCTOR__GITLAB__EXTERNAL_URL", "https://127.0.0.1")],
            "Job Hook",
            job_hook("main"),
        )
        .await;
        let top = &d["findings"][0];
        if top["cause"] != *cause || top["verdict"] != *verdict {
            failures.push(format!("{cause}: got {} {}", top["cause"], top["verdict"]));
            continue;
        }
        assert_top(&d, cause, verdict);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// One trigger (bridge) failure reason per row, and the cause that must come first.
async fn bridge_failure_reasons_each_get_their_cause() {
    let rows: &[(&'static str, &str)] = &[
        ("pipeline_loop_detected", "config.loop"),
        ("reached_max_descendant_pipelines_depth", "config.depth"),
        (
            "reached_max_pipeline_hierarchy_size",
            "config.hierarchy_size",
        ),
        (
            "reached_downstream_pipeline_trigger_rate_limit",
            "config.rate_limit",
        ),
    ];
    for (reason, cause) in rows {
        let gitlab = instance().await;
        let body = failed_bridge(&gitlab, reason, "grp/app", "main");
        let d = diagnose(&gitlab, "Pipeline Hook", body).await;
        assert_top(&d, cause, "confirmed");
    }
}

async fn an_undefined_token_variable_is_found() {
    let gitlab = instance().await;
    failed_trigger_job(
        &gitlab,
        &curl_log("$DOWNSTREAM_TOKEN", r#"{"error":"token is missing"}"#),
    );
    gitlab.with(|s| {
        s.variables
            .insert(1, vec![variable("UNRELATED", false, "*")]);
    });
    let d = diagnose(&gitlab, "Job Hook", job_hook("main")).await;
    let top = &d["findings"][0];
    assert_eq!(top["cause"], "variable.undefined", "{:#}", d["findings"]);
    assert!(matches!(
        top["verdict"].as_str(),
        Some("confirmed" | "likely")
    ));
    assert_eq!(
        finding(&d, "variable.protected_ref")["verdict"],
        "ruled_out"
    );
}

async fn a_token_variable_scoped_to_another_environment_is_found() {
    let gitlab = instance().await;
    failed_trigger_job(
        &gitlab,
        &curl_log("$DEPLOY_TOKEN", r#"{"error":"token is missing"}"#),
    );
    gitlab.with(|s| {
        s.variables
            .insert(1, vec![variable("DEPLOY_TOKEN", false, "production")]);
    });
    let d = diagnose(&gitlab, "Job Hook", job_hook("main")).await;
    assert_top(&d, "variable.environment_scope", "likely");
}

// ---- Probes (SPEC 8): only allowed hosts, addresses checked after DNS. ----

fn refused_log(url: &str) -> String {
    format!(
        "Running with gitlab-runner 17.5.0 (a1b2c3d4) on docker-runner-1 xYz12\n\
         $ curl --fail -X POST -F token=$DEPLOY_TOKEN -F ref=main {url}\n\
         curl: (7) Failed to connect port 443 after 3 ms: Connection refused\n\
         ERROR: Job failed: exit code 7\n"
    )
}

/// Counts the connections a listener receives while `f` runs.
async fn connections_during<F: std::future::Future<Output = Value>>(
    listener: &std::net::TcpListener,
    f: F,
) -> (Value, usize) {
    let d = f.await;
    listener.set_nonblocking(true).unwrap();
    let mut n = 0;
    while listener.accept().is_ok() {
        n += 1;
    }
    (d, n)
}

async fn a_crafted_url_cannot_make_the_bot_probe_an_internal_address() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    for url in [
        format!("https://127.0.0.1:{port}/api/v4/projects/42/trigger/pipeline"),
        "http://169.254.169.254/api/v4/projects/42/trigger/pipeline".to_string(),
        format!("https://localhost:{port}/api/v4/projects/42/trigger/pipeline"),
    ] {
        let gitlab = instance().await;
        gitlab.add_job(1, 31, 901, "trigger-app", "failed", &refused_log(&url));
        let (d, connections) =
            connections_during(&listener, diagnose(&gitlab, "Job Hook", job_hook("main"))).await;
        assert_eq!(connections, 0, "{url}: the bot connected");
        let probe = &d["facts"]["probe"]["outcome"]["kind"];
        assert!(
            probe == "blocked" || probe == "not_allowed",
            "{url}: {probe}"
        );
        let connect = finding(&d, "network.connect");
        assert!(connect.to_string().contains("did not probe"), "{connect:#}");
    }
}

async fn an_explicitly_allowed_host_is_probed_and_the_result_is_evidence() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let gitlab = instance().await;
    let url = format!("https://127.0.0.1:{port}/api/v4/projects/42/trigger/pipeline");
    gitlab.add_job(1, 31, 901, "trigger-app", "failed", &refused_log(&url));
    let (d, connections) = connections_during(
        &listener,
        diagnose_with(
            &gitlab,
            &[("TRIGGER_DOCTOR__PROBES__ALLOWED_HOSTS", "127.0.0.1")],
            "Job Hook",
            job_hook("main"),
        ),
    )
    .await;
    assert_eq!(connections, 1, "one TCP connection, nothing else");
    assert_eq!(d["facts"]["probe"]["outcome"]["kind"], "connected");
    let connect = finding(&d, "network.connect");
    assert!(
        connect.to_string().contains("the bot reached"),
        "{connect:#}"
    );
}

// ---- Variable values (diagnostics.read_variable_values). ----

fn pat_variable() -> Value {
    json!({"key": "DEPLOY_TOKEN", "value": "glpat-Zz9Yy8Xx7Ww6Vv5Uu4Tt", "protected": false, "masked": true, "hidden": false, "environment_scope": "*"})
}

async fn with_values_readable_a_personal_token_in_the_trigger_variable_is_the_wrong_kind() {
    let gitlab = instance().await;
    failed_trigger_job(
        &gitlab,
        &curl_log("$DEPLOY_TOKEN", r#"{"message":"404 Not Found"}"#),
    );
    gitlab.with(|s| {
        s.variables.insert(1, vec![pat_variable()]);
    });
    let d = diagnose_with(
        &gitlab,
        &[("TRIGGER_DOCTOR__DIAGNOSTICS__READ_VARIABLE_VALUES", "true")],
        "Job Hook",
        job_hook("main"),
    )
    .await;
    assert_top(&d, "token.wrong_kind", "confirmed");
    let text = d.to_string();
    assert!(
        text.contains("glpat-…(sha256:"),
        "a fingerprint stands for the value: {text}"
    );
    assert!(
        !text.contains("Zz9Yy8Xx7Ww6Vv5Uu4Tt"),
        "the value is never kept"
    );
}

async fn by_default_variable_values_are_not_used() {
    let gitlab = instance().await;
    failed_trigger_job(
        &gitlab,
        &curl_log("$DEPLOY_TOKEN", r#"{"message":"404 Not Found"}"#),
    );
    gitlab.with(|s| {
        s.variables.insert(1, vec![pat_variable()]);
    });
    let d = diagnose(&gitlab, "Job Hook", job_hook("main")).await;
    assert!(d["facts"]["token_value"].is_null());
    assert_ne!(finding(&d, "token.wrong_kind")["verdict"], "confirmed");
    assert!(!d.to_string().contains("Zz9Yy8Xx7Ww6Vv5Uu4Tt"));
}

async fn a_trigger_token_owner_who_is_only_reporter_downstream_is_found() {
    let gitlab = instance().await;
    let log = "$ curl --fail-with-body -X POST -F token=$DEPLOY_TOKEN -F ref=main \"$CI_API_V4_URL/projects/42/trigger/pipeline\"\n{\"message\":{\"base\":[\"Insufficient permissions to create a new pipeline\"]}}";
    gitlab.add_job(1, 31, 901, "trigger-app", "failed", &format!("Running with gitlab-runner 17.5.0 (a1b2c3d4) on docker-runner-1 xYz12\n{log}\nERROR: Job failed: exit code 22\n"));
    gitlab.with(|s| {
        s.variables.insert(1, vec![variable("DEPLOY_TOKEN", false, "*")]);
        s.triggers.insert(42, vec![json!({"id": 10, "description": "upstream", "token": "glpt", "expires_at": null, "owner": {"id": 55, "username": "former-lead", "state": "active"}})]);
        s.members.insert((42, 55), 20);
    });
    let d = diagnose(&gitlab, "Job Hook", job_hook("main")).await;
    assert_top(&d, "permission.trigger_owner", "confirmed");
    assert!(
        d["findings"][0].to_string().contains("Reporter"),
        "{:#}",
        d["findings"][0]
    );
}

async fn a_job_log_with_hostile_unicode_lines_is_diagnosed_without_stalling_the_worker() {
    let gitlab = instance().await;
    // `ſ` (U+017F) and `K` (U+212A) match ASCII letters case-insensitively; the other lines
    // put multi-byte characters, combining and right-to-left marks and NUL next to what the
    // scanner and the redactor cut.
    let hostile = "HTTP/1.1 403 ſecret= token\n\
                   paſsword=x X-TOKEN: é\n\
                   curl /trigger/pipeline é\n\
                   $ curl -F token=é -F ref=mé\u{301} \"https://gitlab.example.com/api/v4/projects/é/trigger/pipeline\"\n\
                   \u{200f}https://ü:ö@gitlab.example.com/api/v4/projects/42/ref/ß/trigger/pipeline\u{0}\n\
                   curl: (6) Could not resolve host: gitläb.example.com";
    failed_trigger_job(&gitlab, &curl_log("$TRIGGER_TOKEN", hostile));
    let d = diagnose(&gitlab, "Job Hook", job_hook("main")).await;
    assert!(
        !d["findings"].as_array().unwrap().is_empty(),
        "{:#}",
        d["findings"]
    );
}

async fn a_custom_ci_file_path_is_read_when_ci_lint_gives_no_merged_yaml() {
    let gitlab = instance().await;
    let body = failed_bridge(
        &gitlab,
        "downstream_bridge_project_not_found",
        "grp/old-app",
        "main",
    );
    // CI lint answers without the merged YAML: the bot reads the files, starting from the
    // project's own CI file path (GET /projects/:id `ci_config_path`), not `.gitlab-ci.yml`.
    let config = bridge_config("grp/old-app", "main");
    gitlab.with(|s| {
        s.lint.remove(&(1, String::new()));
        s.projects.get_mut(&1).unwrap()["ci_config_path"] = "ci/pipeline.yml".into();
        s.files
            .insert((1, "ci/pipeline.yml".into(), SHA.into()), config);
        s.redirects.insert("grp/old-app".into(), 42);
    });
    let d = diagnose(&gitlab, "Pipeline Hook", body).await;
    assert_eq!(
        d["facts"]["config"]["state"], "found",
        "{:#}",
        d["facts"]["config"]
    );
    assert_top(&d, "project.renamed", "confirmed");
    assert_eq!(gitlab.calls_to("/files/.gitlab-ci.yml/raw"), 0);
}

async fn a_developer_bot_cannot_see_the_pipeline_variables_setting_and_says_so() {
    let gitlab = instance().await;
    // GitLab shows the setting to Maintainers only.
    let body = bridge_into_restricted_pipeline_variables(&gitlab, DEVELOPER);
    let d = diagnose(&gitlab, "Pipeline Hook", body).await;
    let finding = d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["cause"] == "permission.pipeline_variables")
        .unwrap();
    assert_ne!(finding["verdict"], "confirmed", "{finding}");
    assert!(
        finding["summary"]
            .as_str()
            .unwrap()
            .contains("ci_pipeline_variables_minimum_override_role"),
        "{finding}"
    );
}

async fn a_protected_token_variable_on_the_second_page_of_variables_is_found() {
    let gitlab = instance().await;
    failed_trigger_job(
        &gitlab,
        &curl_log("$DEPLOY_TOKEN", r#"{"error":"token is missing"}"#),
    );
    gitlab.with(|s| {
        // GitLab pages every list (at most 100 a page): the variable is the 131st.
        let mut variables: Vec<Value> = (0..130)
            .map(|i| variable(&format!("OTHER_{i:03}"), false, "*"))
            .collect();
        variables.push(variable("DEPLOY_TOKEN", true, "*"));
        s.variables.insert(1, variables);
        s.branches.insert(
            (1, "feature/login".into()),
            json!({"name": "feature/login", "protected": false}),
        );
    });
    let d = diagnose(&gitlab, "Job Hook", job_hook("feature/login")).await;
    assert_top(&d, "variable.protected_ref", "confirmed");
    assert_eq!(gitlab.calls_to("/projects/1/variables"), 2);
}

async fn a_rate_limited_ci_lint_is_replaced_by_the_files_and_the_diagnosis_goes_on() {
    let gitlab = instance().await;
    let body = bridge_into_renamed_project(&gitlab);
    let config = bridge_config("grp/old-app", "main");
    gitlab.with(|s| {
        // CI lint's own limit, with and without Retry-After (both longer than the bot waits).
        s.endpoint_limits.push(("/ci/lint".into(), Some(120)));
        s.files
            .insert((1, ".gitlab-ci.yml".into(), SHA.into()), config);
    });
    let d = diagnose(&gitlab, "Pipeline Hook", body.clone()).await;
    assert_eq!(
        d["facts"]["config"]["state"], "found",
        "{:#}",
        d["facts"]["config"]
    );
    assert_top(&d, "project.renamed", "confirmed");
    gitlab.with(|s| s.endpoint_limits = vec![("/ci/lint".into(), None)]);
    let d = diagnose(&gitlab, "Pipeline Hook", body).await;
    assert_top(&d, "project.renamed", "confirmed");
}
