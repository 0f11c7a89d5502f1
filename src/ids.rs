//! Identifier newtypes, so a merge request's project-scoped `iid` is never taken for its
//! global `id`, nor a job id for a pipeline id.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

macro_rules! numeric_id {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

numeric_id!(
    /// A project's global id.
    ProjectId,
    /// A pipeline's global id (shown as `#N` in GitLab).
    PipelineId,
    /// A job's (build's or bridge's) global id.
    JobId,
    /// A user's id.
    UserId,
    /// A merge request's global id; not the number people see (that is [`MergeRequestIid`]).
    MergeRequestId,
    /// A merge request's number within its target project (`!N`), used in API paths.
    MergeRequestIid,
    /// A note's (comment's) id.
    NoteId,
    /// A runner's id.
    RunnerId,
);

/// A commit SHA (hex, as GitLab sends it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CommitSha(pub String);

impl fmt::Display for CommitSha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CommitSha {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(serde::de::Error::custom(format!(
                "expected a hexadecimal commit SHA, got {text:?}"
            )));
        }
        Ok(CommitSha(text))
    }
}

/// Reads an optional SHA where GitLab sends `""` or `null` for "none" (for example a note's
/// `commit_id` on a merge request comment).
pub fn optional_sha<'de, D: Deserializer<'de>>(d: D) -> Result<Option<CommitSha>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => CommitSha::deserialize(serde::de::value::StringDeserializer::<D::Error>::new(s))
            .map(Some),
    }
}
