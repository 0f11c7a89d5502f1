//! Command line: `serve` and `replay`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use trigger_doctor::config::Settings;
use trigger_doctor::server::Application;
use trigger_doctor::webhook::event::{self, EventKind};
use trigger_doctor::{telemetry, worker};

/// Diagnoses failed GitLab pipeline triggers and explains the fix on the merge request or commit.
#[derive(Parser)]
#[command(name = "trigger-doctor", version, about, long_about = None)]
struct Cli {
    /// TOML configuration file, laid over the built-in defaults (see config/default.toml).
    /// Environment variables TRIGGER_DOCTOR__SECTION__KEY override both.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: receive webhooks on POST /webhooks/gitlab, store and process them.
    Serve,
    /// Feed saved webhook payloads (JSON files) through the processing stages and print what
    /// each one produced, one JSON line per file. The event kind is read from the payload's
    /// object_kind. Nothing is stored.
    Replay {
        /// Webhook payload files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("trigger-doctor: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Serve => serve(settings).await,
        Command::Replay { files } => replay(settings, &files),
    }
}

async fn serve(settings: Settings) -> ExitCode {
    if let Err(e) = settings.require_webhook_auth() {
        eprintln!("trigger-doctor: {e}");
        return ExitCode::from(2);
    }
    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    if let Err(e) = telemetry::init(&settings.log, std::io::stdout, terminal) {
        eprintln!("trigger-doctor: {e}");
        return ExitCode::from(2);
    }
    if settings.gitlab.token.is_empty() {
        tracing::warn!(
            "gitlab.token is empty: deliveries are stored, but GitLab cannot be queried"
        );
    }
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cannot start");
            eprintln!("trigger-doctor: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "stopped with an error");
            ExitCode::FAILURE
        }
    }
}

fn replay(settings: Settings, files: &[PathBuf]) -> ExitCode {
    let _ = telemetry::init(
        &settings.log,
        std::io::stderr,
        std::io::stderr().is_terminal(),
    );
    let mut failed = false;
    for path in files {
        let name = path.display().to_string();
        let line = match std::fs::read(path) {
            Err(e) => Err(format!("cannot read: {e}")),
            Ok(body) => match EventKind::sniff(&body) {
                None => {
                    Err("not a Pipeline, Job or Note webhook payload (no known object_kind)".into())
                }
                Some(kind) => event::parse(kind, &body)
                    .map(|e| worker::run_stages(kind, &e))
                    .map_err(|e| e.to_string()),
            },
        };
        let json = match line {
            Ok(outcome) => serde_json::json!({"file": name, "outcome": outcome}),
            Err(error) => {
                failed = true;
                serde_json::json!({"file": name, "error": error})
            }
        };
        println!("{json}");
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
