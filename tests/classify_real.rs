//! `classify` over real-world text (tests/corpus/real/): per-category precision and recall for
//! each file, printed; the top-1 category and the share of look-alikes called trigger failures
//! are asserted (SPEC P12).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use trigger_doctor::classify::classify;

#[derive(Deserialize)]
struct Case {
    id: String,
    source_url: String,
    category: String,
    evidence: String,
}

fn load(file: &str) -> Vec<Case> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "corpus", "real", file]
        .iter()
        .collect();
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[derive(Default)]
struct Counts {
    expected: u32,
    predicted: u32,
    correct: u32,
}

struct Score {
    cases: usize,
    top1: f64,
    none_called: f64,
}

/// The category `classify` gives a text: the top cause's, `none` when it sees no trigger
/// failure, `unknown` when it sees one whose cause it cannot tell.
fn predicted(text: &str) -> String {
    let verdict = classify(text, None);
    match (verdict.trigger_failure, verdict.causes.first()) {
        (false, _) => "none".into(),
        (true, Some(c)) => c.id.category().to_string(),
        (true, None) => "unknown".into(),
    }
}

fn score(file: &str) -> Score {
    let cases = load(file);
    let mut by: BTreeMap<String, Counts> = BTreeMap::new();
    let (mut correct, mut none, mut none_called) = (0u32, 0u32, 0u32);
    let mut misses = Vec::new();
    for case in &cases {
        assert!(case.source_url.starts_with("https://"), "{}", case.id);
        let got = predicted(&case.evidence);
        by.entry(case.category.clone()).or_default().expected += 1;
        by.entry(got.clone()).or_default().predicted += 1;
        if got == case.category {
            correct += 1;
            by.get_mut(&got).unwrap().correct += 1;
        } else {
            misses.push(format!(
                "{}: expected {}, got {got}",
                case.id, case.category
            ));
        }
        if case.category == "none" {
            none += 1;
            if got != "none" {
                none_called += 1;
            }
        }
    }
    let n = cases.len() as f64;
    println!("\n{file}: {} cases", cases.len());
    println!("| category | cases | predicted | correct | precision | recall |");
    println!("|---|---|---|---|---|---|");
    for (cat, c) in &by {
        let precision = if c.predicted > 0 {
            f64::from(c.correct) / f64::from(c.predicted)
        } else {
            1.0
        };
        let recall = if c.expected > 0 {
            f64::from(c.correct) / f64::from(c.expected)
        } else {
            1.0
        };
        println!(
            "| {cat} | {} | {} | {} | {precision:.2} | {recall:.2} |",
            c.expected, c.predicted, c.correct
        );
    }
    let score = Score {
        cases: cases.len(),
        top1: f64::from(correct) / n,
        none_called: f64::from(none_called) / f64::from(none.max(1)),
    };
    println!(
        "top-1 category: {correct}/{} = {:.3}; look-alikes called trigger failures: {none_called}/{none} = {:.3}",
        cases.len(),
        score.top1,
        score.none_called
    );
    for m in &misses {
        println!("  miss: {m}");
    }
    score
}

#[test]
fn classify_reads_the_first_real_cases() {
    let s = score("cases.jsonl");
    assert_eq!(s.cases, 57);
    assert!(s.top1 >= 0.90, "top-1 category {:.3}", s.top1);
    assert!(
        s.none_called <= 0.10,
        "look-alikes called {:.3}",
        s.none_called
    );
}

#[test]
fn classify_reads_the_real_cases_found_since() {
    let s = score("found.jsonl");
    assert!(s.cases >= 50);
    // Gathered after the rules were written, so a check on how they carry over; held to the
    // same bar for look-alikes, and within a few cases of it for the top-1 category.
    assert!(s.top1 >= 0.84, "top-1 category {:.3}", s.top1);
    assert!(
        s.none_called <= 0.10,
        "look-alikes called {:.3}",
        s.none_called
    );
}

/// Texts as GitLab and the clients print them (from GitLab's source and the clients' formats),
/// each alone or with a line of context, and look-alikes: the category `classify` must give.
#[test]
fn classify_reads_gitlab_and_client_texts_alone() {
    let cases: &[(&str, &str)] = &[
        ("Failed - (downstream pipeline can not be created, Insufficient permissions to set pipeline variables)", "permission"),
        ("jobs:deploy:trigger config must specify either project or include", "config"),
        ("Failed - (downstream pipeline can not be created, Ref is ambiguous)", "ref"),
        ("failed - (downstream project could not be found)", "project"),
        ("The trigger job failed: This job could not be executed because the trigger:project value resolved to a blank value. Check that the variables or inputs used in trigger:project are set.", "variable"),
        ("gitlab.exceptions.GitlabCreateError: 400: {'base': ['Reference not found']}", "ref"),
        ("glab: 404 Project Not Found (HTTP 404)", "none"),
        ("$ glab ci run -b main -R group/app\nglab: 404 Project Not Found (HTTP 404)", "project"),
        ("POST https://gitlab.example.com/api/v4/projects/12/trigger/pipeline: 401 {error: invalid_token}, {error_description: Token was revoked. You have to re-authorize from the user.}", "token"),
        ("Gitlab::Error::NotFound: Server responded with code 404, message: 404 Not Found. Request URI: https://gitlab.example.com/api/v4/projects/12/trigger/pipeline", "token"),
        ("requests.exceptions.HTTPError: 404 Client Error: Not Found for url: https://gitlab.example.com/api/v4/projects/12/trigger/pipeline", "token"),
        ("Invoke-RestMethod : The remote server returned an error: (404) Not Found.\nAt line:1 char:1\n+ Invoke-RestMethod -Method Post -Uri \"https://gitlab.example.com/api/v4/projects/12/trigger/pipeline\" -Body @{token=$env:TRIGGER_TOKEN; ref=\"main\"}", "token"),
        ("Error: getaddrinfo ENOTFOUND gitlab.internal.example\n    at GetAddrInfoReqWrap.onlookup [as oncomplete] (node:dns:107:26)\n  hostname: 'gitlab.internal.example'\ntriggering the downstream pipeline failed", "network"),
        ("Post \"https://gitlab.example.com/api/v4/projects/12/trigger/pipeline\": x509: certificate signed by unknown authority", "network"),
        ("Post \"https://gitlab.example.com/api/v4/projects/12/trigger/pipeline\": dial tcp: lookup gitlab.example.com on 10.0.0.2:53: no such host", "network"),
        ("{\"message\":{\"base\":[\"You do not have sufficient permission to run a pipeline on 'main'. Please select a different branch or contact your administrator for assistance.\"]}}", "permission"),
        ("curl -X POST --fail -F token=$TRIGGER_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/12/trigger/pipeline\n{\"message\":{\"base\":[\"Insufficient permissions to create a new pipeline\"]}}", "permission"),
        ("The downstream pipeline could not be created: Pipeline filtered out by workflow rules.", "config"),
        ("Downstream pipeline #4412 failed\nThe job test:unit failed with exit code 1", "none"),
        ("Our nightly job runs curl to download artifacts: curl: (6) Could not resolve host: artifacts.example.com", "none"),
        ("The trigger job stays pending forever when the downstream project was renamed", "project"),
        ("Pipeline trigger token expired last week, now the nightly trigger returns 404", "token"),
        ("No permissions to trigger downstream pipeline", "permission"),
        ("Too many pipelines created in the last minute. Try again later.", "none"),
        ("child pipeline: Included file `ci/child.yml` is empty or does not exist!", "config"),
        ("The multi-project pipeline fails: Job token scope does not include our project, so the curl with CI_JOB_TOKEN gets 404", "permission"),
        ("Failed - (reached maximum depth of child pipelines)", "config"),
        ("Since upgrading to GitLab 18.0 our curl call with CI_JOB_TOKEN to /api/v4/projects/42/trigger/pipeline returns {\"message\":\"404 Not Found\"}", "permission"),
        ("Multi-project pipeline trigger fails with \"downstream pipeline can not be created, Insufficient permissions to create a new pipeline\"", "permission"),
        ("The trigger token was deleted by the former maintainer, now our curl trigger returns 404", "token"),
        ("trigger:\n  project: $DOWNSTREAM_PROJECT\nThe variable comes from a dotenv artifact and is not expanded, the bridge fails", "variable"),
        ("Child pipeline fails: jobs:test config contains unknown keys: trigger_job", "config"),
        ("curl: (35) error:0A000126:SSL routines::unexpected eof while reading\nwhile triggering the downstream pipeline", "network"),
        ("GitLab 403 Forbidden when the MR pipeline from a fork triggers the downstream pipeline", "permission"),
        ("After the upgrade to 16.0 the downstream pipeline is no longer triggered: \"Reference not found\"", "ref"),
        ("Our deploy job triggers another project with curl and gets 502 Bad Gateway from gitlab.example.com", "instance"),
        ("The bridge job fails because the downstream project's .gitlab-ci.yml has a syntax error", "config"),
        ("The trigger fails because the protected variable TRIGGER_TOKEN is not available on feature branches", "variable"),
        ("We rotated the pipeline trigger token but forgot to update the CI variable; the trigger now returns 404.", "token"),
        ("curl -X POST -F token=glpat-XXXXXXXXXXXXXXXXXXXX -F ref=main https://gitlab.com/api/v4/projects/123/trigger/pipeline\n{\"message\":\"404 Not Found\"}", "token"),
        ("Using CI_JOB_TOKEN to trigger a pipeline in another project gives 404 since we upgraded to 17.0. Adding the project to the allowlist fixed it.", "permission"),
        ("The multi-project pipeline fails for tags: the downstream branch v1.2.3 doesn't exist in the other project.", "ref"),
        ("Our child pipeline fails with: Local file `.gitlab/ci/child.yml` does not exist!", "config"),
        ("Bridge job fails with \"downstream pipeline can not be created, Pipeline filtered out by workflow rules.\"", "config"),
        ("The trigger job fails with 'This job could not be executed because of insufficient permissions to create a downstream pipeline' for users who are not members of the downstream project.", "permission"),
        ("triggering downstream pipeline fails behind the corporate proxy: curl: (56) Received HTTP code 407 from proxy after CONNECT", "network"),
        ("Trigger API returns 502 Bad Gateway during the GitLab maintenance window", "instance"),
        ("After moving the project to a new group, the trigger: project: old-group/app job fails with downstream project could not be found", "project"),
        ("Downstream pipeline failed: job rspec failed with exit code 1", "none"),
        ("We use a webhook to trigger Jenkins on push; Jenkins returns 403 No valid crumb was included in the request", "none"),
        ("The dependency scanning job fails with: curl: (6) Could not resolve host: github.com", "none"),
        ("GitLab Runner: ERROR: Job failed: execution took longer than 1h0m0s seconds", "none"),
        ("Trigger job succeeded but the downstream pipeline is stuck in pending because no runners are available", "none"),
        ("Our scheduled pipeline doesn't start: the schedule owner was blocked", "none"),
        ("The pipeline trigger returns 400 {\"message\":{\"base\":[\"Reference not found\"]}} because the branch name has a typo", "ref"),
        ("trigger:\n  project: my-group/deploy\n  branch: production\nThe bridge fails: You do not have sufficient permission to run a pipeline on 'production'.", "permission"),
        ("The variable TRIGGER_TOKEN is protected so it is empty on feature branches and curl gets {\"error\":\"token is missing\"}", "variable"),
        ("python-gitlab: gitlab.exceptions.GitlabCreateError: 400: {'base': ['Insufficient permissions to set pipeline variables']} when triggering with variables", "permission"),
        ("Der Trigger-Job schlägt fehl: downstream project could not be found", "project"),
        ("Le job de déclenchement échoue avec l'erreur {\"message\":\"403 Forbidden\"} lors de l'appel à https://gitlab.example.com/api/v4/projects/12/trigger/pipeline", "permission"),
        ("El pipeline descendente no se crea: downstream pipeline can not be created, Reference not found", "ref"),
        ("トリガージョブが失敗しました: Insufficient permissions to set pipeline variables", "permission"),
        ("触发下游流水线失败，报错 curl: (6) Could not resolve host: gitlab.example.cn", "network"),
        ("Die nachgelagerte Pipeline wird nicht gestartet, weil die Variable $DEPLOY_TOKEN nicht gesetzt ist: {\"error\":\"token is missing\"}", "variable"),
        ("Триггер не срабатывает: curl: (60) SSL certificate problem: unable to get local issuer certificate при вызове /api/v4/projects/5/trigger/pipeline", "network"),
        ("Pipeline triggered by a push fails with Reference not found when the branch was deleted right after pushing", "none"),
        ("The trigger for the Slack notification failed: 404", "none"),
        ("Our Jenkins job triggered by a GitLab webhook failed with 401 Unauthorized", "none"),
        ("GitHub Actions workflow_dispatch trigger returns 404 Not Found when called from GitLab CI", "none"),
        ("gitlab-agent: failed to connect: x509: certificate signed by unknown authority", "none"),
        ("docker pull registry.gitlab.com/group/image: Get https://registry.gitlab.com/v2/: net/http: TLS handshake timeout", "none"),
        ("Renovate: GitLab API responded with 403 Forbidden for POST /projects/1/merge_requests", "none"),
        ("The downstream pipeline's deploy job fails with 'Insufficient permissions' on the Kubernetes cluster", "none"),
        ("Scheduled pipeline fails: Insufficient permissions to create a new pipeline, because the schedule owner left the project", "none"),
        ("curl -X POST http://gitlab.example.com/api/v4/projects/5/trigger/pipeline returns the sign-in page HTML instead of JSON: the http URL is redirected to https and the POST becomes a GET", "api_url"),
        ("Calling https://gitlab.example.com/projects/5/trigger/pipeline (without /api/v4) to trigger the pipeline returns 404", "api_url"),
        ("GitLab.com had an incident; all trigger API calls returned 503 Service Unavailable", "instance"),
        ("Triggering 50 downstream pipelines at once gives 429 Too Many Requests", "instance"),
        ("The trigger job can't create the child pipeline: jobs:build config contains unknown keys: scripts", "config"),
    ];
    let mut misses = Vec::new();
    for (text, want) in cases {
        let got = predicted(text);
        if got != *want {
            misses.push(format!("{text:?}: expected {want}, got {got}"));
        }
    }
    assert!(misses.is_empty(), "{misses:#?}");
}
