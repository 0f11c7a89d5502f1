//! `trigger-doctor preflight`: the trigger map of a group, against the fake GitLab.

use serde_json::{json, Value};

use crate::fake_gitlab::FakeGitlab;
use crate::helpers::{date_in, hours_from_now};

/// CI lint of `project` answers with `yaml` as its merged YAML.
pub fn merged_yaml(gitlab: &FakeGitlab, project: u64, yaml: &str) {
    gitlab.with(|s| {
        s.lint.insert(
            (project, String::new()),
            json!({"valid": true, "errors": [], "warnings": [], "merged_yaml": yaml}),
        );
    });
}

/// The cause ids found on the edges of `job`.
fn causes_of<'a>(findings: &'a [Value], job: &str) -> Vec<&'a str> {
    findings
        .iter()
        .filter(|f| f["job"] == job)
        .map(|f| f["cause"].as_str().unwrap())
        .collect()
}

/// Three projects of `grp` (one in a subgroup) and one elsewhere: a `trigger:` job with its
/// project in a YAML variable, a child pipeline, a curl call with `CI_JOB_TOKEN`, a glab call
/// with a token variable; one project's configuration is read from its file (CI lint refuses),
/// one project is archived.
pub fn group(gitlab: &FakeGitlab) {
    gitlab
        .add_project(1, "grp/web")
        .add_project(2, "grp/tools/deployer")
        .add_project(3, "grp/docs")
        .add_project(4, "other/elsewhere")
        .add_project(5, "grp/old");
    let web = "variables:\n  DOWNSTREAM: grp/tools/deployer\n\
               deploy:\n  stage: deploy\n  trigger:\n    project: $DOWNSTREAM\n    branch: main\n    strategy: depend\n\
               child:\n  trigger:\n    include: ci/child.yml\n\
               .template:\n  trigger: grp/never\n";
    let deployer = "notify-docs:\n  script:\n    - 'curl --fail -X POST -F token=$CI_JOB_TOKEN -F ref=main \"$CI_API_V4_URL/projects/grp%2Fdocs/trigger/pipeline\"'\n\
                    release:\n  script:\n    - glab ci run --repo other/elsewhere --branch stable\n";
    merged_yaml(gitlab, 1, web);
    gitlab.with(|s| {
        // No merged YAML for the deployer: its .gitlab-ci.yml is read instead.
        s.lint.insert(
            (2, String::new()),
            json!({"valid": false, "errors": ["jobs config should contain at least one visible job"], "warnings": [], "merged_yaml": ""}),
        );
        s.files.insert(
            (2, ".gitlab-ci.yml".into(), "main".into()),
            deployer.to_string(),
        );
        s.projects.get_mut(&5).unwrap()["archived"] = json!(true);
        // Healthy edges: grp/docs lets the deployer's job token in; `stable` exists.
        s.job_token_allowlist.insert(
            3,
            vec![json!({"id": 2, "path_with_namespace": "grp/tools/deployer", "name": "deployer"})],
        );
        s.branches.insert(
            (4, "stable".into()),
            json!({"name": "stable", "protected": false, "default": false}),
        );
    });
}

async fn run(gitlab: &FakeGitlab, args: &[&str]) -> std::process::Output {
    run_with(gitlab, &[], args).await
}

async fn run_with(
    gitlab: &FakeGitlab,
    env: &[(&str, &str)],
    args: &[&str],
) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_trigger-doctor"));
    for (key, _) in std::env::vars() {
        if key.starts_with("TRIGGER_DOCTOR__") {
            cmd.env_remove(key);
        }
    }
    cmd.env("TRIGGER_DOCTOR__GITLAB__URL", gitlab.url())
        .env("TRIGGER_DOCTOR__GITLAB__TOKEN", "glpat-bot-token-for-tests")
        .arg("preflight")
        .args(args);
    for (key, value) in env {
        cmd.env(key, value);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn preflight_maps_every_trigger_of_a_group_and_its_subgroups() {
    let gitlab = FakeGitlab::start().await;
    group(&gitlab);
    let out = run(&gitlab, &["--group", "grp", "--format", "json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let map: Value = serde_json::from_slice(&out.stdout).unwrap();
    let projects: Vec<&str> = map["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    // Subgroups included; archived projects and other groups left out.
    assert_eq!(projects, ["grp/web", "grp/tools/deployer", "grp/docs"]);
    let edges = map["edges"].as_array().unwrap();
    let edge = |job: &str| {
        edges
            .iter()
            .find(|e| e["job"] == job)
            .unwrap_or_else(|| panic!("no edge for {job}: {edges:#?}"))
    };
    assert_eq!(edges.len(), 4, "{edges:#?}");
    // The project in a YAML variable is resolved; the template is not an edge.
    let deploy = edge("deploy");
    assert_eq!(deploy["kind"], "multi_project");
    assert_eq!(deploy["to"], "grp/tools/deployer");
    assert_eq!(deploy["git_ref"], "main");
    assert_eq!(deploy["strategy"], "depend");
    assert_eq!(deploy["token"]["kind"], "none");
    let child = edge("child");
    assert_eq!(child["kind"], "child");
    assert_eq!(child["to"], "grp/web");
    assert_eq!(child["includes"][0], "local: ci/child.yml");
    // Read from the file when CI lint gives no merged YAML.
    let notify = edge("notify-docs");
    assert_eq!(notify["kind"], "api_call");
    assert_eq!(notify["to"], "grp/docs");
    assert_eq!(notify["token"]["kind"], "job_token");
    assert_eq!(notify["tool"], "curl");
    let release = edge("release");
    assert_eq!(release["to"], "other/elsewhere");
    assert_eq!(release["git_ref"], "stable");
    assert!(map["unread"].as_array().unwrap().is_empty());
    // Every edge to another project is checked, and all of them would work.
    assert_eq!(map["findings"], json!([]));
    // One listing, then CI lint once per project.
    assert_eq!(gitlab.calls_to("/ci/lint"), 3);
}

#[tokio::test]
async fn preflight_draws_the_map_as_mermaid_and_dot_and_lists_it_as_text() {
    let gitlab = FakeGitlab::start().await;
    group(&gitlab);
    let out = run(&gitlab, &["--group", "grp", "--format", "mermaid"]).await;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("graph LR\n"), "{text}");
    assert!(text.contains("[\"grp/tools/deployer\"]"), "{text}");
    assert!(text.contains("-->|\"deploy (trigger) → main\"|"), "{text}");
    assert!(
        text.contains("-.->|\"notify-docs (api) → main\"|"),
        "{text}"
    );

    let out = run(&gitlab, &["--group", "grp", "--format", "dot"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("digraph triggers {"), "{text}");
    assert!(
        text.contains("[label=\"notify-docs\", style=dashed];"),
        "{text}"
    );

    // The README's example, line for line.
    let out = run(&gitlab, &["--group", "grp"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    let readme = include_str!("../../README.md");
    let example = readme
        .split("$ trigger-doctor preflight --group grp\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n$ ").next())
        .unwrap();
    assert_eq!(text.trim_end(), example.trim_end());

    let out = run(&gitlab, &["--project", "grp/web"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("1 projects, 2 trigger edges\n"), "{text}");
    assert!(text.contains("FROM"), "{text}");
    assert!(text.contains("grp/tools/deployer"), "{text}");
}

#[tokio::test]
async fn preflight_explains_a_bad_format_an_empty_scope_and_an_unknown_group() {
    let gitlab = FakeGitlab::start().await;
    group(&gitlab);
    let out = run(&gitlab, &["--group", "grp", "--format", "svg"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format"));
    let out = run(&gitlab, &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--group"));
    let out = run(&gitlab, &["--group", "nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn preflight_maps_the_configured_groups_when_none_is_named() {
    let gitlab = FakeGitlab::start().await;
    group(&gitlab);
    let out = run_with(
        &gitlab,
        &[("TRIGGER_DOCTOR__PREFLIGHT__GROUPS", "grp/tools, other")],
        &["--format", "json"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let map: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        map["projects"],
        json!(["grp/tools/deployer", "other/elsewhere"])
    );
    assert_eq!(map["edges"].as_array().unwrap().len(), 2);
}

/// Broken edges of every kind the map checks: a renamed downstream project, a missing one, a
/// branch that does not exist, a `CI_JOB_TOKEN` call the downstream allowlist does not name.
#[tokio::test]
async fn preflight_finds_the_triggers_that_will_fail_and_exits_one() {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "team/app")
        .add_project(2, "team/platform/deployer")
        .add_project(3, "team/docs");
    let app = "to-renamed:\n  trigger: team/deployer\n\
               to-missing:\n  trigger: team/gone\n\
               to-no-branch:\n  trigger:\n    project: team/docs\n    branch: release-9\n\
               docs-by-token:\n  script:\n    - curl --fail -X POST -F token=$CI_JOB_TOKEN -F ref=main $CI_API_V4_URL/projects/3/trigger/pipeline\n\
               deploy-by-trigger-token:\n  script:\n    - curl --fail -X POST -F token=$DEPLOYER_TOKEN -F ref=main $CI_API_V4_URL/projects/2/trigger/pipeline\n\
               docs-by-trigger-token:\n  script:\n    - curl --fail -X POST -F token=$DOCS_TOKEN -F ref=main $CI_API_V4_URL/projects/3/trigger/pipeline\n";
    // The deployer's trigger tokens: one expires in 10 days (inside the 30-day warning), one
    // in 90 days, one never.
    let at = |days: i64| hours_from_now(days * 24);
    merged_yaml(&gitlab, 1, app);
    gitlab.with(|s| {
        // The deployer moved from team/deployer: the API still finds the old path.
        s.redirects.insert("team/deployer".into(), 2);
        s.triggers.insert(
            2,
            vec![
                json!({"id": 11, "description": "deploy from app", "expires_at": at(10), "owner": {"id": 5, "username": "ana"}}),
                json!({"id": 12, "description": "nightly", "expires_at": at(90), "owner": {"id": 5, "username": "ana"}}),
                json!({"id": 13, "description": "old", "expires_at": null, "owner": {"id": 5, "username": "ana"}}),
            ],
        );
        // The docs project's only trigger token belongs to a blocked user.
        s.triggers.insert(
            3,
            vec![json!({"id": 21, "description": "docs", "expires_at": null, "owner": {"id": 9, "username": "gone", "state": "blocked"}})],
        );
    });
    let out = run(&gitlab, &["--project", "team/app", "--format", "json"]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let map: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = map["findings"].as_array().unwrap();
    let of = |job: &str| causes_of(findings, job);
    assert!(
        of("to-renamed").contains(&"project.renamed"),
        "{findings:#?}"
    );
    assert!(
        of("to-missing").contains(&"project.not_found"),
        "{findings:#?}"
    );
    assert_eq!(of("to-no-branch"), ["ref.not_found"], "{findings:#?}");
    assert_eq!(
        of("docs-by-token"),
        ["permission.job_token_allowlist"],
        "{findings:#?}"
    );
    assert_eq!(
        of("deploy-by-trigger-token"),
        ["token.expired"],
        "{findings:#?}"
    );
    let expiring = findings
        .iter()
        .find(|f| f["job"] == "deploy-by-trigger-token")
        .unwrap();
    assert_eq!(expiring["verdict"], "likely");
    let summary = expiring["summary"].as_str().unwrap();
    assert!(
        summary.contains("expires in 9 days") || summary.contains("expires in 10 days"),
        "{expiring}"
    );
    assert!(expiring["evidence"][0]
        .as_str()
        .unwrap()
        .contains("trigger token #11 (deploy from app)"));
    assert_eq!(
        of("docs-by-trigger-token"),
        ["permission.trigger_owner"],
        "{findings:#?}"
    );
    for f in findings {
        assert!(!f["summary"].as_str().unwrap().is_empty());
    }

    // The graph shows the broken edges in colour.
    let out = run(&gitlab, &["--project", "team/app", "--format", "mermaid"]).await;
    let graph = String::from_utf8(out.stdout).unwrap();
    assert!(graph.contains("linkStyle 0 stroke:#d22"), "{graph}");
    let out = run(&gitlab, &["--project", "team/app", "--format", "dot"]).await;
    let graph = String::from_utf8(out.stdout).unwrap();
    assert!(graph.contains("color=red"), "{graph}");

    let out = run(&gitlab, &["--project", "team/app"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\nFindings:\n"), "{text}");
    assert!(
        text.contains("team/app to-no-branch → team/docs: ref.not_found (confirmed)"),
        "{text}"
    );
}

/// A project's `.gitlab/trigger-doctor.yml`: its owners are named on findings, a muted cause is
/// left out until its date, an expected edge that is gone is a finding, and a malformed file is
/// reported by key without stopping the sweep.
#[tokio::test]
async fn preflight_reads_each_projects_settings_file() {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "team/app")
        .add_project(2, "team/docs")
        .add_project(3, "team/odd");
    let app = "to-missing:\n  trigger: team/gone\n\
               to-no-branch:\n  trigger:\n    project: team/docs\n    branch: release-9\n";
    let settings = "owners: ['@team/release', ana]\n\
                    mute:\n  - cause: ref.not_found\n    until: 2999-12-31\n    reason: branch comes with the release\n  - cause: project.not_found\n    until: 2001-01-01\n\
                    expect:\n  - to: team/billing\n    job: bill\n  - to: team/docs\n";
    merged_yaml(&gitlab, 1, app);
    gitlab.with(|s| {
        s.files.insert(
            (1, ".gitlab/trigger-doctor.yml".into(), "main".into()),
            settings.to_string(),
        );
        s.files.insert(
            (3, ".gitlab/trigger-doctor.yml".into(), "main".into()),
            "mute:\n  - cause: token.nope\n".to_string(),
        );
    });
    let out = run(&gitlab, &["--group", "team", "--format", "json"]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let map: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = map["findings"].as_array().unwrap();
    // ref.not_found is muted until 2999; the project.not_found mute has ended.
    assert_eq!(map["muted"], 1, "{findings:#?}");
    assert!(findings.iter().all(|f| f["cause"] != "ref.not_found"));
    let missing = findings
        .iter()
        .find(|f| f["cause"] == "project.not_found")
        .unwrap();
    assert_eq!(missing["owners"], json!(["@team/release", "@ana"]));
    // team/billing is expected and gone; team/docs is expected and there.
    assert_eq!(
        map["missing_edges"],
        json!([{"project": "team/app", "to": "team/billing", "job": "bill", "owners": ["@team/release", "@ana"]}])
    );
    let problems = map["settings_problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0]["project"], "team/odd");
    assert!(problems[0]["reason"]
        .as_str()
        .unwrap()
        .contains("mute[0].cause: \"token.nope\" is not a cause id"));

    let out = run(&gitlab, &["--group", "team"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("owners: @team/release @ana"), "{text}");
    assert!(
        text.contains("Expected edges missing:\n  team/app → team/billing (bill)"),
        "{text}"
    );
    assert!(
        text.contains("1 findings muted by settings files."),
        "{text}"
    );
    assert!(
        text.contains("Settings files not read:\n  team/odd:"),
        "{text}"
    );
}

/// The variables an edge reads: one defined nowhere, one misspelt.
#[tokio::test]
async fn preflight_finds_the_variables_an_edge_reads_that_are_not_defined() {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "team/app")
        .add_project(2, "team/docs");
    let app = "to-somewhere:\n  trigger:\n    project: $TARGET_PROJECT\n\
               docs:\n  script:\n    - curl --fail -X POST -F token=$DOCS_TOKN -F ref=main $CI_API_V4_URL/projects/2/trigger/pipeline\n";
    merged_yaml(&gitlab, 1, app);
    gitlab.with(|s| {
        s.variables.insert(
            1,
            vec![json!({"key": "DOCS_TOKEN", "variable_type": "env_var", "protected": false, "masked": true, "environment_scope": "*"})],
        );
        s.group_variables.insert("team".into(), Vec::new());
        // An administrator bot: every place a variable can be defined is searched.
        s.instance_variables = Some(Vec::new());
    });
    let out = run(&gitlab, &["--project", "team/app", "--format", "json"]).await;
    let map: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = map["findings"].as_array().unwrap();
    let of = |job: &str| causes_of(findings, job);
    assert_eq!(of("to-somewhere"), ["variable.undefined"], "{findings:#?}");
    assert_eq!(of("docs"), ["variable.misnamed"], "{findings:#?}");
    let misnamed = findings.iter().find(|f| f["job"] == "docs").unwrap();
    assert!(
        misnamed["summary"].as_str().unwrap().contains("DOCS_TOKEN"),
        "{misnamed}"
    );
}

/// A pipelines API call with a token variable: the downstream project's and its groups'
/// access tokens with `api` scope that expire soon are findings (likely: the value is not read).
#[tokio::test]
async fn preflight_warns_of_access_tokens_that_expire_soon() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(1, "grp/web").add_project(3, "grp/docs");
    merged_yaml(
        &gitlab,
        1,
        "release:\n  script:\n    - 'curl --fail --request POST --header \"PRIVATE-TOKEN: $RELEASE_TOKEN\" \"$CI_API_V4_URL/projects/grp%2Fdocs/pipeline?ref=main\"'\n",
    );
    let date = date_in;
    gitlab.with(|s| {
        s.variables.insert(1, vec![json!({"key": "RELEASE_TOKEN", "protected": false, "masked": true, "environment_scope": "*", "variable_type": "env_var"})]);
        let token = |id: u64, name: &str, expires: String, scopes: &[&str], revoked: bool| {
            json!({"id": id, "name": name, "revoked": revoked, "active": !revoked, "scopes": scopes,
                   "user_id": 900 + id, "expires_at": expires, "access_level": 40})
        };
        s.access_tokens.insert(
            3,
            vec![
                token(1, "release-bot", date(5), &["api"], false),
                token(2, "later", date(100), &["api"], false),
                token(3, "old", date(2), &["api"], true),
                token(4, "reader", date(3), &["read_api"], false),
            ],
        );
        s.group_access_tokens
            .insert("grp".into(), vec![token(5, "group-release", date(20), &["api"], false)]);
    });
    let out = run(&gitlab, &["--project", "grp/web", "--format", "json"]).await;
    let map: Value = serde_json::from_slice(&out.stdout).unwrap();
    let expiring: Vec<&Value> = map["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["cause"] == "token.expired")
        .collect();
    let names: Vec<&str> = expiring
        .iter()
        .map(|f| f["summary"].as_str().unwrap())
        .collect();
    assert_eq!(expiring.len(), 2, "{names:#?}");
    assert!(
        names[0].contains("\"release-bot\" of grp/docs expires in 4 days")
            || names[0].contains("\"release-bot\" of grp/docs expires in 5 days"),
        "{names:#?}"
    );
    assert!(
        names[1].contains("\"group-release\" of group grp"),
        "{names:#?}"
    );
    assert!(expiring
        .iter()
        .all(|f| f["verdict"] == "likely" && f["expires_at"].is_string()));
    assert!(names[0].contains("$RELEASE_TOKEN"), "{names:#?}");
}

/// A trigger job that sends variables to a project that lets no one set pipeline variables
/// will fail: confirmed. One whose minimum role is Maintainer is likely to (the users who run
/// the upstream pipelines are not known to be Maintainers).
#[tokio::test]
async fn preflight_finds_pipeline_variables_the_downstream_refuses() {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "grp/web")
        .add_project(2, "grp/locked")
        .add_project(3, "grp/strict")
        .add_project(4, "grp/open");
    merged_yaml(
        &gitlab,
        1,
        "to-locked:\n  variables:\n    RELEASE: '1.2'\n  trigger: grp/locked\n\
         to-strict:\n  variables:\n    RELEASE: '1.2'\n  trigger: grp/strict\n\
         to-open:\n  variables:\n    RELEASE: '1.2'\n  trigger: grp/open\n\
         not-forwarded:\n  variables:\n    RELEASE: '1.2'\n  trigger:\n    project: grp/locked\n    forward:\n      yaml_variables: false\n",
    );
    gitlab.with(|s| {
        for (id, role) in [(2, "no_one_allowed"), (3, "maintainer"), (4, "developer")] {
            let p = s.projects.get_mut(&id).unwrap();
            p["ci_pipeline_variables_minimum_override_role"] = role.into();
            p["restrict_user_defined_variables"] = true.into();
        }
    });
    let out = run(&gitlab, &["--project", "grp/web", "--format", "json"]).await;
    let map: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = map["findings"].as_array().unwrap().clone();
    let verdict = |job: &str| {
        findings
            .iter()
            .find(|f| f["job"] == job && f["cause"] == "permission.pipeline_variables")
            .map(|f| f["verdict"].as_str().unwrap().to_string())
    };
    assert_eq!(
        verdict("to-locked").as_deref(),
        Some("confirmed"),
        "{findings:#?}"
    );
    assert_eq!(
        verdict("to-strict").as_deref(),
        Some("likely"),
        "{findings:#?}"
    );
    assert_eq!(verdict("to-open"), None, "{findings:#?}");
    assert_eq!(verdict("not-forwarded"), None, "{findings:#?}");
    assert_eq!(out.status.code(), Some(1));
}

/// With `preflight.dry_run`, CI lint's dry run of each downstream ref tells a configuration
/// that does not parse (confirmed) from one whose rules leave no job (likely: the dry run
/// simulates a push pipeline, the real one has source `pipeline`).
#[tokio::test]
async fn preflight_dry_runs_the_downstream_configuration_when_asked() {
    let gitlab = FakeGitlab::start().await;
    gitlab
        .add_project(1, "grp/web")
        .add_project(2, "grp/empty")
        .add_project(3, "grp/broken")
        .add_project(4, "grp/fine");
    merged_yaml(
        &gitlab,
        1,
        "a:\n  trigger: grp/empty\nb:\n  trigger: grp/broken\nc:\n  trigger: grp/fine\n",
    );
    gitlab.with(|s| {
        let lint = |errors: Vec<&str>| {
            json!({"valid": errors.is_empty(), "errors": errors, "warnings": [], "merged_yaml": null})
        };
        s.lint.insert((2, "main".into()), lint(vec!["Pipeline will not run for the selected trigger. The rules configuration prevented any jobs from being added to the pipeline."]));
        s.lint.insert((3, "main".into()), lint(vec!["jobs:build config contains unknown keys: scriptt"]));
        s.lint.insert((4, "main".into()), lint(vec![]));
    });
    let causes = |out: &std::process::Output| -> Vec<(String, String, String)> {
        let map: Value = serde_json::from_slice(&out.stdout).unwrap();
        map["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["job"].as_str().unwrap().to_string(),
                    f["cause"].as_str().unwrap().to_string(),
                    f["verdict"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    // Lint calls of the downstream projects (2, 3, 4): only dry runs.
    let dry_runs = || {
        [
            "/projects/2/ci/lint",
            "/projects/3/ci/lint",
            "/projects/4/ci/lint",
        ]
        .iter()
        .map(|p| gitlab.calls_to(p))
        .sum::<usize>()
    };
    let plain = run(&gitlab, &["--project", "grp/web", "--format", "json"]).await;
    assert!(causes(&plain).is_empty(), "{:?}", causes(&plain));
    assert_eq!(dry_runs(), 0);
    let out = run_with(
        &gitlab,
        &[("TRIGGER_DOCTOR__PREFLIGHT__DRY_RUN", "true")],
        &["--project", "grp/web", "--format", "json"],
    )
    .await;
    let found = causes(&out);
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert!(
        found.contains(&s("a", "config.downstream_empty", "likely")),
        "{found:?}"
    );
    assert!(
        found.contains(&s("b", "config.downstream_invalid", "confirmed")),
        "{found:?}"
    );
    assert!(!found.iter().any(|f| f.0 == "c"), "{found:?}");
    assert_eq!(dry_runs(), 3);
}

/// Where a job runs against where its token variable exists: protected-only variables on jobs
/// that may run on unprotected branches, environment-scoped ones the job's environment misses.
#[tokio::test]
async fn preflight_finds_variables_the_job_would_get_empty() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(1, "grp/web").add_project(3, "grp/docs");
    let curl = |var: &str| {
        format!("    - 'curl --fail -X POST -F token=${var} -F ref=main \"$CI_API_V4_URL/projects/grp%2Fdocs/trigger/pipeline\"'\n")
    };
    let yaml = format!(
        "any-branch:\n  script:\n{}\
         on-main:\n  rules:\n    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH\n  script:\n{}\
         on-stable:\n  rules:\n    - if: $CI_COMMIT_BRANCH == \"stable\"\n  script:\n{}\
         protected-only:\n  rules:\n    - if: $CI_COMMIT_REF_PROTECTED == \"true\"\n  script:\n{}\
         staging:\n  environment: staging\n  rules:\n    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH\n  script:\n{}\
         prod:\n  environment:\n    name: production/eu\n  rules:\n    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH\n  script:\n{}",
        curl("DOCS_TOKEN"),
        curl("DOCS_TOKEN"),
        curl("DOCS_TOKEN"),
        curl("DOCS_TOKEN"),
        curl("PROD_TOKEN"),
        curl("PROD_TOKEN"),
    );
    merged_yaml(&gitlab, 1, &yaml);
    gitlab.with(|s| {
        s.variables.insert(
            1,
            vec![
                json!({"key": "DOCS_TOKEN", "protected": true, "masked": true, "environment_scope": "*", "variable_type": "env_var"}),
                json!({"key": "PROD_TOKEN", "protected": false, "masked": true, "environment_scope": "production*", "variable_type": "env_var"}),
            ],
        );
        s.protected_branches.insert(
            1,
            vec![json!({"id": 1, "name": "main", "push_access_levels": [], "merge_access_levels": []})],
        );
    });
    let out = run(&gitlab, &["--project", "grp/web", "--format", "json"]).await;
    let map: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = map["findings"].as_array().unwrap();
    let of = |job: &str| -> Vec<(String, String)> {
        findings
            .iter()
            .filter(|f| f["job"] == job && f["cause"].as_str().unwrap().starts_with("variable."))
            .map(|f| {
                (
                    f["cause"].as_str().unwrap().to_string(),
                    f["verdict"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let one = |cause: &str, verdict: &str| vec![(cause.to_string(), verdict.to_string())];
    assert_eq!(
        of("any-branch"),
        one("variable.protected_ref", "likely"),
        "{findings:#?}"
    );
    assert_eq!(of("on-main"), vec![], "{findings:#?}");
    assert_eq!(
        of("on-stable"),
        one("variable.protected_ref", "confirmed"),
        "{findings:#?}"
    );
    assert_eq!(of("protected-only"), vec![], "{findings:#?}");
    assert_eq!(
        of("staging"),
        one("variable.environment_scope", "confirmed"),
        "{findings:#?}"
    );
    assert_eq!(of("prod"), vec![], "{findings:#?}");
    let edge = |job: &str| {
        map["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["job"] == job)
            .unwrap()
            .clone()
    };
    assert_eq!(
        edge("on-stable")["runs_on"],
        json!({"kind": "refs", "refs": ["stable"]})
    );
    assert_eq!(
        edge("protected-only")["runs_on"],
        json!({"kind": "protected"})
    );
    assert_eq!(edge("any-branch")["runs_on"], json!({"kind": "any_ref"}));
    assert_eq!(edge("prod")["environment"], "production/eu");
    let stable = findings.iter().find(|f| f["job"] == "on-stable").unwrap();
    assert!(
        stable["summary"]
            .as_str()
            .unwrap()
            .contains("runs on stable"),
        "{stable:#}"
    );
}

/// A `trigger:` job into a protected downstream branch runs as whoever runs the upstream
/// pipelines (the newest pipeline's user, active schedule owners): each is checked for the
/// right to push or merge there.
#[tokio::test]
async fn preflight_checks_the_people_who_run_the_upstream_against_a_protected_branch() {
    let gitlab = FakeGitlab::start().await;
    gitlab.add_project(1, "grp/web").add_project(2, "grp/app");
    merged_yaml(
        &gitlab,
        1,
        "deploy:\n  trigger:\n    project: grp/app\n    branch: main\n",
    );
    gitlab.add_pipeline(
        1,
        900,
        "success",
        "main",
        "95d49d1efbd941908580e79d65e4b5ecaf4a8305",
    );
    let user =
        |id: u64, name: &str| json!({"id": id, "username": name, "name": name, "state": "active"});
    gitlab.with(|s| {
        s.pipelines.get_mut(&(1, 900)).unwrap()["user"] = user(501, "ana");
        s.schedules.insert(
            1,
            vec![
                json!({"id": 1, "ref": "main", "active": true, "owner": user(502, "bo")}),
                json!({"id": 2, "ref": "main", "active": false, "owner": user(503, "cy")}),
            ],
        );
        s.branches.insert(
            (2, "main".into()),
            json!({"name": "main", "protected": true, "default": true}),
        );
        s.protected_branches.insert(
            2,
            vec![json!({"id": 1, "name": "main",
                        "push_access_levels": [{"access_level": 40, "access_level_description": "Maintainers"}],
                        "merge_access_levels": [{"access_level": 40, "access_level_description": "Maintainers"}]})],
        );
        s.members.insert((2, 501), 30);
        s.members.insert((2, 502), 40);
        s.members.insert((2, 503), 10);
    });
    let out = run(&gitlab, &["--project", "grp/web", "--format", "json"]).await;
    let map: Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings: Vec<&Value> = map["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["cause"].as_str().unwrap().starts_with("permission."))
        .collect();
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = findings[0];
    assert_eq!(f["cause"], "permission.protected_ref", "{f:#}");
    assert_eq!(f["verdict"], "confirmed", "{f:#}");
    let summary = f["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("ana ran the newest pipeline"),
        "{summary}"
    );
    // The inactive schedule's owner is not asked about.
    assert!(!map.to_string().contains("cy (user"), "{map:#}");
}
