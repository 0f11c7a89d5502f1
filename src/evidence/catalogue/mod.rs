//! The message catalogue: the texts GitLab and the clients people call it with print when a
//! pipeline trigger fails, as data. Each row names where the text comes from (a file of GitLab's
//! source, or the client) and the causes it points at, most likely first.
//!
//! The log scanner matches every row on each line it examines and reports a
//! [`SignalKind::Message`](super::log_scan::SignalKind::Message) for it; a row that is a
//! bridge failure message or a pipeline-creation error also yields the typed signal the
//! checks read (`BridgeFailure`, `CreationError`). `classify` and the live diagnosis read the
//! same signals, so one table serves both.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::log_scan::CreationProblem;
use crate::cause::CauseId;

/// Rows as `id, text, source, says, meaning, [causes]`, all of one origin.
macro_rules! rows {
    ($origin:ident; $( $id:literal, $text:literal, $source:literal, $says:ident, $meaning:expr, [$($cause:ident),*]; )*) => {
        pub(super) const ROWS: &[Row] = &[ $( Row {
            id: $id,
            text: $text,
            origin: super::Origin::$origin,
            source: $source,
            says: Says::$says,
            meaning: $meaning,
            causes: &[$(CauseId::$cause),*],
        }, )* ];
    };
}

mod clients;
mod gitlab;

/// What a message shows on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Says {
    /// A trigger failed: a bridge failure message, a refusal only the trigger API gives. Proof
    /// of a failed trigger without any other context.
    TriggerFailed,
    /// GitLab refused to create a pipeline. A failed trigger when the text is about a trigger
    /// (the same words answer a merge train or a scheduled pipeline).
    PipelineRefused,
    /// A request failed: an API answer or a client's error. A failed trigger when the request
    /// was a trigger call or the text is about one.
    CallFailed,
}

/// The typed meaning a row also has for the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// A bridge job's `failure_reason` (its id as GitLab names it).
    Bridge(&'static str),
    /// A reason GitLab gives for not creating a pipeline.
    Creation(CreationProblem),
    /// Only the causes of the row.
    Causes,
}

/// Where a row's text comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// GitLab prints it; `source` is the file of GitLab's source (or its documentation page).
    Gitlab,
    /// A client prints it; `source` names the client and where its wording is documented.
    Client,
}

/// One message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// Stable id (`gitlab.bridge.project_not_found`), shown with the causes it supports.
    pub id: &'static str,
    /// The words that identify the message, as printed; matched without regard to ASCII case.
    pub text: &'static str,
    pub origin: Origin,
    /// The GitLab source file or the client (and where its wording is documented).
    pub source: &'static str,
    pub says: Says,
    pub meaning: Meaning,
    /// The causes the message points at, most likely first. Empty: it shows a failure whose
    /// cause the message alone does not tell.
    pub causes: &'static [CauseId],
}

/// Every row: GitLab's messages, then the clients'.
pub fn rows() -> impl Iterator<Item = &'static Row> {
    gitlab::ROWS.iter().chain(clients::ROWS.iter())
}

/// The row with this id.
pub fn row(id: &str) -> Option<&'static Row> {
    rows().find(|r| r.id == id)
}

static ALL: LazyLock<Vec<&'static Row>> = LazyLock::new(|| rows().collect());

static MATCHER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .build(ALL.iter().map(|r| r.text))
        .expect("catalogue texts build")
});

/// The rows whose text occurs in `line`, each once, in table order. A row whose text lies
/// inside a longer matching row's text on the same place is dropped (`downstream project could
/// not be found` inside `downstream bridge project could not be found` is one message).
pub fn find(line: &str) -> Vec<&'static Row> {
    let spans: Vec<(usize, usize, usize)> = MATCHER
        .find_overlapping_iter(line)
        .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
        .collect();
    let inside_longer = |&(p, s, e): &(usize, usize, usize)| {
        spans
            .iter()
            .any(|&(q, s2, e2)| q != p && s2 <= s && e <= e2 && e2 - s2 > e - s)
    };
    let mut ids: Vec<usize> = spans
        .iter()
        .filter(|span| !inside_longer(span))
        .map(|&(p, _, _)| p)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter().map(|i| ALL[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_texts_are_unique_and_every_row_names_a_source() {
        let mut ids: Vec<_> = rows().map(|r| r.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "duplicate row id");
        let mut texts: Vec<_> = rows().map(|r| r.text.to_ascii_lowercase()).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), n, "duplicate row text");
        for r in rows() {
            assert!(!r.source.is_empty(), "{}", r.id);
            assert!(r.text.len() >= 4, "{}", r.id);
            if r.origin == Origin::Gitlab {
                assert!(
                    ["app/", "lib/", "ee/", "doc/", "public/", "workhorse/"]
                        .iter()
                        .any(|p| r.source.starts_with(p)),
                    "{}: a GitLab row names a file of GitLab's source: {}",
                    r.id,
                    r.source
                );
                assert!(r.id.starts_with("gitlab."), "{}", r.id);
            } else {
                assert!(!r.id.starts_with("gitlab."), "{}", r.id);
            }
        }
    }

    #[test]
    fn bridge_rows_name_a_bridge_failure_reason() {
        use crate::gitlab::model::FailureReason;
        for r in rows() {
            if let Meaning::Bridge(reason) = r.meaning {
                assert!(
                    FailureReason::from(reason).is_bridge_reason(),
                    "{}: {reason}",
                    r.id
                );
            }
        }
    }

    #[test]
    fn a_line_finds_its_rows_case_blind_and_the_longest_of_nested_texts() {
        let found = find(
            "This job could not be executed because downstream bridge project could not be found",
        );
        let ids: Vec<_> = found.iter().map(|r| r.id).collect();
        assert_eq!(ids, ["gitlab.bridge.project_not_found.long"]);
        let found = find("Failed - No permissions to trigger downstream pipeline");
        assert_eq!(found[0].id, "gitlab.bridge.permissions");
        assert_eq!(found[0].causes[0], CauseId::PermissionRole);
        assert!(find("nothing to see here").is_empty());
        assert!(find("é€ curl: (6) COULD NOT RESOLVE HOST: x")
            .iter()
            .any(|r| r.causes[0] == CauseId::NetworkDns));
    }
}
