//! The binary's log: the library crates report through `tracing`; this installs the subscriber
//! that prints their events on stderr, and the progress bars on a terminal.
//!
//! Lines stay as they were before `tracing`: an INFO event is its message alone (`step 2/4 |
//! …`), a warning starts with `warning: `, an error with `error: `, DEBUG and TRACE events with
//! their level and target. What is shown: `RUST_LOG` when set (an `EnvFilter` directive such as
//! `orpo_train=debug`); else `-q` shows warnings and errors only, `-v` adds the DEBUG events of
//! our crates, and the default is INFO from our crates and warnings from the others.

use std::fmt;
use std::io::IsTerminal;
use std::sync::Arc;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// How much the log shows (`-q`, `-v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Warnings and errors only.
    Quiet,
    /// INFO from our crates (the run's progress lines), warnings from the others.
    Normal,
    /// DEBUG from our crates.
    Verbose,
}

/// Our crates' targets (the binary's is `orpo`).
const OURS: [&str; 6] = [
    "orpo",
    "orpo_train",
    "orpo_data",
    "orpo_model",
    "orpo_loss",
    "orpo_kernels",
];

/// The filter `verbosity` stands for when `RUST_LOG` is unset.
fn directives(verbosity: Verbosity) -> String {
    let ours = match verbosity {
        Verbosity::Quiet => return "warn".into(),
        Verbosity::Normal => "info",
        Verbosity::Verbose => "debug",
    };
    let mut out = String::from("warn");
    for target in OURS {
        out.push_str(&format!(",{target}={ours}"));
    }
    out
}

/// Installs the stderr subscriber, and the progress bars when stderr is a terminal and the log
/// is not quiet.
pub fn install(verbosity: Verbosity) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => EnvFilter::new(value),
        _ => EnvFilter::new(directives(verbosity)),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(PlainLines)
        .with_writer(|| orpo_train::progress::StderrAboveBars)
        .try_init();
    if verbosity != Verbosity::Quiet && std::io::stderr().is_terminal() {
        orpo_train::progress::set_global(Arc::new(orpo_train::progress::BarProgress::default()));
    }
}

/// One line per event, as the lines were written before `tracing` (see the module docs).
struct PlainLines;

impl<S, N> FormatEvent<S, N> for PlainLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        match *meta.level() {
            Level::ERROR => write!(writer, "error: ")?,
            Level::WARN => write!(writer, "warning: ")?,
            Level::INFO => {}
            Level::DEBUG => write!(writer, "debug: {}: ", meta.target())?,
            Level::TRACE => write!(writer, "trace: {}: ", meta.target())?,
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_sets_our_crates_level() {
        assert_eq!(directives(Verbosity::Quiet), "warn");
        let normal = directives(Verbosity::Normal);
        assert!(normal.starts_with("warn,") && normal.contains("orpo_train=info"));
        assert!(directives(Verbosity::Verbose).contains("orpo_data=debug"));
        for v in [Verbosity::Quiet, Verbosity::Normal, Verbosity::Verbose] {
            // Each is a valid EnvFilter.
            directives(v).parse::<EnvFilter>().unwrap();
        }
    }
}
