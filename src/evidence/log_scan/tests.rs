//! The log scanner: streaming, line cleaning and the signals of each pattern.

use super::*;

/// The typed signals of a text (catalogue messages are tested on their own, below).
fn kinds(text: &str) -> Vec<SignalKind> {
    scan_str(text)
        .signals
        .into_iter()
        .map(|s| s.kind)
        .filter(|k| !matches!(k, SignalKind::Message { .. }))
        .collect()
}

/// The signals other than catalogue messages.
fn typed(signals: &[Signal]) -> Vec<&Signal> {
    signals
        .iter()
        .filter(|s| !matches!(s.kind, SignalKind::Message { .. }))
        .collect()
}

/// The catalogue rows a scan reports.
fn messages(scan: &Scan) -> Vec<&'static str> {
    scan.signals
        .iter()
        .filter_map(|s| match s.kind {
            SignalKind::Message { row } => Some(row),
            _ => None,
        })
        .collect()
}

#[test]
fn catalogue_messages_are_reported_on_examined_lines_and_on_every_line_when_asked() {
    let log = "$ curl -X POST https://gitlab.example.com/api/v4/projects/1/trigger/pipeline\n\
               curl: (6) Could not resolve host: gitlab.example.com\n\
               TypeError: fetch failed\n\
               Error: getaddrinfo ENOTFOUND gitlab.example.com\n";
    let scan = scan_str(log);
    assert_eq!(messages(&scan), ["curl.dns", "node.dns"]);
    // Line 3 holds no anchor: the prefilter skips it; reading every line finds it.
    let every = scan_bytes(log.as_bytes(), true);
    assert_eq!(
        messages(&every),
        ["curl.dns", "node.fetch_failed", "node.dns"]
    );
    assert_eq!(every.signals.last().unwrap().line_no, 4);
    // Invalid UTF-8 and NUL bytes are read lossily.
    let bytes = b"\xff\x00 downstream pipeline can not be created, Reference not found\n";
    let scan = scan_bytes(bytes, true);
    assert!(messages(&scan).contains(&"gitlab.creation.reference_not_found"));
}

fn one(text: &str) -> SignalKind {
    let found = kinds(text);
    assert_eq!(found.len(), 1, "{text}: {found:?}");
    found.into_iter().next().unwrap()
}

fn curl(exit_code: u16, message: &str, host: Option<&str>) -> SignalKind {
    SignalKind::CurlError {
        exit_code,
        message: message.to_owned(),
        host: host.map(str::to_owned),
    }
}

#[test]
fn curl_errors_give_exit_code_message_and_host() {
    let cases: &[(&str, SignalKind, Option<NetworkFailure>)] = &[
            (
                "curl: (6) Could not resolve host: gitlab.example.com",
                curl(6, "Could not resolve host: gitlab.example.com", Some("gitlab.example.com")),
                Some(NetworkFailure::Dns),
            ),
            (
                "curl: (7) Failed to connect to gitlab.example.com port 443 after 3 ms: Couldn't connect to server",
                curl(7, "Failed to connect to gitlab.example.com port 443 after 3 ms: Couldn't connect to server", Some("gitlab.example.com")),
                Some(NetworkFailure::Connect),
            ),
            (
                "curl: (28) Connection timed out after 10001 milliseconds",
                curl(28, "Connection timed out after 10001 milliseconds", None),
                Some(NetworkFailure::Timeout),
            ),
            (
                "curl: (35) OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection to gitlab.example.com:443",
                curl(35, "OpenSSL SSL_connect: SSL_ERROR_SYSCALL in connection to gitlab.example.com:443", Some("gitlab.example.com")),
                Some(NetworkFailure::Tls),
            ),
            (
                "curl: (51) SSL: no alternative certificate subject name matches target host name 'gitlab.example.com'",
                curl(51, "SSL: no alternative certificate subject name matches target host name 'gitlab.example.com'", Some("gitlab.example.com")),
                Some(NetworkFailure::Certificate),
            ),
            (
                "curl: (52) Empty reply from server",
                curl(52, "Empty reply from server", None),
                Some(NetworkFailure::EmptyReply),
            ),
            (
                "curl: (58) unable to set private key file: 'client.key' type PEM",
                curl(58, "unable to set private key file: 'client.key' type PEM", None),
                Some(NetworkFailure::Certificate),
            ),
            (
                "curl: (60) SSL certificate problem: unable to get local issuer certificate",
                curl(60, "SSL certificate problem: unable to get local issuer certificate", None),
                Some(NetworkFailure::Certificate),
            ),
        ];
    for (line, expected, failure) in cases {
        let found = one(line);
        assert_eq!(&found, expected, "{line}");
        assert_eq!(found.network_failure(), *failure, "{line}");
    }
    let reset = kinds("curl: (56) Recv failure: Connection reset by peer");
    assert_eq!(reset[0].network_failure(), Some(NetworkFailure::Reset));
}

#[test]
fn curl_fail_with_404_also_reports_the_status() {
    let found = kinds("curl: (22) The requested URL returned error: 404");
    assert!(found.contains(&SignalKind::HttpStatus { status: 404 }));
    assert!(found.contains(&curl(22, "The requested URL returned error: 404", None)));
}

#[test]
fn proxy_failures_and_settings_are_recognised() {
    let found = kinds("curl: (56) CONNECT tunnel failed, response 403");
    assert!(
        found.contains(&SignalKind::Proxy(ProxyEvidence::ConnectRejected {
            status: Some(403)
        }))
    );
    assert_eq!(found[0].network_failure(), Some(NetworkFailure::Proxy));
    let found = kinds("curl: (56) Received HTTP code 407 from proxy after CONNECT");
    assert!(
        found.contains(&SignalKind::Proxy(ProxyEvidence::ConnectRejected {
            status: Some(407)
        }))
    );
    let found = kinds("curl: (5) Could not resolve proxy: proxy.corp.example");
    assert!(
        found.contains(&SignalKind::Proxy(ProxyEvidence::Unresolvable {
            host: "proxy.corp.example".into()
        }))
    );
    assert_eq!(
        one("$ export HTTPS_PROXY=http://proxy.corp.example:3128"),
        SignalKind::Proxy(ProxyEvidence::Setting {
            variable: "HTTPS_PROXY".into(),
            value: "http://proxy.corp.example:3128".into()
        })
    );
    assert_eq!(
        one("* Uses proxy env variable https_proxy == 'http://proxy:3128'"),
        SignalKind::Proxy(ProxyEvidence::Setting {
            variable: "https_proxy".into(),
            value: "http://proxy:3128".into()
        })
    );
    let found = kinds("https_proxy=http://builder:s3cretPass99@proxy:3128");
    assert_eq!(
        found,
        vec![SignalKind::Proxy(ProxyEvidence::Setting {
            variable: "https_proxy".into(),
            value: "http://builder:[REDACTED]@proxy:3128".into()
        })]
    );
}

#[test]
fn wget_errors_are_recognised() {
    assert_eq!(
        one("wget: unable to resolve host address 'gitlab.example.com'"),
        SignalKind::WgetError {
            message: "unable to resolve host address 'gitlab.example.com'".into(),
            host: Some("gitlab.example.com".into())
        }
    );
    let refused = one("Connecting to gitlab.example.com (gitlab.example.com)|10.0.0.5|:443... failed: Connection refused.");
    assert_eq!(
        refused,
        SignalKind::WgetError {
            message: "Connection refused".into(),
            host: Some("gitlab.example.com".into())
        }
    );
    assert_eq!(refused.network_failure(), Some(NetworkFailure::Connect));
    let found = kinds("2024-05-01 10:00:00 ERROR 404: Not Found.");
    assert_eq!(
        found,
        vec![
            SignalKind::HttpStatus { status: 404 },
            SignalKind::WgetError {
                message: "ERROR 404: Not Found".into(),
                host: None
            }
        ]
    );
    let tls = one("Unable to establish SSL connection.");
    assert_eq!(tls.network_failure(), Some(NetworkFailure::Tls));
}

#[test]
fn powershell_python_gitlab_and_glab_errors_are_recognised() {
    let found = kinds(r#"Invoke-RestMethod : {"message":"404 Not Found"}"#);
    assert!(found.contains(&SignalKind::ClientError {
        tool: Tool::PowerShell,
        status: Some(404),
        message: r#"{"message":"404 Not Found"}"#.into(),
        host: None
    }));
    assert!(found.contains(&SignalKind::GitlabError {
        status: Some(404),
        message: "404 Not Found".into()
    }));
    let dns =
        one("Invoke-RestMethod : The remote name could not be resolved: 'gitlab.example.com'");
    assert_eq!(dns.network_failure(), Some(NetworkFailure::Dns));
    assert!(
        matches!(dns, SignalKind::ClientError { host: Some(ref h), .. } if h == "gitlab.example.com")
    );

    assert_eq!(
        one("gitlab.exceptions.GitlabCreateError: 404: 404 Project Not Found"),
        SignalKind::ClientError {
            tool: Tool::PythonGitlab,
            status: Some(404),
            message: "GitlabCreateError: 404 Project Not Found".into(),
            host: None
        }
    );
    assert!(matches!(
        one("gitlab.exceptions.GitlabAuthenticationError: 401: 401 Unauthorized"),
        SignalKind::ClientError {
            status: Some(401),
            ..
        }
    ));
    let pool = one("requests.exceptions.ConnectionError: HTTPSConnectionPool(host='gitlab.example.com', port=443): Max retries exceeded with url: /api/v4/projects (Caused by NameResolutionError(\"Failed to resolve 'gitlab.example.com'\"))");
    assert_eq!(pool.network_failure(), Some(NetworkFailure::Dns));

    let found = kinds("2019/05/15 10:52:37 ci_run.go:79: POST https://gitlab.com/api/v4/projects/mygroup%2Fmyproject/trigger/pipeline: 404 {message: 404 Not Found}");
    assert!(found.contains(&SignalKind::ClientError {
        tool: Tool::Glab,
        status: Some(404),
        message: "404 Not Found".into(),
        host: Some("gitlab.com".into())
    }));
    assert!(found.contains(&SignalKind::HttpStatus { status: 404 }));
    assert!(found.iter().any(|k| matches!(k, SignalKind::TriggerCall(c) if c.project.as_deref() == Some("mygroup/myproject"))));
}

#[test]
fn http_status_lines_give_the_status() {
    assert_eq!(
        one("HTTP/1.1 404 Not Found"),
        SignalKind::HttpStatus { status: 404 }
    );
    assert_eq!(one("< HTTP/2 403"), SignalKind::HttpStatus { status: 403 });
    assert_eq!(one("HTTP/2 429"), SignalKind::HttpStatus { status: 429 });
    assert_eq!(
        one("HTTP/1.1 502 Bad Gateway"),
        SignalKind::HttpStatus { status: 502 }
    );
    assert_eq!(
        one("HTTP request sent, awaiting response... 401 Unauthorized"),
        SignalKind::HttpStatus { status: 401 }
    );
}

#[test]
fn gitlab_error_bodies_are_parsed() {
    let cases = [
        (r#"{"message":"404 Not Found"}"#, Some(404), "404 Not Found"),
        (
            r#"{"message":"404 Project Not Found"}"#,
            Some(404),
            "404 Project Not Found",
        ),
        (r#"{"message":"403 Forbidden"}"#, Some(403), "403 Forbidden"),
        (
            r#"{"message":"401 Unauthorized"}"#,
            Some(401),
            "401 Unauthorized",
        ),
        (r#"{"error":"token is missing"}"#, None, "token is missing"),
        (
            r#"{"error":"ref is missing, ref is empty, token is missing"}"#,
            None,
            "ref is missing, ref is empty, token is missing",
        ),
        (
            r#"  "message": "404 Not Found""#,
            Some(404),
            "404 Not Found",
        ),
        ("Retry later", Some(429), "Retry later"),
        (
            "<title>502 Bad Gateway</title>",
            Some(502),
            "502 Bad Gateway",
        ),
        (
            "<center><h1>503 Service Temporarily Unavailable</h1></center>",
            Some(503),
            "503 Service Temporarily Unavailable",
        ),
        (
            "<title>GitLab is not responding (502)</title>",
            Some(502),
            "GitLab is not responding",
        ),
    ];
    for (line, status, message) in cases {
        assert_eq!(
            one(line),
            SignalKind::GitlabError {
                status,
                message: message.into()
            },
            "{line}"
        );
    }
    let found = kinds(r#"{"message":{"base":["Reference not found"]}}"#);
    assert_eq!(
        found,
        vec![
            SignalKind::CreationError {
                problem: CreationProblem::ReferenceNotFound,
                git_ref: None
            },
            SignalKind::GitlabError {
                status: None,
                message: "Reference not found".into()
            }
        ]
    );
    // A body glued to the next output, as curl leaves it without a final newline.
    assert!(
        kinds(r#"{"message":"404 Not Found"}Cleaning up project directory"#).contains(
            &SignalKind::GitlabError {
                status: Some(404),
                message: "404 Not Found".into()
            }
        )
    );
}

#[test]
fn bridge_messages_in_both_forms_give_the_failure_reason() {
    let forms = [
            ("This job could not be executed because downstream bridge project could not be found", "downstream_bridge_project_not_found"),
            ("downstream project could not be found", "downstream_bridge_project_not_found"),
            ("This job could not be executed because of insufficient permissions to create a downstream pipeline", "insufficient_bridge_permissions"),
            ("no permissions to trigger downstream pipeline", "insufficient_bridge_permissions"),
            ("This job could not be executed because downstream pipeline trigger definition is invalid", "invalid_bridge_trigger"),
            ("downstream pipeline trigger definition is invalid", "invalid_bridge_trigger"),
            ("This job could not be executed because the trigger:project value resolved to a blank value. Check that the variables or inputs used in trigger:project are set.", "downstream_project_trigger_resolved_to_empty"),
            ("This job belongs to a child pipeline and cannot create further child pipelines", "bridge_pipeline_is_child_pipeline"),
            ("creation of child pipeline not allowed from another child pipeline", "bridge_pipeline_is_child_pipeline"),
            ("The downstream pipeline could not be created", "downstream_pipeline_creation_failed"),
            ("downstream pipeline can not be created", "downstream_pipeline_creation_failed"),
            ("This job could not be executed because upstream bridge project could not be found.", "upstream_bridge_project_not_found"),
            ("upstream project could not be found", "upstream_bridge_project_not_found"),
            ("This job could not be executed because of insufficient permissions to track the upstream project.", "insufficient_upstream_permissions"),
            ("no permissions to read upstream project", "insufficient_upstream_permissions"),
            ("You reached the maximum depth of child pipelines", "reached_max_descendant_pipelines_depth"),
            ("reached maximum depth of child pipelines", "reached_max_descendant_pipelines_depth"),
            ("The downstream pipeline tree is too large", "reached_max_pipeline_hierarchy_size"),
            ("downstream pipeline tree is too large", "reached_max_pipeline_hierarchy_size"),
            ("Too many downstream pipelines triggered in the last minute. Try again later.", "reached_downstream_pipeline_trigger_rate_limit"),
            ("This job could not be executed because it would create infinitely looping pipelines", "pipeline_loop_detected"),
            ("job would create infinitely looping pipelines", "pipeline_loop_detected"),
            ("The CI job token has expired. The job may have exceeded the maximum time limit.", "job_token_expired"),
            ("failure_reason: reached_max_pipeline_hierarchy_size", "reached_max_pipeline_hierarchy_size"),
            ("\"failure_reason\":\"invalid_bridge_trigger\"", "invalid_bridge_trigger"),
        ];
    for (text, reason) in forms {
        assert_eq!(
            one(text),
            SignalKind::BridgeFailure {
                reason: FailureReason::from(reason)
            },
            "{text}"
        );
    }
}

#[test]
fn pipeline_creation_errors_are_recognised() {
    let found = kinds("downstream pipeline can not be created, the resulting pipeline would have been empty. Review the rules configuration for the relevant jobs.");
    assert!(found.contains(&SignalKind::BridgeFailure {
        reason: FailureReason::DownstreamPipelineCreationFailed
    }));
    assert!(found.contains(&SignalKind::CreationError {
        problem: CreationProblem::EmptyPipeline,
        git_ref: None
    }));
    let cases = [
            ("Insufficient permissions to create a new pipeline", CreationProblem::InsufficientPermissions, None),
            ("You do not have sufficient permission to run a pipeline on 'main'. Please select a different branch or contact your administrator for assistance.", CreationProblem::RefNotAllowed, Some("main")),
            ("Insufficient permissions to set pipeline variables", CreationProblem::VariablesRestricted, None),
            ("Pipelines are disabled!", CreationProblem::PipelinesDisabled, None),
            ("Project is deleted!", CreationProblem::ProjectDeleted, None),
        ];
    for (text, problem, git_ref) in cases {
        assert_eq!(
            one(text),
            SignalKind::CreationError {
                problem,
                git_ref: git_ref.map(str::to_owned)
            },
            "{text}"
        );
    }
}

#[test]
fn job_outcome_and_runner_lines_are_recognised() {
    assert_eq!(
        one("ERROR: Job failed: exit code 22"),
        SignalKind::JobFailed {
            exit_code: Some(22),
            message: "exit code 22".into()
        }
    );
    assert_eq!(
        one("ERROR: Job failed: command terminated with exit code 1"),
        SignalKind::JobFailed {
            exit_code: Some(1),
            message: "command terminated with exit code 1".into()
        }
    );
    assert_eq!(
        one("\x1b[32;1mJob succeeded\x1b[0;m"),
        SignalKind::JobSucceeded
    );
    assert_eq!(
        one("Running with gitlab-runner 17.5.0 (66269445) on my-runner abcd1234"),
        SignalKind::Runner {
            version: Some("17.5.0".into()),
            name: Some("my-runner".into()),
            id: Some("abcd1234".into())
        }
    );
    let log = "\x1b[0KRunning with gitlab-runner 17.5.0 (66269445)\x1b[0;m\n\x1b[0K  on green-4.saas-linux-small-amd64 JLgUopmM, system ID: s_deaa2ca09de7\x1b[0;m\n";
    assert_eq!(
        kinds(log),
        vec![SignalKind::Runner {
            version: Some("17.5.0".into()),
            name: Some("green-4.saas-linux-small-amd64".into()),
            id: Some("JLgUopmM".into())
        }]
    );
}

#[test]
fn token_use_names_the_variable_or_the_kind_never_the_value() {
    let cases: &[(&str, TokenUse)] = &[
            ("curl -F token=$TRIGGER_TOKEN -F ref=main $URL", TokenUse::Variable("TRIGGER_TOKEN".into())),
            ("curl -F token=${DOWNSTREAM_TOKEN} $URL", TokenUse::Variable("DOWNSTREAM_TOKEN".into())),
            (r#"curl -F "token=$CI_JOB_TOKEN" $URL"#, TokenUse::Variable("CI_JOB_TOKEN".into())),
            ("curl --form token=$T --form ref=main $URL", TokenUse::Variable("T".into())),
            (r#"curl --header "JOB-TOKEN: $CI_JOB_TOKEN" $URL"#, TokenUse::Variable("CI_JOB_TOKEN".into())),
            (r#"curl --header "PRIVATE-TOKEN: ${API_TOKEN}" $URL"#, TokenUse::Variable("API_TOKEN".into())),
            (r#"curl -H "Authorization: Bearer $GITLAB_PAT" $URL"#, TokenUse::Variable("GITLAB_PAT".into())),
            ("Invoke-RestMethod -Body @{token=$env:TRIGGER_TOKEN; ref='main'}", TokenUse::Variable("TRIGGER_TOKEN".into())),
            ("project.trigger_pipeline('main', token=os.environ['TT'])", TokenUse::Variable("TT".into())),
            ("+ curl -X POST -F token= -F ref=main https://gitlab.example.com/api/v4/projects/42/trigger/pipeline", TokenUse::Empty),
            (r#"curl --form "token=" --form ref=main $URL"#, TokenUse::Empty),
            ("POST /api/v4/projects/42/trigger/pipeline?token=&ref=main", TokenUse::Empty),
            (r#"-d '{"token": "", "ref": "main"}'"#, TokenUse::Empty),
            ("curl -F token=[MASKED] -F ref=main $URL", TokenUse::Masked),
            ("curl -F token=glptt-3f6a1c9e0b7d2a4f8e5c -F ref=main $URL", TokenUse::Literal { kind: TokenKind::PipelineTrigger }), // fake test value
            ("curl -F token=glpat-xK9fQ2mZ7vB1nR4tY8wE $URL", TokenUse::Literal { kind: TokenKind::PersonalAccess }), // fake test value
            ("curl -F token=glcbt-64_nHq8sXz2VbRt5kLmP9wQ $URL", TokenUse::Literal { kind: TokenKind::CiJob }),
            ("curl -F token=gldt-Zr8TqW3mK5nB7vX1cY9p $URL", TokenUse::Literal { kind: TokenKind::Deploy }),
            ("curl -F token=6d056f63e50fe6f8c5f8f4aa10edb7 $URL", TokenUse::Literal { kind: TokenKind::Hex }),
            ("curl -F token=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl $URL", TokenUse::Literal { kind: TokenKind::Jwt }),
        ];
    for (line, expected) in cases {
        assert_eq!(token_use(line).as_ref(), Some(expected), "{line}");
    }
    assert_eq!(token_use("no token here"), None);
}

#[test]
fn masked_values_are_reported() {
    let found = kinds("$ curl -F token=[MASKED] -F ref=main https://gitlab.example.com/api/v4/projects/1/trigger/pipeline");
    assert!(found.contains(&SignalKind::Masked));
    assert!(found.contains(&SignalKind::Token(TokenUse::Masked)));
}

#[test]
fn secrets_in_kept_lines_are_redacted() {
    let log = "$ curl -X POST -F token=glptt-3f6a1c9e0b7d2a4f8e5c1b9d -F ref=main https://gitlab.example.com/api/v4/projects/42/trigger/pipeline\n{\"message\":\"404 Not Found\"}\n";
    let scan = scan_str(log);
    assert!(!scan.signals.is_empty());
    for signal in &scan.signals {
        assert!(!signal.line.contains("3f6a1c9e"), "{}", signal.line);
        let json = serde_json::to_string(signal).unwrap();
        assert!(!json.contains("3f6a1c9e"), "{json}");
    }
    assert!(scan.signals[0].line.contains("token=glptt-[REDACTED]"));
    assert!(scan.signals.iter().any(|s| s.kind
        == SignalKind::Token(TokenUse::Literal {
            kind: TokenKind::PipelineTrigger
        })));
}

#[test]
fn ansi_codes_section_markers_and_crlf_are_stripped() {
    let log = concat!(
            "\x1b[0Ksection_start:1700000000:step_script\r\x1b[0K\x1b[0K\x1b[36;1mExecuting \"step_script\" stage of the job script\x1b[0;m\r\n",
            "\x1b[32;1m$ curl --fail -X POST -F token=$TRIGGER_TOKEN -F ref=main \"$CI_API_V4_URL/projects/42/trigger/pipeline\"\x1b[0;m\r\n",
            "  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current\r\n",
            "\r  0     0    0     0    0     0      0      0 --:--:-- --:--:-- --:--:--     0\rcurl: (22) The requested URL returned error: 404\r\n",
            "\x1b[0Ksection_end:1700000001:step_script\r\x1b[0K\x1b[31;1mERROR: Job failed: exit code 22\x1b[0;m\r\n",
        );
    let scan = scan_str(log);
    let lines: Vec<(u64, &str)> = scan
        .signals
        .iter()
        .map(|s| (s.line_no, s.line.as_str()))
        .collect();
    assert!(lines.contains(&(2, "$ curl --fail -X POST -F token=$TRIGGER_TOKEN -F ref=main \"$CI_API_V4_URL/projects/42/trigger/pipeline\"")), "{lines:?}");
    assert!(
        lines.contains(&(4, "curl: (22) The requested URL returned error: 404")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&(5, "ERROR: Job failed: exit code 22")),
        "{lines:?}"
    );
    assert_eq!(scan.lines_seen, 5);
    for signal in &scan.signals {
        assert!(!signal.line.contains('\x1b') && !signal.line.contains('\r'));
    }
    assert!(scan.signals.iter().any(|s| s.kind
        == SignalKind::JobFailed {
            exit_code: Some(22),
            message: "exit code 22".into()
        }));
}

#[test]
fn prose_about_tokens_and_403_is_not_evidence() {
    let log = concat!(
            "test auth::rejects_expired_token ... FAILED\n",
            "assertion failed: expected status 403, got 200\n",
            "thread 'main' panicked at src/auth.rs:88: invalid token: expected 403 Forbidden\n",
            "loading tokenizer from ./models/tokenizer.json\n",
            "see the glossary-section-for-common-terms\n",
            "warning: unused variable `token_count`\n",
            "Running test... failed: assertion left == right\n",
            "{\"level\":\"info\",\"message\":\"server started\",\"port\":8080}\n",
            "note: upstream crate `serde` may add a new impl\n",
            "checking out upstream branch\n",
            "test_forbidden_returns_403 PASSED\n",
            "Uploading artifacts as \"archive\" to coordinator... 201 Created  id=5012 responseStatus=201 Created token=64_abcdef\n",
        );
    let scan = scan_str(log);
    assert!(scan.signals.is_empty(), "{:#?}", scan.signals);
    assert_eq!(scan.lines_seen, 12);
}

#[test]
fn long_lines_are_cut_around_the_evidence() {
    let line = format!(
        "{} curl: (6) Could not resolve host: gitlab.example.com {}",
        "x".repeat(2000),
        "y".repeat(2000)
    );
    let scan = scan_str(&line);
    let signal = &scan.signals[0];
    assert!(signal.line.chars().count() <= MAX_LINE_CHARS + 2);
    assert!(signal.line.contains("curl: (6) Could not resolve host"));
    assert_eq!(
        signal.kind,
        curl(
            6,
            &format!(
                "Could not resolve host: gitlab.example.com {}",
                "y".repeat(2000)
            ),
            Some("gitlab.example.com")
        )
    );
}

/// Ordinary build output with a line number in it, about 100 bytes a line.
fn filler(i: u64) -> String {
    format!(
        "   Compiling crate-{i} v0.{}.{} (/builds/group/app/crates/crate-{i}) in {}.{}s\n",
        i % 17,
        i % 5,
        i % 9,
        i % 7
    )
}

#[test]
fn reading_from_the_end_finds_the_last_failure_with_bounded_memory() {
    let chunk = 64 * 1024;
    let mut log = String::new();
    log.push_str(
        "curl: (7) Failed to connect to old.example.com port 443 after 1 ms: Connection refused\n",
    );
    let mut line = 1u64;
    while log.len() < 20 << 20 {
        line += 1;
        log.push_str(&filler(line));
    }
    log.push_str("curl: (6) Could not resolve host: gitlab.example.com\n");
    let last_failure = line + 1;
    log.push_str("\x1b[31;1mERROR: Job failed: exit code 6\x1b[0;m\n");

    let opts = ScanOptions {
        chunk_bytes: chunk,
        max_signals: 2,
        every_line: false,
    };
    let scan = scan_reader(Cursor::new(log.as_bytes()), &opts).unwrap();
    let signals = typed(&scan.signals);
    assert_eq!(signals.len(), 2);
    assert_eq!(messages(&scan), ["curl.dns"]);
    assert_eq!(signals[0].line_no, last_failure);
    assert_eq!(
        signals[0].kind,
        curl(
            6,
            "Could not resolve host: gitlab.example.com",
            Some("gitlab.example.com")
        )
    );
    assert_eq!(signals[1].line_no, last_failure + 1);
    assert!(scan.stopped_early);
    assert!(
        scan.peak_buffer_bytes <= 2 * chunk,
        "{}",
        scan.peak_buffer_bytes
    );
    assert_eq!(scan.lines_seen, last_failure + 1);
    assert_eq!(scan.bytes_read, log.len() as u64);

    let all = scan_reader(
        Cursor::new(log.as_bytes()),
        &ScanOptions {
            chunk_bytes: chunk,
            max_signals: 200,
            every_line: false,
        },
    )
    .unwrap();
    assert_eq!(typed(&all.signals).len(), 3);
    assert_eq!(all.signals[0].line_no, 1);
    assert!(all.peak_buffer_bytes <= 2 * chunk);
}

#[test]
fn lines_split_across_chunk_boundaries_are_found_whole_with_true_numbers() {
    let chunk = MIN_CHUNK_BYTES;
    let evidence = "curl: (28) Operation timed out after 30000 milliseconds with 0 bytes received";
    // Place the evidence line at every offset around a chunk boundary.
    for shift in 0..120 {
        let mut log = String::new();
        let mut line_no = 0u64;
        let mut evidence_line = 0;
        while log.len() < 5 * chunk {
            line_no += 1;
            if log.len() + shift >= 3 * chunk - 40 && evidence_line == 0 {
                evidence_line = line_no;
                log.push_str(evidence);
                log.push_str("\r\n");
            } else {
                log.push_str(&"a".repeat(30 + (line_no as usize % 7)));
                log.push('\n');
            }
        }
        let scan = scan_reader(
            Cursor::new(log.as_bytes()),
            &ScanOptions {
                chunk_bytes: chunk,
                max_signals: 10,
                every_line: false,
            },
        )
        .unwrap();
        assert_eq!(
            typed(&scan.signals).len(),
            1,
            "shift {shift}: {:?}",
            scan.signals
        );
        assert_eq!(scan.signals[0].line, evidence, "shift {shift}");
        assert_eq!(scan.signals[0].line_no, evidence_line, "shift {shift}");
        assert_eq!(scan.lines_seen, line_no);
    }
}

#[test]
fn lines_longer_than_a_chunk_are_examined_in_pieces() {
    let chunk = MIN_CHUNK_BYTES;
    let mut log = String::from("first line\n");
    log.push_str(&"z".repeat(5 * chunk));
    log.push_str(" {\"message\":\"403 Forbidden\"} ");
    log.push_str(&"z".repeat(3 * chunk));
    log.push_str("\nlast line without newline");
    let scan = scan_reader(
        Cursor::new(log.as_bytes()),
        &ScanOptions {
            chunk_bytes: chunk,
            max_signals: 10,
            every_line: false,
        },
    )
    .unwrap();
    let signals = typed(&scan.signals);
    assert_eq!(signals.len(), 1, "{:?}", scan.signals);
    assert_eq!(messages(&scan), ["gitlab.api.forbidden"]);
    assert_eq!(signals[0].line_no, 2);
    assert_eq!(
        signals[0].kind,
        SignalKind::GitlabError {
            status: Some(403),
            message: "403 Forbidden".into()
        }
    );
    assert_eq!(scan.lines_seen, 3);
    assert!(scan.peak_buffer_bytes <= 2 * chunk);
}

#[test]
fn empty_and_tiny_logs_are_fine() {
    assert_eq!(scan_str("").lines_seen, 0);
    assert_eq!(scan_str("\n").lines_seen, 1);
    let scan = scan_str("HTTP/2 429");
    assert_eq!(scan.lines_seen, 1);
    assert_eq!(scan.signals[0].line_no, 1);
}

#[test]
fn a_bridge_message_alone_is_scanned_like_a_log() {
    let scan = scan_str("downstream pipeline can not be created, Reference not found");
    let found: Vec<_> = scan.signals.into_iter().map(|s| s.kind).collect();
    assert!(found.contains(&SignalKind::BridgeFailure {
        reason: FailureReason::DownstreamPipelineCreationFailed
    }));
    assert!(found.contains(&SignalKind::CreationError {
        problem: CreationProblem::ReferenceNotFound,
        git_ref: None
    }));
}

#[test]
fn the_prefilter_has_between_forty_and_sixty_four_anchors() {
    let count = prefilter_literals().len();
    assert!((40..=64).contains(&count), "{count}");
    assert!(matches!(*PREFILTER, Prefilter::Packed(_)) || !cfg!(target_feature = "sse2"));
}

#[test]
fn bare_http_statuses_and_html_titles_give_the_status() {
    assert_eq!(one("HTTP 302"), SignalKind::HttpStatus { status: 302 });
    assert_eq!(
        kinds("[26/30] ops/deb-repo ... HTTP 429 {\"message\":{\"error\":\"Try again later.\"}}")
            [0],
        SignalKind::HttpStatus { status: 429 }
    );
    assert_eq!(
        one("<head><title>405 Not Allowed</title></head>"),
        SignalKind::GitlabError {
            status: Some(405),
            message: "405 Not Allowed".into()
        }
    );
    assert!(kinds("the HTTPS proxy is fine").is_empty());
}

#[test]
fn go_client_transport_errors_name_the_host_and_the_failure() {
    let found = kinds(
            "ERROR: Post \"https://gitlab.example.com/api/v4/projects/a%2Fb/pipeline\": dial tcp: lookup gitlab.example.com on 10.0.0.2:53: no such host",
        )
        .into_iter()
        .next()
        .unwrap();
    assert_eq!(found.network_failure(), Some(NetworkFailure::Dns));
    assert!(
        matches!(found, SignalKind::ClientError { tool: Tool::Glab, host: Some(ref h), .. } if h == "gitlab.example.com")
    );
}

#[test]
fn powershell_7_no_such_host_is_a_dns_failure() {
    let found = one("     | No such host is known. (gitlab.example.com:443)");
    assert_eq!(found.network_failure(), Some(NetworkFailure::Dns));
}

#[test]
fn powershell_hashtable_tokens_name_their_variable() {
    assert_eq!(
        token_use("-Body @{ token = $env:CI_JOB_TOKEN; ref = 'main' }"),
        Some(TokenUse::Variable("CI_JOB_TOKEN".into()))
    );
    assert_eq!(token_use("-F token= -F ref=main"), Some(TokenUse::Empty));
}

#[test]
fn a_client_network_error_known_only_to_the_catalogue_becomes_a_client_error() {
    for (line, host, failure) in [
        (
            "Error: getaddrinfo ENOTFOUND gitlab.example.com",
            Some("gitlab.example.com"),
            NetworkFailure::Dns,
        ),
        (
            "Post \"https://gitlab.example.com/api/v4/projects/1/trigger/pipeline\": x509: certificate signed by unknown authority",
            None,
            NetworkFailure::Certificate,
        ),
        (
            "No connection could be made because the target machine actively refused it. (gitlab.example.com:443)",
            Some("gitlab.example.com"),
            NetworkFailure::Connect,
        ),
    ] {
        let scan = scan_bytes(line.as_bytes(), true);
        let client = typed(&scan.signals)
            .into_iter()
            .find(|s| matches!(s.kind, SignalKind::ClientError { .. }))
            .unwrap_or_else(|| panic!("{line}: {:?}", scan.signals));
        assert_eq!(client.kind.network_failure(), Some(failure), "{line}");
        if let (SignalKind::ClientError { host: h, .. }, Some(want)) = (&client.kind, host) {
            assert_eq!(h.as_deref(), Some(want), "{line}");
        }
    }
    // A curl error keeps its own typed signal and gains no second one.
    let scan = scan_bytes(
        b"curl: (6) Could not resolve host: gitlab.example.com",
        true,
    );
    assert_eq!(typed(&scan.signals).len(), 1, "{:?}", scan.signals);
}
