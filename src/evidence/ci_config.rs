//! The CI configuration of a pipeline: trigger jobs, their scripts and variables.
