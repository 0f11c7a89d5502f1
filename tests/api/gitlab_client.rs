//! The GitLab client against a fake GitLab (wiremock) serving the real fixtures.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use trigger_doctor::config::Secret;
use trigger_doctor::gitlab::{ClientSettings, GitlabClient, GitlabError, ProjectRef};
use trigger_doctor::ids::{JobId, PipelineId, ProjectId, UserId};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::fixture;

fn settings(url: &str) -> ClientSettings {
    ClientSettings {
        url: url.to_string(),
        token: Secret::new("glpat-bot-token-for-tests"),
        timeout: Duration::from_secs(5),
        max_concurrency: 4,
        requests_per_minute: 6000,
        max_retries: 3,
        max_retry_wait: Duration::from_secs(5),
        cache_ttl: Duration::from_secs(300),
        max_calls_per_session: 50,
        max_log_bytes: 1024 * 1024,
        retry_delay: Duration::from_millis(10),
    }
}

fn client(server: &MockServer) -> GitlabClient {
    GitlabClient::new(settings(&server.uri()), None).unwrap()
}

fn json(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(name), "application/json")
}

/// Records when each request arrived, and answers from a script of responses.
struct Recorder {
    times: Arc<Mutex<Vec<Instant>>>,
    script: Vec<ResponseTemplate>,
}

impl Respond for Recorder {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut times = self.times.lock().unwrap();
        times.push(Instant::now());
        let i = (times.len() - 1).min(self.script.len() - 1);
        self.script[i].clone()
    }
}

#[tokio::test]
async fn listings_follow_every_page() {
    let server = MockServer::start().await;
    let page = |ids: &[u64]| {
        serde_json::json!(ids.iter().map(|id| serde_json::json!({"key": format!("VAR_{id}"), "value": "x", "environment_scope": "*"})).collect::<Vec<_>>())
    };
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/7/variables"))
        .and(query_param("page", "1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(page(&[1, 2]))
                .insert_header("X-Next-Page", "2"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/7/variables"))
        .and(query_param("page", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(page(&[3]))
                .insert_header("X-Next-Page", ""),
        )
        .expect(1)
        .mount(&server)
        .await;
    let session = client(&server).session(None, false);
    let vars = session.project_variables(ProjectId(7)).await.unwrap();
    let keys: Vec<_> = vars.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(keys, ["VAR_1", "VAR_2", "VAR_3"]);
    assert_eq!(session.calls(), 2);
}

#[tokio::test]
async fn not_found_forbidden_and_unauthorized_are_typed() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v4/projects/1"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_raw(r#"{"message":"404 Project Not Found"}"#, "application/json"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/api/v4/projects/2/variables"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_raw(r#"{"message":"403 Forbidden"}"#, "application/json"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/api/v4/projects/3"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_raw(r#"{"message":"401 Unauthorized"}"#, "application/json"),
        )
        .mount(&server)
        .await;
    let session = client(&server).session(None, false);
    let missing = session
        .project(&ProjectRef::Id(ProjectId(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, GitlabError::NotFound { message, .. } if message == "404 Project Not Found"),
        "{missing:?}"
    );
    let forbidden = session.project_variables(ProjectId(2)).await.unwrap_err();
    assert!(forbidden.is_forbidden(), "{forbidden:?}");
    let refused = session
        .project(&ProjectRef::Id(ProjectId(3)))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, GitlabError::Unauthorized { .. }),
        "{refused:?}"
    );
    assert!(
        !refused.to_string().contains("glpat-bot-token"),
        "the token never shows in errors"
    );
}

#[tokio::test]
async fn a_429_is_waited_out_and_nothing_is_sent_before_retry_after() {
    let server = MockServer::start().await;
    let times = Arc::new(Mutex::new(Vec::new()));
    Mock::given(path("/api/v4/projects/5"))
        .respond_with(Recorder {
            times: times.clone(),
            script: vec![
                ResponseTemplate::new(429).insert_header("Retry-After", "1").set_body_string("Retry later"),
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": 5, "path_with_namespace": "g/app", "web_url": "http://x/g/app"})),
            ],
        })
        .mount(&server)
        .await;
    let session = client(&server).session(None, false);
    let project = session
        .project(&ProjectRef::Id(ProjectId(5)))
        .await
        .unwrap();
    assert_eq!(project.path_with_namespace, "g/app");
    let times = times.lock().unwrap();
    assert_eq!(times.len(), 2);
    let gap = times[1] - times[0];
    assert!(gap >= Duration::from_millis(1000), "retried after {gap:?}");
}

#[tokio::test]
async fn a_retry_after_longer_than_the_client_waits_is_reported_as_rate_limited() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v4/version"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v4/metadata"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let session = client(&server).session(None, false);
    let err = session.version().await.unwrap_err();
    assert!(
        matches!(err, GitlabError::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(120)),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn an_exhausted_ratelimit_window_delays_the_next_call_until_its_reset() {
    let server = MockServer::start().await;
    let reset = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3)
    .to_string();
    let times = Arc::new(Mutex::new(Vec::new()));
    Mock::given(path("/api/v4/projects/8"))
        .respond_with(Recorder {
            times: times.clone(),
            script: vec![json("api-version.json")
                .set_body_json(serde_json::json!({"id": 8, "path_with_namespace": "g/a", "web_url": "http://x/g/a"}))
                .insert_header("RateLimit-Remaining", "0")
                .insert_header("RateLimit-Reset", reset.as_str())],
        })
        .mount(&server)
        .await;
    Mock::given(path("/api/v4/projects/9"))
        .respond_with(Recorder {
            times: times.clone(),
            script: vec![ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": 9, "path_with_namespace": "g/b", "web_url": "http://x/g/b"}))],
        })
        .mount(&server)
        .await;
    let gitlab = client(&server);
    gitlab
        .session(None, false)
        .project(&ProjectRef::Id(ProjectId(8)))
        .await
        .unwrap();
    gitlab
        .session(None, false)
        .project(&ProjectRef::Id(ProjectId(9)))
        .await
        .unwrap();
    let times = times.lock().unwrap();
    let gap = times[1] - times[0];
    assert!(
        gap >= Duration::from_millis(1000),
        "second call after {gap:?}"
    );
}

/// Sends `n` calls one after another, each to a project not asked before, and returns when
/// each reached the fake GitLab.
async fn timed_calls(
    gitlab: &GitlabClient,
    times: &Arc<Mutex<Vec<Instant>>>,
    n: u64,
) -> Vec<Instant> {
    let session = gitlab.session(None, false);
    for id in 1..=n {
        session
            .project(&ProjectRef::Id(ProjectId(id)))
            .await
            .unwrap();
    }
    times.lock().unwrap().clone()
}

#[tokio::test]
async fn the_bots_own_budget_paces_its_calls() {
    let server = MockServer::start().await;
    let times = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("GET"))
        .respond_with(Recorder {
            times: times.clone(),
            script: vec![ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"id": 1, "path_with_namespace": "g/a", "web_url": "http://x/g/a"}),
            )],
        })
        .mount(&server)
        .await;
    // 120 calls a minute: a burst of a tenth of a minute (12), then one every 500 ms.
    let mut s = settings(&server.uri());
    s.requests_per_minute = 120;
    let times = timed_calls(&GitlabClient::new(s, None).unwrap(), &times, 14).await;
    assert_eq!(times.len(), 14);
    // The 13th and 14th calls wait for a token each: 14 calls take at least 1 s (600 a
    // minute, the default before the instance has told its limit, would send all at once).
    let took = times[13] - times[0];
    assert!(
        took >= Duration::from_millis(900),
        "14 calls within {took:?} at 120 a minute"
    );
}

/// A background session (a preflight sweep) keeps to its share of the budget and has no
/// per-session call cap, while a diagnosis beside it is not held back.
#[tokio::test]
async fn a_background_session_keeps_to_its_share_and_diagnoses_go_first() {
    let server = MockServer::start().await;
    let times = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("GET"))
        .respond_with(Recorder {
            times: times.clone(),
            script: vec![ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"id": 1, "path_with_namespace": "g/a", "web_url": "http://x/g/a"}),
            )],
        })
        .mount(&server)
        .await;
    // 600 a minute (10/s); a quarter for the sweep: one call every 400 ms.
    let mut s = settings(&server.uri());
    s.requests_per_minute = 600;
    s.max_calls_per_session = 2;
    let gitlab = GitlabClient::new(s, None).unwrap();
    let sweep = gitlab.session(None, true).background(0.25);
    let started = Instant::now();
    for id in 1..=4 {
        sweep.project(&ProjectRef::Id(ProjectId(id))).await.unwrap();
    }
    let took = started.elapsed();
    // Four calls past the cap of 2, three of them waiting for the share: at least 1.2 s.
    assert!(
        took >= Duration::from_millis(1100),
        "4 sweep calls in {took:?}"
    );
    // A diagnosis now is answered at once: the sweep left it the shared budget.
    let diagnosis = gitlab.session(None, true);
    let started = Instant::now();
    for id in 10..12 {
        diagnosis
            .project(&ProjectRef::Id(ProjectId(id)))
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(times.lock().unwrap().len(), 6);
}

#[tokio::test]
async fn by_default_the_bot_keeps_to_half_of_the_limit_the_instance_announces() {
    let server = MockServer::start().await;
    let times = Arc::new(Mutex::new(Vec::new()));
    // The instance allows 240 calls a minute (4/s): the bot keeps to 120 (2/s).
    Mock::given(method("GET"))
        .respond_with(Recorder {
            times: times.clone(),
            script: vec![ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"id": 1, "path_with_namespace": "g/a", "web_url": "http://x/g/a"}))
                .insert_header("RateLimit-Limit", "240")],
        })
        .mount(&server)
        .await;
    let mut s = settings(&server.uri());
    s.requests_per_minute = 0;
    let times = timed_calls(&GitlabClient::new(s, None).unwrap(), &times, 15).await;
    assert_eq!(times.len(), 15);
    // The first answer tells the limit; from then on a burst of 12, then a call every
    // 500 ms: the 14th call after the first waits 1 s (at the instance's own 240 a minute,
    // with a burst of 24, none would wait).
    let took = times[14] - times[1];
    assert!(
        took >= Duration::from_millis(900),
        "14 calls within {took:?} at half of 240 a minute"
    );
}

#[tokio::test]
async fn a_502_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v4/projects/4/pipelines/9"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>502 Bad Gateway</html>"))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(path("/api/v4/projects/4/pipelines/9"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "id": 9, "project_id": 4, "sha": "bcbb5ec396a2c0f828686f14fac9b80b780504f2", "ref": "main", "status": "failed"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let pipeline = client(&server)
        .session(None, false)
        .pipeline(ProjectId(4), PipelineId(9))
        .await
        .unwrap();
    assert_eq!(pipeline.id, PipelineId(9));
}

#[tokio::test]
async fn gitlab_down_for_every_retry_is_unavailable() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v4/projects/4/pipelines/9"))
        .respond_with(ResponseTemplate::new(503))
        .expect(4)
        .mount(&server)
        .await;
    let err = client(&server)
        .session(None, false)
        .pipeline(ProjectId(4), PipelineId(9))
        .await
        .unwrap_err();
    assert!(matches!(err, GitlabError::Unavailable { .. }), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn the_call_budget_of_a_session_is_respected() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"id": 1, "path_with_namespace": "g/a", "web_url": "http://x"}),
        ))
        .expect(2)
        .mount(&server)
        .await;
    let mut s = settings(&server.uri());
    s.max_calls_per_session = 2;
    let session = GitlabClient::new(s, None).unwrap().session(None, true);
    session
        .project(&ProjectRef::Id(ProjectId(1)))
        .await
        .unwrap();
    session
        .project(&ProjectRef::Id(ProjectId(2)))
        .await
        .unwrap();
    let err = session
        .project(&ProjectRef::Id(ProjectId(3)))
        .await
        .unwrap_err();
    assert_eq!(err, GitlabError::BudgetExhausted { budget: 2 });
}

#[tokio::test]
async fn the_event_uuid_and_the_token_are_sent_on_every_call() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v4/projects/1"))
        .and(header(
            "X-Gitlab-Event-UUID",
            "13792a34-cac6-4fda-95a8-c58e00a3954e",
        ))
        .and(header("PRIVATE-TOKEN", "glpat-bot-token-for-tests"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"id": 1, "path_with_namespace": "g/a", "web_url": "http://x"}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let session =
        client(&server).session(Some("13792a34-cac6-4fda-95a8-c58e00a3954e".into()), false);
    session
        .project(&ProjectRef::Id(ProjectId(1)))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_session_never_sends_the_same_request_twice_and_stable_lookups_are_cached() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v4/projects/group%2Fapp"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": 12, "path_with_namespace": "group/app", "web_url": "http://x"})))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(path("/api/v4/projects/12/members/all/5"))
        .respond_with(json("api-member-all-go-gitlab.json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v4/projects/12/members/all/6"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_raw(r#"{"message":"404 Not found"}"#, "application/json"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let gitlab = client(&server);
    let project = ProjectRef::parse("group/app");
    let first = gitlab.session(None, false);
    first.project(&project).await.unwrap();
    first.project(&project).await.unwrap();
    assert_eq!(first.calls(), 1);
    assert!(first
        .member(ProjectId(12), UserId(5))
        .await
        .unwrap()
        .is_some());
    assert!(first
        .member(ProjectId(12), UserId(6))
        .await
        .unwrap()
        .is_none());
    assert!(first
        .member(ProjectId(12), UserId(6))
        .await
        .unwrap()
        .is_none());
    let second = gitlab.session(None, false);
    second.project(&project).await.unwrap();
    assert_eq!(second.calls(), 0, "served from the cache");
    let fresh = gitlab.session(None, true);
    fresh.project(&project).await.unwrap();
    assert_eq!(fresh.calls(), 1, "an explicit re-check asks GitLab again");
}

#[tokio::test]
async fn trigger_jobs_fall_back_to_bridges_on_older_gitlab() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v4/projects/1/pipelines/6/trigger_jobs"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_raw(r#"{"error":"404 Not Found"}"#, "application/json"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v4/projects/1/pipelines/6/bridges"))
        .respond_with(json("api-bridges.json"))
        .expect(2)
        .mount(&server)
        .await;
    let gitlab = client(&server);
    let bridges = gitlab
        .session(None, false)
        .trigger_jobs(ProjectId(1), PipelineId(6))
        .await
        .unwrap();
    assert_eq!(
        bridges[0].downstream_pipeline.as_ref().unwrap().id,
        PipelineId(5)
    );
    // Known now: the next diagnosis goes straight to /bridges.
    gitlab
        .session(None, false)
        .trigger_jobs(ProjectId(1), PipelineId(6))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_job_log_is_downloaded_to_a_file_up_to_the_limit() {
    use std::io::{Read, Seek, SeekFrom};
    let server = MockServer::start().await;
    let log: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    Mock::given(path("/api/v4/projects/1/jobs/8/trace"))
        .respond_with(ResponseTemplate::new(200).set_body_string(log.clone()))
        .mount(&server)
        .await;
    let mut s = settings(&server.uri());
    s.max_log_bytes = 1000;
    let session = GitlabClient::new(s, None).unwrap().session(None, false);
    let mut trace = session.job_trace(ProjectId(1), JobId(8)).await.unwrap();
    assert!(trace.truncated);
    assert_eq!(trace.bytes, 1000);
    trace.file.seek(SeekFrom::Start(0)).unwrap();
    let mut text = String::new();
    trace.file.read_to_string(&mut text).unwrap();
    assert_eq!(text, log[..1000]);
}

// ---- Version-dependent routes and parameters, against the fake answering as each version ----

const LINT_SHA: &str = "b83d6e391c22777fca1ed3012fce84f633d7fed0";

/// A fake GitLab of `version` with project 1 whose dry run on `feature` finds an error and
/// on any other ref none.
async fn fake_of_version(version: &str) -> crate::fake_gitlab::FakeGitlab {
    let gitlab = crate::fake_gitlab::FakeGitlab::start().await;
    gitlab.add_project(1, "grp/app");
    gitlab.with(|s| {
        s.version = version.to_string();
        s.lint.insert(
            (1, "feature".to_string()),
            serde_json::json!({"valid": false, "errors": ["jobs:deploy config contains unknown keys: trigger"], "warnings": [], "merged_yaml": null}),
        );
    });
    gitlab
}

#[tokio::test]
async fn ci_lint_reads_the_dry_run_ref_on_every_version_and_never_sends_both_names() {
    for version in ["16.9.2", "17.11.3-ee", "18.6.1-ee", "19.3.0-ee"] {
        let gitlab = fake_of_version(version).await;
        // A client that lints before it knows the version, and one that read it first.
        for read_version in [false, true] {
            let client = GitlabClient::new(settings(&gitlab.url()), None).unwrap();
            let session = client.session(None, false);
            if read_version {
                session.version().await.unwrap();
            }
            let lint = session
                .ci_lint(ProjectId(1), LINT_SHA, Some("feature"))
                .await
                .unwrap_or_else(|e| panic!("{version}: {e}"));
            assert!(
                !lint.valid,
                "{version}: the dry run on `feature` was not read"
            );
            let other = session
                .ci_lint(ProjectId(1), LINT_SHA, Some("main"))
                .await
                .unwrap();
            assert!(other.valid, "{version}");
        }
    }
}

#[tokio::test]
async fn ci_lint_asks_once_more_with_the_other_names_after_a_400() {
    let server = MockServer::start().await;
    // An instance that refuses the deprecated names, as a later version might.
    Mock::given(path("/api/v4/projects/1/ci/lint"))
        .and(query_param("sha", LINT_SHA))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_raw(r#"{"error":"sha is not supported"}"#, "application/json"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v4/projects/1/ci/lint"))
        .and(query_param("content_ref", LINT_SHA))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"valid":true,"errors":[],"warnings":[],"merged_yaml":"a: 1"}"#,
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let lint = client(&server)
        .session(None, false)
        .ci_lint(ProjectId(1), LINT_SHA, None)
        .await
        .unwrap();
    assert_eq!(lint.merged_yaml.as_deref(), Some("a: 1"));
}

#[tokio::test]
async fn trigger_jobs_or_bridges_follow_the_instance_version_also_after_an_upgrade() {
    let gitlab = fake_of_version("18.6.1-ee").await;
    gitlab.add_pipeline(1, 6, "failed", "main", LINT_SHA);
    let client = GitlabClient::new(settings(&gitlab.url()), None).unwrap();
    let routes_asked = || {
        (
            gitlab.calls_to("/trigger_jobs"),
            gitlab.calls_to("/bridges"),
        )
    };
    // Version unknown: /trigger_jobs is tried, its 404 leads to /bridges.
    client
        .session(None, false)
        .trigger_jobs(ProjectId(1), PipelineId(6))
        .await
        .unwrap();
    assert_eq!(routes_asked(), (1, 1));
    // Known to be 18.6: straight to /bridges.
    let session = client.session(None, false);
    session.version().await.unwrap();
    session
        .trigger_jobs(ProjectId(1), PipelineId(6))
        .await
        .unwrap();
    assert_eq!(routes_asked(), (1, 2));
    // The instance is upgraded to 19.2; once its version is read again, /trigger_jobs is used.
    gitlab.with(|s| s.version = "19.2.0-ee".to_string());
    let session = client.session(None, true);
    session.version().await.unwrap();
    session
        .trigger_jobs(ProjectId(1), PipelineId(6))
        .await
        .unwrap();
    assert_eq!(routes_asked(), (2, 2));
}

/// Lint answers 429 once (with `lint_429`'s headers), then 200; while it waits, another
/// endpoint (`GET /projects/5`) is called. Returns when lint was refused, when it was asked
/// again and when the other endpoint was called.
async fn another_endpoint_during_a_lint_429(
    lint_429: ResponseTemplate,
) -> (Instant, Instant, Instant) {
    let server = MockServer::start().await;
    let lint_times = Arc::new(Mutex::new(Vec::new()));
    Mock::given(path("/api/v4/projects/5/ci/lint"))
        .respond_with(Recorder {
            times: lint_times.clone(),
            script: vec![
                lint_429,
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"valid": true, "errors": [], "warnings": [], "merged_yaml": null})),
            ],
        })
        .mount(&server)
        .await;
    let project_times = Arc::new(Mutex::new(Vec::new()));
    Mock::given(path("/api/v4/projects/5"))
        .respond_with(Recorder {
            times: project_times.clone(),
            script: vec![ResponseTemplate::new(200).set_body_json(serde_json::json!({"id": 5, "path_with_namespace": "g/app", "web_url": "http://x/g/app"}))],
        })
        .mount(&server)
        .await;
    let gitlab = client(&server);
    let lint_session = gitlab.session(None, false);
    let lint = tokio::spawn(async move {
        lint_session
            .ci_lint(ProjectId(5), LINT_SHA, None)
            .await
            .unwrap()
    });
    while lint_times.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The 429 has been sent; give the client a moment to read it before the other call.
    tokio::time::sleep(Duration::from_millis(200)).await;
    gitlab
        .session(None, false)
        .project(&ProjectRef::Id(ProjectId(5)))
        .await
        .unwrap();
    assert!(lint.await.unwrap().valid);
    let lint_times = lint_times.lock().unwrap();
    let project_at = project_times.lock().unwrap()[0];
    (lint_times[0], lint_times[1], project_at)
}

#[tokio::test]
async fn an_endpoints_own_429_holds_back_that_endpoint_only() {
    // CI lint's own limit: 429 with Retry-After and no RateLimit-* headers.
    let (refused, retried, other) = another_endpoint_during_a_lint_429(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "1")
            .set_body_json(serde_json::json!({"message": {"error": "This endpoint has been requested too many times. Try again later."}})),
    )
    .await;
    assert!(
        other - refused < Duration::from_millis(500),
        "held back {:?}",
        other - refused
    );
    assert!(retried - refused >= Duration::from_millis(1000));
}

#[tokio::test]
async fn an_instance_wide_429_holds_back_every_endpoint() {
    let (refused, _, other) = another_endpoint_during_a_lint_429(
        ResponseTemplate::new(429)
            .insert_header("Retry-After", "1")
            .insert_header("RateLimit-Limit", "600")
            .insert_header("RateLimit-Remaining", "0"),
    )
    .await;
    assert!(
        other - refused >= Duration::from_millis(1000),
        "another endpoint was called {:?} after an instance-wide 429",
        other - refused
    );
}

#[tokio::test]
async fn a_hold_longer_than_the_client_waits_fails_later_calls_at_once() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v4/projects/5/ci/lint"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
        .expect(1)
        .mount(&server)
        .await;
    let gitlab = client(&server);
    for _ in 0..2 {
        let started = Instant::now();
        let answer = gitlab
            .session(None, false)
            .ci_lint(ProjectId(5), LINT_SHA, None)
            .await;
        assert!(
            matches!(answer, Err(GitlabError::RateLimited { .. })),
            "{answer:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
