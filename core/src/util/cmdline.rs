//! exitless options on the boot loader's command line (`/chosen/bootargs`).
//!
//! Options are whitespace-separated `exitless.<name>=<value>` words; every other word belongs
//! to someone else and is ignored. Known options:
//!
//! * `exitless.log=error|warn|info|debug|trace|off`: the log level (default `info`).
//!
//! Invariant: parsing never fails; an unknown value is reported and the default kept.

use log::LevelFilter;

/// Options read from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options<'a> {
    /// Log level.
    pub log_level: LevelFilter,
    /// A value that was not understood, to report once the console is up: (option, value).
    pub bad: Option<(&'a str, &'a str)>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            log_level: LevelFilter::Info,
            bad: None,
        }
    }
}

/// Parses the exitless options out of `bootargs`.
pub fn parse(bootargs: &str) -> Options<'_> {
    let mut opts = Options::default();
    for word in bootargs.split_ascii_whitespace() {
        let Some(rest) = word.strip_prefix("exitless.") else {
            continue;
        };
        let (name, value) = rest.split_once('=').unwrap_or((rest, ""));
        match name {
            "log" => match parse_level(value) {
                Some(level) => opts.log_level = level,
                None => opts.bad = Some((word, value)),
            },
            _ => opts.bad = Some((word, value)),
        }
    }
    opts
}

fn parse_level(s: &str) -> Option<LevelFilter> {
    Some(match s {
        "off" => LevelFilter::Off,
        "error" => LevelFilter::Error,
        "warn" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_level_is_read_from_bootargs() {
        let o = parse("console=ttyAMA0 exitless.log=debug earlycon");
        assert_eq!(o.log_level, LevelFilter::Debug);
        assert_eq!(o.bad, None);
    }

    #[test]
    fn default_log_level_is_info() {
        assert_eq!(parse("").log_level, LevelFilter::Info);
        assert_eq!(parse("loglevel=8 quiet").log_level, LevelFilter::Info);
    }

    #[test]
    fn unknown_value_is_reported_and_default_kept() {
        let o = parse("exitless.log=loud");
        assert_eq!(o.log_level, LevelFilter::Info);
        assert_eq!(o.bad, Some(("exitless.log=loud", "loud")));
        assert!(parse("exitless.colour=1").bad.is_some());
    }
}
