//! What a pasted text is about, read from its words: a pipeline trigger (a `trigger:` job, a
//! downstream or child pipeline, the trigger API), whether something failed, and whether the
//! downstream pipeline was in fact created (then the trigger worked, whatever failed after).
//! Reports in issue trackers and chat are prose around the evidence, often in another language;
//! the phrase lists below hold the words people and GitLab use, in the languages GitLab's own
//! documentation is translated into.

/// Phrases that make a pipeline trigger the subject of a line (lower case).
const TRIGGER: &[&str] = &[
    "trigger/pipeline",
    "/trigger/builds",
    "trigger token",
    "trigger_token",
    "trigger-token",
    "pipeline_trigger",
    "trigger job",
    "trigger-job",
    "bridge job",
    "bridge-job",
    "downstream pipeline",
    "downstream-pipeline",
    "downstream project",
    "downstream build",
    "downstream repo",
    "multi-project pipeline",
    "multi-project",
    "multiproject pipeline",
    "cross-project pipeline",
    "child pipeline",
    "child-pipeline",
    "parent pipeline",
    "trigger a pipeline",
    "trigger the pipeline",
    "trigger pipeline",
    "trigger a downstream",
    "trigger the downstream",
    "trigger downstream",
    "trigger another",
    "triggers a downstream",
    "triggering a pipeline",
    "triggering pipeline",
    "triggering the pipeline",
    "triggering downstream",
    "trigger_pipeline",
    "run_trigger",
    "trigger api",
    "trigger_build",
    "trigger-build ",
    "create_downstream_pipeline",
    "ci trigger",
    "pipelinetriggertoken",
    "pipeline of another",
    "pipeline in another",
    "another project's pipeline",
    "trigger url",
    "trigger a build",
    "trigger build",
    "does not trigger",
    "doesn't trigger",
    "did not trigger",
    "didn't trigger",
    "fails to trigger",
    "failed to trigger",
    "failing to trigger",
    "unable to trigger",
    "cannot trigger",
    "can't trigger",
    "could not trigger",
    "pipeline to trigger",
    "pipeline_source == \"trigger\"",
    "pipeline_source == \"pipeline\"",
    "pipeline_source == \"parent_pipeline\"",
    "source: trigger",
    "source: parent_pipeline",
    // Other languages (GitLab's documentation translations and common forum wording).
    "トリガー",
    "ダウンストリーム",
    "子パイプライン",
    "下游流水线",
    "触发流水线",
    "触发管道",
    "多项目流水线",
    "子流水线",
    "觸發",
    "트리거",
    "다운스트림",
    "자식 파이프라인",
    "триггер",
    "downstream-pipeline",
    "pipeline en aval",
    "pipeline enfant",
    "déclench",
    "pipeline auslös",
    "nachgelagerte pipeline",
    "pipeline descendente",
    "disparar pipeline",
    "disparar el pipeline",
];

/// Words that say something went wrong (lower case).
const FAILURE: &[&str] = &[
    "fail",
    "error",
    "not found",
    "cannot",
    "can not",
    "can't",
    "could not",
    "couldn't",
    "unable",
    "does not work",
    "doesn't work",
    "not work",
    "stuck",
    "pending",
    "hang",
    "forever",
    "never",
    "not triggered",
    "not created",
    "isn't created",
    "not start",
    "refused",
    "denied",
    "forbidden",
    "unauthorized",
    "invalid",
    "expired",
    "revoked",
    "missing",
    "does not exist",
    "doesn't exist",
    "not exist",
    "blocked",
    "401",
    "403",
    "404",
    "422",
    "429",
    "500",
    "502",
    "503",
    "timed out",
    "timeout",
    "problem",
    "issue",
    "instead of",
    "redirected",
    "unexpected",
    "失败",
    "错误",
    "无法",
    "失敗",
    "エラー",
    "できない",
    "실패",
    "오류",
    "ошибк",
    "échou",
    "erreur",
    "fehler",
    "fehlgeschlagen",
    "falla",
    "fallo",
];

/// Phrases that say the downstream pipeline was created: whatever failed afterwards, the
/// trigger itself worked.
const CREATED: &[&str] = &[
    "downstream pipeline passes",
    "downstream pipeline passed",
    "downstream pipeline succeeded",
    "downstream pipeline genuinely failed",
    "downstream pipeline failed!",
    "downstream pipeline was created",
    "downstream pipeline is created",
    "did trigger the pipeline",
    "pipeline creation is ok",
    "jobs fail in the child pipeline",
    "child pipeline fails and",
    "triggered pipeline status",
    "trigger job succeeded",
    "trigger job passed",
    "trigger succeeded",
    "triggered successfully",
    "downstream pipeline is stuck",
    "downstream pipeline was stuck",
    "downstream pipeline's",
    "in the downstream pipeline fail",
    "of the downstream pipeline fail",
    "downstream job fail",
];

/// `pipeline trigger` and `pipeline triggers` (GitLab's name for trigger tokens), not `pipeline
/// triggering` or `pipeline triggered`, which people also say of pipelines a push starts.
fn names_pipeline_triggers(lower: &str) -> bool {
    lower.match_indices("pipeline trigger").any(|(at, m)| {
        let rest = &lower[at + m.len()..];
        rest.is_empty() || rest.starts_with('s') || !rest.starts_with(|c: char| c.is_alphanumeric())
    })
}

/// A form of "trigger" as a word of its own, followed within four words by what it acts on
/// (`triggers another project`, `triggered the downstream build`), or the noun followed by how
/// it went (`the trigger fails`). Not `pipeline triggering fails`, which people say of pipelines
/// a push starts, nor `trigger-build-docs` or `tekton-triggers`, parts of other names.
fn trigger_words(lower: &str) -> bool {
    const OBJECT: &[&str] = &[
        "pipeline",
        "pipelines",
        "downstream",
        "project",
        "projects",
        "build",
        "builds",
        "job",
        "jobs",
    ];
    const OUTCOME: &[&str] = &[
        "fails", "failed", "failing", "fail", "error", "errors", "returns", "returned", "works",
        "work",
    ];
    let words: Vec<&str> = lower
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '/'))
        })
        .collect();
    words.iter().enumerate().any(|(i, w)| {
        let next = || words[i + 1..].iter().take(4);
        match *w {
            "trigger" | "triggers" => next().any(|n| OBJECT.contains(n) || OUTCOME.contains(n)),
            "triggered" | "triggering" => next().any(|n| OBJECT.contains(n)),
            _ => false,
        }
    })
}

/// Another CI system's triggers (`workflow_dispatch`, Jenkins, Tekton…): "the trigger fails"
/// there is not a GitLab pipeline trigger.
fn other_ci(lower: &str) -> bool {
    [
        "github action",
        "workflow_dispatch",
        "jenkins",
        "tekton",
        "circleci",
        "azure devops",
        "azure pipelines",
        "teamcity",
        "bamboo",
        "argo workflows",
        "buildkite",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

/// A line about managing trigger tokens (`POST /projects/:id/triggers`, `API::Ci::Triggers`):
/// creating or deleting a token is not running a trigger.
fn manages_trigger_tokens(lower: &str) -> bool {
    lower.contains("api::ci::triggers")
        || lower.contains("/triggers") && !lower.contains("/triggers/")
        || lower.contains("trigger tokens within")
}

/// What the words of a text say.
#[derive(Debug, Default)]
pub(super) struct Context {
    /// The first line that makes a pipeline trigger the subject, numbered.
    pub trigger: Option<String>,
    /// Something went wrong, in words.
    pub failure: bool,
    /// The downstream pipeline was created (the line, numbered).
    pub created: Option<String>,
    /// A test suite's report (GitLab's own specs): its words name triggers it only tests.
    pub test_report: bool,
    /// The text is about managing trigger tokens (their API), not about running a trigger.
    pub manages_tokens: bool,
}

/// A `trigger:` key of a CI configuration (`trigger:`, `trigger: group/project`,
/// `trigger: {project: …}`), not prose that happens to hold the word.
pub(super) fn is_trigger_key(line: &str) -> bool {
    let t = line.trim_start().trim_start_matches("- ");
    t.strip_prefix("trigger:")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
}

/// Lower-cases ASCII and folds runs of whitespace into one space.
pub(super) fn normalise(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut space = false;
    for ch in line.chars() {
        if ch.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(ch.to_ascii_lowercase());
    }
    out
}

pub(super) fn read(text: &str) -> Context {
    let mut c = Context::default();
    for (i, line) in text.lines().enumerate() {
        let lower = normalise(line);
        let numbered = || format!("{}: {}", i + 1, crate::redact::redact(line.trim()));
        // A call to a local test server is a test, not a trigger.
        let local = lower.contains("127.0.0.1") || lower.contains("localhost");
        if manages_trigger_tokens(&lower) {
            c.manages_tokens = true;
        }
        if c.trigger.is_none()
            && !local
            && !manages_trigger_tokens(&lower)
            && (is_trigger_key(line)
                || names_pipeline_triggers(&lower)
                || (trigger_words(&lower) && !other_ci(&lower))
                || TRIGGER.iter().any(|p| lower.contains(p)))
        {
            c.trigger = Some(numbered());
        }
        if !c.failure && FAILURE.iter().any(|p| lower.contains(p)) {
            c.failure = true;
        }
        if c.created.is_none() && CREATED.iter().any(|p| lower.contains(p)) {
            c.created = Some(numbered());
        }
        if lower.contains("_spec.rb")
            || lower.starts_with("[test]")
            || lower.starts_with("=== run")
            || lower.starts_with("--- fail:")
        {
            c.test_report = true;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_words_failure_words_and_a_created_downstream_are_read() {
        let c = read("The bridge job fails:\n  trigger:\n    project: g/p\n");
        assert_eq!(c.trigger.as_deref(), Some("1: The bridge job fails:"));
        assert!(c.failure);
        let c = read("la pipeline en aval n'a pas démarré, erreur 404");
        assert!(c.trigger.is_some() && c.failure);
        let c = read("The trigger pipeline is started; the downstream pipeline passes");
        assert!(c.created.is_some());
        let c = read("npm ERR! network timeout");
        assert!(c.trigger.is_none());
        assert!(is_trigger_key("  trigger:"));
        assert!(is_trigger_key("- trigger: {project: a/b}"));
        assert!(!is_trigger_key("trigger:qa-test job"));
        assert!(trigger_words(
            "our deploy job triggers another project with curl"
        ));
        assert!(trigger_words("the trigger fails on feature branches"));
        assert!(!trigger_words(
            "pipelines are not triggered when pushing branch refs"
        ));
        assert!(!trigger_words("pipeline triggering fails intermittently"));
        assert!(!trigger_words(
            "wget https://gitlab.com/x/scripts/trigger-build-docs"
        ));
    }
}
