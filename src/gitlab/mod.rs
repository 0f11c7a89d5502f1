//! GitLab REST API: the client and the types it returns.

pub mod client;
pub mod model;

pub use client::{ClientSettings, GitlabClient, GitlabError, JobTrace, ProjectRef, Session};
