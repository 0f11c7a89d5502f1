//! trigger-doctor: receives GitLab webhooks, recognises failed pipeline triggers, checks each
//! known cause live against the GitLab API and reports one diagnosis where people look.
//!
//! A delivery travels: `server` → `webhook` (verify, store) → `store` (durable queue) →
//! `worker` (claims, settles) → `pipeline` (recognise → gather → check → rank → render →
//! deliver through `notify`), whose outcome the worker records; `api` serves that history.

pub mod cause;
pub mod check_config;
pub mod classify;
pub mod config;
pub mod diagnosis;
pub mod evidence;
pub mod gitlab;
pub mod history_api;
pub mod ids;
pub mod metrics;
pub mod notify;
pub mod pipeline;
pub mod preflight;
pub mod recognise;
pub mod redact;
pub mod report;
pub mod retry;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod timestamp;
pub mod ui;
pub mod webhook;
pub mod worker;
