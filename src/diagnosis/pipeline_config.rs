//! The downstream pipeline's configuration and GitLab's limits on pipeline trees (`config.*`):
//! a trigger into the same project, a downstream configuration that leaves no job or does not
//! parse (checked with a CI lint dry run on the target ref), loops, nesting depth, tree size
//! and the per-minute limit on downstream pipelines.

use crate::diagnosis::causes::{cause_of_bridge_reason, cause_of_creation_problem};
use crate::diagnosis::{
    links, CauseId, Facts, FailedJob, Finding, FixStep, Gathered, Settings, Verdict,
};
use crate::evidence::log_scan::{CreationProblem, Signal, SignalKind};
use crate::gitlab::model::FailureReason;

const DOWNSTREAM_DOCS: &str = "https://docs.gitlab.com/ci/pipelines/downstream_pipelines/";
const WORKFLOW_DOCS: &str = "https://docs.gitlab.com/ci/yaml/workflow/";
const INSTANCE_LIMITS_DOCS: &str = "https://docs.gitlab.com/administration/instance_limits/";
const SETTINGS_API_DOCS: &str = "https://docs.gitlab.com/api/settings/";

const CREATION_FAILED: FailureReason = FailureReason::DownstreamPipelineCreationFailed;

pub fn check(facts: &Facts) -> Vec<Finding> {
    let reasons = reasons(facts);
    let creation = Creation::read(facts);
    vec![
        same_project(facts, &reasons),
        creation.empty(facts),
        creation.invalid(facts),
        limit(facts, &reasons, Limit::Loop),
        limit(facts, &reasons, Limit::Depth),
        limit(facts, &reasons, Limit::HierarchySize),
        limit(facts, &reasons, Limit::Triggers),
    ]
}

/// A bridge failure reason, with the log line that shows it when it comes from the log.
struct Reason<'a> {
    id: FailureReason,
    signal: Option<&'a Signal>,
}

impl Reason<'_> {
    fn evidence(&self, facts: &Facts) -> String {
        match self.signal {
            Some(s) => s.numbered(),
            None => format!(
                "job {} failed with failure_reason {}",
                facts.failed.name(),
                self.id
            ),
        }
    }
}

/// The bridge's failure reason and the bridge failure messages in the log.
fn reasons(facts: &Facts) -> Vec<Reason<'_>> {
    let mut out: Vec<Reason> = Vec::new();
    if let FailedJob::Bridge {
        failure_reason: Some(r),
        ..
    } = &facts.failed
    {
        out.push(Reason {
            id: r.clone(),
            signal: None,
        });
    }
    for s in signals(facts) {
        if let SignalKind::BridgeFailure { reason } = &s.kind {
            out.push(Reason {
                id: reason.clone(),
                signal: Some(s),
            });
        }
    }
    out
}

fn signals(facts: &Facts) -> &[Signal] {
    facts.scan.as_ref().map_or(&[], |s| &s.signals)
}

/// The bridge's own failure reason when it is set, for ruling causes out.
fn bridge_reason(facts: &Facts) -> Option<&FailureReason> {
    match &facts.failed {
        FailedJob::Bridge { failure_reason, .. } => failure_reason.as_ref(),
        FailedJob::Job { .. } => None,
    }
}

fn downstream_url(facts: &Facts) -> Option<&str> {
    facts.downstream.found().map(|p| p.web_url.as_str())
}

fn downstream_name(facts: &Facts) -> String {
    facts
        .downstream
        .found()
        .map(|p| p.path_with_namespace.clone())
        .or_else(|| facts.target.project.clone())
        .unwrap_or_else(|| "the downstream project".to_string())
}

/// The ref the downstream pipeline runs on.
fn target_ref(facts: &Facts) -> String {
    facts
        .target
        .git_ref
        .clone()
        .or_else(|| {
            facts
                .downstream
                .found()
                .and_then(|p| p.default_branch.clone())
        })
        .unwrap_or_else(|| "its default branch".to_string())
}

/// `CI_PIPELINE_SOURCE` of the downstream pipeline.
fn downstream_source(facts: &Facts) -> &'static str {
    if facts.failed.is_bridge() || facts.target.uses_job_token {
        "pipeline"
    } else {
        "trigger"
    }
}

fn same_project(facts: &Facts, reasons: &[Reason]) -> Finding {
    const ID: CauseId = CauseId::ConfigSameProject;
    let own = facts.subject.project_id;
    let downstream = facts.downstream.found();
    let is_own = downstream.is_some_and(|p| p.id == own);
    let multi_project = facts.target.project_written.is_some();
    if let Some(r) = reasons
        .iter()
        .find(|r| r.id == FailureReason::InvalidBridgeTrigger)
    {
        let mut f = Finding::new(
            ID,
            Verdict::Confirmed,
            "The trigger: job names its own project: GitLab refuses a multi-project trigger into the same project.",
        )
        .evidence(r.evidence(facts));
        match downstream {
            Some(p) if p.id == own => {
                f = f.evidence(format!(
                    "downstream project {} (id {}) is the upstream project itself",
                    p.path_with_namespace, p.id
                ))
            }
            Some(p) => {
                f = f.evidence(format!(
                    "but the downstream project the bot looked up, {} (id {}), is not the upstream project (id {}): the trigger definition may be invalid for another reason",
                    p.path_with_namespace, p.id, own.0
                ))
            }
            None => {}
        }
        return same_project_fix(facts, f);
    }
    if !facts.failed.is_bridge() {
        return Finding::new(
            ID,
            Verdict::NotApplicable,
            "The trigger API may start a pipeline in the job's own project; only a trigger: job refuses its own project.",
        );
    }
    if !multi_project {
        return Finding::new(
            ID,
            Verdict::NotApplicable,
            "A child pipeline (trigger:include) runs in the same project by design.",
        );
    }
    if is_own && bridge_reason(facts).is_none() {
        let f = Finding::new(
            ID,
            Verdict::Likely,
            "trigger:project resolves to the pipeline's own project, which GitLab refuses for a multi-project trigger.",
        )
        .evidence(format!(
            "downstream project {} is the upstream project (id {})",
            downstream_name(facts),
            own.0
        ));
        return same_project_fix(facts, f);
    }
    if let Some(p) = downstream.filter(|p| p.id != own) {
        return Finding::new(
            ID,
            Verdict::RuledOut,
            format!(
                "The downstream project {} (id {}) is another project than the upstream one (id {}).",
                p.path_with_namespace, p.id, own.0
            ),
        );
    }
    match bridge_reason(facts) {
        Some(other) => Finding::new(
            ID,
            Verdict::RuledOut,
            format!("The bridge failed with {other}, not invalid_bridge_trigger."),
        ),
        None => Finding::new(
            ID,
            Verdict::Unknown,
            format!(
                "GitLab gave the bridge no failure reason, and {}",
                facts
                    .downstream
                    .unknown_reason("the downstream project")
                    .unwrap_or_else(|| "the downstream project was not found".to_string())
            ),
        ),
    }
}

fn same_project_fix(facts: &Facts, f: Finding) -> Finding {
    let mut f = f
        .fix(FixStep::linked(
            "To run a pipeline in the same project, replace trigger:project with a child pipeline: trigger:include with the configuration file to run.",
            DOWNSTREAM_DOCS,
        ))
        .fix(FixStep::new(
            "Otherwise point trigger:project at the other project's full path (check the variables it expands).",
        ));
    if let Some(url) = facts.failed.web_url() {
        f = f.fix(FixStep::linked("Retry the trigger job.", url));
    }
    f.why(
        "GitLab refuses a multi-project trigger whose downstream project is the upstream project (invalid_bridge_trigger); a child pipeline is the supported way to start another pipeline in the same project.",
    )
    .next("The child pipeline then needs a configuration that creates at least one job (see config.downstream_empty).")
}

/// What GitLab said about creating the downstream pipeline, and what the CI lint says.
struct Creation<'a> {
    /// `downstream_pipeline_creation_failed`, a creation error or a 422 was seen.
    failed: bool,
    empty: Vec<String>,
    invalid: Vec<String>,
    /// Creation refused for another reason (`Reference not found`, permissions).
    other: Vec<String>,
    problems: Vec<CreationProblem>,
    unprocessable: Vec<&'a Signal>,
}

const EMPTY_TEXTS: &[&str] = &[
    "would have been empty",
    "no stages / jobs",
    "no jobs",
    "rules configuration prevented",
    "will not run for the selected trigger",
];

const INVALID_TEXTS: &[&str] = &[
    "mapping values are not allowed",
    "(<unknown>):",
    "jobs config should contain",
    "yaml invalid",
    "syntax error",
    "config contains unknown keys",
    "unknown keys",
    "does not exist!",
    "could not find expected",
    "did not find expected",
    "config should be",
    "is not a valid",
];

fn is_empty_text(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    EMPTY_TEXTS.iter().any(|n| t.contains(n))
        || (t.contains("rules")
            && !INVALID_TEXTS.iter().any(|n| t.contains(n))
            && !t.contains("should"))
}

fn is_invalid_text(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    INVALID_TEXTS.iter().any(|n| t.contains(n))
}

impl<'a> Creation<'a> {
    fn read(facts: &'a Facts) -> Creation<'a> {
        let mut c = Creation {
            failed: false,
            empty: Vec::new(),
            invalid: Vec::new(),
            other: Vec::new(),
            problems: Vec::new(),
            unprocessable: Vec::new(),
        };
        if bridge_reason(facts) == Some(&CREATION_FAILED) {
            c.failed = true;
        }
        for s in signals(facts) {
            let shown = s.numbered();
            match &s.kind {
                SignalKind::BridgeFailure { reason } if *reason == CREATION_FAILED => {
                    c.failed = true
                }
                SignalKind::CreationError { problem, .. } => {
                    c.failed = true;
                    c.problems.push(*problem);
                    match cause_of_creation_problem(*problem, false) {
                        CauseId::ConfigDownstreamEmpty => c.empty.push(shown.clone()),
                        CauseId::ConfigDownstreamInvalid => c.invalid.push(shown.clone()),
                        _ => c.other.push(shown.clone()),
                    }
                }
                SignalKind::HttpStatus { status: 422 }
                | SignalKind::GitlabError {
                    status: Some(422), ..
                } => {
                    c.failed = true;
                    c.unprocessable.push(s);
                }
                _ => {}
            }
            if !matches!(s.kind, SignalKind::CreationError { .. }) {
                // In a log line only the explicit texts count ("rules" alone is too common).
                let lower = s.line.to_ascii_lowercase();
                if EMPTY_TEXTS.iter().any(|n| lower.contains(n)) {
                    c.empty.push(shown.clone());
                } else if is_invalid_text(&s.line) {
                    c.invalid.push(shown.clone());
                }
            }
        }
        if let Some(lint) = facts.downstream_lint.found() {
            let name = downstream_name(facts);
            let git_ref = target_ref(facts);
            for e in &lint.errors {
                let line = format!("CI lint of {name} on {git_ref}: {e}");
                if is_empty_text(e) {
                    c.empty.push(line);
                } else {
                    c.invalid.push(line);
                }
            }
            if !lint.valid && lint.errors.is_empty() {
                c.invalid
                    .push(format!("CI lint of {name} on {git_ref}: not valid"));
            }
        }
        c.empty.dedup();
        c.invalid.dedup();
        c
    }

    /// Why the lint could not say, for an unknown verdict.
    fn lint_unknown(facts: &Facts) -> String {
        match &facts.downstream_lint {
            Gathered::NotFound => {
                "the CI lint of the downstream project answered 404 (the project is missing or hidden from the bot)"
                    .to_string()
            }
            other => other
                .unknown_reason("the CI lint of the downstream project")
                .unwrap_or_default(),
        }
    }

    fn lint_valid(facts: &Facts) -> Option<String> {
        let lint = facts.downstream_lint.found()?;
        (lint.valid && lint.errors.is_empty()).then(|| {
            format!(
                "CI lint dry run of {} on {}: valid",
                downstream_name(facts),
                target_ref(facts)
            )
        })
    }

    /// Verdicts shared by both causes once neither has direct evidence.
    fn ruled_out_by_others(&self, facts: &Facts, cause: CauseId) -> Option<Finding> {
        if let Some(line) = self.other.first() {
            return Some(
                Finding::new(
                    cause,
                    Verdict::RuledOut,
                    "GitLab refused to create the pipeline for another reason (see the ref and permission checks).",
                )
                .evidence(line.clone()),
            );
        }
        match bridge_reason(facts) {
            Some(r) if *r != CREATION_FAILED => Some(Finding::new(
                cause,
                Verdict::RuledOut,
                format!(
                    "GitLab stopped the trigger before building the downstream pipeline: the bridge failed with {r}."
                ),
            )),
            _ => None,
        }
    }

    fn not_failed(&self, facts: &Facts, cause: CauseId) -> Finding {
        if let Some(line) = Self::lint_valid(facts) {
            return Finding::new(
                cause,
                Verdict::RuledOut,
                "The downstream configuration passes a CI lint dry run and nothing shows a pipeline-creation error.",
            )
            .evidence(line);
        }
        match (&facts.failed, &facts.scan) {
            (FailedJob::Job { .. }, Some(_)) => Finding::new(
                cause,
                Verdict::RuledOut,
                "The job log shows no pipeline-creation error from GitLab (no 422, no creation message).",
            ),
            (FailedJob::Job { .. }, None) => Finding::new(
                cause,
                Verdict::Unknown,
                "The job log could not be read, so a pipeline-creation error could not be checked.",
            ),
            (FailedJob::Bridge { .. }, _) => Finding::new(
                cause,
                Verdict::Unknown,
                format!(
                    "GitLab gave the bridge no failure reason, and {}.",
                    Self::lint_unknown(facts)
                ),
            ),
        }
    }

    fn empty(&self, facts: &Facts) -> Finding {
        const ID: CauseId = CauseId::ConfigDownstreamEmpty;
        let source = downstream_source(facts);
        if !self.empty.is_empty() {
            let mut f = Finding::new(
                ID,
                Verdict::Confirmed,
                format!(
                    "The downstream pipeline would have no jobs on {}: rules left none for a pipeline whose source is {source}.",
                    target_ref(facts)
                ),
            );
            for line in &self.empty {
                f = f.evidence(line.clone());
            }
            return empty_fix(facts, f);
        }
        if let Some(line) = self.invalid.first() {
            return Finding::new(
                ID,
                Verdict::RuledOut,
                "The downstream configuration has errors (see config.downstream_invalid), not an empty job list.",
            )
            .evidence(line.clone());
        }
        if let Some(f) = self.ruled_out_by_others(facts, ID) {
            return f;
        }
        if !self.failed {
            return self.not_failed(facts, ID);
        }
        if let Some(line) = Self::lint_valid(facts) {
            let f = Finding::new(
                ID,
                Verdict::Likely,
                format!(
                    "GitLab could not create the downstream pipeline although its configuration lints clean: the lint simulates a push, while the real pipeline has CI_PIPELINE_SOURCE {source}, which workflow:rules or job rules may exclude."
                ),
            )
            .evidence(self.failure_line(facts))
            .evidence(line);
            return empty_fix(facts, f);
        }
        Finding::new(
            ID,
            Verdict::Unknown,
            format!(
                "GitLab could not create the downstream pipeline, most often because rules leave no job, but {}.",
                Self::lint_unknown(facts)
            ),
        )
        .evidence(self.failure_line(facts))
    }

    fn invalid(&self, facts: &Facts) -> Finding {
        const ID: CauseId = CauseId::ConfigDownstreamInvalid;
        if !self.invalid.is_empty() {
            let mut f = Finding::new(
                ID,
                Verdict::Confirmed,
                format!(
                    "The downstream configuration of {} on {} cannot be used: GitLab reports errors.",
                    downstream_name(facts),
                    target_ref(facts)
                ),
            );
            for line in &self.invalid {
                f = f.evidence(line.clone());
            }
            return self.invalid_fix(facts, f);
        }
        if let Some(line) = Self::lint_valid(facts) {
            return Finding::new(
                ID,
                Verdict::RuledOut,
                format!(
                    "The CI lint dry run of {} on {} is valid.",
                    downstream_name(facts),
                    target_ref(facts)
                ),
            )
            .evidence(line);
        }
        if let Some(line) = self.empty.first() {
            return Finding::new(
                ID,
                Verdict::RuledOut,
                "GitLab reports an empty pipeline (see config.downstream_empty), not a configuration error.",
            )
            .evidence(line.clone());
        }
        if let Some(f) = self.ruled_out_by_others(facts, ID) {
            return f;
        }
        if !self.failed {
            return self.not_failed(facts, ID);
        }
        if let Some(s) = self.unprocessable.first() {
            let f = Finding::new(
                ID,
                Verdict::Likely,
                "GitLab answered 422: the pipeline was saved but could not start, which points at the downstream configuration.",
            )
            .evidence(s.numbered());
            return self.invalid_fix(facts, f);
        }
        Finding::new(
            ID,
            Verdict::Unknown,
            format!(
                "GitLab could not create the downstream pipeline, and whether its configuration is valid is not known: {}.",
                Self::lint_unknown(facts)
            ),
        )
        .evidence(self.failure_line(facts))
    }

    fn failure_line(&self, facts: &Facts) -> String {
        match bridge_reason(facts) {
            Some(r) => format!("job {} failed with failure_reason {r}", facts.failed.name()),
            None => "GitLab refused to create the downstream pipeline".to_string(),
        }
    }

    fn invalid_fix(&self, facts: &Facts, f: Finding) -> Finding {
        let mut f = f;
        let url = downstream_url(facts);
        if self.problems.contains(&CreationProblem::MissingConfig) {
            let text = "Add a .gitlab-ci.yml to the downstream project on the target ref, or set its CI/CD configuration file path.";
            f = f.fix(match url {
                Some(u) => FixStep::linked(text, Settings::CiCd.link(u)),
                None => FixStep::linked(text, DOWNSTREAM_DOCS),
            });
        }
        if self.problems.contains(&CreationProblem::PipelinesDisabled) {
            let text = "Turn CI/CD on in the downstream project (Visibility, project features, permissions).";
            f = f.fix(match url {
                Some(u) => FixStep::linked(text, Settings::General.link(u)),
                None => FixStep::new(text),
            });
        }
        let text = format!(
            "Fix the errors in the downstream configuration on {} and validate it with the CI lint (simulate a pipeline).",
            target_ref(facts)
        );
        f = f.fix(match url {
            Some(u) => FixStep::linked(text, links::ci_lint(u)),
            None => FixStep::linked(text, DOWNSTREAM_DOCS),
        });
        if let Some(u) = facts.failed.web_url() {
            f = f.fix(FixStep::linked("Retry the trigger job.", u));
        }
        f.why(
            "GitLab builds the downstream pipeline from the downstream project's own configuration on the target ref; while that does not parse or is missing, no pipeline can be created.",
        )
        .next("Once it parses, rules may still leave no job for the trigger's pipeline source (config.downstream_empty).")
    }
}

fn empty_fix(facts: &Facts, f: Finding) -> Finding {
    let source = downstream_source(facts);
    let git_ref = target_ref(facts);
    let lint_text = format!(
        "Simulate a pipeline on {git_ref} in the downstream project's CI lint and see which rules drop every job."
    );
    let mut f = f.fix(match downstream_url(facts) {
        Some(u) => FixStep::linked(lint_text, links::ci_lint(u)),
        None => FixStep::linked(lint_text, DOWNSTREAM_DOCS),
    });
    f = f.fix(FixStep::linked(
        format!(
            "Allow the source in workflow:rules and in the rules of the jobs that should run, for example: if: $CI_PIPELINE_SOURCE == \"{source}\"."
        ),
        WORKFLOW_DOCS,
    ));
    if let Some(u) = facts.failed.web_url() {
        f = f.fix(FixStep::linked("Retry the trigger job.", u));
    }
    f.why(format!(
        "A downstream pipeline started by a trigger: job or with CI_JOB_TOKEN has CI_PIPELINE_SOURCE \"pipeline\" (a trigger token gives \"trigger\"); when workflow:rules or every job's rules do not allow that source (or the branch {git_ref}), no job is left and GitLab refuses to create an empty pipeline. Allowing the source keeps the jobs."
    ))
    .next("Once jobs are created, the downstream pipeline's own jobs may fail: see its pipeline page.")
}

#[derive(Clone, Copy)]
enum Limit {
    Loop,
    Depth,
    HierarchySize,
    Triggers,
}

impl Limit {
    fn id(self) -> CauseId {
        match self {
            Limit::Loop => CauseId::ConfigLoop,
            Limit::Depth => CauseId::ConfigDepth,
            Limit::HierarchySize => CauseId::ConfigHierarchySize,
            Limit::Triggers => CauseId::ConfigRateLimit,
        }
    }

    /// The failure reason GitLab gives when this limit stops a bridge (the table of
    /// [`cause_of_bridge_reason`] maps every such reason back to the limit's cause).
    fn reason(self) -> FailureReason {
        match self {
            Limit::Loop => FailureReason::PipelineLoopDetected,
            Limit::Depth => FailureReason::ReachedMaxDescendantPipelinesDepth,
            Limit::HierarchySize => FailureReason::ReachedMaxPipelineHierarchySize,
            Limit::Triggers => FailureReason::ReachedDownstreamPipelineTriggerRateLimit,
        }
    }
}

fn limit(facts: &Facts, reasons: &[Reason], which: Limit) -> Finding {
    let id = which.id();
    if let Some(r) = reasons
        .iter()
        .find(|r| cause_of_bridge_reason(&r.id) == Some(id))
    {
        let f =
            Finding::new(id, Verdict::Confirmed, limit_summary(which)).evidence(r.evidence(facts));
        return limit_fix(facts, which, f);
    }
    if !facts.failed.is_bridge() {
        return Finding::new(
            id,
            Verdict::NotApplicable,
            match which {
                Limit::Triggers => "A trigger API call from a job's script is throttled as an API request (instance.rate_limited), not by the downstream trigger limit of trigger: jobs.",
                _ => "A trigger API call from a job's script starts a pipeline on its own; this limit of trigger: jobs does not stop it.",
            },
        );
    }
    match bridge_reason(facts) {
        Some(other) => Finding::new(
            id,
            Verdict::RuledOut,
            format!("The bridge failed with {other}, not {}.", which.reason()),
        ),
        None => Finding::new(
            id,
            Verdict::Unknown,
            "GitLab gave the bridge no failure reason, so this limit could not be checked.",
        ),
    }
}

fn limit_summary(which: Limit) -> &'static str {
    match which {
        Limit::Loop => "The trigger would create an endless loop of pipelines: the same project, ref and source already appear up the chain of pipelines.",
        Limit::Depth => "The trigger would nest child pipelines deeper than GitLab allows (two levels of child pipelines below the parent).",
        Limit::HierarchySize => "The pipeline tree (the parent with all its child and downstream pipelines) has reached its size limit.",
        Limit::Triggers => "Too many downstream pipelines were triggered in the last minute for this project, user and commit.",
    }
}

fn limit_fix(facts: &Facts, which: Limit, f: Finding) -> Finding {
    let retry = facts.failed.web_url();
    match which {
        Limit::Loop => f
            .fix(FixStep::linked(
                format!(
                    "Find the cycle: {} triggers back into this project (directly or through others) on the same ref. Add a rule to the trigger job that skips it when $CI_PIPELINE_SOURCE == \"pipeline\", or trigger a different ref.",
                    downstream_name(facts)
                ),
                DOWNSTREAM_DOCS,
            ))
            .why("GitLab stops a trigger when the same project, ref and source appear more than twice up the chain (A to B to A to B to A); a rule that skips the back-trigger in pipelines started by a trigger breaks the cycle.")
            .next("A bridge that failed with pipeline_loop_detected cannot be retried: run a new pipeline after the change."),
        Limit::Depth => f
            .fix(FixStep::linked(
                "Flatten the tree: let the parent pipeline start the deeper configuration itself (trigger:include in the parent, or several includes in one child) instead of a child starting a grandchild's child.",
                DOWNSTREAM_DOCS,
            ))
            .why("Child pipelines may nest only two levels below the parent pipeline; a trigger in the deepest child is refused, so moving it up a level keeps the tree within the limit.")
            .next("A bridge that failed with this reason cannot be retried: run a new pipeline after the change."),
        Limit::HierarchySize => {
            let f = f
                .fix(FixStep::linked(
                    "Trigger fewer downstream and child pipelines from one pipeline: combine them, or use parallel:matrix jobs inside one child pipeline.",
                    DOWNSTREAM_DOCS,
                ))
                .fix(FixStep::linked(
                    "On a self-managed instance an administrator can raise the pipeline_hierarchy_size plan limit.",
                    INSTANCE_LIMITS_DOCS,
                ));
            f.why("The whole tree of pipelines counts against one plan limit; fewer pipelines in the tree, or a higher limit, leaves room for this trigger.")
        }
        Limit::Triggers => {
            let mut f = f;
            if let Some(u) = retry {
                f = f.fix(FixStep::linked("Retry the trigger job after a minute.", u));
            }
            f.fix(FixStep::linked(
                "Trigger fewer downstream pipelines at once for the same commit (combine them, or order them with needs so they start over time).",
                DOWNSTREAM_DOCS,
            ))
            .fix(FixStep::linked(
                "On a self-managed instance an administrator can change downstream_pipeline_trigger_limit_per_project_user_sha in the application settings.",
                SETTINGS_API_DOCS,
            ))
            .why("GitLab counts downstream pipelines per project, user and commit each minute; once the minute has passed, or with fewer triggers at once, the trigger is accepted.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnosis::testing::{bridge_facts, curl_facts, project};
    use crate::gitlab::model::LintResult;

    fn get(facts: &Facts, id: CauseId) -> Finding {
        check(facts).into_iter().find(|f| f.cause == id).unwrap()
    }

    fn lint(valid: bool, errors: &[&str]) -> Gathered<LintResult> {
        Gathered::Found(
            serde_json::from_value(serde_json::json!({
                "valid": valid, "errors": errors, "warnings": [], "merged_yaml": null
            }))
            .unwrap(),
        )
    }

    fn assert_actionable(f: &Finding) {
        assert!(!f.evidence.is_empty(), "{f:?}");
        assert!(f.fix.iter().any(|s| s.link.is_some()), "{f:?}");
        assert!(f.why.is_some(), "{f:?}");
    }

    #[test]
    fn every_config_cause_has_one_finding() {
        let ids: Vec<CauseId> = check(&bridge_facts(None)).iter().map(|f| f.cause).collect();
        assert_eq!(
            ids,
            vec![
                CauseId::ConfigSameProject,
                CauseId::ConfigDownstreamEmpty,
                CauseId::ConfigDownstreamInvalid,
                CauseId::ConfigLoop,
                CauseId::ConfigDepth,
                CauseId::ConfigHierarchySize,
                CauseId::ConfigRateLimit
            ]
        );
    }

    #[test]
    fn invalid_bridge_trigger_into_the_own_project_confirms_same_project() {
        let mut facts = bridge_facts(Some("invalid_bridge_trigger"));
        facts.downstream = Gathered::Found(project(1, "grp/upstream"));
        let f = get(&facts, CauseId::ConfigSameProject);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f
            .evidence
            .iter()
            .any(|e| e.contains("upstream project itself")));
        assert_actionable(&f);
    }

    #[test]
    fn invalid_bridge_trigger_with_another_downstream_project_says_so() {
        let facts = bridge_facts(Some("invalid_bridge_trigger"));
        let f = get(&facts, CauseId::ConfigSameProject);
        assert_eq!(f.verdict, Verdict::Confirmed);
        assert!(f
            .evidence
            .iter()
            .any(|e| e.contains("is not the upstream project")));
    }

    #[test]
    fn another_downstream_project_rules_out_same_project() {
        let f = get(
            &bridge_facts(Some(CREATION_FAILED.as_str())),
            CauseId::ConfigSameProject,
        );
        assert_eq!(f.verdict, Verdict::RuledOut);
        assert!(f.summary.contains("grp/app"));
        let curl = get(&curl_facts(""), CauseId::ConfigSameProject);
        assert_eq!(curl.verdict, Verdict::NotApplicable);
    }

    #[test]
    fn a_lint_error_about_an_empty_pipeline_confirms_downstream_empty() {
        let mut facts = bridge_facts(Some(CREATION_FAILED.as_str()));
        facts.downstream_lint = lint(
            false,
            &["Pipeline will not run for the selected trigger. The rules configuration prevented any jobs from being added to the pipeline."],
        );
        let f = get(&facts, CauseId::ConfigDownstreamEmpty);
        assert_eq!(f.verdict, Verdict::Confirmed, "{f:?}");
        assert!(f.evidence[0].contains("CI lint of grp/app on main"));
        assert!(f
            .fix
            .iter()
            .any(|s| s.link.as_deref() == Some("https://gitlab.example.com/grp/app/-/ci/lint")));
        assert!(f.why.as_deref().unwrap().contains("CI_PIPELINE_SOURCE"));
        assert_eq!(
            get(&facts, CauseId::ConfigDownstreamInvalid).verdict,
            Verdict::RuledOut
        );
    }

    #[test]
    fn a_valid_lint_after_a_creation_failure_makes_empty_likely_and_rules_out_invalid() {
        let mut facts = bridge_facts(Some(CREATION_FAILED.as_str()));
        facts.downstream_lint = lint(true, &[]);
        let empty = get(&facts, CauseId::ConfigDownstreamEmpty);
        assert_eq!(empty.verdict, Verdict::Likely);
        assert!(empty.summary.contains("CI_PIPELINE_SOURCE pipeline"));
        assert_actionable(&empty);
        let invalid = get(&facts, CauseId::ConfigDownstreamInvalid);
        assert_eq!(invalid.verdict, Verdict::RuledOut);
        assert!(invalid.evidence[0].contains("valid"));
    }

    #[test]
    fn a_yaml_error_in_the_lint_confirms_downstream_invalid() {
        let mut facts = bridge_facts(Some(CREATION_FAILED.as_str()));
        facts.downstream_lint = lint(
            false,
            &["(<unknown>): mapping values are not allowed in this context at line 3 column 8"],
        );
        let f = get(&facts, CauseId::ConfigDownstreamInvalid);
        assert_eq!(f.verdict, Verdict::Confirmed, "{f:?}");
        assert_actionable(&f);
        assert_eq!(
            get(&facts, CauseId::ConfigDownstreamEmpty).verdict,
            Verdict::RuledOut
        );
    }

    #[test]
    fn a_forbidden_lint_leaves_both_unknown_with_the_reason() {
        let mut facts = bridge_facts(Some(CREATION_FAILED.as_str()));
        facts.downstream_lint = Gathered::Forbidden {
            needs: "the bot needs Developer on grp/app to run its CI lint".into(),
        };
        for id in [
            CauseId::ConfigDownstreamEmpty,
            CauseId::ConfigDownstreamInvalid,
        ] {
            let f = get(&facts, id);
            assert_eq!(f.verdict, Verdict::Unknown, "{f:?}");
            assert!(f.summary.contains("needs Developer on grp/app"));
        }
    }

    #[test]
    fn an_empty_pipeline_message_in_a_curl_log_confirms_empty_with_the_trigger_source() {
        let facts = curl_facts(
            "{\"message\":{\"base\":[\"Pipeline will not run for the selected trigger. The rules configuration prevented any jobs from being added to the pipeline.\"]}}",
        );
        let f = get(&facts, CauseId::ConfigDownstreamEmpty);
        assert_eq!(f.verdict, Verdict::Confirmed, "{f:?}");
        assert!(f.fix.iter().any(|s| s.text.contains("== \"trigger\"")));
        assert_actionable(&f);
    }

    #[test]
    fn a_missing_config_in_the_log_confirms_invalid_with_the_settings_link() {
        let facts = curl_facts("{\"message\":{\"base\":[\"Missing CI config file\"]}}");
        let f = get(&facts, CauseId::ConfigDownstreamInvalid);
        assert_eq!(f.verdict, Verdict::Confirmed, "{f:?}");
        assert!(f
            .fix
            .iter()
            .any(|s| s.link.as_deref()
                == Some("https://gitlab.example.com/grp/app/-/settings/ci_cd")));
    }

    #[test]
    fn a_reference_not_found_rules_out_the_configuration() {
        let facts = curl_facts("{\"message\":{\"base\":[\"Reference not found\"]}}");
        for id in [
            CauseId::ConfigDownstreamEmpty,
            CauseId::ConfigDownstreamInvalid,
        ] {
            let f = get(&facts, id);
            assert_eq!(f.verdict, Verdict::RuledOut, "{f:?}");
            assert!(f.evidence[0].contains("Reference not found"));
        }
    }

    #[test]
    fn each_limit_reason_confirms_its_cause_and_rules_out_the_others() {
        for (reason, id) in [
            ("pipeline_loop_detected", CauseId::ConfigLoop),
            (
                "reached_max_descendant_pipelines_depth",
                CauseId::ConfigDepth,
            ),
            ("bridge_pipeline_is_child_pipeline", CauseId::ConfigDepth),
            (
                "reached_max_pipeline_hierarchy_size",
                CauseId::ConfigHierarchySize,
            ),
            (
                "reached_downstream_pipeline_trigger_rate_limit",
                CauseId::ConfigRateLimit,
            ),
        ] {
            let findings = check(&bridge_facts(Some(reason)));
            for f in &findings {
                if f.cause == id {
                    assert_eq!(f.verdict, Verdict::Confirmed, "{reason}");
                    assert!(f.evidence[0].contains(reason));
                    assert_actionable(f);
                } else if f.cause.category() == "config" && f.cause != CauseId::ConfigSameProject {
                    assert_eq!(f.verdict, Verdict::RuledOut, "{reason} {f:?}");
                }
            }
        }
    }

    #[test]
    fn limits_do_not_apply_to_a_trigger_api_call_and_are_unknown_without_a_reason() {
        let curl = get(&curl_facts("HTTP/2 404"), CauseId::ConfigLoop);
        assert_eq!(curl.verdict, Verdict::NotApplicable);
        let bridge = get(&bridge_facts(None), CauseId::ConfigDepth);
        assert_eq!(bridge.verdict, Verdict::Unknown);
        assert!(bridge.summary.contains("no failure reason"));
    }
}
