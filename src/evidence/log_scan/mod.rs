//! Signals in job logs, read streamed from the end with bounded memory.
//!
//! A log is read backwards in chunks (the failure is near the end). A literal prefilter over the
//! raw bytes of each chunk finds candidate lines; only those are cleaned (ANSI colours, GitLab
//! section markers, carriage-return progress output), redacted and confirmed with patterns.
//! Everything else is only counted, so line numbers are true ones from the start of the log.

use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::sync::LazyLock;

use aho_corasick::{packed, AhoCorasick, Input, Span};
use serde::Serialize;

mod lines;
mod patterns;
#[cfg(test)]
mod tests;
mod token;

use self::lines::{cap_line, clean_line};
use self::patterns::extract;
pub use self::token::token_use;
pub use super::trigger_call::{Tool, TriggerCall, TriggerEndpoint};
use crate::gitlab::model::FailureReason;
use crate::redact::{redact, TokenKind};

/// How a log is read.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Bytes read at a time, from the end of the log backwards. Default 1 MiB; at least 1 KiB.
    /// The scanner holds at most twice this much log text at once.
    pub chunk_bytes: usize,
    /// Signals kept, nearest the end of the log first. Default 200. Once reached, the rest of
    /// the log is only counted (for line numbers), not examined.
    pub max_signals: usize,
    /// Examine every line, not only those the prefilter picks: for short texts pasted by
    /// people (a bridge message, an API answer, a report), where the catalogue's messages
    /// may stand on lines with no anchor. Default false.
    pub every_line: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            chunk_bytes: 1 << 20,
            max_signals: 200,
            every_line: false,
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

impl Signal {
    /// The line with its number, as evidence shows it: `12: curl: (6) Could not resolve host`.
    pub fn numbered(&self) -> String {
        format!("{}: {}", self.line_no, self.line)
    }
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
    BridgeFailure { reason: FailureReason },
    /// `ERROR: Job failed: exit code 1`.
    JobFailed {
        exit_code: Option<i32>,
        message: String,
    },
    /// `Job succeeded`.
    JobSucceeded,
    /// A message of the catalogue ([`crate::evidence::catalogue`]); `row` is its id.
    Message { row: &'static str },
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
    /// Whether the signal counts towards [`ScanOptions::max_signals`]: catalogue messages ride
    /// along with their line and are bounded on their own.
    fn counts(&self) -> bool {
        !matches!(self, SignalKind::Message { .. })
    }

    /// An answer to a request: its status, when stated, and its message in lower case (empty
    /// for a bare status line). `None` for other signals, and for a client error without a
    /// status.
    pub fn answer(&self) -> Option<(Option<u16>, String)> {
        match self {
            SignalKind::GitlabError { status, message } => {
                Some((*status, message.to_ascii_lowercase()))
            }
            SignalKind::HttpStatus { status } => Some((Some(*status), String::new())),
            SignalKind::ClientError {
                status: Some(status),
                message,
                ..
            } => Some((Some(*status), message.to_ascii_lowercase())),
            _ => None,
        }
    }

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
        catalogue_failure(message)
    }
}

/// The network failure a client message of the catalogue names (Node's `ENOTFOUND`, Go's
/// `x509: …`, .NET's `actively refused it`, …), for texts the phrases above do not know.
fn catalogue_failure(message: &str) -> Option<NetworkFailure> {
    use crate::cause::CauseId;
    crate::evidence::catalogue::find(message)
        .into_iter()
        .filter(|r| r.origin == crate::evidence::catalogue::Origin::Client)
        .find_map(|r| match r.causes.first()? {
            CauseId::NetworkDns => Some(NetworkFailure::Dns),
            CauseId::NetworkConnect => Some(NetworkFailure::Connect),
            CauseId::NetworkTimeout => Some(NetworkFailure::Timeout),
            CauseId::NetworkTls => Some(NetworkFailure::Certificate),
            CauseId::NetworkProxy => Some(NetworkFailure::Proxy),
            _ => None,
        })
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
    /// Lines only the catalogue reads (it reads every line examined).
    pub const CATALOGUE: u32 = 1 << 16;
    /// Every family.
    pub const ALL: u32 = u32::MAX;
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
        // Client errors the catalogue reads: Node's `getaddrinfo ENOTFOUND`, `ECONNREFUSED`,
        // `ECONNRESET`, and Go's `x509: …` certificate errors.
        ("ENOTFOUND", CATALOGUE),
        ("ECONN", CATALOGUE),
        ("x509: ", CATALOGUE),
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
            let nl = examine(window, region, nl_after, opts.every_line, &mut pending);
            if pending.iter().filter(|p| p.kind.counts()).count() >= opts.max_signals {
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
    keep_last(&mut signals, opts.max_signals);
    scan.signals = tidy(signals);
    Ok(scan)
}

/// Keeps the last `max` signals that count, the catalogue messages of their lines, and at most
/// `max` messages in all.
fn keep_last(signals: &mut Vec<Signal>, max: usize) {
    let mut typed = 0;
    let mut messages = 0;
    let mut first_kept = signals.len();
    for (i, s) in signals.iter().enumerate().rev() {
        if s.kind.counts() {
            if typed == max {
                break;
            }
            typed += 1;
        } else {
            if messages == max {
                break;
            }
            messages += 1;
        }
        first_kept = i;
    }
    signals.drain(..first_kept);
}

/// Scans text already in memory (a bridge message, stdin, a short log) the same way, with a
/// buffer no larger than the text needs.
pub fn scan_str(text: &str) -> Scan {
    scan_bytes(text.as_bytes(), false)
}

/// Scans bytes in memory (invalid UTF-8 and NUL bytes are read lossily); `every_line`: see
/// [`ScanOptions::every_line`].
pub fn scan_bytes(bytes: &[u8], every_line: bool) -> Scan {
    let defaults = ScanOptions::default();
    let opts = ScanOptions {
        chunk_bytes: bytes.len().clamp(MIN_CHUNK_BYTES, defaults.chunk_bytes),
        every_line,
        ..defaults
    };
    scan_reader(Cursor::new(bytes), &opts).expect("reading from memory cannot fail")
}

/// Examines the complete lines in `window[region..]`; returns the newlines counted there.
fn examine(
    window: &[u8],
    region: usize,
    nl_after_window: u64,
    every_line: bool,
    out: &mut Vec<Pending>,
) -> u64 {
    if every_line {
        return examine_every_line(window, region, nl_after_window, out);
    }
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

/// Examines each line of `window[region..]` (pieces of overlong lines), every family on each.
fn examine_every_line(
    window: &[u8],
    region: usize,
    nl_after_window: u64,
    out: &mut Vec<Pending>,
) -> u64 {
    let text = &window[region..];
    let region_nl = count_newlines(text);
    for (nl_before, line) in (0u64..).zip(text.split(|&b| b == b'\n')) {
        for piece in line.chunks(MAX_SEGMENT_BYTES) {
            for (line, kind) in examine_line_as(piece, family::ALL) {
                out.push(Pending {
                    nl_after: nl_after_window + (region_nl - nl_before),
                    line,
                    kind,
                });
            }
        }
    }
    region_nl
}

/// Confirms one candidate line: cleans, redacts and extracts its signals.
fn examine_line(raw: &[u8]) -> Vec<(String, SignalKind)> {
    examine_line_as(raw, families_of(raw))
}

/// Cleans, redacts and extracts the signals of the given families from one line.
fn examine_line_as(raw: &[u8], families: u32) -> Vec<(String, SignalKind)> {
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
