//! GitLab REST API: the transport (pacing, retries, memo, cache, typed errors), the typed calls
//! made over it, and the types they return. Knows nothing of webhook payloads.

mod endpoints;
pub mod model;
pub mod recording;
mod transport;

pub use endpoints::{encode, JobTrace, ProjectRef, TRIGGER_EXPIRY_SINCE};
pub use transport::{ClientSettings, GitlabClient, GitlabError, Session};
