//! Recordings of GitLab exchanges: `diagnose --record DIR` keeps every answer one diagnosis
//! got (method, path, status, the headers that matter, the body), with secrets and personal
//! data taken out, and `diagnose --replay DIR` answers the same calls from the recording, with
//! no network. A recording is how a report from a real instance becomes a test.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::redact;

/// The file a recording is kept in, inside its folder.
pub const RECORDING_FILE: &str = "gitlab-exchanges.json";

/// Response headers the client reads; every other header is left out of a recording.
const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "x-next-page",
    "x-total",
    "x-total-pages",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
];

/// User fields that say who someone is; replaced by a name made from the user's id.
const PERSONAL_FIELDS: &[&str] = &["name", "email", "public_email", "commit_email"];

/// The key a call is found under in a recording: its path with CI lint's newer parameter
/// names written as the older ones, which GitLab reads as the same parameters (the client
/// chooses between them by the instance version, which a replay may learn sooner).
fn key(method: &str, path: &str) -> (String, String) {
    let path = redact::redact(path);
    let path = if path.contains("/ci/lint?") {
        path.replace("content_ref=", "sha=")
            .replace("dry_run_ref=", "ref=")
    } else {
        path.into_owned()
    };
    (method.to_string(), path)
}

/// One call and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exchange {
    pub method: String,
    /// The path below `/api/v4`, with its query.
    pub path: String,
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Exchange {
    /// An exchange as it is kept: the headers the client reads, the body redacted.
    pub fn kept(
        method: &str,
        path: &str,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Exchange {
        let headers = headers
            .iter()
            .filter(|(name, _)| KEPT_HEADERS.contains(&name.as_str()))
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
            .collect();
        Exchange {
            method: method.to_string(),
            path: redact::redact(path).into_owned(),
            status,
            headers,
            body: without_personal_data(&String::from_utf8_lossy(body)),
        }
    }
}

/// Secrets redacted, and each user's name, e-mail addresses and avatar replaced by
/// `user-<id>` (the id and the username stay: the report names users by them).
fn without_personal_data(body: &str) -> String {
    let redacted = redact::redact(body);
    match serde_json::from_str::<Value>(&redacted) {
        Ok(mut value) => {
            pseudonymise(&mut value);
            serde_json::to_string(&value).unwrap_or_else(|_| redacted.into_owned())
        }
        Err(_) => redacted.into_owned(),
    }
}

fn pseudonymise(value: &mut Value) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(pseudonymise),
        Value::Object(fields) => {
            if fields.contains_key("username") {
                let id = fields.get("id").map(Value::to_string).unwrap_or_default();
                for key in PERSONAL_FIELDS {
                    if fields.get(*key).is_some_and(|v| !v.is_null()) {
                        fields.insert(key.to_string(), Value::String(format!("user-{id}")));
                    }
                }
                fields.remove("avatar_url");
            }
            fields.values_mut().for_each(pseudonymise);
        }
        _ => {}
    }
}

/// Where GitLab's answers go, or come from.
#[derive(Debug)]
pub enum Tape {
    /// Every exchange is kept, to be written to `dir` by [`Tape::save`].
    Record {
        dir: PathBuf,
        exchanges: Mutex<Vec<Exchange>>,
    },
    /// Calls are answered from a recording, in the order they were recorded for each
    /// method and path (the last answer repeats).
    Replay {
        exchanges: Mutex<HashMap<(String, String), VecDeque<Exchange>>>,
    },
}

/// A recording that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("recording {path}: {reason}")]
pub struct TapeError {
    path: String,
    reason: String,
}

impl Tape {
    pub fn record(dir: &Path) -> Tape {
        Tape::Record {
            dir: dir.to_path_buf(),
            exchanges: Mutex::new(Vec::new()),
        }
    }

    /// Reads the recording in `dir`.
    pub fn replay(dir: &Path) -> Result<Tape, TapeError> {
        let path = dir.join(RECORDING_FILE);
        let error = |reason: String| TapeError {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| error(e.to_string()))?;
        let list: Vec<Exchange> = serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
        let mut exchanges: HashMap<(String, String), VecDeque<Exchange>> = HashMap::new();
        for e in list {
            exchanges
                .entry(key(&e.method, &e.path))
                .or_default()
                .push_back(e);
        }
        Ok(Tape::Replay {
            exchanges: Mutex::new(exchanges),
        })
    }

    /// Keeps an exchange (recording only).
    pub fn keep(&self, exchange: Exchange) {
        if let Tape::Record { exchanges, .. } = self {
            exchanges.lock().unwrap().push(exchange);
        }
    }

    /// The recorded answer to `method path` (replaying only).
    pub fn answer(&self, method: &str, path: &str) -> Option<Exchange> {
        let Tape::Replay { exchanges } = self else {
            return None;
        };
        let mut exchanges = exchanges.lock().unwrap();
        let queue = exchanges.get_mut(&key(method, path))?;
        if queue.len() > 1 {
            queue.pop_front()
        } else {
            queue.front().cloned()
        }
    }

    pub fn is_replay(&self) -> bool {
        matches!(self, Tape::Replay { .. })
    }

    /// Writes what was recorded to `DIR/gitlab-exchanges.json` (recording only).
    pub fn save(&self) -> Result<Option<PathBuf>, TapeError> {
        let Tape::Record { dir, exchanges } = self else {
            return Ok(None);
        };
        let path = dir.join(RECORDING_FILE);
        let error = |reason: String| TapeError {
            path: path.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| error(e.to_string()))?;
        let text = serde_json::to_string_pretty(&*exchanges.lock().unwrap())
            .map_err(|e| error(e.to_string()))?;
        std::fs::write(&path, text + "\n").map_err(|e| error(e.to_string()))?;
        Ok(Some(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_exchange_has_no_secret_and_no_personal_data() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-next-page", "2".parse().unwrap());
        headers.insert("set-cookie", "session=abc".parse().unwrap());
        let token = format!("glptt-{}", "0123456789abcdef0123");
        let body = serde_json::json!([{"id": 10, "token": token, "description": "deploy",
            "owner": {"id": 7, "username": "dev", "name": "Dana Dev", "email": "dana@example.com",
                      "avatar_url": "https://gitlab.example.com/a.png"}}])
        .to_string();
        let e = Exchange::kept(
            "GET",
            "/projects/1/triggers",
            200,
            &headers,
            body.as_bytes(),
        );
        assert_eq!(e.headers.get("x-next-page").map(String::as_str), Some("2"));
        assert!(!e.headers.contains_key("set-cookie"));
        assert!(!e.body.contains(&token), "{}", e.body);
        assert!(
            !e.body.contains("Dana") && !e.body.contains("dana@"),
            "{}",
            e.body
        );
        assert!(!e.body.contains("a.png"));
        assert!(e.body.contains("\"username\":\"dev\"") && e.body.contains("user-7"));
        // Not a user: a project's name stays.
        let project = Exchange::kept(
            "GET",
            "/projects/1",
            200,
            &headers,
            br#"{"id": 1, "name": "app", "path_with_namespace": "grp/app"}"#,
        );
        assert!(project.body.contains("\"name\":\"app\""));
    }

    #[test]
    fn a_recording_replays_in_order_and_repeats_its_last_answer() {
        let dir = tempfile::tempdir().unwrap();
        let tape = Tape::record(dir.path());
        let headers = reqwest::header::HeaderMap::new();
        for status in [502, 200] {
            tape.keep(Exchange::kept("GET", "/version", status, &headers, b"{}"));
        }
        assert!(tape.save().unwrap().is_some());
        let replay = Tape::replay(dir.path()).unwrap();
        let statuses: Vec<u16> = (0..3)
            .map(|_| replay.answer("GET", "/version").unwrap().status)
            .collect();
        assert_eq!(statuses, vec![502, 200, 200]);
        assert!(replay.answer("GET", "/user").is_none());
        // CI lint's two names for one parameter find the same answer.
        let tape = Tape::record(dir.path());
        tape.keep(Exchange::kept(
            "GET",
            "/projects/1/ci/lint?sha=abc&include_jobs=true&dry_run=true&ref=main",
            200,
            &headers,
            b"{}",
        ));
        tape.save().unwrap();
        let replay = Tape::replay(dir.path()).unwrap();
        assert!(replay
            .answer("GET", "/projects/1/ci/lint?content_ref=abc&include_jobs=true&dry_run=true&dry_run_ref=main")
            .is_some());
        assert!(Tape::replay(&dir.path().join("missing")).is_err());
    }
}
