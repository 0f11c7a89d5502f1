//! Logging set-up: structured `tracing` events, JSON when the sink is not a terminal, with
//! span fields (such as `delivery_id`) on every line. The sink is a parameter.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::{ConfigError, LogFormat, LogSettings};

/// Installs the global subscriber writing to `sink`. `sink_is_terminal` decides `auto` format.
pub fn init<W>(settings: &LogSettings, sink: W, sink_is_terminal: bool) -> Result<(), ConfigError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&settings.level).map_err(|e| ConfigError::Key {
        key: "log.level".into(),
        reason: e.to_string(),
    })?;
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !sink_is_terminal,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink);
    let result = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init()
    } else {
        builder.with_ansi(sink_is_terminal).try_init()
    };
    // A subscriber may already be installed (tests); that is not an error.
    let _ = result;
    Ok(())
}

/// Replaces the standard panic report (which prints the message as it is, and a panic message
/// may quote a log line) with one whose message is redacted: a `tracing` error event when a
/// subscriber is installed, else one line on stderr. Processing catches panics per delivery;
/// this only decides how they are reported.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = crate::redact::panic_message(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if tracing::dispatcher::has_been_set() {
            tracing::error!(panic = %message, %location, "panic");
        } else {
            eprintln!("trigger-doctor: panic at {location}: {message}");
        }
    }));
}
