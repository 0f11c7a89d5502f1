//! Evidence read from text: job logs (streamed signals), CI configuration (trigger jobs) and the
//! calls to GitLab's trigger API in either. Pure: text in, signals out; nothing here does I/O.

pub mod catalogue;
pub mod ci_config;
pub mod ci_source;
pub mod log_scan;
pub mod names;
pub mod project_settings;
pub mod shell;
pub mod trigger_call;
mod yaml;
