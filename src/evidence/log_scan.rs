//! Signals in job logs, read streamed from the end with bounded memory.
//!
//! A log is read backwards in chunks (the failure is near the end). A literal prefilter over the
//! raw bytes of each chunk finds candidate lines; only those are cleaned (ANSI colours, GitLab
//! section markers, carriage-return progress output), redacted and confirmed with patterns.
//! Everything else is only counted, so line numbers are true ones from the start of the log.

use std::borrow::Cow;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::sync::LazyLock;

use aho_corasick::{packed, AhoCorasick, Input, Span};
use regex::Regex;
use serde::Serialize;
use serde_json::Value;

pub use super::trigger_call::{Tool, TriggerCall, TriggerEndpoint};
use crate::redact::{redact, token_kind, TokenKind};

/// How a log is read.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Bytes read at a time, from the end of the log backwards. Default 1 MiB; at least 1 KiB.
    /// The scanner holds at most twice this much log text at once.
    pub chunk_bytes: usize,
    /// Signals kept, nearest the end of the log first. Default 200. Once reached, the rest of
    /// the log is only counted (for line numbers), not examined.
    pub max_signals: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            chunk_bytes: 1 << 20,
            max_signals: 200,
        }
    }
}

/// The smallest chunk the scanner uses, whatever [`ScanOptions::chunk_bytes`] says.
pub const MIN_CHUNK_BYTES: usize = 1024;
/// Kept line text is cut to about this many characters around the evidence.
pub const MAX_LINE_CHARS: usize = 500;

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Scan {
    /// Signals in log order (ascending line number).
    pub signals: Vec<Signal>,
    /// Lines in the log.
    pub lines_seen: u64,
    /// Bytes read from the log.
    pub bytes_read: u64,
    /// Capacity of the scanner's read buffer, the most log text held at once: at most
    /// 2 × the chunk size.
    pub peak_buffer_bytes: usize,
    /// True when [`ScanOptions::max_signals`] was reached: earlier signals were not collected.
    pub stopped_early: bool,
}

/// One piece of evidence from one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signal {
    /// 1-based line number from the start of the log.
    pub line_no: u64,
    /// The line, cleaned, redacted, trimmed and cut to about [`MAX_LINE_CHARS`] characters.
    pub line: String,
    /// What the line shows.
    pub kind: SignalKind,
}

/// What a line shows. Every text field is redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum SignalKind {
    /// `curl: (6) Could not resolve host: gitlab.example.com`.
    CurlError {
        exit_code: u16,
        message: String,
        host: Option<String>,
    },
    /// `wget` failures: resolution, connection, TLS, `ERROR 404: Not Found.`
    WgetError {
        message: String,
        host: Option<String>,
    },
    /// Errors printed by PowerShell, python-gitlab, Python requests or glab (go-gitlab).
    ClientError {
        tool: Tool,
        status: Option<u16>,
        message: String,
        host: Option<String>,
    },
    /// An HTTP response status: a status line (`HTTP/1.1 404 Not Found`, `< HTTP/2 403`) or a
    /// tool's report of one (`curl: (22) … error: 404`, wget's `ERROR 404`).
    HttpStatus { status: u16 },
    /// A GitLab error body: `{"message":"404 Not Found"}`, `{"error":"token is missing"}`,
    /// `{"message":{"base":[…]}}`, plain `Retry later`, an HTML error page. `status` is the
    /// code the body states (`404 …`), when it states one.
    GitlabError {
        status: Option<u16>,
        message: String,
    },
    /// A known reason why GitLab could not create a pipeline.
    CreationError {
        problem: CreationProblem,
        git_ref: Option<String>,
    },
    /// A call to the trigger API or to `POST /projects/:id/pipeline`.
    TriggerCall(TriggerCall),
    /// How a request passed its token.
    Token(TokenUse),
    /// GitLab masked a variable value on this line (`[MASKED]`).
    Masked,
    /// Proxy settings or proxy failures.
    Proxy(ProxyEvidence),
    /// One of GitLab's bridge failure messages (long or short form) or a bridge
    /// `failure_reason` id; `reason` is the id.
    BridgeFailure { reason: &'static str },
    /// `ERROR: Job failed: exit code 1`.
    JobFailed {
        exit_code: Option<i32>,
        message: String,
    },
    /// `Job succeeded`.
    JobSucceeded,
    /// `Running with gitlab-runner 17.5.0 (abc) on my-runner abcd123`.
    Runner {
        version: Option<String>,
        name: Option<String>,
        id: Option<String>,
    },
}

/// The network-level cause a client error points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkFailure {
    Dns,
    Connect,
    Timeout,
    Tls,
    Certificate,
    EmptyReply,
    Reset,
    Proxy,
    /// The URL itself was malformed (curl exit code 3).
    BadUrl,
}

/// Proxy evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyEvidence {
    /// `HTTPS_PROXY=…`, `no_proxy=…`, curl's `Uses proxy env variable https_proxy == '…'`.
    Setting { variable: String, value: String },
    /// The proxy refused the CONNECT (`CONNECT tunnel failed, response 403`,
    /// `Received HTTP code 407 from proxy after CONNECT`).
    ConnectRejected { status: Option<u16> },
    /// `Could not resolve proxy: proxy.example.com`.
    Unresolvable { host: String },
}

/// Why GitLab refused to create a pipeline (texts from the trigger API and bridge job messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CreationProblem {
    /// `Reference not found`.
    ReferenceNotFound,
    /// `… the resulting pipeline would have been empty`, `No stages / jobs for this pipeline`.
    EmptyPipeline,
    /// `Insufficient permissions to create a new pipeline`.
    InsufficientPermissions,
    /// `You do not have sufficient permission to run a pipeline on '<ref>'`.
    RefNotAllowed,
    /// `Insufficient permissions to set pipeline variables`.
    VariablesRestricted,
    /// `Pipelines are disabled!`
    PipelinesDisabled,
    /// `Project is deleted!`
    ProjectDeleted,
    /// `Missing CI config file`, `Missing .gitlab-ci.yml file`.
    MissingConfig,
}

impl CreationProblem {
    /// Stable snake_case id, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CreationProblem::ReferenceNotFound => "reference_not_found",
            CreationProblem::EmptyPipeline => "empty_pipeline",
            CreationProblem::InsufficientPermissions => "insufficient_permissions",
            CreationProblem::RefNotAllowed => "ref_not_allowed",
            CreationProblem::VariablesRestricted => "variables_restricted",
            CreationProblem::PipelinesDisabled => "pipelines_disabled",
            CreationProblem::ProjectDeleted => "project_deleted",
            CreationProblem::MissingConfig => "missing_config",
        }
    }
}

/// How a request passed its token. Never holds a token value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenUse {
    /// A variable (`$NAME`, `${NAME}`, `$env:NAME`, `%NAME%`, `os.environ["NAME"]`) or a command
    /// substitution as written (`$(cat token)`).
    Variable(String),
    /// `token=` with nothing after it: the variable was empty or undefined when expanded.
    Empty,
    /// The value was shown as `[MASKED]`.
    Masked,
    /// A literal value; only its kind is kept.
    Literal { kind: TokenKind },
}

impl SignalKind {
    /// The network-level cause this signal points at, if it is a client or proxy failure.
    pub fn network_failure(&self) -> Option<NetworkFailure> {
        match self {
            SignalKind::CurlError {
                exit_code, message, ..
            } => curl_failure(*exit_code, message),
            SignalKind::WgetError { message, .. } | SignalKind::ClientError { message, .. } => {
                failure_from_text(message)
            }
            SignalKind::Proxy(ProxyEvidence::ConnectRejected { .. })
            | SignalKind::Proxy(ProxyEvidence::Unresolvable { .. }) => Some(NetworkFailure::Proxy),
            _ => None,
        }
    }
}

fn curl_failure(exit_code: u16, message: &str) -> Option<NetworkFailure> {
    match exit_code {
        3 => Some(NetworkFailure::BadUrl),
        5 => Some(NetworkFailure::Proxy),
        6 => Some(NetworkFailure::Dns),
        7 => Some(NetworkFailure::Connect),
        28 => Some(NetworkFailure::Timeout),
        35 => Some(NetworkFailure::Tls),
        51 | 58 | 60 | 77 | 83 | 90 | 91 => Some(NetworkFailure::Certificate),
        52 => Some(NetworkFailure::EmptyReply),
        56 => failure_from_text(message)
            .filter(|f| *f == NetworkFailure::Proxy)
            .or(Some(NetworkFailure::Reset)),
        _ => failure_from_text(message),
    }
}

fn failure_from_text(message: &str) -> Option<NetworkFailure> {
    let lower = message.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    if any(&[
        "resolve proxy",
        "from proxy",
        "connect tunnel",
        "proxyerror",
        "proxy connect",
    ]) {
        Some(NetworkFailure::Proxy)
    } else if any(&[
        "resolve host",
        "name or service not known",
        "name resolution",
        "remote name could not be resolved",
        "no such host",
        "nodename nor servname",
        "bad address",
        "nameresolutionerror",
        "failed to resolve",
        "getaddrinfo",
    ]) {
        Some(NetworkFailure::Dns)
    } else if any(&["certificate", "trust relationship", "cannot verify"]) {
        Some(NetworkFailure::Certificate)
    } else if any(&["ssl", "tls"]) {
        Some(NetworkFailure::Tls)
    } else if any(&["timed out", "timeout"]) {
        Some(NetworkFailure::Timeout)
    } else if any(&[
        "connection refused",
        "no route to host",
        "unable to connect to the remote server",
        "can't connect",
        "network is unreachable",
        "failed to connect",
    ]) {
        Some(NetworkFailure::Connect)
    } else if any(&["empty reply"]) {
        Some(NetworkFailure::EmptyReply)
    } else if any(&[
        "connection reset",
        "recv failure",
        "remotedisconnected",
        "connection was closed",
    ]) {
        Some(NetworkFailure::Reset)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Prefilter

/// Families of patterns; each anchor says which families may confirm a line it occurs in.
mod family {
    pub const CURL: u32 = 1 << 0;
    pub const WGET: u32 = 1 << 1;
    pub const PWSH: u32 = 1 << 2;
    pub const PYTHON: u32 = 1 << 3;
    pub const GO_CLIENT: u32 = 1 << 4;
    pub const HTTP: u32 = 1 << 5;
    pub const JSON: u32 = 1 << 6;
    pub const PLAIN: u32 = 1 << 7;
    pub const TRIGGER: u32 = 1 << 8;
    pub const TOKEN: u32 = 1 << 9;
    pub const MASKED: u32 = 1 << 10;
    pub const PROXY: u32 = 1 << 11;
    pub const BRIDGE: u32 = 1 << 12;
    pub const CREATION: u32 = 1 << 13;
    pub const JOB: u32 = 1 << 14;
    pub const RUNNER: u32 = 1 << 15;
}

/// Literal anchors (case-sensitive). A line holding none of them yields no signal. At most 64,
/// the most the packed SIMD searcher takes.
///
/// The order matters for speed, not for results: the packed searcher puts anchor `i` in bucket
/// `15 - i % 16`, and a bucket whose anchors differ in their first four bytes lets more ordinary
/// text through to verification. This order keeps bucket-mates alike: on build logs, source
/// code, prose and system logs it finds candidates more than twice as fast as grouping the
/// anchors by family.
const ANCHORS: &[(&str, u32)] = {
    use family::*;
    &[
        ("from proxy", PROXY),
        ("Project is deleted", CREATION),
        ("uthorization", TOKEN),
        ("/pipeline", TRIGGER),
        ("Unable to establish SSL connection", WGET),
        ("CONNECT tunnel", PROXY),
        ("HTTP/", HTTP),
        ("trigger:project", BRIDGE),
        ("Job failed", JOB),
        ("job token has expired", BRIDGE),
        ("would have been empty", CREATION),
        ("... failed: ", WGET),
        ("Job succeeded", JOB),
        // `GET`, `POST`, `PUT` followed by a URL: go-gitlab's error form.
        ("T http", GO_CLIENT),
        ("token=", TOKEN),
        ("Missing CI config file", CREATION),
        ("Reference not found", CREATION),
        ("cannot verify", WGET),
        ("\"error\"", JSON),
        ("system ID:", RUNNER),
        ("reached_max", BRIDGE),
        ("Running with gitlab-runner", RUNNER),
        ("Internal Server Error", PLAIN),
        ("curl: (", CURL | PROXY),
        ("ERROR 4", WGET),
        ("Invoke-", PWSH),
        ("downstream", BRIDGE),
        ("No stages / jobs", CREATION),
        ("bridge_", BRIDGE),
        ("\"message\"", JSON),
        ("loop_detected", BRIDGE),
        ("[MASKED]", MASKED),
        ("-Token", TOKEN),
        ("token =", TOKEN),
        ("trigger_pipeline(", TRIGGER),
        ("ERROR 5", WGET),
        ("sufficient permission", CREATION),
        ("GitLab is", PLAIN),
        ("Pipelines are disabled", CREATION),
        ("looping pipelines", BRIDGE),
        ("wget:", WGET),
        ("_PROXY", PROXY),
        ("token_expired", BRIDGE),
        ("Gitlab", PYTHON),
        ("awaiting response", HTTP),
        ("Bad Gateway", PLAIN),
        ("_proxy", PROXY),
        ("Unavailable", PLAIN),
        ("\"token\"", TOKEN),
        ("-TOKEN", TOKEN),
        ("Missing .gitlab-ci.yml", CREATION),
        ("upstream", BRIDGE),
        ("-token", TOKEN),
        ("Retry later", PLAIN),
        ("Gateway Time", PLAIN),
        ("child pipeline", BRIDGE),
        ("ConnectionPool(", PYTHON),
        // `HTTP 429` as printed by scripts, and HTML error pages' `<title>405 Not Allowed</title>`.
        ("HTTP ", HTTP),
        ("<title>", PLAIN),
        // go-gitlab (glab) transport errors and PowerShell 7's `No such host is known.`
        ("dial tcp", GO_CLIENT),
        ("such host", PWSH | GO_CLIENT),
    ]
};

/// The literal anchors of the prefilter, for comparisons (the benchmark feeds the same set to
/// `grep`).
pub fn prefilter_literals() -> Vec<&'static str> {
    ANCHORS.iter().map(|(literal, _)| *literal).collect()
}

/// Finds the next candidate in raw chunk bytes: the packed SIMD searcher where the CPU has it.
enum Prefilter {
    Packed(packed::Searcher),
    Automaton(AhoCorasick),
}

impl Prefilter {
    fn find(&self, haystack: &[u8], from: usize) -> Option<usize> {
        let span = Span {
            start: from,
            end: haystack.len(),
        };
        match self {
            Prefilter::Packed(searcher) => searcher.find_in(haystack, span).map(|m| m.start()),
            Prefilter::Automaton(ac) => ac.find(Input::new(haystack).span(span)).map(|m| m.start()),
        }
    }
}

static PREFILTER: LazyLock<Prefilter> = LazyLock::new(|| {
    let mut builder = packed::Config::new().builder();
    builder.extend(ANCHORS.iter().map(|(literal, _)| literal));
    match builder.build() {
        Some(searcher) => Prefilter::Packed(searcher),
        None => Prefilter::Automaton(ANCHOR_SET.clone()),
    }
});

/// All anchors, reported overlapping, to tell which families a candidate line needs.
static ANCHOR_SET: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::new(ANCHORS.iter().map(|(literal, _)| literal)).expect("anchors build")
});

fn families_of(bytes: &[u8]) -> u32 {
    ANCHOR_SET
        .find_overlapping_iter(bytes)
        .fold(0, |acc, m| acc | ANCHORS[m.pattern().as_usize()].1)
}

/// Counts `\n` bytes (vectorised inside memchr).
fn count_newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

// ---------------------------------------------------------------------------------------------
// Streaming from the end

/// Lines longer than this are examined in pieces of about this size around each candidate.
const MAX_SEGMENT_BYTES: usize = 16 * 1024;

/// A signal whose line number is not known yet: `nl_after` counts the newlines from the start
/// of its line to the end of the log.
struct Pending {
    nl_after: u64,
    line: String,
    kind: SignalKind,
}

/// Scans a log from its end backwards, `opts.chunk_bytes` at a time, holding at most twice that.
pub fn scan_reader<R: Read + Seek>(mut reader: R, opts: &ScanOptions) -> io::Result<Scan> {
    let chunk = opts.chunk_bytes.max(MIN_CHUNK_BYTES);
    let len = reader.seek(SeekFrom::End(0))?;
    let mut buf = vec![0u8; 2 * chunk];
    let mut pending: Vec<Pending> = Vec::new();
    let mut scan = Scan {
        peak_buffer_bytes: buf.capacity(),
        ..Scan::default()
    };
    // The unexamined head of the text read so far ("carry") sits at buf[..carry]; it is
    // file[tail..tail + carry] and holds no newline. `nl_after` counts newlines after it.
    let mut tail = len;
    let mut carry = 0usize;
    let mut nl_after = 0u64;
    let mut collecting = opts.max_signals > 0;
    let mut last_byte = None;

    while tail > 0 {
        let n = usize::try_from(tail.min(chunk as u64)).expect("chunk fits in memory");
        buf.copy_within(0..carry, n);
        let start = tail - n as u64;
        reader.seek(SeekFrom::Start(start))?;
        reader.read_exact(&mut buf[..n])?;
        scan.bytes_read += n as u64;
        scan.peak_buffer_bytes = scan.peak_buffer_bytes.max(buf.capacity());
        let window = &buf[..n + carry];
        if last_byte.is_none() {
            last_byte = window.last().copied();
        }

        // Complete lines start after the first newline of the new bytes (or at the log's start).
        // Without a newline, the bytes are carried, unless that would exceed one chunk: then
        // the piece is examined now as a fragment of an overlong line.
        let first_nl = memchr::memchr(b'\n', &window[..n]);
        let (region, next_carry) = match first_nl {
            _ if start == 0 => (0, 0),
            Some(at) => (at + 1, at),
            None if window.len() <= chunk => (window.len(), window.len()),
            None => (0, 0),
        };

        let region_nl = if collecting {
            let nl = examine(window, region, nl_after, &mut pending);
            if pending.len() >= opts.max_signals {
                collecting = false;
                scan.stopped_early = true;
            }
            nl
        } else {
            count_newlines(&window[region..])
        };
        nl_after += region_nl + u64::from(first_nl.is_some() && start != 0);
        tail = start;
        carry = next_carry;
    }

    let total_nl = nl_after;
    scan.lines_seen = total_nl + u64::from(last_byte.is_some_and(|b| b != b'\n'));
    let mut signals: Vec<Signal> = pending
        .into_iter()
        .map(|p| Signal {
            line_no: 1 + total_nl - p.nl_after,
            line: p.line,
            kind: p.kind,
        })
        .collect();
    signals.sort_by_key(|s| s.line_no);
    if signals.len() > opts.max_signals {
        signals.drain(..signals.len() - opts.max_signals);
    }
    scan.signals = tidy(signals);
    Ok(scan)
}

/// Scans text already in memory (a bridge message, stdin, a short log) the same way, with a
/// buffer no larger than the text needs.
pub fn scan_str(text: &str) -> Scan {
    let defaults = ScanOptions::default();
    let opts = ScanOptions {
        chunk_bytes: text.len().clamp(MIN_CHUNK_BYTES, defaults.chunk_bytes),
        ..defaults
    };
    scan_reader(Cursor::new(text.as_bytes()), &opts).expect("reading from memory cannot fail")
}

/// Examines the complete lines in `window[region..]`; returns the newlines counted there.
fn examine(window: &[u8], region: usize, nl_after_window: u64, out: &mut Vec<Pending>) -> u64 {
    let mut found: Vec<(u64, String, SignalKind)> = Vec::new();
    let mut from = region;
    let mut counted = region;
    let mut nl_before = 0u64;
    while from < window.len() {
        let Some(hit) = PREFILTER.find(window, from) else {
            break;
        };
        let line_start =
            memchr::memrchr(b'\n', &window[region..hit]).map_or(region, |i| region + i + 1);
        let line_end = memchr::memchr(b'\n', &window[hit..]).map_or(window.len(), |i| hit + i);
        let (seg_start, seg_end) = if line_end - line_start > MAX_SEGMENT_BYTES {
            let half = MAX_SEGMENT_BYTES / 2;
            (
                line_start.max(hit.saturating_sub(half)),
                line_end.min(hit + half),
            )
        } else {
            (line_start, line_end)
        };
        if line_start > counted {
            nl_before += count_newlines(&window[counted..line_start]);
            counted = line_start;
        }
        for (line, kind) in examine_line(&window[seg_start..seg_end]) {
            found.push((nl_before, line, kind));
        }
        from = seg_end.max(hit + 1);
    }
    let region_nl = nl_before + count_newlines(&window[counted..]);
    out.extend(found.into_iter().map(|(before, line, kind)| Pending {
        nl_after: nl_after_window + (region_nl - before),
        line,
        kind,
    }));
    region_nl
}

/// Confirms one candidate line: cleans, redacts and extracts its signals.
fn examine_line(raw: &[u8]) -> Vec<(String, SignalKind)> {
    let families = families_of(raw);
    if families == 0 {
        return Vec::new();
    }
    let clean = clean_line(raw);
    if clean.is_empty() {
        return Vec::new();
    }
    let redacted = redact(&clean);
    let kinds = extract(&clean, &redacted, families);
    if kinds.is_empty() {
        return Vec::new();
    }
    let line = cap_line(&redacted);
    kinds.into_iter().map(|k| (line.clone(), k)).collect()
}

/// Removes duplicates (pieces of one overlong line) and joins a runner's version line with
/// the `on NAME ID, system ID: …` line that follows it.
fn tidy(signals: Vec<Signal>) -> Vec<Signal> {
    let mut out: Vec<Signal> = Vec::with_capacity(signals.len());
    for signal in signals {
        if out
            .iter()
            .rev()
            .take_while(|s| s.line_no == signal.line_no)
            .any(|s| s.kind == signal.kind)
        {
            continue;
        }
        if let (
            Some(Signal {
                line_no,
                kind: SignalKind::Runner { name, id, .. },
                ..
            }),
            SignalKind::Runner {
                version: None,
                name: Some(next_name),
                id: next_id,
            },
        ) = (out.last_mut(), &signal.kind)
        {
            if *line_no + 1 == signal.line_no && name.is_none() {
                *name = Some(next_name.clone());
                *id = next_id.clone();
                continue;
            }
        }
        out.push(signal);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Lines

/// Strips ANSI escapes and GitLab section markers; of carriage-return-separated pieces keeps
/// those that are not bare progress meters. Trimmed.
fn clean_line(raw: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != 0x1b {
            bytes.push(raw[i]);
            i += 1;
            continue;
        }
        match raw.get(i + 1) {
            Some(b'[') => {
                i += 2;
                while i < raw.len() && (0x30..=0x3f).contains(&raw[i]) {
                    i += 1;
                }
                while i < raw.len() && (0x20..=0x2f).contains(&raw[i]) {
                    i += 1;
                }
                if i < raw.len() && (0x40..=0x7e).contains(&raw[i]) {
                    i += 1;
                }
            }
            Some(b']') => {
                i += 2;
                while i < raw.len()
                    && raw[i] != 0x07
                    && !(raw[i] == 0x1b && raw.get(i + 1) == Some(&b'\\'))
                {
                    i += 1;
                }
                i += if raw.get(i) == Some(&0x07) { 1 } else { 2 };
            }
            Some(_) => i += 2,
            None => i += 1,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut out = String::with_capacity(text.len());
    for piece in text.split('\r') {
        let piece = strip_section_markers(piece);
        let piece = piece.trim();
        if piece.is_empty() || is_progress_meter(piece) {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(piece);
    }
    out
}

/// Removes `section_start:1700000000:name[options]` / `section_end:…:name`.
fn strip_section_markers(piece: &str) -> Cow<'_, str> {
    if !piece.contains("section_") {
        return Cow::Borrowed(piece);
    }
    let mut out = String::with_capacity(piece.len());
    let mut rest = piece;
    loop {
        let found = ["section_start:", "section_end:"]
            .iter()
            .filter_map(|m| rest.find(m).map(|at| (at, m.len())))
            .min();
        let Some((at, marker_len)) = found else {
            out.push_str(rest);
            break;
        };
        let after = &rest[at + marker_len..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || after.as_bytes().get(digits) != Some(&b':') {
            out.push_str(&rest[..at + marker_len]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..at]);
        let name = &after[digits + 1..];
        let name_len = name.find(char::is_whitespace).unwrap_or(name.len());
        rest = &name[name_len..];
    }
    Cow::Owned(out)
}

fn is_progress_meter(piece: &str) -> bool {
    piece
        .bytes()
        .all(|b| b.is_ascii_digit() || b" :.%-kMGTB".contains(&b))
}

/// Cuts a line to about [`MAX_LINE_CHARS`] characters, keeping the part around the first anchor.
fn cap_line(text: &str) -> String {
    if text.chars().count() <= MAX_LINE_CHARS {
        return text.to_owned();
    }
    let focus = ANCHOR_SET.find(text).map_or(0, |m| m.start());
    let mut start = focus.saturating_sub(150);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let piece = &text[start..];
    let end = piece
        .char_indices()
        .nth(MAX_LINE_CHARS)
        .map_or(piece.len(), |(i, _)| i);
    let mut out = String::with_capacity(end + 8);
    if start > 0 {
        out.push('…');
    }
    out.push_str(&piece[..end]);
    if end < piece.len() {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Confirmation

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("log pattern")
}

static CURL_ERROR: LazyLock<Regex> = LazyLock::new(|| re(r"curl: \((\d{1,3})\)\s*(.*)"));
static CURL_HOST: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:Could not resolve host|Could not resolve proxy): ([^\s;,]+)|Failed to connect to (\S+) port|in connection to ([^\s:]+):\d+|host name '([^']+)'",
    )
});
static RETURNED_ERROR: LazyLock<Regex> = LazyLock::new(|| re(r"returned error: ([1-5]\d\d)\b"));

static WGET_FAILED: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:Resolving|Connecting to) ([^\s(|]+).*?\.\.\. failed: (.+?)\.?$"));
static WGET_VERIFY: LazyLock<Regex> =
    LazyLock::new(|| re(r"cannot verify ([^\s'’]+?)['’]s certificate.*"));
static WGET_PREFIX: LazyLock<Regex> = LazyLock::new(|| re(r"\bwget: (.+)"));
static WGET_HOST: LazyLock<Regex> =
    LazyLock::new(|| re(r#"(?:host address|bad address) ['‘"]?([^'’"\s]+)"#));
static WGET_STATUS: LazyLock<Regex> = LazyLock::new(|| re(r"\bERROR ([1-5]\d\d): (.+?)\.?$"));

static PWSH_ERROR: LazyLock<Regex> =
    LazyLock::new(|| re(r"Invoke-(?:RestMethod|WebRequest)\s?:\s*(.+)"));
static PWSH_PHRASE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?:The remote name could not be resolved|Unable to connect to the remote server|No such host is known|The underlying connection was closed|The operation has timed out|The remote server returned an error).*",
    )
});
static PWSH_HOST: LazyLock<Regex> =
    LazyLock::new(|| re(r"could not be resolved: '([^']+)'|No such host is known\.? \(([^:)\s]+)"));
static PWSH_STATUS: LazyLock<Regex> =
    LazyLock::new(|| re(r#"returned an error: \(([1-5]\d\d)\)|"message"\s*:\s*"([1-5]\d\d)\b"#));

static PYTHON_GITLAB: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(Gitlab[A-Za-z]*Error)\b(?::\s*(?:([1-5]\d\d):\s*)?(.*))?"));
static PYTHON_POOL: LazyLock<Regex> =
    LazyLock::new(|| re(r"ConnectionPool\(host='([^']+)', port=\d+\): (.*)"));

static GO_CLIENT_ERROR: LazyLock<Regex> =
    LazyLock::new(|| re(r"\b(?:GET|POST|PUT|PATCH|DELETE) (https?://\S+?): ([1-5]\d\d)\b\s*(.*)"));

static HTTP_STATUS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?:^|[\s<>*"'])HTTP/(?:1\.[01]|2(?:\.0)?|3) ([1-5]\d\d)\b|awaiting response\.\.\. ([1-5]\d\d)\b|(?:^|[\s\[(>])HTTP ([1-5]\d\d)\b"#,
    )
});

static JSON_PAIR: LazyLock<Regex> =
    LazyLock::new(|| re(r#"^"(?:message|error)"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,?$"#));
static LEADING_STATUS: LazyLock<Regex> = LazyLock::new(|| re(r"^([1-5]\d\d)(?:\s|$)"));
static HTML_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(50[0-4]) (Bad Gateway|Service Temporarily Unavailable|Service Unavailable|Gateway Time-?out|Internal Server Error)\b",
    )
});
static HTML_TITLE: LazyLock<Regex> =
    LazyLock::new(|| re(r"<title>\s*([1-5]\d\d) ([^<]{1,80})</title>"));
static GO_DIAL: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"\b(?:Get|Post|Put|GET|POST|PUT) "?(https?://[^"\s]+)"?: (dial tcp.*|.*no such host.*)"#)
});
static NOT_RESPONDING: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(GitLab is not responding|GitLab is taking too much time to respond)(?:\s*\((\d{3})\))?")
});

static PROXY_USES: LazyLock<Regex> =
    LazyLock::new(|| re(r"Uses proxy env variable (\S+) == '([^']*)'"));
static PROXY_SETTING: LazyLock<Regex> =
    LazyLock::new(|| re(r#"\b((?i:https?_proxy|all_proxy|no_proxy))\s*[=:]\s*["']?([^\s"']*)"#));
static PROXY_CONNECT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"CONNECT tunnel failed, response (\d{3})|Received HTTP code (\d{3}) from proxy after CONNECT|Proxy CONNECT aborted",
    )
});
static PROXY_RESOLVE: LazyLock<Regex> =
    LazyLock::new(|| re(r"Could not resolve proxy: ([^\s;,]+)"));

static REF_NOT_ALLOWED: LazyLock<Regex> = LazyLock::new(|| re(r"run a pipeline on '([^']*)'"));

static JOB_FAILED: LazyLock<Regex> =
    LazyLock::new(|| re(r"\bERROR: Job failed(?: \(system failure\))?:?\s*(.*)"));
static EXIT_CODE: LazyLock<Regex> = LazyLock::new(|| re(r"exit code (-?\d+)"));
static RUNNER_VERSION: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"Running with gitlab-runner (\S+)(?: \([0-9a-f]+\))?(?:\s+on (.+?) ([A-Za-z0-9_-]{6,})(?:, system ID: \S+)?)?\s*$",
    )
});
static RUNNER_ON: LazyLock<Regex> =
    LazyLock::new(|| re(r"^on (.+?) ([A-Za-z0-9_-]{6,}), system ID: \S+"));
static REQUEST_CONTEXT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:curl|wget|invoke-restmethod|invoke-webrequest|irm|iwr|glab|https?|trigger_pipeline)\b|--form|--data|--header|-[FdH]\s|/pipeline|CI_API_V4_URL",
    )
});

/// Bridge messages (lower case) with their `failure_reason`, more specific texts first.
#[rustfmt::skip]
const BRIDGE_MESSAGES: &[(&str, &str)] = &[
    ("downstream bridge project could not be found", "downstream_bridge_project_not_found"),
    ("downstream project could not be found", "downstream_bridge_project_not_found"),
    ("insufficient permissions to create a downstream pipeline", "insufficient_bridge_permissions"),
    ("no permissions to trigger downstream pipeline", "insufficient_bridge_permissions"),
    ("downstream pipeline trigger definition is invalid", "invalid_bridge_trigger"),
    ("trigger:project value resolved to a blank value", "downstream_project_trigger_resolved_to_empty"),
    ("belongs to a child pipeline and cannot create further child pipelines", "bridge_pipeline_is_child_pipeline"),
    ("creation of child pipeline not allowed from another child pipeline", "bridge_pipeline_is_child_pipeline"),
    ("downstream pipeline could not be created", "downstream_pipeline_creation_failed"),
    ("downstream pipeline can not be created", "downstream_pipeline_creation_failed"),
    ("upstream bridge project could not be found", "upstream_bridge_project_not_found"),
    ("upstream project could not be found", "upstream_bridge_project_not_found"),
    ("insufficient permissions to track the upstream project", "insufficient_upstream_permissions"),
    ("no permissions to read upstream project", "insufficient_upstream_permissions"),
    ("reached the maximum depth of child pipelines", "reached_max_descendant_pipelines_depth"),
    ("reached maximum depth of child pipelines", "reached_max_descendant_pipelines_depth"),
    ("downstream pipeline tree is too large", "reached_max_pipeline_hierarchy_size"),
    ("too many downstream pipelines triggered in the last minute", "reached_downstream_pipeline_trigger_rate_limit"),
    ("would create infinitely looping pipelines", "pipeline_loop_detected"),
    ("ci job token has expired", "job_token_expired"),
];

/// Bridge `failure_reason` ids, as they appear in API output or logs: the trigger itself
/// failed before a downstream pipeline existed.
pub const BRIDGE_REASONS: &[&str] = &[
    "downstream_bridge_project_not_found",
    "insufficient_bridge_permissions",
    "invalid_bridge_trigger",
    "downstream_project_trigger_resolved_to_empty",
    "bridge_pipeline_is_child_pipeline",
    "downstream_pipeline_creation_failed",
    "upstream_bridge_project_not_found",
    "insufficient_upstream_permissions",
    "reached_max_descendant_pipelines_depth",
    "reached_max_pipeline_hierarchy_size",
    "reached_downstream_pipeline_trigger_rate_limit",
    "pipeline_loop_detected",
    "job_token_expired",
];

#[rustfmt::skip]
const CREATION_MESSAGES: &[(&str, CreationProblem)] = &[
    ("reference not found", CreationProblem::ReferenceNotFound),
    ("would have been empty", CreationProblem::EmptyPipeline),
    ("no stages / jobs for this pipeline", CreationProblem::EmptyPipeline),
    ("insufficient permissions to create a new pipeline", CreationProblem::InsufficientPermissions),
    ("sufficient permission to run a pipeline on", CreationProblem::RefNotAllowed),
    ("insufficient permissions to set pipeline variables", CreationProblem::VariablesRestricted),
    ("pipelines are disabled", CreationProblem::PipelinesDisabled),
    ("project is deleted", CreationProblem::ProjectDeleted),
    ("missing ci config file", CreationProblem::MissingConfig),
    ("missing .gitlab-ci.yml file", CreationProblem::MissingConfig),
];

/// Runner lines that report artifact and cache transfers carry `token=<prefix>` of the job's
/// own token; that is not the token a trigger call used.
fn is_runner_transfer_line(line: &str) -> bool {
    line.contains("responseStatus=") || line.contains("correlation_id=")
}

fn group(caps: &regex::Captures<'_>, i: usize) -> Option<String> {
    caps.get(i).map(|m| m.as_str().trim().to_owned())
}

fn status(text: &str) -> Option<u16> {
    text.parse().ok()
}

/// Signals found on one line, without duplicates.
#[derive(Default)]
struct Found(Vec<SignalKind>);

impl Found {
    fn push(&mut self, kind: SignalKind) {
        if !self.0.contains(&kind) {
            self.0.push(kind);
        }
    }
}

type Extractor = fn(clean: &str, line: &str, out: &mut Found);

/// One extractor per family, in the order their signals are reported for a line.
const EXTRACTORS: &[(u32, Extractor)] = &[
    (family::RUNNER, extract_runner),
    (family::JOB, extract_job_outcome),
    (family::BRIDGE, extract_bridge_failure),
    (family::CREATION, extract_creation_error),
    (family::CURL, extract_curl),
    (family::WGET, extract_wget),
    (family::PWSH, extract_powershell),
    (family::PYTHON, extract_python),
    (family::GO_CLIENT, extract_go_client),
    (family::HTTP, extract_http_status),
    (family::JSON, extract_json_body),
    (family::PLAIN, extract_plain_body),
    (family::PROXY, extract_proxy),
    (family::TRIGGER, extract_trigger_call),
    (family::TOKEN, extract_token),
    (family::MASKED, extract_masked),
];

/// Every signal of one cleaned line. Text fields come from the redacted `line`; only the token
/// check reads `clean`, and keeps no value from it.
fn extract(clean: &str, line: &str, families: u32) -> Vec<SignalKind> {
    let mut found = Found::default();
    for (family, extractor) in EXTRACTORS {
        if families & family != 0 {
            extractor(clean, line, &mut found);
        }
    }
    found.0
}

/// `Running with gitlab-runner …` and the `on NAME ID, system ID: …` line.
fn extract_runner(_clean: &str, line: &str, out: &mut Found) {
    if let Some(c) = RUNNER_VERSION.captures(line) {
        out.push(SignalKind::Runner {
            version: group(&c, 1),
            name: group(&c, 2),
            id: group(&c, 3),
        });
    } else if let Some(c) = RUNNER_ON.captures(line) {
        out.push(SignalKind::Runner {
            version: None,
            name: group(&c, 1),
            id: group(&c, 2),
        });
    }
}

/// `ERROR: Job failed: …` and `Job succeeded`.
fn extract_job_outcome(_clean: &str, line: &str, out: &mut Found) {
    if let Some(c) = JOB_FAILED.captures(line) {
        let message = group(&c, 1).unwrap_or_default();
        let exit_code = EXIT_CODE.captures(&message).and_then(|e| e[1].parse().ok());
        out.push(SignalKind::JobFailed { exit_code, message });
    } else if line == "Job succeeded" {
        out.push(SignalKind::JobSucceeded);
    }
}

/// GitLab's bridge failure messages, long and short, and bare `failure_reason` ids.
fn extract_bridge_failure(_clean: &str, line: &str, out: &mut Found) {
    let lower = line.to_ascii_lowercase();
    let reason = BRIDGE_MESSAGES
        .iter()
        .find(|(text, _)| lower.contains(text))
        .map(|(_, reason)| *reason)
        .or_else(|| {
            BRIDGE_REASONS
                .iter()
                .find(|id| contains_word(line, id))
                .copied()
        });
    if let Some(reason) = reason {
        out.push(SignalKind::BridgeFailure { reason });
    }
}

/// Known reasons why GitLab could not create a pipeline.
fn extract_creation_error(_clean: &str, line: &str, out: &mut Found) {
    let lower = line.to_ascii_lowercase();
    for (text, problem) in CREATION_MESSAGES {
        if lower.contains(text) {
            let git_ref = (*problem == CreationProblem::RefNotAllowed)
                .then(|| REF_NOT_ALLOWED.captures(line).map(|c| c[1].to_owned()))
                .flatten();
            out.push(SignalKind::CreationError {
                problem: *problem,
                git_ref,
            });
        }
    }
}

/// `curl: (N) message`; exit code 22 also reports the HTTP status.
fn extract_curl(_clean: &str, line: &str, out: &mut Found) {
    if let Some(c) = CURL_ERROR.captures(line) {
        let message = group(&c, 2).unwrap_or_default();
        let host = CURL_HOST.captures(&message).and_then(|h| {
            (1..=4)
                .find_map(|i| h.get(i))
                .map(|m| m.as_str().to_owned())
        });
        let exit_code = c[1].parse().unwrap_or(0);
        if exit_code == 22 {
            if let Some(s) = RETURNED_ERROR.captures(&message) {
                out.push(SignalKind::HttpStatus {
                    status: s[1].parse().unwrap_or(0),
                });
            }
        }
        out.push(SignalKind::CurlError {
            exit_code,
            message,
            host,
        });
    }
}

/// `Invoke-RestMethod : …` / `Invoke-WebRequest: …`.
fn extract_powershell(_clean: &str, line: &str, out: &mut Found) {
    let message = PWSH_ERROR
        .captures(line)
        .and_then(|c| group(&c, 1))
        .or_else(|| PWSH_PHRASE.find(line).map(|m| m.as_str().trim().to_owned()));
    if let Some(message) = message {
        let host = PWSH_HOST
            .captures(line)
            .and_then(|h| h.get(1).or(h.get(2)).map(|m| m.as_str().to_owned()));
        let status_code = PWSH_STATUS
            .captures(line)
            .and_then(|s| s.get(1).or(s.get(2)).and_then(|m| status(m.as_str())));
        if let Some(code) = PWSH_STATUS
            .captures(line)
            .and_then(|s| s.get(1))
            .and_then(|m| status(m.as_str()))
        {
            out.push(SignalKind::HttpStatus { status: code });
        }
        out.push(SignalKind::ClientError {
            tool: Tool::PowerShell,
            status: status_code,
            message,
            host,
        });
    }
}

/// python-gitlab exceptions and Python requests connection errors.
fn extract_python(_clean: &str, line: &str, out: &mut Found) {
    if let Some(c) = PYTHON_GITLAB.captures(line) {
        let class = &c[1];
        let rest = group(&c, 3).unwrap_or_default();
        let message = if rest.is_empty() {
            class.to_owned()
        } else {
            format!("{class}: {rest}")
        };
        out.push(SignalKind::ClientError {
            tool: Tool::PythonGitlab,
            status: c.get(2).and_then(|m| status(m.as_str())),
            message,
            host: None,
        });
    } else if let Some(c) = PYTHON_POOL.captures(line) {
        out.push(SignalKind::ClientError {
            tool: Tool::Python,
            status: None,
            message: c[2].trim().to_owned(),
            host: Some(c[1].to_owned()),
        });
    }
}

/// glab and other go-gitlab clients: `POST https://…: 404 {message: …}`, and transport
/// failures: `Post "https://…": dial tcp: lookup gitlab.example.com …: no such host`.
fn extract_go_client(_clean: &str, line: &str, out: &mut Found) {
    if let Some(c) = GO_DIAL.captures(line) {
        let host = c[1]
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', ':']).next())
            .map(str::to_owned);
        out.push(SignalKind::ClientError {
            tool: Tool::Glab,
            status: None,
            message: c[2].trim().to_owned(),
            host,
        });
        return;
    }
    if let Some(c) = GO_CLIENT_ERROR.captures(line) {
        let code = status(&c[2]);
        let body = c[3].trim();
        let message = body
            .strip_prefix('{')
            .and_then(|b| b.strip_suffix('}'))
            .map(|b| {
                b.trim_start_matches("message: ")
                    .trim_start_matches("error: ")
            })
            .unwrap_or(body)
            .to_owned();
        let host = c[1]
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', ':']).next())
            .map(str::to_owned);
        if let Some(code) = code {
            out.push(SignalKind::HttpStatus { status: code });
        }
        out.push(SignalKind::ClientError {
            tool: Tool::Glab,
            status: code,
            message,
            host,
        });
    }
}

/// HTTP status lines and wget's `awaiting response... 404`.
fn extract_http_status(_clean: &str, line: &str, out: &mut Found) {
    for c in HTTP_STATUS.captures_iter(line) {
        if let Some(code) = c
            .get(1)
            .or(c.get(2))
            .or(c.get(3))
            .and_then(|m| status(m.as_str()))
        {
            out.push(SignalKind::HttpStatus { status: code });
        }
    }
}

/// GitLab JSON error bodies.
fn extract_json_body(_clean: &str, line: &str, out: &mut Found) {
    if let Some((code, message)) = gitlab_json_error(line) {
        out.push(SignalKind::GitlabError {
            status: code,
            message,
        });
    }
}

/// Plain-text and HTML error bodies: `Retry later`, nginx and GitLab error pages.
fn extract_plain_body(_clean: &str, line: &str, out: &mut Found) {
    if line.starts_with("Retry later") {
        out.push(SignalKind::GitlabError {
            status: Some(429),
            message: "Retry later".to_owned(),
        });
    }
    if !HTTP_STATUS.is_match(line) {
        if let Some(c) = HTML_ERROR.captures(line) {
            out.push(SignalKind::GitlabError {
                status: status(&c[1]),
                message: format!("{} {}", &c[1], &c[2]),
            });
        }
    }
    if let Some(c) = HTML_TITLE
        .captures(line)
        .filter(|_| !HTML_ERROR.is_match(line))
    {
        if let Some(code) = status(&c[1]) {
            out.push(SignalKind::GitlabError {
                status: Some(code),
                message: format!("{} {}", &c[1], c[2].trim()),
            });
        }
    }
    if let Some(c) = NOT_RESPONDING.captures(line) {
        out.push(SignalKind::GitlabError {
            status: c.get(2).and_then(|m| status(m.as_str())),
            message: c[1].to_owned(),
        });
    }
}

/// Proxy settings and proxy refusals.
fn extract_proxy(_clean: &str, line: &str, out: &mut Found) {
    if let Some(c) = PROXY_USES.captures(line) {
        out.push(SignalKind::Proxy(ProxyEvidence::Setting {
            variable: c[1].to_owned(),
            value: c[2].to_owned(),
        }));
    } else {
        for c in PROXY_SETTING.captures_iter(line) {
            out.push(SignalKind::Proxy(ProxyEvidence::Setting {
                variable: c[1].to_owned(),
                value: c[2].to_owned(),
            }));
        }
    }
    if let Some(c) = PROXY_CONNECT.captures(line) {
        let code = c.get(1).or(c.get(2)).and_then(|m| status(m.as_str()));
        out.push(SignalKind::Proxy(ProxyEvidence::ConnectRejected {
            status: code,
        }));
    }
    if let Some(c) = PROXY_RESOLVE.captures(line) {
        out.push(SignalKind::Proxy(ProxyEvidence::Unresolvable {
            host: c[1].to_owned(),
        }));
    }
}

/// Calls that create a pipeline.
fn extract_trigger_call(_clean: &str, line: &str, out: &mut Found) {
    if let Some(call) = super::trigger_call::parse(line) {
        out.push(SignalKind::TriggerCall(call));
    }
}

/// The token a request used (from the clean line; keeps no value).
fn extract_token(clean: &str, _line: &str, out: &mut Found) {
    if is_runner_transfer_line(clean) {
        return;
    }
    if let Some((usage, header)) = find_token_use(clean) {
        if header || REQUEST_CONTEXT.is_match(clean) {
            out.push(SignalKind::Token(usage));
        }
    }
}

/// `[MASKED]` values.
fn extract_masked(_clean: &str, line: &str, out: &mut Found) {
    if line.contains("[MASKED]") {
        out.push(SignalKind::Masked);
    }
}

/// wget failures: resolution, connection, certificates, `ERROR 404: Not Found.`
fn extract_wget(_clean: &str, line: &str, out: &mut Found) {
    if let Some(c) = WGET_FAILED.captures(line) {
        out.push(SignalKind::WgetError {
            message: c[2].trim().to_owned(),
            host: Some(c[1].to_owned()),
        });
    } else if let Some(c) = WGET_VERIFY.captures(line) {
        out.push(SignalKind::WgetError {
            message: c[0].trim().to_owned(),
            host: Some(c[1].to_owned()),
        });
    } else if let Some(c) = WGET_STATUS.captures(line) {
        let code = status(&c[1]).unwrap_or(0);
        out.push(SignalKind::HttpStatus { status: code });
        out.push(SignalKind::WgetError {
            message: format!("ERROR {}: {}", &c[1], c[2].trim()),
            host: None,
        });
    } else if let Some(c) = WGET_PREFIX.captures(line) {
        let message = c[1].trim().to_owned();
        let host = WGET_HOST.captures(&message).map(|h| h[1].to_owned());
        out.push(SignalKind::WgetError { message, host });
    } else if line.contains("Unable to establish SSL connection") {
        out.push(SignalKind::WgetError {
            message: "Unable to establish SSL connection".to_owned(),
            host: None,
        });
    }
}

fn contains_word(haystack: &str, word: &str) -> bool {
    haystack.match_indices(word).any(|(at, _)| {
        let before = haystack[..at].bytes().next_back();
        let after = haystack[at + word.len()..].bytes().next();
        !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// A GitLab error body on the line: a JSON object whose keys are only GitLab's error keys, or a
/// pretty-printed `"message": "404 …"` line. Returns the stated status and the message text.
fn gitlab_json_error(line: &str) -> Option<(Option<u16>, String)> {
    for (at, _) in line.match_indices('{').take(8) {
        let rest = &line[at..];
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        let Some(Ok(Value::Object(map))) = values.next() else {
            continue;
        };
        let allowed = ["message", "error", "error_description", "scope"];
        if !map.keys().all(|k| allowed.contains(&k.as_str()))
            || !(map.contains_key("message") || map.contains_key("error"))
        {
            continue;
        }
        let mut parts = Vec::new();
        for key in ["error", "error_description", "message"] {
            if let Some(value) = map.get(key) {
                let text = flatten_message(value);
                if !text.is_empty() {
                    parts.push(text);
                }
            }
        }
        let message = parts.join(": ");
        let code = LEADING_STATUS
            .captures(&message)
            .and_then(|c| status(&c[1]));
        return Some((code, message));
    }
    let pair = JSON_PAIR.captures(line)?;
    let value: String = serde_json::from_str(&format!("\"{}\"", &pair[1])).ok()?;
    let code = LEADING_STATUS.captures(&value).and_then(|c| status(&c[1]));
    let known = [
        "is missing",
        "is invalid",
        "is empty",
        "Not Found",
        "Forbidden",
        "Unauthorized",
    ];
    (code.is_some() || known.iter().any(|k| value.contains(k))).then_some((code, value))
}

/// `"404 Not Found"` → itself; `{"base":["Reference not found"]}` → `Reference not found`;
/// `{"ref":["is invalid"]}` → `ref is invalid`.
fn flatten_message(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(flatten_message)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let text = flatten_message(v);
                if k == "base" {
                    text
                } else {
                    format!("{k} {text}")
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

const TOKEN_VALUE: &str =
    r#"(?P<val>\$\{[^}\s]*\}|\$\([^)]*\)|(?:gl[a-z]{1,10}-)?\[[A-Z-]+\]|[^\s"'&;,)}]*)"#;

static TOKEN_PARAM: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r#"(?:^|[\s"'?&{{;(,@])["']?(?:token|private_token|job_token)["']?(?:\s+=\s+["']?|=(?:\s*["'])?|\s*:\s*["']?){TOKEN_VALUE}"#
    ))
});
static TOKEN_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r#"(?i:private-token|job-token|deploy-token)["']?\s*[:=]\s*["']?{TOKEN_VALUE}"#
    ))
});
static TOKEN_AUTHORIZATION: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r#"(?i:authorization)["']?\s*[:=]\s*["']?(?:(?i:bearer|basic|token)\s+)?{TOKEN_VALUE}"#
    ))
});
static PYTHON_ENV: LazyLock<Regex> = LazyLock::new(|| {
    re(r#"os\.(?:environ\[|getenv\(|environ\.get\()\s*['"]([A-Za-z_][A-Za-z0-9_]*)['"]"#)
});
static VARIABLE_NAME: LazyLock<Regex> =
    LazyLock::new(|| re(r"^\$(?:env:)?\{?([A-Za-z_][A-Za-z0-9_]*)|^%([A-Za-z_][A-Za-z0-9_]*)%$"));

/// How a request line passes its token: `token=$NAME`, `-F "token=${NAME}"`, `token=` (empty),
/// `"token": "…"`, `PRIVATE-TOKEN: …`, `JOB-TOKEN: $CI_JOB_TOKEN`, `Authorization: Bearer …`.
/// A literal value gives only its kind.
pub fn token_use(line: &str) -> Option<TokenUse> {
    find_token_use(line).map(|(usage, _)| usage)
}

/// The earliest token on the line, and whether it was sent as a header.
fn find_token_use(line: &str) -> Option<(TokenUse, bool)> {
    let param = TOKEN_PARAM.captures(line).map(|c| (c, false));
    let header = TOKEN_HEADER
        .captures(line)
        .or_else(|| TOKEN_AUTHORIZATION.captures(line))
        .map(|c| (c, true));
    let (caps, is_header) = [param, header]
        .into_iter()
        .flatten()
        .min_by_key(|(c, _)| c.get(0).map_or(usize::MAX, |m| m.start()))?;
    let value = caps.name("val").map_or("", |m| m.as_str());
    Some((classify_token_value(value, line), is_header))
}

fn classify_token_value(value: &str, line: &str) -> TokenUse {
    let value = value.trim();
    if value.is_empty() {
        return TokenUse::Empty;
    }
    if value.contains("[MASKED]") {
        return TokenUse::Masked;
    }
    if value.starts_with("$(") {
        return TokenUse::Variable(value.to_owned());
    }
    if let Some(c) = VARIABLE_NAME.captures(value) {
        let name = c.get(1).or(c.get(2)).map_or("", |m| m.as_str());
        return TokenUse::Variable(name.to_owned());
    }
    if value.starts_with("os.") {
        if let Some(c) = PYTHON_ENV.captures(line) {
            return TokenUse::Variable(c[1].to_owned());
        }
    }
    TokenUse::Literal {
        kind: token_kind(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<SignalKind> {
        scan_str(text).signals.into_iter().map(|s| s.kind).collect()
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
            assert_eq!(one(text), SignalKind::BridgeFailure { reason }, "{text}");
        }
    }

    #[test]
    fn pipeline_creation_errors_are_recognised() {
        let found = kinds("downstream pipeline can not be created, the resulting pipeline would have been empty. Review the rules configuration for the relevant jobs.");
        assert!(found.contains(&SignalKind::BridgeFailure {
            reason: "downstream_pipeline_creation_failed"
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
        log.push_str("curl: (7) Failed to connect to old.example.com port 443 after 1 ms: Connection refused\n");
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
        };
        let scan = scan_reader(Cursor::new(log.as_bytes()), &opts).unwrap();
        assert_eq!(scan.signals.len(), 2);
        assert_eq!(scan.signals[0].line_no, last_failure);
        assert_eq!(
            scan.signals[0].kind,
            curl(
                6,
                "Could not resolve host: gitlab.example.com",
                Some("gitlab.example.com")
            )
        );
        assert_eq!(scan.signals[1].line_no, last_failure + 1);
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
            },
        )
        .unwrap();
        assert_eq!(all.signals.len(), 3);
        assert_eq!(all.signals[0].line_no, 1);
        assert!(all.peak_buffer_bytes <= 2 * chunk);
    }

    #[test]
    fn lines_split_across_chunk_boundaries_are_found_whole_with_true_numbers() {
        let chunk = MIN_CHUNK_BYTES;
        let evidence =
            "curl: (28) Operation timed out after 30000 milliseconds with 0 bytes received";
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
                },
            )
            .unwrap();
            assert_eq!(scan.signals.len(), 1, "shift {shift}: {:?}", scan.signals);
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
            },
        )
        .unwrap();
        assert_eq!(scan.signals.len(), 1, "{:?}", scan.signals);
        assert_eq!(scan.signals[0].line_no, 2);
        assert_eq!(
            scan.signals[0].kind,
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
            reason: "downstream_pipeline_creation_failed"
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
            kinds(
                "[26/30] ops/deb-repo ... HTTP 429 {\"message\":{\"error\":\"Try again later.\"}}"
            )[0],
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
}
