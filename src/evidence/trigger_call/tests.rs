//! The trigger-call parser on log lines, script commands and text that is neither.

use super::*;

#[test]
fn trigger_calls_give_host_project_and_ref() {
    let call = parse(
            "curl --request POST --form token=$TRIGGER_TOKEN --form ref=main https://gitlab.example.com:8443/api/v4/projects/42/trigger/pipeline",
        )
        .unwrap();
    assert_eq!(
        call,
        TriggerCall {
            tool: Tool::Curl,
            endpoint: TriggerEndpoint::Trigger,
            scheme: Some("https".into()),
            host: Some("gitlab.example.com".into()),
            port: Some(8443),
            api_prefix: Some("/api/v4".into()),
            base_variable: None,
            project: Some("42".into()),
            git_ref: Some("main".into()),
            url: "https://gitlab.example.com:8443/api/v4/projects/42/trigger/pipeline".into(),
            target: Some(
                "https://gitlab.example.com:8443/api/v4/projects/42/trigger/pipeline".into()
            ),
            token: Some("$TRIGGER_TOKEN".into()),
            token_header: None,
            variables: Vec::new(),
            posts: true,
        }
    );

    let call = parse(
            r#"curl -X POST -F "token=${CI_JOB_TOKEN}" -F "ref=release/1.2" "$CI_API_V4_URL/projects/group%2Fsub%2Fapp/trigger/pipeline""#,
        )
        .unwrap();
    assert_eq!(call.scheme, None);
    assert_eq!(call.api_prefix, None);
    assert_eq!(call.base_variable.as_deref(), Some("CI_API_V4_URL"));
    assert_eq!(call.project.as_deref(), Some("group/sub/app"));
    assert_eq!(call.git_ref.as_deref(), Some("release/1.2"));
    assert_eq!(
        call.url,
        "$CI_API_V4_URL/projects/group%2Fsub%2Fapp/trigger/pipeline"
    );

    let call = parse(
            "curl -X POST \"https://gitlab.example.com/api/v4/projects/9/ref/feature%2Fx/trigger/pipeline?token=6d056f63e50fe6f8c5f8f4aa10edb7\"",
        )
        .unwrap();
    assert_eq!(call.endpoint, TriggerEndpoint::LegacyRefTrigger);
    assert_eq!(call.git_ref.as_deref(), Some("feature/x"));
    assert_eq!(
            call.url,
            "https://gitlab.example.com/api/v4/projects/9/ref/feature%2Fx/trigger/pipeline?token=[REDACTED]"
        );

    let call = parse(
            r#"curl --request POST --header "PRIVATE-TOKEN: $API_TOKEN" "${CI_SERVER_URL}/api/v4/projects/42/pipeline?ref=main""#,
        )
        .unwrap();
    assert_eq!(call.endpoint, TriggerEndpoint::CreatePipeline);
    assert_eq!(call.api_prefix.as_deref(), Some("/api/v4"));
    assert_eq!(call.base_variable.as_deref(), Some("CI_SERVER_URL"));
    assert_eq!(call.git_ref.as_deref(), Some("main"));

    let call = parse(
            r#"curl -X POST -H "Content-Type: application/json" -d '{"token": "$T", "ref": "develop"}' https://gitlab.example.com/api/v4/projects/7/trigger/pipeline"#,
        )
        .unwrap();
    assert_eq!(call.git_ref.as_deref(), Some("develop"));

    let call = parse(
            r#"Invoke-RestMethod -Method Post -Uri "https://gitlab.example.com/api/v4/projects/5/trigger/pipeline" -Body @{token=$env:TRIGGER_TOKEN; ref="main"}"#,
        )
        .unwrap();
    assert_eq!(call.tool, Tool::PowerShell);
    assert_eq!(call.git_ref.as_deref(), Some("main"));

    let call = parse("wget --post-data 'token=abc&ref=main' https://gitlab.example.com/gitlab/api/v4/projects/5/trigger/pipeline").unwrap();
    assert_eq!(call.tool, Tool::Wget);
    assert_eq!(call.api_prefix.as_deref(), Some("/gitlab/api/v4"));

    let call = parse("glab api --method POST projects/42/trigger/pipeline -f token=$T -f ref=main")
        .unwrap();
    assert_eq!(call.tool, Tool::Glab);
    assert_eq!(call.project.as_deref(), Some("42"));

    let call = parse("project.trigger_pipeline('main', os.environ['TRIGGER_TOKEN'])").unwrap();
    assert_eq!(call.tool, Tool::PythonGitlab);
    assert_eq!(call.git_ref.as_deref(), Some("main"));

    let call = parse(
        "curl -F token=$T -F ref= https://gitlab.example.com/api/v4/projects/1/trigger/pipeline",
    )
    .unwrap();
    assert_eq!(call.git_ref.as_deref(), Some(""));

    let call = parse("curl -u user:pass https://deploy:hunter22@gitlab.example.com/api/v4/projects/1/trigger/pipeline").unwrap();
    assert!(!call.url.contains("hunter22"), "{}", call.url);
}

#[test]
fn other_endpoints_are_not_trigger_calls() {
    for line in [
        "curl https://gitlab.example.com/api/v4/projects/42/pipelines?status=failed",
        "curl https://gitlab.example.com/api/v4/projects/42/pipeline_schedules",
        "curl https://gitlab.example.com/api/v4/projects/42/pipeline/123",
        "ls /home/me/myprojects/42/trigger/pipeline",
        "Compiling pipeline v0.1.0 (/builds/group/pipeline)",
    ] {
        assert_eq!(parse(line), None, "{line}");
    }
}

#[test]
fn a_url_after_multibyte_text_is_found_without_panic() {
    let url = address("é curl https://gitlab.example.com/api/v4/projects/1/trigger/pipeline")
        .expect("a URL");
    assert_eq!(url.host.as_deref(), Some("gitlab.example.com"));
    assert!(address("curl /trigger/pipeline é").is_none());
    let var = address("ſ $CI_API_V4_URL/projects/1/trigger/pipeline").expect("a URL");
    assert_eq!(var.base_variable.as_deref(), Some("CI_API_V4_URL"));
}

#[test]
fn a_command_continued_over_several_lines_is_one_call() {
    let call = parse(
            "curl --fail -X POST \\\n  -F \"token=${TRIGGER_TOKEN}\" \\\n  -F \"ref=release%2F2\" \\\n  \"${CI_API_V4_URL}/projects/group%2Fapp/trigger/pipeline\"",
        )
        .unwrap();
    assert_eq!(call.tool, Tool::Curl);
    assert_eq!(call.endpoint, TriggerEndpoint::Trigger);
    assert_eq!(call.base_variable.as_deref(), Some("CI_API_V4_URL"));
    assert_eq!(call.project.as_deref(), Some("group/app"));
    assert_eq!(call.git_ref.as_deref(), Some("release/2"));
    assert_eq!(call.token.as_deref(), Some("${TRIGGER_TOKEN}"));
    assert!(call.posts);
}

#[test]
fn powershell_aliases_and_env_bases_are_read() {
    let call = parse(
            r#"irm -Method Post -Uri "$env:CI_API_V4_URL/projects/7/trigger/pipeline" -Body @{token=$env:T; ref="main"}"#,
        )
        .unwrap();
    assert_eq!(call.tool, Tool::PowerShell);
    assert_eq!(call.base_variable.as_deref(), Some("CI_API_V4_URL"));
    assert_eq!(
        call.target.as_deref(),
        Some("$env:CI_API_V4_URL/projects/7/trigger/pipeline")
    );
    assert_eq!(call.token.as_deref(), Some("$env:T"));
    assert_eq!(call.git_ref.as_deref(), Some("main"));
    let call = parse(r#"iwr -Method Post -Uri https://gitlab.example.com/api/v4/projects/7/pipeline -Headers @{"PRIVATE-TOKEN"=$env:API}"#).unwrap();
    assert_eq!(call.tool, Tool::PowerShell);
    assert_eq!(call.endpoint, TriggerEndpoint::CreatePipeline);
    assert_eq!(call.token_header.as_deref(), Some("PRIVATE-TOKEN"));
    assert!(call.posts);
}

#[test]
fn glab_ci_and_python_gitlab_calls_have_no_url_but_are_calls() {
    let call = parse("glab ci run -b feature --variables KEY:one").unwrap();
    assert_eq!(call.tool, Tool::Glab);
    assert_eq!(call.endpoint, TriggerEndpoint::CreatePipeline);
    assert_eq!(call.url, "");
    assert_eq!(call.git_ref.as_deref(), Some("feature"));
    assert_eq!(call.variables, [("KEY".to_string(), "one".to_string())]);
    assert_eq!(call.project, None);
    let call = parse("glab ci run --repo group/app -b main").unwrap();
    assert_eq!(call.project.as_deref(), Some("group/app"));
    // curl's -R (--remote-time) takes no value.
    let call =
        parse("curl -R -X POST https://gitlab.example.com/api/v4/projects/5/trigger/pipeline")
            .unwrap();
    assert_eq!(call.project.as_deref(), Some("5"));
    let call = parse(
            "gl = gitlab.Gitlab('https://gitlab.example.com'); p.trigger_pipeline(ref='main', token=os.environ['T'])",
        )
        .unwrap();
    assert_eq!(call.tool, Tool::PythonGitlab);
    assert_eq!(call.target.as_deref(), Some("https://gitlab.example.com"));
    assert_eq!(call.git_ref.as_deref(), Some("main"));
    assert_eq!(call.token.as_deref(), Some("os.environ['T']"));
    // python-gitlab always calls the REST API.
    assert!(call.reaches_api());
}

#[test]
fn a_get_on_the_create_route_is_read_but_does_not_post() {
    let call =
        parse(r#"curl --header "PRIVATE-TOKEN: $T" "$CI_API_V4_URL/projects/8/pipeline?ref=main""#)
            .unwrap();
    assert_eq!(call.endpoint, TriggerEndpoint::CreatePipeline);
    assert!(!call.posts);
    assert_eq!(call.git_ref.as_deref(), Some("main"));
}

#[test]
fn multibyte_text_next_to_dollar_and_http_does_not_panic() {
    for line in [
        "curl $é/projects/1/trigger/pipeline",
        "curl ${é}/projects/1/trigger/pipeline",
        "curl $env:é/projects/1/trigger/pipeline",
        "curl httpé://x/projects/1/trigger/pipeline",
        "curl https://é/projects/é/ref/é%/trigger/pipeline?ref=%é",
        "irm -Uri é -Body @{é=é} -Headers @{é",
        "x.trigger_pipeline(é, 'é', variables={é: 'é'",
        "curl -Fé -dé -Hé https://x/api/v4/projects/1/trigger/pipeline",
        "é\\\n$\\\n`\n",
    ] {
        let _ = parse(line);
        let _ = address(line);
    }
}
