//! The CI configuration reader: resolution, jobs, scripts and the trigger calls in them.

use super::*;
use crate::evidence::trigger_call::Tool;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/ci/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn job(yaml: &str, name: &str) -> Job {
    parse(yaml)
        .unwrap()
        .job(name)
        .unwrap()
        .unwrap_or_else(|| panic!("no job {name}"))
}

fn lines(job: &Job, section: ScriptSection) -> Vec<&str> {
    job.script
        .iter()
        .filter(|line| line.section == section)
        .map(|line| line.text.as_str())
        .collect()
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn only_call(job: &Job) -> ScriptCall {
    let mut calls = job.trigger_calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    calls.remove(0)
}

#[test]
fn anchors_and_merge_keys_are_applied() {
    let yaml = r#"
.defaults: &defaults
  stage: deploy
  variables: &vars
    A: "1"
    B: "2"
job:
  <<: *defaults
  variables:
    <<: *vars
    B: "3"
  script:
    - echo hi
"#;
    let job = job(yaml, "job");
    assert_eq!(job.stage.as_deref(), Some("deploy"));
    assert_eq!(job.variables, vars(&[("A", "1"), ("B", "3")]));
    assert_eq!(lines(&job, ScriptSection::Script), ["echo hi"]);
}

#[test]
fn merge_key_lists_let_earlier_mappings_win_and_later_keys_override() {
    let yaml = r#"
.x: &x {A: x, B: x}
.y: &y {A: y, C: y}
job:
  variables:
    <<: [*x, *y]
    C: own
  script: [true]
"#;
    let job = job(yaml, "job");
    assert_eq!(job.variables, vars(&[("A", "x"), ("B", "x"), ("C", "own")]));
}

#[test]
fn reference_tags_are_spliced_into_scripts_and_resolve_variables() {
    let yaml = r#"
.setup:
  script:
    - echo one
    - echo two
  variables:
    TOKEN_NAME: DEPLOY_TOKEN
.vars:
  variables:
    URL: https://gitlab.example.com
    LEVEL: "2"
job:
  variables:
    API: !reference [.vars, variables, URL]
    NAME: !reference [.setup, variables, TOKEN_NAME]
  script:
    - echo start
    - !reference [.setup, script]
    - echo end
all-vars:
  variables: !reference [.vars, variables]
  script: [true]
"#;
    let job_ = job(yaml, "job");
    assert_eq!(
        lines(&job_, ScriptSection::Script),
        ["echo start", "echo one", "echo two", "echo end"]
    );
    assert_eq!(
        job_.variables,
        vars(&[
            ("API", "https://gitlab.example.com"),
            ("NAME", "DEPLOY_TOKEN")
        ])
    );
    assert!(job_.unresolved.is_empty(), "{:?}", job_.unresolved);
    let all = job(yaml, "all-vars");
    assert_eq!(
        all.variables,
        vars(&[("URL", "https://gitlab.example.com"), ("LEVEL", "2")])
    );
}

#[test]
fn a_reference_target_is_read_with_its_extends_applied() {
    let yaml = r#"
.base:
  script: [echo from-base]
.child:
  extends: .base
job:
  script:
    - !reference [.child, script]
"#;
    assert_eq!(
        lines(&job(yaml, "job"), ScriptSection::Script),
        ["echo from-base"]
    );
}

#[test]
fn references_that_point_at_each_other_are_an_error() {
    let yaml = r#"
.a:
  script: [!reference [.b, script]]
.b:
  script: [!reference [.a, script]]
job:
  script: [!reference [.a, script]]
"#;
    let err = parse(yaml).unwrap().job("job").unwrap_err();
    assert!(
        matches!(err, CiConfigError::ReferenceTooDeep { .. }),
        "{err}"
    );
}

#[test]
fn single_extends_deep_merges_hashes_and_replaces_arrays() {
    let yaml = r#"
.base:
  stage: test
  variables: {A: base, B: base}
  script: [echo base1, echo base2]
job:
  extends: .base
  variables: {B: job}
  script: [echo job]
"#;
    let job = job(yaml, "job");
    assert_eq!(job.extends, [".base"]);
    assert_eq!(job.stage.as_deref(), Some("test"));
    assert_eq!(job.variables, vars(&[("A", "base"), ("B", "job")]));
    assert_eq!(lines(&job, ScriptSection::Script), ["echo job"]);
}

#[test]
fn multiple_extends_apply_in_order_with_later_parents_winning() {
    let yaml = r#"
.a: {stage: a, variables: {X: a, ONLY_A: "1"}}
.b: {extends: .c, variables: {X: b}}
.c: {stage: c, variables: {FROM_C: "1"}}
job:
  extends: [.a, .b]
  script: [true]
"#;
    let job = job(yaml, "job");
    assert_eq!(job.extends, [".a", ".b"]);
    assert_eq!(job.stage.as_deref(), Some("c"));
    assert_eq!(
        job.variables,
        vars(&[("X", "b"), ("ONLY_A", "1"), ("FROM_C", "1")])
    );
}

#[test]
fn an_extends_cycle_is_an_error_naming_the_chain() {
    let yaml = "a: {extends: b, script: [x]}\nb: {extends: a}\n";
    let err = parse(yaml).unwrap().job("a").unwrap_err();
    assert_eq!(
        err,
        CiConfigError::ExtendsCycle {
            chain: vec!["a".into(), "b".into(), "a".into()]
        }
    );
    assert!(err.to_string().contains("a -> b -> a"), "{err}");
}

#[test]
fn extends_deeper_than_eleven_levels_is_an_error() {
    let chain = |levels: usize| {
        let mut yaml = String::from("job: {extends: .l1, script: [x]}\n");
        for level in 1..levels {
            yaml.push_str(&format!(".l{level}: {{extends: .l{}}}\n", level + 1));
        }
        yaml.push_str(&format!(".l{levels}: {{stage: deep}}\n"));
        yaml
    };
    let ok = job(&chain(11), "job");
    assert_eq!(ok.stage.as_deref(), Some("deep"));
    let err = parse(&chain(12)).unwrap().job("job").unwrap_err();
    assert_eq!(err, CiConfigError::ExtendsTooDeep { job: "job".into() });
}

#[test]
fn missing_extends_parents_and_reference_targets_are_listed_as_unresolved() {
    let yaml = r#"
job:
  extends: [.from-include, .present]
  script:
    - echo a
    - !reference [.elsewhere, script]
.present: {stage: build}
"#;
    let job = job(yaml, "job");
    assert_eq!(job.stage.as_deref(), Some("build"));
    assert_eq!(
        job.unresolved,
        ["extends: .from-include", "!reference [.elsewhere, script]"]
    );
    assert_eq!(lines(&job, ScriptSection::Script), ["echo a"]);
}

#[test]
fn hidden_jobs_and_reserved_keys_are_not_jobs_but_hidden_ones_resolve_by_name() {
    let yaml = r#"
stages: [build]
types: [build]
variables: {X: "1"}
default: {before_script: [echo d]}
workflow: {rules: [{when: always}]}
include: [ci/a.yml]
image: alpine
services: [docker:dind]
cache: {paths: [vendor]}
before_script: [echo legacy]
after_script: [echo legacy]
.hidden:
  script: [echo hidden]
pages:
  script: [echo pages]
"#;
    let config = parse(yaml).unwrap();
    assert_eq!(config.job_names(), ["pages"]);
    let hidden = config.job(".hidden").unwrap().unwrap();
    assert!(hidden.is_hidden());
    assert_eq!(lines(&hidden, ScriptSection::Script), ["echo hidden"]);
    assert_eq!(config.job("stages").unwrap(), None);
    assert_eq!(config.job("variables").unwrap(), None);
    assert_eq!(config.job("missing").unwrap(), None);
    assert_eq!(config.jobs().unwrap().len(), 1);
}

#[test]
fn default_scripts_are_inherited_unless_the_job_sets_its_own_or_opts_out() {
    let yaml = r#"
default:
  before_script: [echo default-before]
  after_script: [echo default-after]
plain: {script: [a]}
own: {before_script: [echo own], script: [a]}
opted-out: {inherit: {default: false}, script: [a]}
only-after: {inherit: {default: [after_script]}, script: [a]}
bridge: {trigger: group/project}
"#;
    let config = parse(yaml).unwrap();
    let get = |name| config.job(name).unwrap().unwrap();
    let plain = get("plain");
    assert_eq!(
        lines(&plain, ScriptSection::BeforeScript),
        ["echo default-before"]
    );
    assert_eq!(
        lines(&plain, ScriptSection::AfterScript),
        ["echo default-after"]
    );
    assert_eq!(
        lines(&get("own"), ScriptSection::BeforeScript),
        ["echo own"]
    );
    assert!(get("opted-out")
        .script
        .iter()
        .all(|l| l.section == ScriptSection::Script));
    let only_after = get("only-after");
    assert!(lines(&only_after, ScriptSection::BeforeScript).is_empty());
    assert_eq!(
        lines(&only_after, ScriptSection::AfterScript),
        ["echo default-after"]
    );
    assert!(get("bridge").script.is_empty());
}

#[test]
fn legacy_top_level_before_script_acts_as_a_default() {
    let yaml = "before_script: [echo legacy]\njob: {script: [a]}\n";
    assert_eq!(
        lines(&job(yaml, "job"), ScriptSection::BeforeScript),
        ["echo legacy"]
    );
}

#[test]
fn global_variables_are_inherited_unless_inherit_variables_says_otherwise() {
    let yaml = r#"
variables:
  GLOBAL_A: a
  GLOBAL_B: b
all: {variables: {OWN: x, GLOBAL_A: mine}, script: [a]}
none: {inherit: {variables: false}, script: [a]}
some: {inherit: {variables: [GLOBAL_B]}, script: [a]}
"#;
    let config = parse(yaml).unwrap();
    assert_eq!(
        config.variables().unwrap(),
        vars(&[("GLOBAL_A", "a"), ("GLOBAL_B", "b")])
    );
    let all = config.job("all").unwrap().unwrap();
    assert_eq!(
        all.effective_variables(),
        vars(&[("GLOBAL_A", "mine"), ("GLOBAL_B", "b"), ("OWN", "x")])
    );
    assert!(config
        .job("none")
        .unwrap()
        .unwrap()
        .global_variables
        .is_empty());
    assert_eq!(
        config.job("some").unwrap().unwrap().global_variables,
        vars(&[("GLOBAL_B", "b")])
    );
}

#[test]
fn a_variable_in_map_form_gives_its_value() {
    let yaml = r#"
job:
  variables:
    TOKEN: {value: x, description: "the trigger token"}
    EMPTY: {description: "filled in by hand"}
    LITERAL: {value: "$NOT_EXPANDED", expand: false}
    NUMBER: 10
    NOTHING:
  script: [a]
"#;
    assert_eq!(
        job(yaml, "job").variables,
        vars(&[
            ("TOKEN", "x"),
            ("EMPTY", ""),
            ("LITERAL", "$NOT_EXPANDED"),
            ("NUMBER", "10"),
            ("NOTHING", ""),
        ])
    );
}

#[test]
fn trigger_string_form_is_a_multi_project_trigger_with_default_forwarding() {
    let trigger = job("bridge:\n  trigger: group/project\n", "bridge")
        .trigger
        .unwrap();
    assert_eq!(
        trigger,
        Trigger {
            kind: TriggerKind::MultiProject {
                project: "group/project".into(),
                branch: None
            },
            strategy: None,
            forward_yaml_variables: true,
            forward_pipeline_variables: false,
            variables_used: vec![],
        }
    );
}

#[test]
fn trigger_map_form_reads_project_branch_strategy_and_forward() {
    let yaml = r#"
bridge:
  stage: deploy
  trigger:
    project: group/sub/project
    branch: stable-1.2
    strategy: depend
    forward:
      yaml_variables: false
      pipeline_variables: true
"#;
    let job = job(yaml, "bridge");
    let trigger = job.trigger.unwrap();
    assert_eq!(
        trigger.kind,
        TriggerKind::MultiProject {
            project: "group/sub/project".into(),
            branch: Some("stable-1.2".into())
        }
    );
    assert_eq!(trigger.strategy.as_deref(), Some("depend"));
    assert!(!trigger.forward_yaml_variables);
    assert!(trigger.forward_pipeline_variables);
}

#[test]
fn trigger_include_forms_describe_a_child_pipeline() {
    let single = job("child:\n  trigger:\n    include: child.yml\n", "child");
    assert_eq!(
        single.trigger.unwrap().kind,
        TriggerKind::Child {
            include: vec![Include::Local("child.yml".into())]
        }
    );
    let yaml = r#"
child:
  trigger:
    include:
      - local: path/to/child.yml
      - template: Jobs/Build.gitlab-ci.yml
      - project: group/templates
        ref: main
        file: /child.yml
      - artifact: generated.yml
        job: generate
    strategy: depend
"#;
    let trigger = job(yaml, "child").trigger.unwrap();
    let TriggerKind::Child { include } = &trigger.kind else {
        panic!("not a child trigger: {trigger:?}")
    };
    assert_eq!(
        include.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "local: path/to/child.yml",
            "template: Jobs/Build.gitlab-ci.yml",
            "project: group/templates, file: /child.yml, ref: main",
            "artifact: generated.yml, job: generate",
        ]
    );
    assert_eq!(trigger.strategy.as_deref(), Some("depend"));
}

#[test]
fn variables_in_trigger_project_and_branch_are_collected() {
    let yaml = r#"
bridge:
  variables:
    DOWNSTREAM_BRANCH: main
  trigger:
    project: ${GROUP}/app-$SUFFIX
    branch: $DOWNSTREAM_BRANCH
"#;
    let job = job(yaml, "bridge");
    let trigger = job.trigger.as_ref().unwrap();
    assert_eq!(
        trigger.variables_used,
        ["GROUP", "SUFFIX", "DOWNSTREAM_BRANCH"]
    );
    assert_eq!(
        job.variables_used(),
        ["GROUP", "SUFFIX", "DOWNSTREAM_BRANCH"]
    );
}

#[test]
fn curl_calls_are_found_in_before_script_script_and_after_script() {
    let yaml = r#"
job:
  before_script:
    - curl -X POST -F token=$BEFORE_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/1/trigger/pipeline
  script:
    - echo nothing to see
    - curl --request POST --form token=$CI_JOB_TOKEN --form ref=$CI_COMMIT_REF_NAME "$CI_API_V4_URL/projects/group%2Fapp/trigger/pipeline"
  after_script:
    - 'curl -X POST "https://gitlab.example.com/api/v4/projects/3/trigger/pipeline?token=$AFTER_TOKEN&ref=release&variables[MODE]=after"'
"#;
    let calls = job(yaml, "job").trigger_calls();
    let sections: Vec<_> = calls.iter().map(|c| c.command.section).collect();
    assert_eq!(
        sections,
        [
            ScriptSection::BeforeScript,
            ScriptSection::Script,
            ScriptSection::AfterScript
        ]
    );
    assert!(calls.iter().all(|c| c.tool == Tool::Curl));
    let tokens: Vec<_> = calls.iter().map(|c| c.token.as_deref().unwrap()).collect();
    assert_eq!(tokens, ["$BEFORE_TOKEN", "$CI_JOB_TOKEN", "$AFTER_TOKEN"]);
    let refs: Vec<_> = calls
        .iter()
        .map(|c| c.git_ref.as_deref().unwrap())
        .collect();
    assert_eq!(refs, ["main", "$CI_COMMIT_REF_NAME", "release"]);
    assert_eq!(
        calls[1].url.as_deref(),
        Some("$CI_API_V4_URL/projects/group%2Fapp/trigger/pipeline")
    );
    assert_eq!(
        calls[2].variables,
        [("MODE".to_string(), "after".to_string())]
    );
    assert_eq!(calls[1].command.first_line, 2);
}

#[test]
fn backslash_continued_curl_is_joined_into_one_command() {
    let yaml = r#"
job:
  script:
    - |
      echo "calling downstream"
      curl --fail -X POST \
        -F "token=${TRIGGER_TOKEN}" \
        -F "ref=${DOWNSTREAM_REF:-main}" \
        -F "variables[UPSTREAM]=$CI_PROJECT_PATH" \
        "${CI_API_V4_URL}/projects/${DOWNSTREAM_ID}/trigger/pipeline"
      echo done
"#;
    let job = job(yaml, "job");
    assert_eq!(job.script.len(), 7);
    let commands = job.commands();
    assert_eq!(commands.len(), 3, "{commands:#?}");
    assert_eq!(commands[1].first_line, 1);
    let call = only_call(&job);
    assert!(call.command.text.starts_with("curl --fail -X POST -F"));
    assert!(!call.command.text.contains('\\'));
    assert_eq!(call.token.as_deref(), Some("${TRIGGER_TOKEN}"));
    assert_eq!(call.git_ref.as_deref(), Some("${DOWNSTREAM_REF:-main}"));
    assert_eq!(
        call.variables,
        [("UPSTREAM".to_string(), "$CI_PROJECT_PATH".to_string())]
    );
    assert_eq!(
        call.url.as_deref(),
        Some("${CI_API_V4_URL}/projects/${DOWNSTREAM_ID}/trigger/pipeline")
    );
    assert_eq!(
        job.variables_used(),
        [
            "TRIGGER_TOKEN",
            "DOWNSTREAM_REF",
            "CI_PROJECT_PATH",
            "CI_API_V4_URL",
            "DOWNSTREAM_ID"
        ]
    );
}

#[test]
fn escaped_dollars_shell_specials_and_comments_are_not_variables_or_quotes() {
    let yaml = r#"
job:
  script:
    - |
      # don't trigger on tags
      echo "$$NOT_A_VARIABLE $1 $? ${#ARRAY[@]} $REAL"
      curl -X POST -F token=$T -F ref=main "$CI_API_V4_URL/projects/1/trigger/pipeline"
"#;
    let job = job(yaml, "job");
    assert_eq!(job.commands().len(), 3);
    assert_eq!(job.variables_used(), ["REAL", "T", "CI_API_V4_URL"]);
    assert_eq!(only_call(&job).command.first_line, 2);
}

#[test]
fn folded_block_curl_is_one_command() {
    let yaml = r#"
job:
  script:
    - >
      curl -X POST
      --fail
      -F token=$TOKEN
      -F ref=main
      https://gitlab.example.com/api/v4/projects/7/trigger/pipeline
"#;
    let job = job(yaml, "job");
    assert_eq!(job.script.len(), 1);
    let call = only_call(&job);
    assert_eq!(
        call.url.as_deref(),
        Some("https://gitlab.example.com/api/v4/projects/7/trigger/pipeline")
    );
    assert_eq!(call.token.as_deref(), Some("$TOKEN"));
}

#[test]
fn a_quote_left_open_joins_the_following_lines() {
    let yaml = r#"
job:
  script:
    - |
      curl -X POST --header "Content-Type: application/json" --data '{
        "token": "'"$TOKEN"'",
        "ref": "main",
        "variables": {"DEPLOY": "yes"}
      }' "$CI_API_V4_URL/projects/9/trigger/pipeline"
"#;
    let call = only_call(&job(yaml, "job"));
    assert_eq!(call.token.as_deref(), Some("$TOKEN"));
    assert_eq!(call.git_ref.as_deref(), Some("main"));
    assert_eq!(call.variables, [("DEPLOY".to_string(), "yes".to_string())]);
}

#[test]
fn json_bodies_with_unquoted_variables_still_give_token_and_ref() {
    let yaml = r#"
job:
  script:
    - 'curl -X POST -H "Content-Type: application/json" -d "{\"token\": $TOKEN, \"ref\": \"$REF\"}" $CI_API_V4_URL/projects/9/trigger/pipeline'
"#;
    let call = only_call(&job(yaml, "job"));
    assert_eq!(call.token.as_deref(), Some("$TOKEN"));
    assert_eq!(call.git_ref.as_deref(), Some("$REF"));
}

#[test]
fn wget_python_gitlab_and_glab_calls_are_recognised() {
    let yaml = r#"
job:
  script:
    - wget -qO- --post-data "token=$WGET_TOKEN&ref=main" "$CI_API_V4_URL/projects/5/trigger/pipeline"
    - |
      python3 -c "import gitlab, os; gl = gitlab.Gitlab(os.environ['CI_SERVER_URL'], job_token=os.environ['CI_JOB_TOKEN']); gl.projects.get(5).trigger_pipeline('release', os.environ['PY_TOKEN'], variables={'MODE': 'fast'})"
    - glab api projects/5/trigger/pipeline -f token=$GLAB_TOKEN -f ref=develop
    - glab ci run -b feature --variables KEY1:one,KEY2:two -R group/app
    - glab ci trigger 1234
"#;
    let calls = job(yaml, "job").trigger_calls();
    let tools: Vec<_> = calls.iter().map(|c| c.tool).collect();
    assert_eq!(
        tools,
        [
            Tool::Wget,
            Tool::PythonGitlab,
            Tool::Glab,
            Tool::Glab,
            Tool::Glab
        ]
    );
    assert_eq!(calls[0].token.as_deref(), Some("$WGET_TOKEN"));
    assert_eq!(calls[0].git_ref.as_deref(), Some("main"));
    assert_eq!(calls[1].git_ref.as_deref(), Some("release"));
    assert_eq!(calls[1].token.as_deref(), Some("os.environ['PY_TOKEN']"));
    assert_eq!(
        calls[1].variables,
        [("MODE".to_string(), "fast".to_string())]
    );
    assert_eq!(calls[1].url.as_deref(), Some("os.environ['CI_SERVER_URL']"));
    assert_eq!(calls[2].url.as_deref(), Some("projects/5/trigger/pipeline"));
    assert_eq!(calls[2].token.as_deref(), Some("$GLAB_TOKEN"));
    assert_eq!(calls[2].git_ref.as_deref(), Some("develop"));
    assert_eq!(calls[3].git_ref.as_deref(), Some("feature"));
    assert_eq!(
        calls[3].variables,
        [
            ("KEY1".to_string(), "one".to_string()),
            ("KEY2".to_string(), "two".to_string())
        ]
    );
    let used = job(yaml, "job").variables_used();
    for name in [
        "WGET_TOKEN",
        "CI_SERVER_URL",
        "CI_JOB_TOKEN",
        "PY_TOKEN",
        "GLAB_TOKEN",
    ] {
        assert!(
            used.iter().any(|u| u == name),
            "{name} missing from {used:?}"
        );
    }
}

#[test]
fn powershell_calls_with_backtick_continuations_are_read() {
    let yaml = r#"
job:
  script:
    - |
      Invoke-RestMethod -Method Post `
        -Uri "$env:CI_API_V4_URL/projects/42/trigger/pipeline" `
        -Body @{ token = $env:PS_TOKEN; ref = "main"; "variables[TARGET]" = "prod" }
"#;
    let job = job(yaml, "job");
    let call = only_call(&job);
    assert_eq!(call.tool, Tool::PowerShell);
    assert_eq!(
        call.url.as_deref(),
        Some("$env:CI_API_V4_URL/projects/42/trigger/pipeline")
    );
    assert_eq!(call.token.as_deref(), Some("$env:PS_TOKEN"));
    assert_eq!(call.git_ref.as_deref(), Some("main"));
    assert_eq!(call.variables, [("TARGET".to_string(), "prod".to_string())]);
    assert_eq!(job.variables_used(), ["CI_API_V4_URL", "PS_TOKEN"]);
}

#[test]
fn the_legacy_ref_url_form_gives_the_ref() {
    let yaml = r#"
job:
  script:
    - curl -X POST "https://gitlab.example.com/api/v4/projects/12/ref/hotfix-3/trigger/pipeline?token=$LEGACY_TOKEN"
"#;
    let call = only_call(&job(yaml, "job"));
    assert_eq!(call.git_ref.as_deref(), Some("hotfix-3"));
    assert_eq!(call.token.as_deref(), Some("$LEGACY_TOKEN"));
}

#[test]
fn a_pipeline_created_with_a_private_token_is_a_call_but_reading_pipelines_is_not() {
    let yaml = r#"
job:
  script:
    - 'curl --header "PRIVATE-TOKEN: $API_TOKEN" "$CI_API_V4_URL/projects/8/pipelines?ref=main"'
    - 'curl --header "PRIVATE-TOKEN: $API_TOKEN" "$CI_API_V4_URL/projects/8/pipeline?ref=main"'
    - 'curl --request POST --header "PRIVATE-TOKEN: $API_TOKEN" "$CI_API_V4_URL/projects/8/pipeline?ref=main"'
"#;
    let call = only_call(&job(yaml, "job"));
    assert_eq!(call.command.first_line, 2);
    assert_eq!(call.token.as_deref(), Some("$API_TOKEN"));
    assert_eq!(call.token_header.as_deref(), Some("PRIVATE-TOKEN"));
    assert_eq!(call.git_ref.as_deref(), Some("main"));
}

#[test]
fn include_listing_keeps_order_and_kinds() {
    let yaml = r#"
include:
  - 'ci/plain.yml'
  - local: /ci/map.yml
  - project: group/templates
    ref: v1.0
    file:
      - /a.yml
      - /b.yml
  - remote: https://example.com/remote.yml
  - https://example.com/bare.yml
  - template: Auto-DevOps.gitlab-ci.yml
  - component: gitlab.example.com/group/comp/deploy@1.0
"#;
    let config = parse(yaml).unwrap();
    assert_eq!(
        config.includes(),
        [
            Include::Local("ci/plain.yml".into()),
            Include::Local("/ci/map.yml".into()),
            Include::Project {
                project: "group/templates".into(),
                file: vec!["/a.yml".into(), "/b.yml".into()],
                git_ref: Some("v1.0".into()),
            },
            Include::Remote("https://example.com/remote.yml".into()),
            Include::Remote("https://example.com/bare.yml".into()),
            Include::Template("Auto-DevOps.gitlab-ci.yml".into()),
            Include::Component("gitlab.example.com/group/comp/deploy@1.0".into()),
        ]
    );
    assert_eq!(config.local_includes(), ["ci/plain.yml", "/ci/map.yml"]);
    let single = parse("include: '/templates/one.yml'\n").unwrap();
    assert_eq!(single.local_includes(), ["/templates/one.yml"]);
}

#[test]
fn merge_include_lets_the_including_file_win_and_later_includes_win_over_earlier() {
    let mut config = parse(
        r#"
variables: {SHARED: main}
job:
  variables: {B: main}
  trigger: {project: main/project}
"#,
    )
    .unwrap();
    config.merge_include(
        parse(
            r#"
variables: {SHARED: first, FIRST: first}
job:
  variables: {A: first, B: first}
  trigger: {project: first/project, strategy: depend}
from-first: {script: [a]}
"#,
        )
        .unwrap(),
    );
    config.merge_include(
        parse("variables: {FIRST: second}\njob: {variables: {A: second}}\n").unwrap(),
    );
    let job = config.job("job").unwrap().unwrap();
    assert_eq!(job.variables, vars(&[("A", "second"), ("B", "main")]));
    let trigger = job.trigger.unwrap();
    assert_eq!(
        trigger.kind,
        TriggerKind::MultiProject {
            project: "main/project".into(),
            branch: None
        }
    );
    assert_eq!(trigger.strategy.as_deref(), Some("depend"));
    assert_eq!(
        config.variables().unwrap(),
        vars(&[("SHARED", "main"), ("FIRST", "second")])
    );
    assert_eq!(config.job_names(), ["job", "from-first"]);
}

#[test]
fn a_spec_header_document_is_skipped_and_the_content_read() {
    let config = parse(&fixture("component-with-spec.yml")).unwrap();
    assert_eq!(config.job_names(), ["trigger-downstream"]);
    let job = config.job("trigger-downstream").unwrap().unwrap();
    assert_eq!(
        job.trigger.unwrap().kind,
        TriggerKind::MultiProject {
            project: "$[[ inputs.downstream ]]".into(),
            branch: None
        }
    );
}

#[test]
fn invalid_yaml_is_an_error_with_its_line() {
    let err = parse("job:\n  script:\n    - echo ok\n  variables: [a,\n").unwrap_err();
    let CiConfigError::Syntax { line, .. } = &err else {
        panic!("not a syntax error: {err:?}")
    };
    assert_eq!(*line, 5);
    assert!(
        err.to_string().starts_with("invalid YAML at line 5"),
        "{err}"
    );
    let err = parse("job: *missing\n").unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn a_top_level_list_is_not_a_configuration() {
    assert_eq!(
        parse("- a\n- b\n").unwrap_err(),
        CiConfigError::NotAMapping { found: "a list" }
    );
    assert_eq!(parse("").unwrap().job_names(), Vec::<String>::new());
}

#[test]
fn duplicated_keys_keep_the_last_value() {
    let yaml = "job:\n  stage: first\n  stage: second\n  script: [a]\n";
    assert_eq!(job(yaml, "job").stage.as_deref(), Some("second"));
}

#[test]
fn alias_expansion_is_bounded() {
    let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..8 {
        let prev = format!("*a{}", level - 1);
        yaml.push_str(&format!(
            "a{level}: &a{level} [{}]\n",
            vec![prev; 10].join(", ")
        ));
    }
    assert!(matches!(
        parse(&yaml).unwrap_err(),
        CiConfigError::AliasExpansion { .. }
    ));
}

#[test]
fn a_realistic_config_resolves_across_its_local_include() {
    let mut config = parse(&fixture("main.gitlab-ci.yml")).unwrap();
    assert_eq!(config.local_includes(), ["/ci/templates.yml"]);
    assert_eq!(config.includes().len(), 4);
    config.merge_include(parse(&fixture("templates.yml")).unwrap());
    assert_eq!(
        config.job_names(),
        ["build", "deploy:staging", "deploy:api", "docs"]
    );

    let staging = config.job("deploy:staging").unwrap().unwrap();
    assert_eq!(staging.stage.as_deref(), Some("deploy"));
    assert_eq!(
        staging.variables,
        vars(&[("ENVIRONMENT", "staging"), ("DEPLOY_BRANCH", "main")])
    );
    let trigger = staging.trigger.unwrap();
    assert_eq!(
        trigger.kind,
        TriggerKind::MultiProject {
            project: "$DEPLOY_PROJECT".into(),
            branch: Some("${DEPLOY_BRANCH}".into())
        }
    );
    assert_eq!(trigger.strategy.as_deref(), Some("depend"));
    assert!(trigger.forward_pipeline_variables);
    assert_eq!(trigger.variables_used, ["DEPLOY_PROJECT", "DEPLOY_BRANCH"]);
    assert!(staging.script.is_empty());

    let api = config.job("deploy:api").unwrap().unwrap();
    assert!(api.unresolved.is_empty(), "{:?}", api.unresolved);
    assert_eq!(
        api.variables,
        vars(&[("TARGET_REF", "main"), ("CURL_RETRIES", "5")])
    );
    assert_eq!(
        api.global_variables
            .get("DEPLOY_PROJECT_ID")
            .map(String::as_str),
        Some("4821")
    );
    assert_eq!(
        lines(&api, ScriptSection::BeforeScript),
        ["apk add --no-cache curl"]
    );
    assert_eq!(
        lines(&api, ScriptSection::AfterScript),
        ["echo \"trigger finished with $CI_JOB_STATUS\""]
    );
    assert_eq!(lines(&api, ScriptSection::Script).len(), 3);
    let call = only_call(&api);
    assert_eq!(call.tool, Tool::Curl);
    assert_eq!(call.token.as_deref(), Some("${DEPLOY_TRIGGER_TOKEN}"));
    assert_eq!(call.git_ref.as_deref(), Some("${TARGET_REF}"));
    assert_eq!(
        call.url.as_deref(),
        Some("${CI_API_V4_URL}/projects/${DEPLOY_PROJECT_ID}/trigger/pipeline")
    );
    assert_eq!(
        call.variables,
        [("UPSTREAM_SHA".to_string(), "${CI_COMMIT_SHA}".to_string())]
    );

    let docs = config.job("docs").unwrap().unwrap();
    assert_eq!(
        docs.trigger.unwrap().kind,
        TriggerKind::Child {
            include: vec![
                Include::Local("docs/.gitlab-ci.yml".into()),
                Include::Artifact {
                    artifact: "generated/docs-pipeline.yml".into(),
                    job: "generate-docs".into()
                },
            ]
        }
    );
}

#[test]
fn a_realistic_config_without_its_include_lists_what_is_missing() {
    let config = parse(&fixture("main.gitlab-ci.yml")).unwrap();
    let api = config.job("deploy:api").unwrap().unwrap();
    assert_eq!(
        api.unresolved,
        [
            "extends: .api-trigger",
            "extends: .retry-policy",
            "!reference [.notify, script]"
        ]
    );
    assert_eq!(
        only_call(&api).token.as_deref(),
        Some("${DEPLOY_TRIGGER_TOKEN}")
    );
}
