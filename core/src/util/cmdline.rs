//! exitless options on the boot loader's command line (`/chosen/bootargs`).
//!
//! Options are whitespace-separated `exitless.<name>=<value>` words; every other word belongs
//! to someone else and is ignored. Known options:
//!
//! * `exitless.log=error|warn|info|debug|trace|off`: the log level (default `info`).
//! * `exitless.test_fatal=<VM name>[:el2]`: for the boot tests of the fatal-error policy only:
//!   exitless breaks its own invariant while handling that VM's vCPU 0's 1000th exit, with a
//!   panic or (`:el2`) an EL2 data abort. Never set it on a machine that matters.
//!
//! Invariant: parsing never fails; an unknown value is reported and the default kept.

use log::LevelFilter;

/// Options read from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options<'a> {
    /// Log level.
    pub log_level: LevelFilter,
    /// `exitless.test_fatal`: the VM whose exit breaks exitless on purpose, and how.
    pub test_fatal: Option<(&'a str, FatalTest)>,
    /// A value that was not understood, to report once the console is up: (option, value).
    pub bad: Option<(&'a str, &'a str)>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            log_level: LevelFilter::Info,
            test_fatal: None,
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
            "test_fatal" => {
                let (vm, kind) = match value.split_once(':') {
                    None => (value, Some(FatalTest::Panic)),
                    Some((vm, "el2")) => (vm, Some(FatalTest::El2Abort)),
                    Some((vm, _)) => (vm, None),
                };
                match kind {
                    Some(k) if !vm.is_empty() => opts.test_fatal = Some((vm, k)),
                    _ => opts.bad = Some((word, value)),
                }
            }
            _ => opts.bad = Some((word, value)),
        }
    }
    opts
}

/// How `exitless.test_fatal` breaks exitless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatalTest {
    /// A Rust panic.
    Panic,
    /// A data abort taken at EL2 (an unexpected EL2 exception).
    El2Abort,
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

    #[test]
    fn test_fatal_names_a_vm_and_how() {
        let o = parse("exitless.test_fatal=alpha");
        assert_eq!(o.test_fatal, Some(("alpha", FatalTest::Panic)));
        let o = parse("exitless.test_fatal=beta:el2");
        assert_eq!(o.test_fatal, Some(("beta", FatalTest::El2Abort)));
        for bad in [
            "exitless.test_fatal=",
            "exitless.test_fatal=a:b",
            "exitless.test_fatal=:el2",
        ] {
            let o = parse(bad);
            assert_eq!(o.test_fatal, None, "{bad}");
            assert!(o.bad.is_some(), "{bad}");
        }
    }
}
