//! Command line: `serve`, `classify`, `diagnose`, `check-config` and `replay`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use trigger_doctor::config::Settings;
use trigger_doctor::gitlab::recording::Tape;
use trigger_doctor::gitlab::ProjectRef;
use trigger_doctor::ids::PipelineId;
use trigger_doctor::pipeline::{self, Stages};
use trigger_doctor::server::Application;
use trigger_doctor::{check_config, report, telemetry};

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
    /// Read a job log, an API error body or a bridge failure message on stdin and print the
    /// trigger-failure verdict from the text alone (offline, no GitLab needed).
    Classify {
        /// The job's failure_reason as GitLab reports it (e.g. script_failure,
        /// downstream_bridge_project_not_found).
        #[arg(long, value_name = "REASON")]
        failure_reason: Option<String>,
        /// Print JSON: {"trigger_failure": bool, "causes": [{"id", "confidence", "evidence"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Diagnose a pipeline from a terminal against the configured GitLab and print the report.
    Diagnose {
        /// A pipeline URL (https://gitlab.example.com/group/app/-/pipelines/123), or a project
        /// path or id followed by the pipeline id.
        target: String,
        /// The pipeline id, when TARGET is a project.
        pipeline: Option<u64>,
        /// Print JSON (the recognition and every diagnosis with its facts and findings).
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// Print the GitLab comment (Markdown, with its hidden marker) the diagnosis makes.
        #[arg(long)]
        markdown: bool,
        /// Also post the diagnosis: create or update the one comment on the pipeline's merge
        /// request or commit (through the configured store, as the service would).
        #[arg(long)]
        post: bool,
        /// Keep every GitLab exchange of this diagnosis (secrets and personal data taken out)
        /// in DIR/gitlab-exchanges.json, to attach to a bug report.
        #[arg(long, value_name = "DIR", conflicts_with = "replay")]
        record: Option<PathBuf>,
        /// Answer every GitLab call from the recording in DIR instead of asking GitLab.
        #[arg(long, value_name = "DIR", conflicts_with = "post")]
        replay: Option<PathBuf>,
    },
    /// Check the configuration, the bot's token and each project's webhook against GitLab.
    ///
    /// Validates the configuration, then asks GitLab about the bot's token (scopes, expiry), its
    /// user, the instance version and whether each --project has a webhook pointing at this
    /// service. Prints one ok/warning/error line per check and a summary. Exit code: 0 without
    /// errors (warnings allowed), 1 with errors, 2 when the configuration is invalid.
    CheckConfig {
        /// A project (full path such as group/app, or id) whose webhooks must point at this
        /// service. Repeat for several projects. Listing hooks needs the Maintainer role.
        #[arg(long = "project", value_name = "PATH_OR_ID")]
        projects: Vec<String>,
        /// Where GitLab reaches this service, e.g. https://td.example.com: a hook counts only
        /// when its URL starts with this (and ends with /webhooks/gitlab).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Map who triggers whom: read the CI configuration of every project of the groups (and
    /// the projects) named, on its default branch, and print each trigger edge: `trigger:` jobs,
    /// child pipelines and scripts that call the trigger API.
    Preflight {
        /// A group (full path or id) whose projects, subgroups included, are mapped. Repeat for
        /// several groups.
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// A project (full path or id) to map as well. Repeat for several projects.
        #[arg(long = "project", value_name = "PATH_OR_ID")]
        projects: Vec<String>,
        /// Output: text, json, mermaid (renders in GitLab Markdown) or dot (Graphviz).
        #[arg(long, default_value = "text", value_name = "FORMAT")]
        format: String,
    },
    /// Feed saved webhook payloads (JSON files) through the processing stages, against the
    /// configured GitLab, and print what each one produced, one JSON line per file. The event
    /// kind is read from the payload's object_kind. Nothing is stored.
    Replay {
        /// Webhook payload files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::install_panic_hook();
    let cli = Cli::parse();
    if let Command::Classify {
        failure_reason,
        json,
    } = &cli.command
    {
        return classify(failure_reason.as_deref(), *json);
    }
    if let Command::CheckConfig { projects, url } = &cli.command {
        return check_config(cli.config.as_deref(), projects, url.as_deref()).await;
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("trigger-doctor: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Serve => serve(settings).await,
        Command::Replay { files } => replay(settings, &files).await,
        Command::Classify { .. } | Command::CheckConfig { .. } => {
            unreachable!("handled before the configuration is read")
        }
        Command::Preflight {
            groups,
            projects,
            format,
        } => preflight(settings, groups, projects, &format).await,
        Command::Diagnose {
            target,
            pipeline,
            json,
            markdown,
            post,
            record,
            replay,
        } => {
            let tape = match (record, replay) {
                (Some(dir), _) => Some(Tape::record(&dir)),
                (None, Some(dir)) => match Tape::replay(&dir) {
                    Ok(tape) => Some(tape),
                    Err(e) => {
                        eprintln!("trigger-doctor: {e}");
                        return ExitCode::from(2);
                    }
                },
                (None, None) => None,
            };
            let options = DiagnoseOptions {
                json,
                markdown,
                post,
            };
            diagnose(settings, &target, pipeline, options, tape.map(Arc::new)).await
        }
    }
}

/// Webhook bodies are large, short-lived buffers. glibc's malloc raises its mmap threshold
/// once the first such buffer is freed and from then on keeps them in its heap, which it seldom
/// gives back: memory taken by a burst stays taken. A fixed threshold keeps every allocation of
/// 128 KiB or more in a mapping of its own, returned to the system when it is freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_buffers_to_the_system() {
    // SAFETY: `mallopt` only sets a tuning parameter of the allocator; it is called once,
    // before the server allocates any body.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_buffers_to_the_system() {}

async fn serve(settings: Settings) -> ExitCode {
    return_large_buffers_to_the_system();
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

/// `group/app` and `123` from `https://host/group/app/-/pipelines/123`, or from two arguments.
fn pipeline_target(
    target: &str,
    pipeline: Option<u64>,
) -> Result<(ProjectRef, PipelineId), String> {
    if let Some(id) = pipeline {
        return Ok((ProjectRef::parse(target), PipelineId(id)));
    }
    let rest = target
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or("give a pipeline URL, or a project and a pipeline id")?;
    let path = rest.split_once('/').map(|(_, p)| p).unwrap_or("");
    let (project, tail) = path
        .split_once("/-/pipelines/")
        .ok_or("the URL is not a pipeline URL (…/-/pipelines/<id>)")?;
    let id = tail
        .split(['/', '?', '#'])
        .next()
        .and_then(|i| i.parse().ok())
        .ok_or("the URL does not end with a pipeline id")?;
    Ok((ProjectRef::parse(project), PipelineId(id)))
}

/// How `diagnose` prints and whether it posts.
struct DiagnoseOptions {
    json: bool,
    markdown: bool,
    post: bool,
}

async fn diagnose(
    settings: Settings,
    target: &str,
    pipeline: Option<u64>,
    options: DiagnoseOptions,
    tape: Option<Arc<Tape>>,
) -> ExitCode {
    let DiagnoseOptions {
        json,
        markdown,
        post,
    } = options;
    let terminal = std::io::stderr().is_terminal();
    let _ = telemetry::init(&settings.log, std::io::stderr, terminal);
    let progress = |text: &str| {
        if terminal {
            eprintln!("{text}");
        }
    };
    let (project, pipeline) = match pipeline_target(target, pipeline) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("trigger-doctor: {e}");
            return ExitCode::from(2);
        }
    };
    let found = match pipeline::diagnose_on_request(
        &settings,
        &project,
        pipeline,
        post,
        tape.clone(),
        &progress,
    )
    .await
    {
        Ok(found) => found,
        Err(e) => {
            eprintln!("trigger-doctor: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(tape) = &tape {
        match tape.save() {
            Ok(Some(path)) => eprintln!("GitLab exchanges recorded in {}", path.display()),
            Ok(None) => {}
            Err(e) => {
                eprintln!("trigger-doctor: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(n) = &found.notified {
        let link = n.note_url.as_deref().map(|u| format!(": {u}"));
        eprintln!(
            "comment {} on {}{}",
            n.comment,
            n.target,
            link.unwrap_or_default()
        );
    }
    if json {
        let out = serde_json::json!({"recognition": found.recognition, "diagnoses": found.diagnoses, "gitlab_calls": found.gitlab_calls});
        println!("{out}");
    } else if found.diagnoses.is_empty() {
        print!("{}", report::render_no_failure(&found.recognition));
    } else if markdown {
        print!("{}", found.report.map(|r| r.body).unwrap_or_default());
    } else {
        for d in &found.diagnoses {
            print!("{}", report::render_text(d));
        }
    }
    ExitCode::SUCCESS
}

/// `preflight`: the trigger map of the groups and projects named.
async fn preflight(
    settings: Settings,
    groups: Vec<String>,
    projects: Vec<String>,
    format: &str,
) -> ExitCode {
    use trigger_doctor::preflight::{self, render};
    let Some(format) = render::Format::parse(format) else {
        eprintln!("trigger-doctor: --format must be text, json, mermaid or dot");
        return ExitCode::from(2);
    };
    let groups = if groups.is_empty() && projects.is_empty() {
        settings.preflight.groups.clone()
    } else {
        groups
    };
    if groups.is_empty() && projects.is_empty() {
        eprintln!(
            "trigger-doctor: name at least one --group or --project to map (or set preflight.groups)"
        );
        return ExitCode::from(2);
    }
    let terminal = std::io::stderr().is_terminal();
    let _ = telemetry::init(&settings.log, std::io::stderr, terminal);
    let mut client = trigger_doctor::gitlab::ClientSettings::from_settings(&settings.gitlab);
    // A sweep reads every project: the per-diagnosis call budget does not apply.
    client.max_calls_per_session = u32::MAX;
    let gitlab = match trigger_doctor::gitlab::GitlabClient::new(client, None) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("trigger-doctor: cannot set up the GitLab client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let session = gitlab.session(None, true);
    let scope = preflight::Scope { groups, projects };
    let progress = |done: usize, total: usize| {
        if terminal {
            eprint!("\rmapping projects: {done}/{total}");
            if done == total {
                eprintln!();
            }
        }
    };
    let place = preflight::Where::from_settings(&settings);
    match preflight::map(&session, &scope, &place, progress).await {
        Ok(map) => {
            print!("{}", render::render(&map, format));
            if map.confirmed() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("trigger-doctor: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `check-config`: an invalid configuration is reported like any other check, with exit code 2.
async fn check_config(
    file: Option<&std::path::Path>,
    projects: &[String],
    url: Option<&str>,
) -> ExitCode {
    let settings = match Settings::load(file) {
        Ok(s) => s,
        Err(e) => {
            print!(
                "{}",
                check_config::Report::invalid_configuration(&e).render()
            );
            return ExitCode::from(2);
        }
    };
    if let Some(url) = url {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            eprintln!("trigger-doctor: --url must be the http(s) URL GitLab reaches this service at, e.g. https://td.example.com");
            return ExitCode::from(2);
        }
    }
    let _ = telemetry::init(
        &settings.log,
        std::io::stderr,
        std::io::stderr().is_terminal(),
    );
    let options = check_config::Options {
        config_file: file.map(PathBuf::from),
        projects: projects.iter().map(|p| ProjectRef::parse(p)).collect(),
        service_url: url.map(str::to_string),
    };
    let report = check_config::run(&settings, &options).await;
    print!("{}", report.render());
    ExitCode::from(report.exit_code())
}

/// Most bytes of standard input `classify` reads.
const MAX_CLASSIFY_INPUT: u64 = 256 * 1024 * 1024;

fn classify(failure_reason: Option<&str>, json: bool) -> ExitCode {
    use std::io::Read;
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin()
        .take(MAX_CLASSIFY_INPUT)
        .read_to_end(&mut input)
    {
        eprintln!("trigger-doctor: cannot read standard input: {e}");
        return ExitCode::from(2);
    }
    let verdict = trigger_doctor::classify::classify_bytes(&input, failure_reason);
    if json {
        println!(
            "{}",
            serde_json::to_string(&verdict).expect("verdicts serialise")
        );
    } else {
        print!("{}", trigger_doctor::classify::render_text(&verdict));
    }
    ExitCode::SUCCESS
}

async fn replay(settings: Settings, files: &[PathBuf]) -> ExitCode {
    let _ = telemetry::init(
        &settings.log,
        std::io::stderr,
        std::io::stderr().is_terminal(),
    );
    let stages = match Stages::standalone(&settings, None) {
        Ok(stages) => stages,
        Err(e) => {
            eprintln!("trigger-doctor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    for path in files {
        let name = path.display().to_string();
        let line = match std::fs::read(path) {
            Err(e) => Err(format!("cannot read: {e}")),
            Ok(body) => stages.replay(&body).await.map_err(|e| e.to_string()),
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
