//! The prefix of every log line: time since boot, CPU number and level, so that lines from
//! several CPUs can be told apart and ordered:
//!
//! ```text
//! [    0.012345] cpu0 INFO  exitless 0.1.0 at EL2
//! ```

use core::fmt;

use log::Level;

/// A log line's prefix.
#[derive(Debug, Clone, Copy)]
pub struct Prefix {
    /// Counter ticks since boot.
    pub ticks: u64,
    /// Counter frequency in Hz (0 if unknown: the time is then printed as 0).
    pub freq: u64,
    /// Logical CPU number.
    pub cpu: usize,
    /// Message level.
    pub level: Level,
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, micros) = match self.freq {
            0 => (0, 0),
            freq => (self.ticks / freq, (self.ticks % freq) * 1_000_000 / freq),
        };
        let level = match self.level {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        write!(f, "[{secs:5}.{micros:06}] cpu{} {level} ", self.cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_shows_seconds_microseconds_cpu_and_level() {
        let p = Prefix {
            ticks: 62_500_000 + 625,
            freq: 62_500_000,
            cpu: 3,
            level: Level::Warn,
        };
        assert_eq!(format!("{p}"), "[    1.000010] cpu3 WARN  ");
    }

    #[test]
    fn unknown_frequency_prints_zero_time() {
        let p = Prefix {
            ticks: 12345,
            freq: 0,
            cpu: 0,
            level: Level::Info,
        };
        assert_eq!(format!("{p}"), "[    0.000000] cpu0 INFO  ");
    }
}
