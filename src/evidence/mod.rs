//! Evidence read from text: job logs (streamed signals) and CI configuration (trigger jobs).

pub mod ci_config;
pub mod ci_source;
pub mod log_scan;
pub mod names;
