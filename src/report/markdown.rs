//! The diagnosis as a GitLab-flavoured Markdown comment, from an embedded Tera template. Every
//! text that came from a webhook, a log or GitLab is escaped (inline), fenced (log lines) or
//! dropped (links that are not http(s)), so a crafted branch name or log line cannot inject
//! links, HTML or mentions. The comment ends with the hidden marker that finds it again.

use serde::Serialize;

use super::view::{Headline, Report};
use crate::diagnosis::Diagnosis;
use crate::ids::PipelineId;
use crate::redact::redact;

const TEMPLATE: &str = include_str!("templates/comment.md.tera");

/// The comment template, compiled once on first use. Tera's HTML autoescaping is off: this
/// module escapes for Markdown itself.
static COMMENT: std::sync::LazyLock<tera::Tera> = std::sync::LazyLock::new(|| {
    let mut tera = tera::Tera::default();
    tera.autoescape_on(Vec::new());
    tera.add_raw_template("comment.md", TEMPLATE)
        .expect("the embedded comment template is valid");
    tera
});

/// The hidden marker at the end of every comment (a public contract):
/// `<!-- trigger-doctor {"pipeline":123,"causes":["token.expired"],"status":"open"} -->`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Marker {
    pub pipeline: PipelineId,
    pub causes: Vec<String>,
    pub status: String,
}

impl Marker {
    /// The marker of an open comment about `pipeline` with these diagnoses' causes.
    pub fn open(pipeline: PipelineId, diagnoses: &[Diagnosis]) -> Marker {
        Marker {
            pipeline,
            causes: diagnoses
                .iter()
                .flat_map(|d| d.causes())
                .map(|c| c.to_string())
                .collect(),
            status: "open".into(),
        }
    }

    pub fn render(&self) -> String {
        // serde_json escapes nothing that could close the comment except `>`: escaped.
        hidden("<!-- trigger-doctor ", self)
    }

    /// Finds the marker in a comment body.
    pub fn find(body: &str) -> Option<Marker> {
        find_hidden(body, "<!-- trigger-doctor ")
    }
}

/// `{start}{json} -->`: a value as JSON in a hidden HTML comment (`>` escaped, so nothing in
/// it can close the comment). `start` is `<!-- ` and a name with a space after it.
pub fn hidden<T: serde::Serialize>(start: &str, value: &T) -> String {
    let json = serde_json::to_string(value)
        .expect("markers serialise")
        .replace('>', "\\u003e");
    format!("{start}{json} -->")
}

/// The value of the last hidden comment that starts with `start` in `body`.
pub fn find_hidden<T: serde::de::DeserializeOwned>(body: &str, start: &str) -> Option<T> {
    let from = body.rfind(start)? + start.len();
    let end = body[from..].find(" -->")? + from;
    serde_json::from_str(&body[from..end]).ok()
}

/// Escapes text for inline Markdown: no link, emphasis, HTML, table break or mention survives.
pub fn escape(text: &str) -> String {
    let text = redact(text);
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '!' | '|'
            | '~' | '$' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            // A zero-width space keeps `@all` or `@group` from notifying anybody.
            '@' => out.push_str("@\u{200b}"),
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// Lines in a fenced code block whose fence no line can close.
pub fn fenced(lines: &[String]) -> String {
    let body: Vec<String> = lines
        .iter()
        .map(|l| redact(l).replace(['\r', '\n'], " "))
        .collect();
    let longest = body
        .iter()
        .flat_map(|l| l.split(|c| c != '`').map(str::len))
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}text\n{}\n{fence}", body.join("\n"))
}

/// A Markdown link, or the escaped label alone when the URL is not http(s).
pub fn link(label: &str, url: &str) -> String {
    let url = url.trim();
    let safe = (url.starts_with("https://") || url.starts_with("http://"))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if safe {
        let url = url
            .replace('(', "%28")
            .replace(')', "%29")
            .replace('<', "%3C")
            .replace('>', "%3E");
        format!("[{}]({url})", escape(label))
    } else {
        escape(label)
    }
}

#[derive(Serialize)]
struct CauseView {
    id: String,
    verdict: String,
    summary: String,
    evidence: Option<String>,
    fix: Vec<String>,
    why: Option<String>,
    next: Option<String>,
}

#[derive(Serialize)]
struct CheckView {
    id: String,
    verdict: String,
    summary: String,
}

#[derive(Serialize)]
struct DiagnosisView {
    headline: String,
    links: String,
    cause: Option<CauseView>,
    checks: Vec<CheckView>,
}

/// The report's headline in Markdown: the cause id as code, every name escaped.
fn headline(h: &Headline) -> String {
    match h {
        Headline::DownstreamFailed { job } => {
            format!(
                "The downstream pipeline of {} failed on its own",
                escape(job)
            )
        }
        Headline::Cause {
            cause,
            job,
            downstream: Some(down),
        } => format!(
            "`{}`: {} could not start a pipeline in {}",
            cause.replace('`', ""),
            escape(job),
            escape(down)
        ),
        Headline::Cause {
            cause,
            job,
            downstream: None,
        } => format!(
            "`{}`: {} could not start its downstream pipeline",
            cause.replace('`', ""),
            escape(job)
        ),
        Headline::Undetermined { job } => {
            format!("{} could not start its downstream pipeline", escape(job))
        }
    }
}

fn view(d: &Diagnosis) -> DiagnosisView {
    let r = Report::of(d);
    let cause = r.cause.map(|top| CauseView {
        summary: escape(&top.summary),
        evidence: (!top.evidence.is_empty()).then(|| fenced(&top.evidence)),
        fix: top
            .fix
            .iter()
            .map(|s| match &s.link {
                Some(url) => format!("{} ({})", escape(&s.text), link("open", url)),
                None => escape(&s.text),
            })
            .collect(),
        why: top.why.as_deref().map(escape),
        next: top.next.as_deref().map(escape),
        id: top.id.replace('`', ""),
        verdict: top.verdict,
    });
    let checks = r
        .checks
        .into_iter()
        .map(|c| CheckView {
            summary: escape(&c.summary),
            id: c.id.replace('`', ""),
            verdict: c.verdict,
        })
        .collect();
    DiagnosisView {
        headline: headline(&r.headline),
        links: r
            .links
            .iter()
            .map(|l| link(&l.label, &l.url))
            .collect::<Vec<_>>()
            .join(" · "),
        cause,
        checks,
    }
}

/// The comment for the diagnoses of one pipeline.
pub fn render_comment(diagnoses: &[Diagnosis], marker: &Marker) -> String {
    let mut context = tera::Context::new();
    context.insert("diagnoses", &diagnoses.iter().map(view).collect::<Vec<_>>());
    context.insert(
        "calls",
        &diagnoses.iter().map(|d| d.gitlab_calls).sum::<u32>(),
    );
    context.insert("marker", &marker.render());
    COMMENT
        .render("comment.md", &context)
        .expect("the embedded comment template renders")
}

/// A comment body without its hidden marker.
pub fn without_marker(body: &str) -> &str {
    match body.rfind("<!-- trigger-doctor ") {
        Some(at) => body[..at].trim_end(),
        None => body.trim_end(),
    }
}

fn pipeline_link(pipeline: PipelineId, url: Option<&str>) -> String {
    let label = format!("pipeline #{pipeline}");
    url.map_or_else(|| escape(&label), |u| link(&label, u))
}

/// The comment once a later pipeline passed: a short headline, the earlier diagnosis
/// collapsed under it.
pub fn render_resolved(
    previous: &str,
    previous_pipeline: PipelineId,
    passed: PipelineId,
    passed_url: Option<&str>,
    marker: &Marker,
) -> String {
    let causes = marker
        .causes
        .iter()
        .map(|c| format!("`{}`", escape(c).replace('`', "")))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "### Resolved in pipeline #{passed}\n\n{} passed, so the trigger failure reported here ({causes}) is fixed.\n\n\
         <details><summary>Earlier diagnosis (pipeline #{previous_pipeline})</summary>\n\n{}\n\n</details>\n\n\
         _Comment `/diagnose` to check again._\n\n{}\n",
        pipeline_link(passed, passed_url),
        without_marker(previous),
        marker.render()
    )
}

/// The comment when a re-check found no trigger failure in the pipeline.
pub fn render_clear(
    pipeline: PipelineId,
    pipeline_url: Option<&str>,
    reason: &str,
    marker: &Marker,
) -> String {
    format!(
        "### No trigger failure in pipeline #{pipeline}\n\n{}: {}.\n\n_Comment `/diagnose` to check again._\n\n{}\n",
        pipeline_link(pipeline, pipeline_url),
        escape(reason),
        marker.render()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::CauseId;
    use crate::diagnosis::{check, testing};

    fn golden(name: &str, actual: &str) {
        super::super::golden::assert_golden(name, actual);
    }

    fn marker(d: &Diagnosis) -> Marker {
        Marker::open(d.facts.subject.pipeline_id, std::slice::from_ref(d))
    }

    #[test]
    fn the_marker_round_trips_and_cannot_close_the_comment_early() {
        let m = Marker {
            pipeline: PipelineId(123),
            causes: vec![CauseId::TokenExpired.to_string(), "x-->y".into()],
            status: "open".into(),
        };
        let text = m.render();
        assert!(
            text.starts_with("<!-- trigger-doctor {\"pipeline\":123,\"causes\":[\"token.expired\"")
        );
        assert_eq!(text.matches("-->").count(), 1);
        assert_eq!(Marker::find(&format!("body\n\n{text}")), Some(m));
    }

    #[test]
    fn untrusted_text_cannot_inject_links_html_or_mentions() {
        let e = escape("[x](http://evil) <img src=x> @all <!channel> **bold** `code`");
        assert!(!e.contains("](http"), "{e}");
        assert!(!e.contains("<img"), "{e}");
        assert!(!e.contains("@all"), "{e}");
        assert!(e.contains("&lt;\\!channel&gt;"), "{e}");
        assert_eq!(link("job", "javascript:alert(1)"), "job");
        assert_eq!(link("job", "https://gitlab.example.com/a (b)"), "job");
        assert_eq!(
            link("p", "https://x.example/a(b)"),
            "[p](https://x.example/a%28b%29)"
        );
        let f = fenced(&[
            "``` ```` `".to_string(),
            "token=glpat-abcdefghijklmnopqrst".to_string(), // a fake test token
        ]);
        assert!(f.starts_with("`````text\n"), "{f}");
        assert!(!f.contains("abcdefghijklmnopqrst"), "{f}");
    }

    #[test]
    fn a_renamed_project_renders_as_its_golden_comment() {
        let mut facts = testing::bridge_facts(Some("downstream_bridge_project_not_found"));
        facts.target.project_written = Some("grp/old-app".into());
        facts.target.project = Some("grp/old-app".into());
        let d = check(facts, 6);
        golden(
            "comment-project-renamed.md",
            &render_comment(std::slice::from_ref(&d), &marker(&d)),
        );
    }

    #[test]
    fn a_curl_dns_failure_renders_as_its_golden_comment() {
        let facts = testing::curl_facts(
            "$ curl --fail -X POST -F token=$DEPLOY_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\ncurl: (6) Could not resolve host: gitlab.example.com\nERROR: Job failed: exit code 6\n",
        );
        let d = check(facts, 8);
        golden(
            "comment-network-dns.md",
            &render_comment(std::slice::from_ref(&d), &marker(&d)),
        );
    }

    #[test]
    fn a_crafted_branch_and_log_line_are_escaped_in_the_comment() {
        let mut facts = testing::curl_facts(
            "$ curl --fail -X POST -F token=glpat-abcdefghijklmnopqrst -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n{\"message\":\"404 Not Found [x](http://evil) @all\"}\n",
        );
        facts.target.project = Some("[x](http://evil) <!channel> @all".into());
        let d = check(facts, 3);
        let comment = render_comment(std::slice::from_ref(&d), &marker(&d));
        assert!(!comment.contains("abcdefghijklmnopqrst"), "{comment}");
        // Log lines sit in fenced code blocks, where GitLab renders no link and no mention;
        // everywhere else nothing may survive.
        let mut outside = String::new();
        let mut in_block = false;
        for line in comment.lines() {
            if line.starts_with("```") {
                in_block = !in_block;
            } else if !in_block {
                outside.push_str(line);
                outside.push('\n');
            }
        }
        assert!(!outside.contains("](http://evil)"), "{outside}");
        assert!(!outside.contains("@all"), "{outside}");
        assert!(!outside.contains("<!channel>"), "{outside}");
        assert!(
            comment.trim_end().ends_with("\"status\":\"open\"} -->"),
            "{comment}"
        );
    }

    /// Renders the comment for `facts` after checking that the top cause is `cause`, so a golden
    /// file cannot be written for the wrong cause.
    fn golden_for_cause(name: &str, facts: crate::diagnosis::Facts, calls: u32, cause: CauseId) {
        let d = check(facts, calls);
        assert_eq!(d.top().map(|f| f.cause), Some(cause), "{:#?}", d.findings);
        golden(name, &render_comment(std::slice::from_ref(&d), &marker(&d)));
    }

    fn found<T: serde::de::DeserializeOwned>(
        value: serde_json::Value,
    ) -> crate::diagnosis::Gathered<T> {
        crate::diagnosis::Gathered::Found(serde_json::from_value(value).unwrap())
    }

    #[test]
    fn a_trigger_token_unknown_to_the_project_renders_as_its_golden_comment() {
        let mut facts = testing::curl_facts(
            "$ curl -X POST --fail -F token=$DOWNSTREAM_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\ncurl: (22) The requested URL returned error: 404\n{\"message\":\"404 Not Found\"}\nERROR: Job failed: exit code 22\n",
        );
        facts.target.token_variable = Some("DOWNSTREAM_TOKEN".into());
        facts.target.variables_used = vec!["DOWNSTREAM_TOKEN".into()];
        facts.triggers = found(serde_json::json!([]));
        golden_for_cause("comment-token-invalid.md", facts, 7, CauseId::TokenInvalid);
    }

    #[test]
    fn a_protected_token_variable_on_a_feature_branch_renders_as_its_golden_comment() {
        let mut facts = testing::curl_facts(
            "$ curl -X POST -F token=$DOWNSTREAM_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n{\"error\":\"token is missing\"}\n",
        );
        facts.target.token_variable = Some("DOWNSTREAM_TOKEN".into());
        facts.target.variables_used = vec!["DOWNSTREAM_TOKEN".into()];
        facts.config = crate::diagnosis::Gathered::Found(crate::diagnosis::ConfigFacts {
            source: crate::evidence::ci_source::ConfigSource::MergedYaml,
            unresolved: Vec::new(),
            job_variables: Default::default(),
            job_found: true,
        });
        facts.project_variables = found(serde_json::json!([
            {"key": "DOWNSTREAM_TOKEN", "protected": true, "masked": true, "environment_scope": "*"}
        ]));
        facts.group_variables = vec![("grp".into(), found(serde_json::json!([])))];
        facts.instance_variables = found(serde_json::json!([]));
        golden_for_cause(
            "comment-variable-protected-ref.md",
            facts,
            9,
            CauseId::VariableProtectedRef,
        );
    }

    #[test]
    fn an_http_trigger_url_redirected_to_https_renders_as_its_golden_comment() {
        let facts = testing::curl_facts(
            "$ curl -L -X POST -F token=$DOWNSTREAM_TOKEN -F ref=main http://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n< HTTP/1.1 301 Moved Permanently\n< Location: https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n< HTTP/2 405\n",
        );
        golden_for_cause("comment-api-url-scheme.md", facts, 5, CauseId::ApiUrlScheme);
    }

    #[test]
    fn a_bad_gateway_answer_renders_as_its_golden_comment() {
        let mut facts = testing::curl_facts(
            "$ curl -X POST -F token=$DOWNSTREAM_TOKEN -F ref=main https://gitlab.example.com/api/v4/projects/2/trigger/pipeline\n<html><head><title>502 Bad Gateway</title></head>\n",
        );
        facts.instance.version =
            found(serde_json::json!({"version": "17.5.1-ee", "revision": "abc"}));
        golden_for_cause(
            "comment-instance-unavailable.md",
            facts,
            5,
            CauseId::InstanceUnavailable,
        );
    }

    #[test]
    fn a_reporter_triggering_a_pipeline_renders_as_its_golden_comment() {
        let mut facts = testing::bridge_facts(Some("insufficient_bridge_permissions"));
        facts.member = crate::diagnosis::Gathered::Found(Some(
            serde_json::from_value(serde_json::json!({
                "id": 7, "username": "dev", "state": "active", "access_level": 20
            }))
            .unwrap(),
        ));
        facts.protected_branches = found(serde_json::json!([]));
        golden_for_cause(
            "comment-permission-role.md",
            facts,
            6,
            CauseId::PermissionRole,
        );
    }

    #[test]
    fn a_misspelt_downstream_branch_renders_as_its_golden_comment() {
        let mut facts = testing::bridge_facts(Some("downstream_pipeline_creation_failed"));
        facts.target.git_ref = Some("relase/1.0".into());
        facts.branch = crate::diagnosis::Gathered::NotFound;
        facts.tag = crate::diagnosis::Gathered::NotFound;
        golden_for_cause("comment-ref-not-found.md", facts, 6, CauseId::RefNotFound);
    }

    #[test]
    fn rules_that_leave_the_downstream_pipeline_empty_render_as_their_golden_comment() {
        let mut facts = testing::bridge_facts(Some("downstream_pipeline_creation_failed"));
        facts.downstream_lint = found(serde_json::json!({
            "valid": false,
            "errors": ["Pipeline will not run for the selected trigger. The rules configuration prevented any jobs from being added to the pipeline."],
            "warnings": [],
            "merged_yaml": null
        }));
        golden_for_cause(
            "comment-config-downstream-empty.md",
            facts,
            7,
            CauseId::ConfigDownstreamEmpty,
        );
    }

    #[test]
    fn a_failed_downstream_pipeline_renders_as_its_golden_comment() {
        let mut facts = testing::bridge_facts(None);
        facts.downstream_pipeline = Some(crate::diagnosis::DownstreamRun {
            project_id: Some(crate::ids::ProjectId(2)),
            pipeline_id: PipelineId(77),
            status: "failed".into(),
            web_url: Some("https://gitlab.example.com/grp/app/-/pipelines/77".into()),
            failed_jobs: vec![
                (
                    "unit".into(),
                    Some("https://gitlab.example.com/grp/app/-/jobs/3".into()),
                ),
                ("lint".into(), None),
            ],
        });
        golden_for_cause(
            "comment-downstream-failed.md",
            facts,
            3,
            CauseId::DownstreamFailed,
        );
    }
}
