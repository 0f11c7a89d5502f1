//! A stateful fake GitLab behind wiremock. Tests describe the instance (projects, pipelines,
//! trigger jobs, logs, files, members, settings); the fake answers the REST API from that
//! state the way GitLab does (gitlab-facts.md), including its errors: 404 for what is missing
//! or invisible, 403 where the bot's role is too low, lookups by path following renames, an
//! optional delay on every call, and injected outages.
//!
//! It also keeps the conversation the bot takes part in (gitlab-facts.md §4, §7.10): notes on
//! merge requests, discussions and plain comments on commits, and award emoji on MR notes, with
//! ids from one counter and timestamps from a fake clock, so tests can post, edit and read them
//! back. Writes (POST/PUT/DELETE) are recorded with their bodies, and `write_outage` fails only
//! writes.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The bot's role on a project: 40 (Maintainer) sees settings, 30 (Developer) does not.
pub const MAINTAINER: u32 = 40;
pub const DEVELOPER: u32 = 30;

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
    /// `GET /admin/ci/variables`: `None` when the bot is not an administrator (403).
    pub instance_variables: Option<Vec<Value>>,
    pub triggers: HashMap<u64, Vec<Value>>,
    pub job_token_scope: HashMap<u64, Value>,
    pub job_token_allowlist: HashMap<u64, Vec<Value>>,
    pub commit_merge_requests: HashMap<(u64, String), Vec<Value>>,
    pub lint: HashMap<(u64, String), Value>,
    /// CI lint answers by the content asked for (`content_ref`, `sha` before 16.10), before
    /// [`State::lint`]: a configuration that differs by commit or branch.
    pub lint_content: HashMap<(u64, String), Value>,
    /// The GitLab version this fake answers as (`/metadata`, `/version`); routes and
    /// parameters that depend on it follow it.
    pub version: String,
    /// Endpoints under their own application rate limit (`Gitlab::ApplicationRateLimiter`):
    /// a path ending with the first value answers 429, with `Retry-After` when the second is
    /// set, and without `RateLimit-*` headers (those come with the instance-wide limit).
    pub endpoint_limits: Vec<(String, Option<u64>)>,
    /// Answer this many next requests with 502.
    pub outage: u32,
    /// Every request received: (method, path).
    pub calls: Vec<(String, String)>,
    /// The bot's own user, as `GET /user` returns it; its `id` marks the bot's notes.
    pub bot_user: Value,
    /// Every note on MRs and commits, oldest first (ids ascending).
    pub notes: Vec<Note>,
    /// Next id for notes and award emoji (one counter).
    pub next_id: u64,
    /// Fake clock: seconds after 2026-05-04T09:00:00Z; every created or changed note or award
    /// advances it by one, so `created_at`/`updated_at` order is deterministic.
    pub clock: u64,
    /// (project, MR iid, note id) → award emoji entities `{id, name, user, …}`, oldest first.
    pub awards: HashMap<(u64, u64, u64), Vec<Value>>,
    /// (project, MR iid) → pipelines of the MR, newest first.
    pub mr_pipelines: HashMap<(u64, u64), Vec<Value>>,
    /// (project, MR iid) → the MR.
    pub merge_requests: HashMap<(u64, u64), Value>,
    /// Pipeline schedules by project id.
    pub schedules: HashMap<u64, Vec<Value>>,
    /// Project access tokens by project id; group access tokens by group path.
    pub access_tokens: HashMap<u64, Vec<Value>>,
    pub group_access_tokens: HashMap<String, Vec<Value>>,
    /// Issues by (project, iid).
    pub issues: HashMap<(u64, u64), Value>,
    /// Answer this many next writes (POST/PUT/DELETE/PATCH) with 502; GETs are unaffected.
    pub write_outage: u32,
    /// Every write received: (method, path, body as JSON; a form body becomes an object of
    /// strings, an empty body `null`). Recorded even when the answer is an error or an outage.
    pub writes: Vec<(String, String, Value)>,
    /// Project id → its webhooks as `GET /projects/:id/hooks` returns them (Maintainer only).
    pub hooks: HashMap<u64, Vec<Value>>,
    /// What `GET /personal_access_tokens/self` answers: the bot's token.
    pub token_self: Value,
    /// A bot note with this body is stored just before the next note the bot posts (on an
    /// MR, or as a new commit discussion): another replica's post that arrived first.
    pub twin_before_post: Option<String>,
    /// Like `twin_before_post`, but stored just after the bot's note (a later post).
    pub twin_after_post: Option<String>,
    /// The next request whose method and path end match is held before it is handled (it
    /// lands later than it was sent) until [`Hold::release`]; see [`FakeGitlab::hold_next`].
    pub hold: Option<(String, String, Arc<Hold>)>,
    /// The OAuth application, the people who sign in with it and their groups.
    pub oauth: crate::fake_oauth::OauthState,
}

/// A request held by the fake: `arrived` once it is in, handled once released.
#[derive(Default)]
pub struct Hold {
    arrived: std::sync::atomic::AtomicBool,
    released: Mutex<bool>,
    wake: std::sync::Condvar,
}

impl Hold {
    pub fn arrived(&self) -> bool {
        self.arrived.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn release(&self) {
        *self.released.lock().unwrap() = true;
        self.wake.notify_all();
    }

    fn wait(&self) {
        self.arrived
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut released = self.released.lock().unwrap();
        while !*released {
            released = self.wake.wait(released).unwrap();
        }
    }
}

tokio::task_local! {
    /// The GitLab version a fake started in this task answers as, when a test runs under
    /// [`on_version`]; 18.5.1-ee otherwise.
    pub static VERSION: &'static str;
}

/// Runs `test` with every fake it starts answering as GitLab `version` (an empty version:
/// `/metadata` and `/version` answer 404).
pub async fn on_version<F: std::future::Future<Output = ()>>(
    version: &'static str,
    test: impl FnOnce() -> F,
) {
    VERSION.scope(version, Box::pin(test())).await
}

impl Default for State {
    fn default() -> State {
        State {
            projects: HashMap::new(),
            redirects: HashMap::new(),
            bot_access: HashMap::new(),
            pipelines: HashMap::new(),
            bridges: HashMap::new(),
            jobs: HashMap::new(),
            traces: HashMap::new(),
            files: HashMap::new(),
            branches: HashMap::new(),
            tags: HashMap::new(),
            members: HashMap::new(),
            protected_branches: HashMap::new(),
            variables: HashMap::new(),
            group_variables: HashMap::new(),
            instance_variables: None,
            triggers: HashMap::new(),
            job_token_scope: HashMap::new(),
            job_token_allowlist: HashMap::new(),
            commit_merge_requests: HashMap::new(),
            lint: HashMap::new(),
            lint_content: HashMap::new(),
            issues: HashMap::new(),
            access_tokens: HashMap::new(),
            schedules: HashMap::new(),
            group_access_tokens: HashMap::new(),
            version: VERSION
                .try_with(|v| v.to_string())
                .unwrap_or_else(|_| "18.5.1-ee".to_string()),
            endpoint_limits: Vec::new(),
            outage: 0,
            calls: Vec::new(),
            bot_user: json!({
                "id": BOT_USER_ID, "username": "trigger-doctor", "name": "trigger-doctor",
                "state": "active", "bot": true
            }),
            notes: Vec::new(),
            next_id: 5000,
            clock: 0,
            awards: HashMap::new(),
            mr_pipelines: HashMap::new(),
            merge_requests: HashMap::new(),
            write_outage: 0,
            writes: Vec::new(),
            hooks: HashMap::new(),
            token_self: json!({
                "id": 1, "name": "trigger-doctor", "revoked": false, "active": true,
                "scopes": ["api"], "user_id": 99, "expires_at": null
            }),
            hold: None,
            twin_before_post: None,
            twin_after_post: None,
            oauth: Default::default(),
        }
    }
}

/// The bot's user id in a default `State` (also `personal_access_tokens/self`'s `user_id`).
pub const BOT_USER_ID: u64 = 99;

/// What a note belongs to.
#[derive(Clone, Debug, PartialEq)]
pub enum Noteable {
    /// A merge request, by iid.
    MergeRequest(u64),
    /// A commit, by SHA, in the discussion with this 40-hex id. `individual` marks a plain
    /// commit comment (`POST .../comments`): GitLab shows it as a discussion of its own
    /// (`individual_note: true`).
    Commit {
        sha: String,
        discussion: String,
        individual: bool,
    },
}

/// One stored note.
#[derive(Clone, Debug)]
pub struct Note {
    pub id: u64,
    pub project: u64,
    pub noteable: Noteable,
    pub body: String,
    /// UserBasic `{id, username, name, state}`.
    pub author: Value,
    pub system: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// How a trigger job ended.
pub enum BridgeOutcome {
    /// Failed before any downstream pipeline existed, with this `failure_reason`.
    Failed(&'static str),
    /// Its downstream pipeline (this id) was created and failed.
    DownstreamFailed(u64),
    /// Its downstream pipeline (this id) was created and passed.
    Passed(u64),
    /// Its downstream pipeline (this id) was saved, failed with a configuration error, and
    /// the bridge failed with `downstream_pipeline_creation_failed`: GitLab builds the
    /// downstream pipeline and its link before processing the configuration
    /// (`lib/gitlab/ci/pipeline/chain/build/associations.rb`), and
    /// `Ci::Pipeline#created_successfully?` is `persisted? && failure_reason.blank?`
    /// (`app/services/ci/create_downstream_pipeline_service.rb`).
    ConfigError(u64),
}

pub struct FakeGitlab {
    pub server: MockServer,
    pub state: Arc<Mutex<State>>,
    delay: Duration,
}

/// A second address of a [`FakeGitlab`].
pub struct Front {
    pub server: MockServer,
    pub hits: Arc<std::sync::atomic::AtomicUsize>,
}

impl Front {
    pub fn url(&self) -> String {
        self.server.uri()
    }

    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

struct Responder {
    state: Arc<Mutex<State>>,
    delay: Duration,
    /// Requests that reached this front (see [`FakeGitlab::front`]).
    hits: Arc<std::sync::atomic::AtomicUsize>,
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let held = {
            let mut state = self.state.lock().unwrap();
            let matches = state.hold.as_ref().is_some_and(|(method, suffix, _)| {
                request.method.as_str() == method && request.url.path().ends_with(suffix.as_str())
            });
            matches.then(|| state.hold.take().unwrap().2)
        };
        if let Some(hold) = held {
            hold.wait();
        }
        let mut guard = self.state.lock().unwrap();
        let state = &mut *guard;
        let path = request.url.path().to_string();
        let method = request.method.to_string();
        state.calls.push((method.clone(), path.clone()));
        let limited = state
            .endpoint_limits
            .iter()
            .find(|(suffix, _)| path.ends_with(suffix.as_str()))
            .map(|(_, retry_after)| *retry_after);
        let write = matches!(method.as_str(), "POST" | "PUT" | "DELETE" | "PATCH");
        if write {
            state.writes.push((method, path, body_value(request)));
        }
        let template = if let Some(retry_after) = limited {
            let answer = ResponseTemplate::new(429).set_body_json(json!({"message": {"error": "This endpoint has been requested too many times. Try again later."}}));
            match retry_after {
                Some(seconds) => answer.insert_header("Retry-After", seconds.to_string().as_str()),
                None => answer,
            }
        } else if state.outage > 0 {
            state.outage -= 1;
            bad_gateway()
        } else if write && state.write_outage > 0 {
            state.write_outage -= 1;
            bad_gateway()
        } else if let Some(answer) = crate::fake_oauth::route(&mut state.oauth, request) {
            answer
        } else {
            conversation_route(state, request).unwrap_or_else(|| route(state, request))
        };
        template.set_delay(self.delay)
    }
}

/// Fields of `GET /projects/:id` shown only to users who may `admin_project`.
const MAINTAINER_ONLY_PROJECT_FIELDS: &[&str] = &[
    "ci_job_token_scope_enabled",
    "ci_pipeline_variables_minimum_override_role",
    "restrict_user_defined_variables",
];

impl State {
    /// A project's trigger tokens as `GET /projects/:id/triggers` lists them on this version.
    /// `lib/api/entities/trigger.rb` exposes `expires_at` since trigger-token expiry came
    /// (gitlab-org/gitlab!146912; 17.0 here); before, the field is absent. Since the expired
    /// token clean-up (gitlab-org/gitlab!203688, #519724; 18.5 here) a token is deleted 30
    /// days after it expires.
    pub fn listed_triggers(&self, project: u64) -> Vec<Value> {
        let now = trigger_doctor::timestamp::Timestamp::now();
        let mut listed = self.triggers.get(&project).cloned().unwrap_or_default();
        if !self.at_least(17, 0) {
            for t in &mut listed {
                if let Some(fields) = t.as_object_mut() {
                    fields.remove("expires_at");
                }
            }
        } else if self.at_least(18, 5) {
            listed.retain(|t| {
                let expires = t["expires_at"]
                    .as_str()
                    .and_then(trigger_doctor::timestamp::Timestamp::parse_date_or_time);
                expires.is_none_or(|at| at.0 + 30 * 86_400_000 > now.0)
            });
        }
        listed
    }

    /// Whether the fake's version is `major.minor` or later.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        let mut parts = self.version.split(['.', '-']);
        let mut next = || {
            parts
                .next()
                .and_then(|p| p.parse::<u32>().ok())
                .unwrap_or(0)
        };
        (next(), next()) >= (major, minor)
    }
}

fn bad_gateway() -> ResponseTemplate {
    ResponseTemplate::new(502).set_body_string("<html><body><h1>502 Bad Gateway</h1></body></html>")
}

/// GitLab's `not_found!(what)`: `404 Project Not Found`, or `404 Not Found` without a name
/// (lib/api/helpers.rb); a missing record is `404 Not found` ([`record_not_found`]).
fn not_found(what: &str) -> ResponseTemplate {
    ResponseTemplate::from(refuse_not_found(what))
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
        // An empty version stands for an instance that does not tell the bot its version.
        ["version" | "metadata"] if state.version.is_empty() => not_found(""),
        ["version"] => ok(json!({"version": state.version, "revision": "abc123"})),
        ["metadata"] => {
            ok(json!({"version": state.version, "revision": "abc123", "enterprise": true}))
        }
        ["personal_access_tokens", "self"] => ok(state.token_self.clone()),
        // lib/api/groups.rb: the group's projects, with those of its subgroups when
        // `include_subgroups=true`, archived ones left out when `archived=false`; projects the
        // bot cannot see are not listed; an unknown group is `404 Group Not Found`.
        ["groups", group, "projects"] => {
            let group = decode(group);
            let subgroups = query("include_subgroups").as_deref() == Some("true");
            let active_only = query("archived").as_deref() == Some("false");
            let mut ids: Vec<u64> = state.projects.keys().copied().collect();
            ids.sort_unstable();
            let in_group = |path: &str| match path.rsplit_once('/') {
                Some((namespace, _)) => {
                    namespace == group || (subgroups && namespace.starts_with(&format!("{group}/")))
                }
                None => false,
            };
            let known = state.projects.values().any(|p| {
                p["path_with_namespace"]
                    .as_str()
                    .is_some_and(|path| path.starts_with(&format!("{group}/")))
            });
            if !known {
                return not_found("Group");
            }
            let projects: Vec<Value> = ids
                .into_iter()
                .filter(|id| bot_access(state, *id) > 0)
                .map(|id| state.projects[&id].clone())
                .filter(|p| p["path_with_namespace"].as_str().is_some_and(in_group))
                .filter(|p| !(active_only && p["archived"] == true))
                .collect();
            list(request, projects)
        }
        // lib/api/admin/ci/variables.rb: administrators only.
        ["admin", "ci", "variables"] => match &state.instance_variables {
            Some(vars) => list(request, vars.clone()),
            None => forbidden(),
        },
        // lib/api/resource_access_tokens.rb: `read_resource_access_tokens` (a group's Owner);
        // the fake's bot is no group Owner unless a group's tokens are set.
        ["groups", group, "access_tokens"] => match state.group_access_tokens.get(&decode(group)) {
            Some(tokens) => list(request, tokens.clone()),
            None => forbidden(),
        },
        ["groups", group, "variables"] => match state.group_variables.get(&decode(group)) {
            Some(vars) => list(request, vars.clone()),
            None => not_found("Group"),
        },
        ["projects", id, tail @ ..] => {
            let Some(pid) = project_id(state, id) else {
                return not_found("Project");
            };
            let maintainer = bot_access(state, pid) >= MAINTAINER;
            match (method, tail) {
                // lib/api/entities/project.rb: CI settings only for `admin_project`.
                ("GET", []) => {
                    let mut project = state.projects[&pid].clone();
                    if !maintainer {
                        if let Some(fields) = project.as_object_mut() {
                            for key in MAINTAINER_ONLY_PROJECT_FIELDS {
                                fields.remove(*key);
                            }
                        }
                    }
                    ok(project)
                }
                ("GET", ["pipelines", p]) => {
                    let key = (pid, p.parse().unwrap_or(0));
                    state
                        .pipelines
                        .get(&key)
                        .map_or_else(|| not_found(""), |v| ok(v.clone()))
                }
                // lib/api/ci/pipelines.rb: `trigger_jobs` from 19.2; an unknown route is 404.
                ("GET", ["pipelines", p, "trigger_jobs"]) if !state.at_least(19, 2) => {
                    let _ = p;
                    ResponseTemplate::new(404).set_body_json(json!({"error": "404 Not Found"}))
                }
                ("GET", ["pipelines", p, "trigger_jobs" | "bridges"]) => {
                    let key = (pid, p.parse().unwrap_or(0));
                    match state.pipelines.contains_key(&key) {
                        true => list(
                            request,
                            state.bridges.get(&key).cloned().unwrap_or_default(),
                        ),
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
                    list(request, jobs)
                }
                ("GET", ["jobs", j]) => {
                    let key = (pid, j.parse().unwrap_or(0));
                    state
                        .jobs
                        .get(&key)
                        .map_or_else(|| not_found(""), |v| ok(v.clone()))
                }
                // lib/api/ci/jobs.rb: a job without a log is 200 with an empty body; an
                // unknown job (or a bridge id) is 404.
                ("GET", ["jobs", j, "trace"]) => {
                    let key = (pid, j.parse().unwrap_or(0));
                    match (state.traces.get(&key), state.jobs.contains_key(&key)) {
                        (Some(t), _) => ResponseTemplate::new(200).set_body_string(t.clone()),
                        (None, true) => ResponseTemplate::new(200).set_body_string(""),
                        (None, false) => not_found("Job"),
                    }
                }
                // lib/api/files.rb: the raw file at `ref`; 404 `File Not Found` otherwise.
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
                ("GET", ["repository", "commits", sha, "merge_requests"]) => list(
                    request,
                    state
                        .commit_merge_requests
                        .get(&(pid, sha.to_string()))
                        .cloned()
                        .unwrap_or_default(),
                ),
                // lib/api/members.rb: `members/all` includes inherited members, paged.
                ("GET", ["members", "all"]) => {
                    let members: Vec<Value> = state
                        .members
                        .iter()
                        .filter(|((p, _), _)| *p == pid)
                        .map(|((_, uid), level)| json!({"id": uid, "username": format!("user{uid}"), "state": "active", "access_level": level}))
                        .collect();
                    list(request, members)
                }
                ("GET", ["members", "all", user]) => {
                    let uid: u64 = user.parse().unwrap_or(0);
                    match state.members.get(&(pid, uid)) {
                        Some(level) => ok(
                            json!({"id": uid, "username": format!("user{uid}"), "state": "active", "access_level": level}),
                        ),
                        None => not_found(""),
                    }
                }
                // lib/api/protected_branches.rb: the rules, wildcards included, paged.
                ("GET", ["protected_branches"]) => list(
                    request,
                    state
                        .protected_branches
                        .get(&pid)
                        .cloned()
                        .unwrap_or_default(),
                ),
                // lib/api/ci/variables.rb, triggers.rb, job_token_scope.rb and hooks: each
                // needs `admin_build`/`admin_project` (Maintainer); a lower role gets 403.
                ("GET", ["variables"]) if maintainer => list(
                    request,
                    state.variables.get(&pid).cloned().unwrap_or_default(),
                ),
                ("GET", ["triggers"]) if maintainer => list(request, state.listed_triggers(pid)),
                ("GET", ["job_token_scope"]) if maintainer => ok(state
                    .job_token_scope
                    .get(&pid)
                    .cloned()
                    .unwrap_or(json!({"inbound_enabled": true, "outbound_enabled": false}))),
                ("GET", ["job_token_scope", "allowlist"]) if maintainer => list(
                    request,
                    state
                        .job_token_allowlist
                        .get(&pid)
                        .cloned()
                        .unwrap_or_default(),
                ),
                // lib/api/ci/job_token_scope.rb: groups on the allowlist from 17.0; before,
                // the route is unknown.
                ("GET", ["job_token_scope", "groups_allowlist"]) if !state.at_least(17, 0) => {
                    not_found("")
                }
                ("GET", ["job_token_scope", "groups_allowlist"]) if maintainer => {
                    list(request, Vec::new())
                }
                ("GET", ["hooks"]) if maintainer => {
                    list(request, state.hooks.get(&pid).cloned().unwrap_or_default())
                }
                ("GET", ["hooks"]) => forbidden(),
                // lib/api/ci/pipeline_schedules.rb: `scope` is `active` or `inactive`.
                ("GET", ["pipeline_schedules"]) => {
                    let all = state.schedules.get(&pid).cloned().unwrap_or_default();
                    match query("scope").as_deref() {
                        None => list(request, all),
                        Some(scope @ ("active" | "inactive")) => {
                            let active = scope == "active";
                            list(
                                request,
                                all.into_iter()
                                    .filter(|s| s["active"].as_bool() == Some(active))
                                    .collect(),
                            )
                        }
                        Some(_) => ResponseTemplate::new(400)
                            .set_body_json(json!({"error": "scope does not have a valid value"})),
                    }
                }
                // lib/api/resource_access_tokens.rb: Maintainer (`read_resource_access_tokens`).
                ("GET", ["access_tokens"]) if maintainer => list(
                    request,
                    state.access_tokens.get(&pid).cloned().unwrap_or_default(),
                ),
                ("GET", ["access_tokens"]) => forbidden(),
                ("GET", ["variables" | "triggers" | "job_token_scope", ..]) => forbidden(),
                // lib/api/lint.rb: `content_ref`/`dry_run_ref` (16.10+) are each mutually
                // exclusive with their deprecated names `sha`/`ref`, checked before anything
                // else; an older version does not know the new names and reads only the old.
                ("GET", ["ci", "lint"]) => {
                    let current = state.at_least(16, 10);
                    for (old, new) in [("sha", "content_ref"), ("ref", "dry_run_ref")] {
                        if current && query(old).is_some() && query(new).is_some() {
                            return ResponseTemplate::new(400).set_body_json(
                                json!({"error": format!("{old}, {new} are mutually exclusive")}),
                            );
                        }
                    }
                    let dry_run_ref = current.then(|| query("dry_run_ref")).flatten();
                    let git_ref = dry_run_ref.or_else(|| query("ref")).unwrap_or_default();
                    let content_ref = current.then(|| query("content_ref")).flatten();
                    let content = content_ref.or_else(|| query("sha")).unwrap_or_default();
                    if let Some(v) = state.lint_content.get(&(pid, content)) {
                        return ok(v.clone());
                    }
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

// ---- The conversation: MRs, notes, commit discussions and comments, award emoji ----
//
// Errors follow GitLab's API code (lib/api/notes.rb, discussions.rb, commits.rb,
// award_emoji.rb, helpers/notes_helpers.rb): a missing required parameter is 400
// `{"error": "<name> is missing"}`; an MR or note that does not exist is 404
// `{"message": "404 Not found"}` (ActiveRecord's RecordNotFound); a note GitLab refuses to
// save is 400 `{"message": "400 Bad request - Note {:note=>[...]}"}`.

/// Longest note GitLab accepts (`Note` validates the length of `note`).
const NOTE_MAX_CHARS: usize = 1_000_000;

/// An error answer: status and JSON body.
#[derive(Debug)]
struct Refusal(u16, Value);

impl From<Refusal> for ResponseTemplate {
    fn from(Refusal(status, body): Refusal) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(body)
    }
}

type Answer = Result<ResponseTemplate, Refusal>;

/// ActiveRecord's RecordNotFound.
fn record_not_found() -> Refusal {
    Refusal(404, json!({"message": "404 Not found"}))
}

/// `not_found!(what)`.
fn refuse_not_found(what: &str) -> Refusal {
    let message = if what.is_empty() {
        "404 Not Found".to_string()
    } else {
        format!("404 {what} Not Found")
    };
    Refusal(404, json!({ "message": message }))
}

fn refuse_forbidden() -> Refusal {
    Refusal(403, json!({"message": "403 Forbidden"}))
}

/// Grape's parameter validation errors.
fn bad_param(message: &str) -> Refusal {
    Refusal(400, json!({ "error": message }))
}

/// `bad_request!(...)`.
fn bad_request(message: &str) -> Refusal {
    Refusal(
        400,
        json!({ "message": format!("400 Bad request - {message}") }),
    )
}

fn created(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(body)
}

/// A query parameter of the request.
pub fn query(request: &Request, name: &str) -> Option<String> {
    request
        .url
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The body of a request as JSON: parsed JSON, a form body as an object of strings, an empty
/// body as `null`, anything else as a JSON string.
fn body_value(request: &Request) -> Value {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    if let Ok(value) = serde_json::from_slice::<Value>(&request.body) {
        return value;
    }
    let text = String::from_utf8_lossy(&request.body).into_owned();
    let form = request
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        let mut url = request.url.clone();
        url.set_query(Some(&text));
        let fields: serde_json::Map<String, Value> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
        return Value::Object(fields);
    }
    Value::String(text)
}

/// The request's parameters as Grape merges them: query string, then the body's fields.
fn params(request: &Request) -> Value {
    let mut merged: serde_json::Map<String, Value> = request
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    if let Value::Object(fields) = body_value(request) {
        merged.extend(fields);
    }
    Value::Object(merged)
}

/// A String parameter: `None` when missing or null; numbers and booleans are coerced.
fn string_param(params: &Value, name: &str) -> Result<Option<String>, Refusal> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(bad_param(&format!("{name} is invalid"))),
    }
}

fn required(params: &Value, name: &str) -> Result<String, Refusal> {
    string_param(params, name)?.ok_or_else(|| bad_param(&format!("{name} is missing")))
}

fn int_segment(name: &str, raw: &str) -> Result<u64, Refusal> {
    raw.parse()
        .map_err(|_| bad_param(&format!("{name} is invalid")))
}

/// The model validation of a note's text (presence and length).
fn valid_note_text(text: &str) -> Result<(), Refusal> {
    if text.trim().is_empty() {
        Err(bad_request(r#"Note {:note=>["can't be blank"]}"#))
    } else if text.chars().count() > NOTE_MAX_CHARS {
        Err(bad_request(
            r#"Note {:note=>["is too long (maximum is 1000000 characters)"]}"#,
        ))
    } else {
        Ok(())
    }
}

/// GitLab's offset pagination: `per_page` (default 20, at most 100) and `page` (default 1),
/// with `X-Page`, `X-Per-Page`, `X-Total`, `X-Total-Pages`, `X-Prev-Page`, `X-Next-Page`
/// (empty on the last page, as GitLab sends it) and a `Link` header.
/// A list answer, paged as GitLab pages every list (`lib/api/helpers/pagination_helpers.rb`:
/// 20 a page by default, `per_page` at most 100, `X-Next-Page` empty on the last page).
fn list(request: &Request, items: Vec<Value>) -> ResponseTemplate {
    paginate(request, items).unwrap_or_else(Into::into)
}

fn paginate(request: &Request, items: Vec<Value>) -> Answer {
    let number = |name: &str, default: usize| -> Result<usize, Refusal> {
        match query(request, name) {
            None => Ok(default),
            Some(raw) => raw
                .parse::<i64>()
                .map(|n| if n < 1 { default } else { n as usize })
                .map_err(|_| bad_param(&format!("{name} is invalid"))),
        }
    };
    let per_page = number("per_page", 20)?.min(100);
    let page = number("page", 1)?;
    let total = items.len();
    let total_pages = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let next = if page < total_pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    let prev = if page > 1 {
        (page - 1).to_string()
    } else {
        String::new()
    };
    let link_to = |target: usize, rel: &str| {
        let mut url = request.url.clone();
        let others: Vec<(String, String)> = request
            .url
            .query_pairs()
            .filter(|(k, _)| k != "page" && k != "per_page")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(others)
            .append_pair("page", &target.to_string())
            .append_pair("per_page", &per_page.to_string());
        format!("<{url}>; rel=\"{rel}\"")
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link_to(page - 1, "prev"));
    }
    if page < total_pages {
        links.push(link_to(page + 1, "next"));
    }
    links.push(link_to(1, "first"));
    links.push(link_to(total_pages, "last"));
    Ok(ResponseTemplate::new(200)
        .set_body_json(slice)
        .insert_header("X-Page", page.to_string().as_str())
        .insert_header("X-Per-Page", per_page.to_string().as_str())
        .insert_header("X-Total", total.to_string().as_str())
        .insert_header("X-Total-Pages", total_pages.to_string().as_str())
        .insert_header("X-Next-Page", next.as_str())
        .insert_header("X-Prev-Page", prev.as_str())
        .insert_header("Link", links.join(", ").as_str()))
}

/// ISO 8601 UTC time `seconds` after 2026-05-04T09:00:00Z, with milliseconds like GitLab.
fn fake_time(seconds: u64) -> String {
    const BASE: u64 = 1_777_885_200; // 2026-05-04T09:00:00Z
    let t = BASE + seconds;
    let (days, secs) = (t / 86_400, t % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A 40-hex discussion id, deterministic per note id.
fn discussion_id(seed: u64) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("discussion-{seed}").as_bytes());
    digest.iter().take(20).map(|b| format!("{b:02x}")).collect()
}

/// The `id` GitLab would give an MR known only by iid.
fn synthetic_mr_id(project: u64, iid: u64) -> u64 {
    1_000_000 + project * 1_000 + iid
}

/// UserBasic of a user entity.
fn user_basic(user: &Value) -> Value {
    json!({
        "id": user["id"], "username": user["username"],
        "name": user.get("name").cloned().unwrap_or_else(|| user["username"].clone()),
        "state": user.get("state").cloned().unwrap_or_else(|| json!("active")),
    })
}

fn human(id: u64, username: &str) -> Value {
    json!({"id": id, "username": username, "name": username, "state": "active"})
}

impl State {
    fn allocate_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Advances the fake clock and returns the new time.
    fn tick(&mut self) -> String {
        self.clock += 1;
        fake_time(self.clock)
    }

    fn bot_author(&self) -> Value {
        user_basic(&self.bot_user)
    }

    fn is_bot(&self, user: &Value) -> bool {
        user["id"] == self.bot_user["id"]
    }

    /// The MR, if the fake knows it: registered in `merge_requests`, listed in
    /// `commit_merge_requests`, or implied by notes or pipelines stored for it (then a minimal
    /// `{id, iid, project_id, state}`).
    pub fn merge_request(&self, project: u64, iid: u64) -> Option<Value> {
        if let Some(mr) = self.merge_requests.get(&(project, iid)) {
            return Some(mr.clone());
        }
        let listed = self
            .commit_merge_requests
            .iter()
            .flat_map(|((p, _), mrs)| mrs.iter().map(move |mr| (*p, mr)))
            .find(|(p, mr)| mr["iid"] == iid && mr["project_id"].as_u64().unwrap_or(*p) == project)
            .map(|(_, mr)| mr.clone());
        if listed.is_some() {
            return listed;
        }
        let implied = self.mr_pipelines.contains_key(&(project, iid))
            || self
                .notes
                .iter()
                .any(|n| n.project == project && n.noteable == Noteable::MergeRequest(iid));
        implied.then(|| {
            json!({"id": synthetic_mr_id(project, iid), "iid": iid, "project_id": project, "state": "opened"})
        })
    }

    /// Stores a note and returns its index in `notes`.
    fn push_note(
        &mut self,
        project: u64,
        noteable: Noteable,
        author: Value,
        body: &str,
        system: bool,
    ) -> usize {
        let id = self.allocate_id();
        let now = self.tick();
        self.notes.push(Note {
            id,
            project,
            noteable,
            body: body.to_string(),
            author,
            system,
            created_at: now.clone(),
            updated_at: now,
        });
        self.notes.len() - 1
    }

    fn new_commit_thread(&mut self, individual: bool, sha: &str) -> Noteable {
        Noteable::Commit {
            sha: sha.to_string(),
            discussion: discussion_id(self.next_id),
            individual,
        }
    }

    /// The Note entity GitLab returns for a stored note.
    pub fn note_entity(&self, note: &Note) -> Value {
        let mut entity = json!({
            "id": note.id, "type": null, "body": note.body, "attachment": null,
            "author": note.author, "created_at": note.created_at, "updated_at": note.updated_at,
            "system": note.system, "noteable_id": null, "noteable_type": null,
            "project_id": note.project, "noteable_iid": null, "resolvable": false,
            "confidential": false, "internal": false, "commands_changes": {}
        });
        match &note.noteable {
            Noteable::MergeRequest(iid) => {
                let mr_id = self
                    .merge_request(note.project, *iid)
                    .and_then(|mr| mr["id"].as_u64())
                    .unwrap_or_else(|| synthetic_mr_id(note.project, *iid));
                entity["noteable_type"] = json!("MergeRequest");
                entity["noteable_id"] = json!(mr_id);
                entity["noteable_iid"] = json!(iid);
            }
            Noteable::Commit {
                sha, individual, ..
            } => {
                entity["noteable_type"] = json!("Commit");
                entity["commit_id"] = json!(sha);
                if !individual {
                    entity["type"] = json!("DiscussionNote");
                }
            }
        }
        entity
    }

    /// `POST .../commits/:sha/comments` answers with this (CommitNote) entity.
    fn commit_note_entity(&self, note: &Note) -> Value {
        json!({
            "note": note.body, "path": null, "line": null, "line_type": null,
            "author": note.author, "created_at": note.created_at
        })
    }

    fn mr_note_index(&self, project: u64, iid: u64, note: u64) -> Option<usize> {
        self.notes.iter().position(|n| {
            n.id == note && n.project == project && n.noteable == Noteable::MergeRequest(iid)
        })
    }

    fn commit_notes_of(&self, project: u64, sha: &str) -> impl Iterator<Item = &Note> + '_ {
        let sha = sha.to_string();
        self.notes.iter().filter(move |n| {
            n.project == project
                && matches!(&n.noteable, Noteable::Commit { sha: s, .. } if *s == sha)
        })
    }

    /// Commit discussions in creation order: `{id, individual_note, notes}`.
    pub fn commit_discussions(&self, project: u64, sha: &str) -> Vec<Value> {
        let mut order: Vec<(String, bool)> = Vec::new();
        let mut grouped: HashMap<String, Vec<Value>> = HashMap::new();
        for note in self.commit_notes_of(project, sha) {
            if let Noteable::Commit {
                discussion,
                individual,
                ..
            } = &note.noteable
            {
                if !grouped.contains_key(discussion) {
                    order.push((discussion.clone(), *individual));
                }
                grouped
                    .entry(discussion.clone())
                    .or_default()
                    .push(self.note_entity(note));
            }
        }
        order
            .into_iter()
            .map(|(id, individual)| {
                json!({"id": id, "individual_note": individual, "notes": grouped.remove(&id).unwrap_or_default()})
            })
            .collect()
    }

    /// `update_note`: the note must exist on the noteable (404), the bot may edit it (403: a
    /// system note, or someone else's note without Maintainer, since GitLab's `admin_note`
    /// comes from being the author or a Maintainer), and the new text must be valid (400).
    /// `updated_at` moves only when the text changes.
    /// `DELETE` of a note: 204 for its author or a maintainer, 403 for a system note or
    /// anyone else.
    fn delete_note(&mut self, index: Option<usize>) -> Answer {
        let index = index.ok_or_else(record_not_found)?;
        let note = &self.notes[index];
        let maintainer = bot_access(self, note.project) >= MAINTAINER;
        if note.system || !(self.is_bot(&note.author) || maintainer) {
            return Err(refuse_forbidden());
        }
        self.notes.remove(index);
        Ok(ResponseTemplate::new(204))
    }

    fn update_note(&mut self, index: Option<usize>, body: Option<String>) -> Answer {
        let index = index.ok_or_else(record_not_found)?;
        let note = &self.notes[index];
        let maintainer = bot_access(self, note.project) >= MAINTAINER;
        if note.system || !(self.is_bot(&note.author) || maintainer) {
            return Err(refuse_forbidden());
        }
        if let Some(body) = body {
            valid_note_text(&body)?;
            if body != self.notes[index].body {
                let now = self.tick();
                let note = &mut self.notes[index];
                note.body = body;
                note.updated_at = now;
            }
        }
        Ok(ok(self.note_entity(&self.notes[index])))
    }
}

/// Whether an award emoji name looks valid (GitLab checks it against its emoji list; the fake
/// accepts lower-case names of letters, digits, `_`, `+` and `-`, without colons).
fn valid_emoji_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_+-".contains(c))
}

/// Routes of the conversation; `None` lets `route` answer (and give 404 Project for an unknown
/// project).
fn conversation_route(state: &mut State, request: &Request) -> Option<ResponseTemplate> {
    let path = request.url.path();
    let rest = path.strip_prefix("/api/v4/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let method = request.method.as_str();
    if let ("GET", ["user"]) = (method, parts.as_slice()) {
        return Some(ok(state.bot_user.clone()));
    }
    let ["projects", id, tail @ ..] = parts.as_slice() else {
        return None;
    };
    let pid = project_id(state, id)?;
    let answer = match (method, tail) {
        ("GET", ["pipelines"]) => list_pipelines(state, request, pid),
        ("GET", ["merge_requests", iid]) => {
            let iid = int_segment("merge_request_iid", iid);
            iid.and_then(|iid| {
                state
                    .merge_request(pid, iid)
                    .map(ok)
                    .ok_or_else(record_not_found)
            })
        }
        ("GET", ["merge_requests", iid, "pipelines"]) => (|| {
            let iid = int_segment("merge_request_iid", iid)?;
            state.merge_request(pid, iid).ok_or_else(record_not_found)?;
            let pipelines = state
                .mr_pipelines
                .get(&(pid, iid))
                .cloned()
                .unwrap_or_default();
            paginate(request, pipelines)
        })(),
        // lib/api/issues.rb: `title` is required to create; an issue that does not exist is
        // 404 `{"message": "404 Not found"}`; the description may be edited by its author.
        ("POST", ["issues"]) => (|| {
            let params = params(request);
            let title = required(&params, "title")?;
            let description = string_param(&params, "description")?.unwrap_or_default();
            state.next_id += 1;
            let iid = state.issues.keys().filter(|(p, _)| *p == pid).count() as u64 + 1;
            let issue = json!({
                "id": state.next_id, "iid": iid, "project_id": pid, "title": title,
                "description": description, "state": "opened",
                "author": state.bot_author(),
                "web_url": format!("{}/-/issues/{iid}", state.projects[&pid]["web_url"].as_str().unwrap_or_default()),
            });
            state.issues.insert((pid, iid), issue.clone());
            Ok(created(issue))
        })(),
        ("GET" | "PUT", ["issues", iid]) => (|| {
            let iid = int_segment("issue_iid", iid)?;
            let params = params(request);
            let description = string_param(&params, "description")?;
            let issue = state
                .issues
                .get_mut(&(pid, iid))
                .ok_or_else(record_not_found)?;
            if method == "PUT" {
                if let Some(d) = description {
                    issue["description"] = d.into();
                }
            }
            Ok(ok(issue.clone()))
        })(),
        ("GET" | "POST", ["merge_requests", iid, "notes"]) => (|| {
            let iid = int_segment("noteable_id", iid)?;
            state.merge_request(pid, iid).ok_or_else(record_not_found)?;
            if method == "GET" {
                list_mr_notes(state, request, pid, iid)
            } else {
                let body = required(&params(request), "body")?;
                valid_note_text(&body)?;
                let author = state.bot_author();
                if let Some(twin) = state.twin_before_post.take() {
                    state.push_note(
                        pid,
                        Noteable::MergeRequest(iid),
                        author.clone(),
                        &twin,
                        false,
                    );
                }
                let index = state.push_note(
                    pid,
                    Noteable::MergeRequest(iid),
                    author.clone(),
                    &body,
                    false,
                );
                let entity = state.note_entity(&state.notes[index]);
                if let Some(twin) = state.twin_after_post.take() {
                    state.push_note(pid, Noteable::MergeRequest(iid), author, &twin, false);
                }
                Ok(created(entity))
            }
        })(),
        ("GET" | "PUT", ["merge_requests", iid, "notes", note]) => (|| {
            let iid = int_segment("noteable_id", iid)?;
            let note = int_segment("note_id", note)?;
            let params = params(request);
            let body = string_param(&params, "body")?;
            if method == "PUT" && body.as_deref().is_some_and(|b| b.trim().is_empty()) {
                return Err(bad_param("body is empty"));
            }
            state.merge_request(pid, iid).ok_or_else(record_not_found)?;
            let index = state.mr_note_index(pid, iid, note);
            if method == "GET" {
                let index = index.ok_or_else(record_not_found)?;
                return Ok(ok(state.note_entity(&state.notes[index])));
            }
            state.update_note(index, body)
        })(),
        ("DELETE", ["merge_requests", iid, "notes", note]) => (|| {
            let iid = int_segment("noteable_id", iid)?;
            let note = int_segment("note_id", note)?;
            state.merge_request(pid, iid).ok_or_else(record_not_found)?;
            let index = state.mr_note_index(pid, iid, note);
            state.delete_note(index)
        })(),
        ("DELETE", ["repository", "commits", sha, "discussions", discussion, "notes", note]) => {
            (|| {
                let sha = decode(sha);
                let discussion = decode(discussion);
                let note = int_segment("note_id", note)?;
                let index = state.notes.iter().position(|n| {
                    n.id == note
                        && n.project == pid
                        && matches!(&n.noteable, Noteable::Commit { sha: s, discussion: d, .. }
                            if *s == sha && *d == discussion)
                });
                state.delete_note(index)
            })()
        }
        (_, ["merge_requests", iid, "notes", note, "award_emoji", award @ ..])
            if award.len() <= 1 =>
        {
            award_emoji(state, request, pid, (iid, note), award.first().copied())
        }
        ("GET", ["repository", "commits", sha, "discussions"]) => {
            let discussions = state.commit_discussions(pid, &decode(sha));
            paginate(request, discussions)
        }
        ("POST", ["repository", "commits", sha, "discussions"]) => (|| {
            let sha = decode(sha);
            let body = required(&params(request), "body")?;
            valid_note_text(&body)?;
            let author = state.bot_author();
            if let Some(twin) = state.twin_before_post.take() {
                let thread = state.new_commit_thread(false, &sha);
                state.push_note(pid, thread, author.clone(), &twin, false);
            }
            let thread = state.new_commit_thread(false, &sha);
            let index = state.push_note(pid, thread, author, &body, false);
            let Noteable::Commit { discussion, .. } = &state.notes[index].noteable else {
                unreachable!("a commit note");
            };
            Ok(created(json!({
                "id": discussion, "individual_note": false,
                "notes": [state.note_entity(&state.notes[index])]
            })))
        })(),
        ("PUT", ["repository", "commits", sha, "discussions", _discussion, "notes", note]) => {
            (|| {
                // GitLab finds the note among the commit's notes; the discussion id in the path
                // is not checked.
                let sha = decode(sha);
                let note = int_segment("note_id", note)?;
                let params = params(request);
                let body = string_param(&params, "body")?;
                let resolved = params.get("resolved").filter(|v| !v.is_null());
                match (&body, resolved) {
                    (None, None) => {
                        return Err(bad_param(
                            "body, resolved are missing, exactly one parameter must be provided",
                        ))
                    }
                    (Some(_), Some(_)) => {
                        return Err(bad_param("body, resolved are mutually exclusive"))
                    }
                    _ => {}
                }
                let index = state.notes.iter().position(|n| {
                    n.id == note
                        && n.project == pid
                        && matches!(&n.noteable, Noteable::Commit { sha: s, .. } if *s == sha)
                });
                if body.is_none() {
                    index.ok_or_else(record_not_found)?;
                    return Err(bad_request("Note is not resolvable"));
                }
                state.update_note(index, body)
            })()
        }
        ("GET", ["repository", "commits", sha, "comments"]) => {
            let comments: Vec<Value> = state
                .commit_notes_of(pid, &decode(sha))
                .map(|n| state.commit_note_entity(n))
                .collect();
            paginate(request, comments)
        }
        ("POST", ["repository", "commits", sha, "comments"]) => (|| {
            let sha = decode(sha);
            let text = required(&params(request), "note")?;
            valid_note_text(&text)?;
            let thread = state.new_commit_thread(true, &sha);
            let author = state.bot_author();
            let index = state.push_note(pid, thread, author, &text, false);
            Ok(created(state.commit_note_entity(&state.notes[index])))
        })(),
        _ => return None,
    };
    Some(answer.unwrap_or_else(ResponseTemplate::from))
}

/// `GET /projects/:id/pipelines`: filtered by `sha`, `ref`, `status` and `source`, newest
/// (highest id) first, paginated.
fn list_pipelines(state: &State, request: &Request, pid: u64) -> Answer {
    let filters: Vec<(&str, String)> = ["sha", "ref", "status", "source"]
        .into_iter()
        .filter_map(|name| query(request, name).map(|v| (name, v)))
        .collect();
    let mut pipelines: Vec<(u64, Value)> = state
        .pipelines
        .iter()
        .filter(|((p, _), pipeline)| {
            *p == pid
                && filters
                    .iter()
                    .all(|(name, v)| pipeline[*name] == v.as_str())
        })
        .map(|((_, id), pipeline)| (*id, pipeline.clone()))
        .collect();
    pipelines.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
    // lib/api/entities/ci/pipeline_basic.rb: a listed pipeline has no user, no detailed status.
    const BASIC: &[&str] = &[
        "id",
        "iid",
        "project_id",
        "sha",
        "ref",
        "status",
        "source",
        "created_at",
        "updated_at",
        "web_url",
    ];
    let basic = |p: Value| -> Value {
        let mut p = p;
        if let Some(fields) = p.as_object_mut() {
            fields.retain(|k, _| BASIC.contains(&k.as_str()));
        }
        p
    };
    paginate(
        request,
        pipelines.into_iter().map(|(_, p)| basic(p)).collect(),
    )
}

/// `GET .../merge_requests/:iid/notes` with `order_by` (`created_at`, default, or
/// `updated_at`) and `sort` (`desc`, default, or `asc`); ties broken by id.
fn list_mr_notes(state: &State, request: &Request, pid: u64, iid: u64) -> Answer {
    let order_by = query(request, "order_by").unwrap_or_else(|| "created_at".into());
    let sort = query(request, "sort").unwrap_or_else(|| "desc".into());
    if !["created_at", "updated_at"].contains(&order_by.as_str()) {
        return Err(bad_param("order_by does not have a valid value"));
    }
    if !["asc", "desc"].contains(&sort.as_str()) {
        return Err(bad_param("sort does not have a valid value"));
    }
    let mut notes: Vec<&Note> = state
        .notes
        .iter()
        .filter(|n| n.project == pid && n.noteable == Noteable::MergeRequest(iid))
        .collect();
    notes.sort_by(|a, b| {
        let key = |n: &Note| {
            if order_by == "updated_at" {
                n.updated_at.clone()
            } else {
                n.created_at.clone()
            }
        };
        key(a).cmp(&key(b)).then(a.id.cmp(&b.id))
    });
    if sort == "desc" {
        notes.reverse();
    }
    paginate(
        request,
        notes.into_iter().map(|n| state.note_entity(n)).collect(),
    )
}

/// Award emoji on an MR note: list, add (201; 404 for a duplicate or an invalid name), get and
/// delete (204; 401 for someone else's award).
fn award_emoji(
    state: &mut State,
    request: &Request,
    pid: u64,
    (iid, note): (&str, &str),
    award: Option<&str>,
) -> Answer {
    let iid = int_segment("merge_request_iid", iid)?;
    let note = int_segment("note_id", note)?;
    let award = award.map(|a| int_segment("award_id", a)).transpose()?;
    let method = request.method.as_str();
    let name = match (method, award) {
        ("POST", None) => Some(required(&params(request), "name")?),
        ("GET", _) | ("DELETE", Some(_)) => None,
        _ => return Err(refuse_not_found("")),
    };
    state.merge_request(pid, iid).ok_or_else(record_not_found)?;
    state
        .mr_note_index(pid, iid, note)
        .ok_or_else(record_not_found)?;
    let key = (pid, iid, note);
    let awards = state.awards.get(&key).cloned().unwrap_or_default();
    match (method, award, name) {
        ("GET", None, _) => paginate(request, awards),
        ("GET", Some(award), _) => awards
            .into_iter()
            .find(|a| a["id"] == award)
            .map(ok)
            .ok_or_else(record_not_found),
        ("DELETE", Some(award), _) => {
            let position = awards
                .iter()
                .position(|a| a["id"] == award)
                .ok_or_else(record_not_found)?;
            if awards[position]["user"]["id"] != state.bot_user["id"] {
                return Err(Refusal(401, json!({"message": "401 Unauthorized"})));
            }
            state.awards.get_mut(&key).unwrap().remove(position);
            Ok(ResponseTemplate::new(204))
        }
        ("POST", None, Some(name)) => {
            if !valid_emoji_name(&name) {
                return Err(refuse_not_found(
                    "Award Emoji Name is not a valid emoji name",
                ));
            }
            let taken = awards
                .iter()
                .any(|a| a["name"] == name.as_str() && a["user"]["id"] == state.bot_user["id"]);
            if taken {
                return Err(refuse_not_found("Award Emoji Name has already been taken"));
            }
            let id = state.allocate_id();
            let now = state.tick();
            let entity = json!({
                "id": id, "name": name, "user": state.bot_author(),
                "created_at": now, "updated_at": now,
                "awardable_id": note, "awardable_type": "Note"
            });
            state.awards.entry(key).or_default().push(entity.clone());
            Ok(created(entity))
        }
        _ => Err(refuse_not_found("")),
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
                hits: Arc::default(),
            })
            .mount(&server)
            .await;
        FakeGitlab {
            server,
            state,
            delay,
        }
    }

    /// Another address for the same instance (same state, same delay), counting the requests
    /// that arrive through it: tells which client is calling.
    pub async fn front(&self) -> Front {
        let server = MockServer::start().await;
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        Mock::given(wiremock::matchers::any())
            .respond_with(Responder {
                state: self.state.clone(),
                delay: self.delay,
                hits: hits.clone(),
            })
            .mount(&server)
            .await;
        Front { server, hits }
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

    /// Holds the next `method` request whose path ends with `suffix` (see [`State::hold`]).
    pub fn hold_next(&self, method: &str, suffix: &str) -> Arc<Hold> {
        let hold = Arc::new(Hold::default());
        self.with(|s| s.hold = Some((method.into(), suffix.into(), hold.clone())));
        hold
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
            BridgeOutcome::ConfigError(id) => (
                "failed",
                Some("downstream_pipeline_creation_failed"),
                Some((id, "failed")),
            ),
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

    /// How many `method` requests reached a path that ends with `suffix`.
    pub fn calls_with(&self, method: &str, suffix: &str) -> usize {
        self.with(|s| {
            s.calls
                .iter()
                .filter(|(m, p)| m == method && p.ends_with(suffix))
                .count()
        })
    }

    /// (method, body) of every write (POST/PUT/DELETE/PATCH) to a path ending with `suffix`, in
    /// arrival order, including those answered with an error or an outage.
    pub fn writes_to(&self, suffix: &str) -> Vec<(String, Value)> {
        self.with(|s| {
            s.writes
                .iter()
                .filter(|(_, p, _)| p.ends_with(suffix))
                .map(|(m, _, b)| (m.clone(), b.clone()))
                .collect()
        })
    }

    /// Registers an open MR `!iid` of `project` from `source_branch` (into `main`) whose head is
    /// `sha`, and lists it in `GET /repository/commits/:sha/merge_requests`.
    pub fn add_merge_request(
        &self,
        project: u64,
        iid: u64,
        source_branch: &str,
        sha: &str,
    ) -> &Self {
        let url = self.url();
        self.with(|s| {
            let path = s
                .projects
                .get(&project)
                .and_then(|p| p["path_with_namespace"].as_str().map(str::to_string))
                .unwrap_or_else(|| format!("p/{project}"));
            let mr = json!({
                "id": synthetic_mr_id(project, iid), "iid": iid, "project_id": project,
                "title": format!("Change {source_branch}"), "state": "opened",
                "source_branch": source_branch, "target_branch": "main",
                "source_project_id": project, "target_project_id": project, "sha": sha,
                "merge_status": "can_be_merged", "detailed_merge_status": "mergeable",
                "author": {"id": 7, "username": "dev", "name": "Dev", "state": "active"},
                "web_url": format!("{url}/{path}/-/merge_requests/{iid}")
            });
            s.merge_requests.insert((project, iid), mr.clone());
            let listed = s
                .commit_merge_requests
                .entry((project, sha.to_string()))
                .or_default();
            listed.retain(|m| !(m["iid"] == iid && m["project_id"] == project));
            listed.push(mr);
        });
        self
    }

    /// Adds a pipeline (already added with `add_pipeline`, else a minimal one) to the pipelines
    /// of MR `!iid`, keeping them newest (highest id) first.
    pub fn add_mr_pipeline(&self, project: u64, iid: u64, pipeline: u64) -> &Self {
        self.with(|s| {
            let entity = s
                .pipelines
                .get(&(project, pipeline))
                .cloned()
                .unwrap_or_else(
                    || json!({"id": pipeline, "project_id": project, "status": "failed"}),
                );
            let list = s.mr_pipelines.entry((project, iid)).or_default();
            list.retain(|p| p["id"] != pipeline);
            list.push(entity);
            list.sort_by_key(|p| std::cmp::Reverse(p["id"].as_u64().unwrap_or(0)));
        });
        self
    }

    /// A note by someone else on MR `!iid` (which then exists for the fake); returns its id.
    pub fn add_human_note_on_mr(
        &self,
        project: u64,
        iid: u64,
        author_id: u64,
        username: &str,
        body: &str,
    ) -> u64 {
        self.add_note(
            project,
            Noteable::MergeRequest(iid),
            human(author_id, username),
            body,
            false,
        )
    }

    /// A note by the bot (`bot_user`) on MR `!iid`; returns its id.
    pub fn add_bot_note_on_mr(&self, project: u64, iid: u64, body: &str) -> u64 {
        let bot = self.with(|s| s.bot_author());
        self.add_note(project, Noteable::MergeRequest(iid), bot, body, false)
    }

    /// A system note (e.g. "added 1 commit") by user `dev` (id 7) on MR `!iid`; returns its id.
    /// GitLab sends no Note Hook for these, and nobody may edit them.
    pub fn add_system_note_on_mr(&self, project: u64, iid: u64, body: &str) -> u64 {
        self.add_note(
            project,
            Noteable::MergeRequest(iid),
            human(7, "dev"),
            body,
            true,
        )
    }

    /// A new commit discussion started by user `author_id` (username `user{author_id}`, as
    /// `members/all` names them); returns (discussion id, note id).
    pub fn add_human_discussion_on_commit(
        &self,
        project: u64,
        sha: &str,
        author_id: u64,
        body: &str,
    ) -> (String, u64) {
        self.add_commit_discussion(
            project,
            sha,
            human(author_id, &format!("user{author_id}")),
            body,
        )
    }

    /// A new commit discussion started by the bot; returns (discussion id, note id).
    pub fn add_bot_discussion_on_commit(
        &self,
        project: u64,
        sha: &str,
        body: &str,
    ) -> (String, u64) {
        let bot = self.with(|s| s.bot_author());
        self.add_commit_discussion(project, sha, bot, body)
    }

    fn add_commit_discussion(
        &self,
        project: u64,
        sha: &str,
        author: Value,
        body: &str,
    ) -> (String, u64) {
        self.with(|s| {
            let thread = s.new_commit_thread(false, sha);
            let index = s.push_note(project, thread, author, body, false);
            match &s.notes[index].noteable {
                Noteable::Commit { discussion, .. } => (discussion.clone(), s.notes[index].id),
                Noteable::MergeRequest(_) => unreachable!("a commit note"),
            }
        })
    }

    fn add_note(
        &self,
        project: u64,
        noteable: Noteable,
        author: Value,
        body: &str,
        system: bool,
    ) -> u64 {
        self.with(|s| {
            let index = s.push_note(project, noteable, author, body, system);
            s.notes[index].id
        })
    }

    /// Note entities of MR `!iid`, oldest first.
    pub fn mr_notes(&self, project: u64, iid: u64) -> Vec<Value> {
        self.with(|s| {
            s.notes
                .iter()
                .filter(|n| n.project == project && n.noteable == Noteable::MergeRequest(iid))
                .map(|n| s.note_entity(n))
                .collect()
        })
    }

    /// Note entities on commit `sha` (discussion notes and plain commit comments), oldest first.
    pub fn commit_notes(&self, project: u64, sha: &str) -> Vec<Value> {
        self.with(|s| {
            s.commit_notes_of(project, sha)
                .map(|n| s.note_entity(n))
                .collect()
        })
    }

    /// Discussions on commit `sha` as `GET .../discussions` returns them, oldest first.
    pub fn commit_discussions(&self, project: u64, sha: &str) -> Vec<Value> {
        self.with(|s| s.commit_discussions(project, sha))
    }

    /// Names of the award emoji on a note of MR `!iid`, oldest first.
    pub fn awards(&self, project: u64, iid: u64, note: u64) -> Vec<String> {
        self.with(|s| {
            s.awards
                .get(&(project, iid, note))
                .into_iter()
                .flatten()
                .filter_map(|a| a["name"].as_str().map(str::to_string))
                .collect()
        })
    }
}
