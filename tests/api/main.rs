//! Integration tests through the real HTTP server on port 0 and a real SQLite file.

mod browser;
mod check_config;
mod diagnose_cli;
mod diagnosis;
mod fake_chat;
mod fake_gitlab;
mod fake_oauth;
mod fake_selftest;
mod gitlab_client;
mod helpers;
mod history;
mod intake;
mod notify;
mod operations;
mod preflight;
mod preflight_serve;
mod processing;
mod recognition;
mod ui;
mod webdriver;
