//! A stateful fake GitLab behind wiremock. Tests describe the instance (projects, pipelines,
//! trigger jobs, logs, files, members, settings); the fake answers the REST API from that
//! state the way GitLab does (gitlab-facts.md), including its errors: 404 for what is missing
//! or invisible, 403 where the bot's role is too low, lookups by path following renames, an
//! optional delay on every call, and injected outages.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The bot's role on a project: 40 (Maintainer) sees settings, 30 (Developer) does not.
pub const MAINTAINER: u32 = 40;
pub const DEVELOPER: u32 = 30;

#[derive(Default)]
pub struct State {
    /// Projects by id.
    pub projects: HashMap<u64, Value>,
    /// Old full paths that now lead to another project id (renames and moves).
    pub redirects: HashMap<String, u64>,
    /// The bot's access level per project id (default: Maintainer).
    pub bot_access: HashMap<u64, u32>,
    pub pipelines: HashMap<(u64, u64), Value>,
    pub bridges: HashMap<(u64, u64), Vec<Value>>,
    pub jobs: HashMap<(u64, u64), Value>,
    pub traces: HashMap<(u64, u64), String>,
    /// (project, file path, ref) → content.
    pub files: HashMap<(u64, String, String), String>,
    /// (project, branch) — existing branches.
    pub branches: HashMap<(u64, String), Value>,
    pub tags: HashMap<(u64, String), Value>,
    /// (project, user) → access level.
    pub members: HashMap<(u64, u64), u32>,
    pub protected_branches: HashMap<u64, Vec<Value>>,
    pub variables: HashMap<u64, Vec<Value>>,
    pub group_variables: HashMap<String, Vec<Value>>,
    pub triggers: HashMap<u64, Vec<Value>>,
    pub job_token_scope: HashMap<u64, Value>,
    pub job_token_allowlist: HashMap<u64, Vec<Value>>,
    pub commit_merge_requests: HashMap<(u64, String), Vec<Value>>,
    pub lint: HashMap<(u64, String), Value>,
    /// Whether `/pipelines/:id/trigger_jobs` exists (newer GitLab) or only `/bridges`.
    pub has_trigger_jobs_endpoint: bool,
    /// Answer this many next requests with 502.
    pub outage: u32,
    /// Every request received: (method, path).
    pub calls: Vec<(String, String)>,
}

/// How a trigger job ended.
pub enum BridgeOutcome {
    /// Failed before any downstream pipeline existed, with this `failure_reason`.
    Failed(&'static str),
    /// Its downstream pipeline (this id) was created and failed.
    DownstreamFailed(u64),
    /// Its downstream pipeline (this id) was created and passed.
    Passed(u64),
}

pub struct FakeGitlab {
    pub server: MockServer,
    pub state: Arc<Mutex<State>>,
}

struct Responder {
    state: Arc<Mutex<State>>,
    delay: Duration,
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.state.lock().unwrap();
        let path = request.url.path().to_string();
        state.calls.push((request.method.to_string(), path.clone()));
        let template = if state.outage > 0 {
            state.outage -= 1;
            ResponseTemplate::new(502)
                .set_body_string("<html><body><h1>502 Bad Gateway</h1></body></html>")
        } else {
            route(&state, request)
        };
        template.set_delay(self.delay)
    }
}

fn not_found(what: &str) -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({ "message": format!("404 {what} Not Found") }))
}

fn forbidden() -> ResponseTemplate {
    ResponseTemplate::new(403).set_body_json(json!({"message": "403 Forbidden"}))
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

fn decode(segment: &str) -> String {
    let mut out = Vec::new();
    let bytes = segment.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&segment[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Resolves `:id` (number or encoded path, following renames) to a project id.
fn project_id(state: &State, segment: &str) -> Option<u64> {
    if let Ok(id) = segment.parse::<u64>() {
        return state.projects.contains_key(&id).then_some(id);
    }
    let path = decode(segment);
    state
        .projects
        .iter()
        .find(|(_, p)| p["path_with_namespace"] == path.as_str())
        .map(|(id, _)| *id)
        .or_else(|| state.redirects.get(&path).copied())
}

fn bot_access(state: &State, project: u64) -> u32 {
    state
        .bot_access
        .get(&project)
        .copied()
        .unwrap_or(MAINTAINER)
}

fn route(state: &State, request: &Request) -> ResponseTemplate {
    let path = request.url.path();
    let Some(rest) = path.strip_prefix("/api/v4/") else {
        return not_found("");
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let query = |name: &str| {
        request
            .url
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let method = request.method.as_str();
    match parts.as_slice() {
        ["version"] => ok(json!({"version": "18.5.1-ee", "revision": "abc123"})),
        ["metadata"] => {
            ok(json!({"version": "18.5.1-ee", "revision": "abc123", "enterprise": true}))
        }
        ["personal_access_tokens", "self"] => ok(json!({
            "id": 1, "name": "trigger-doctor", "revoked": false, "active": true,
            "scopes": ["api"], "user_id": 99, "expires_at": null
        })),
        ["groups", group, "variables"] => match state.group_variables.get(&decode(group)) {
            Some(vars) => ok(json!(vars)),
            None => not_found("Group"),
        },
        ["projects", id, tail @ ..] => {
            let Some(pid) = project_id(state, id) else {
                return not_found("Project");
            };
            let maintainer = bot_access(state, pid) >= MAINTAINER;
            match (method, tail) {
                ("GET", []) => ok(state.projects[&pid].clone()),
                ("GET", ["pipelines", p]) => {
                    let key = (pid, p.parse().unwrap_or(0));
                    state
                        .pipelines
                        .get(&key)
                        .map_or_else(|| not_found(""), |v| ok(v.clone()))
                }
                ("GET", ["pipelines", p, "trigger_jobs"]) if !state.has_trigger_jobs_endpoint => {
                    let _ = p;
                    ResponseTemplate::new(404).set_body_json(json!({"error": "404 Not Found"}))
                }
                ("GET", ["pipelines", p, "trigger_jobs" | "bridges"]) => {
                    let key = (pid, p.parse().unwrap_or(0));
                    match state.pipelines.contains_key(&key) {
                        true => ok(json!(state.bridges.get(&key).cloned().unwrap_or_default())),
                        false => not_found(""),
                    }
                }
                ("GET", ["pipelines", p, "jobs"]) => {
                    let pipeline: u64 = p.parse().unwrap_or(0);
                    let jobs: Vec<Value> = state
                        .jobs
                        .iter()
                        .filter(|((proj, _), j)| *proj == pid && j["pipeline"]["id"] == pipeline)
                        .filter(|(_, j)| query("scope[]").is_none_or(|s| j["status"] == s.as_str()))
                        .map(|(_, j)| j.clone())
                        .collect();
                    ok(json!(jobs))
                }
                ("GET", ["jobs", j]) => {
                    let key = (pid, j.parse().unwrap_or(0));
                    state
                        .jobs
                        .get(&key)
                        .map_or_else(|| not_found(""), |v| ok(v.clone()))
                }
                ("GET", ["jobs", j, "trace"]) => {
                    let key = (pid, j.parse().unwrap_or(0));
                    match state.traces.get(&key) {
                        Some(t) => ResponseTemplate::new(200).set_body_string(t.clone()),
                        None => not_found(""),
                    }
                }
                ("GET", ["repository", "files", file, "raw"]) => {
                    let git_ref = query("ref").unwrap_or_default();
                    match state.files.get(&(pid, decode(file), git_ref)) {
                        Some(content) => {
                            ResponseTemplate::new(200).set_body_string(content.clone())
                        }
                        None => not_found("File"),
                    }
                }
                ("GET", ["repository", "branches", name]) => {
                    match state.branches.get(&(pid, decode(name))) {
                        Some(b) => ok(b.clone()),
                        None => not_found("Branch"),
                    }
                }
                ("GET", ["repository", "tags", name]) => match state.tags.get(&(pid, decode(name)))
                {
                    Some(t) => ok(t.clone()),
                    None => not_found("Tag"),
                },
                ("GET", ["repository", "commits", sha, "merge_requests"]) => ok(json!(state
                    .commit_merge_requests
                    .get(&(pid, sha.to_string()))
                    .cloned()
                    .unwrap_or_default())),
                ("GET", ["members", "all", user]) => {
                    let uid: u64 = user.parse().unwrap_or(0);
                    match state.members.get(&(pid, uid)) {
                        Some(level) => ok(
                            json!({"id": uid, "username": format!("user{uid}"), "state": "active", "access_level": level}),
                        ),
                        None => not_found(""),
                    }
                }
                ("GET", ["protected_branches"]) => ok(json!(state
                    .protected_branches
                    .get(&pid)
                    .cloned()
                    .unwrap_or_default())),
                ("GET", ["variables"]) if maintainer => ok(json!(state
                    .variables
                    .get(&pid)
                    .cloned()
                    .unwrap_or_default())),
                ("GET", ["triggers"]) if maintainer => {
                    ok(json!(state.triggers.get(&pid).cloned().unwrap_or_default()))
                }
                ("GET", ["job_token_scope"]) if maintainer => ok(state
                    .job_token_scope
                    .get(&pid)
                    .cloned()
                    .unwrap_or(json!({"inbound_enabled": true, "outbound_enabled": false}))),
                ("GET", ["job_token_scope", "allowlist"]) if maintainer => ok(json!(state
                    .job_token_allowlist
                    .get(&pid)
                    .cloned()
                    .unwrap_or_default())),
                ("GET", ["job_token_scope", "groups_allowlist"]) if maintainer => ok(json!([])),
                ("GET", ["variables" | "triggers" | "job_token_scope", ..]) => forbidden(),
                ("GET", ["ci", "lint"]) => {
                    let git_ref = query("dry_run_ref").unwrap_or_default();
                    match state.lint.get(&(pid, git_ref)) {
                        Some(v) => ok(v.clone()),
                        None => ok(
                            json!({"valid": true, "errors": [], "warnings": [], "merged_yaml": null}),
                        ),
                    }
                }
                _ => not_found(""),
            }
        }
        _ => not_found(""),
    }
}

impl FakeGitlab {
    /// A fake GitLab answering every call after `delay`.
    pub async fn start_with_delay(delay: Duration) -> FakeGitlab {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        Mock::given(wiremock::matchers::any())
            .respond_with(Responder {
                state: state.clone(),
                delay,
            })
            .mount(&server)
            .await;
        FakeGitlab { server, state }
    }

    pub async fn start() -> FakeGitlab {
        FakeGitlab::start_with_delay(Duration::ZERO).await
    }

    pub fn url(&self) -> String {
        self.server.uri()
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// Adds a project `{id, path_with_namespace, web_url, default_branch}` and its default branch.
    pub fn add_project(&self, id: u64, path: &str) -> &Self {
        let url = format!("{}/{path}", self.url());
        self.with(|s| {
            s.projects.insert(
                id,
                json!({
                    "id": id, "name": path.rsplit('/').next().unwrap(), "path_with_namespace": path,
                    "web_url": url, "default_branch": "main",
                    "namespace": {"id": 1000 + id, "full_path": path.rsplit_once('/').map_or("", |(g, _)| g), "kind": "group"}
                }),
            );
            s.branches.insert((id, "main".into()), json!({"name": "main", "protected": true, "default": true}));
        });
        self
    }

    /// Adds a pipeline of `project` with the given status, ref and SHA.
    pub fn add_pipeline(
        &self,
        project: u64,
        pipeline: u64,
        status: &str,
        git_ref: &str,
        sha: &str,
    ) -> &Self {
        let url = self.url();
        self.with(|s| {
            s.pipelines.insert(
                (project, pipeline),
                json!({"id": pipeline, "project_id": project, "status": status, "ref": git_ref, "sha": sha,
                       "web_url": format!("{url}/p/{project}/-/pipelines/{pipeline}"), "source": "push"}),
            );
        });
        self
    }

    /// Adds a trigger job (bridge) to a pipeline.
    pub fn add_bridge(
        &self,
        project: u64,
        pipeline: u64,
        job: u64,
        name: &str,
        outcome: BridgeOutcome,
    ) -> &Self {
        let url = self.url();
        let (status, failure_reason, downstream) = match outcome {
            BridgeOutcome::Failed(reason) => ("failed", Some(reason), None),
            BridgeOutcome::DownstreamFailed(id) => ("failed", None, Some((id, "failed"))),
            BridgeOutcome::Passed(id) => ("success", None, Some((id, "success"))),
        };
        self.with(|s| {
            let downstream = downstream.map(|(id, st)| json!({"id": id, "status": st, "ref": "main", "sha": "f62a4b2fb89754372a346f24659212eb8da13601", "web_url": format!("{url}/downstream/-/pipelines/{id}")}));
            s.bridges.entry((project, pipeline)).or_default().push(json!({
                "id": job, "name": name, "stage": "deploy", "status": status, "ref": "main",
                "failure_reason": failure_reason, "allow_failure": false,
                "web_url": format!("{url}/p/{project}/-/jobs/{job}"),
                "user": {"id": 7, "username": "dev", "name": "Dev", "state": "active"},
                "pipeline": {"id": pipeline, "project_id": project, "ref": "main", "sha": "bcbb5ec396a2c0f828686f14fac9b80b780504f2", "status": "failed"},
                "downstream_pipeline": downstream
            }));
        });
        self
    }

    /// Adds a build job with its log.
    pub fn add_job(
        &self,
        project: u64,
        pipeline: u64,
        job: u64,
        name: &str,
        status: &str,
        trace: &str,
    ) -> &Self {
        let url = self.url();
        self.with(|s| {
            s.jobs.insert(
                (project, job),
                json!({"id": job, "name": name, "stage": "deploy", "status": status, "ref": "main",
                       "failure_reason": if status == "failed" { json!("script_failure") } else { Value::Null },
                       "web_url": format!("{url}/p/{project}/-/jobs/{job}"),
                       "pipeline": {"id": pipeline, "project_id": project, "ref": "main", "status": "failed"},
                       "runner": {"id": 12, "description": "docker-runner-1", "runner_type": "instance_type", "is_shared": true}}),
            );
            s.traces.insert((project, job), trace.to_string());
        });
        self
    }

    /// How many requests reached a path that ends with `suffix`.
    pub fn calls_to(&self, suffix: &str) -> usize {
        self.with(|s| s.calls.iter().filter(|(_, p)| p.ends_with(suffix)).count())
    }

    pub fn total_calls(&self) -> usize {
        self.with(|s| s.calls.len())
    }
}
