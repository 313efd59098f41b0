//! JSON structured logs, one object per line: `timestamp` (RFC 3339 UTC),
//! `level`, `service`, `function`, `correlation_id`, `message`, then fields.
//!
//! Formatting lives here so every runtime logs the same shape; the platform
//! only supplies a [`LogSink`] (stderr, `console.log`).

use std::cell::RefCell;
use std::fmt;

use serde_json::{Map, Value};

use crate::platform::Clock;

/// The `service` every record names.
pub const SERVICE: &str = "edge-functions";

/// A log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Detail for debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something degraded but handled.
    Warn,
    /// Something failed.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        })
    }
}

/// Where formatted log lines go.
pub trait LogSink {
    /// Writes one JSON line (without trailing newline).
    fn write(&self, level: Level, line: &str);
}

/// Writes lines to standard error (native and WASI).
#[derive(Debug, Default, Clone, Copy)]
pub struct StderrSink;

impl LogSink for StderrSink {
    fn write(&self, _level: Level, line: &str) {
        eprintln!("{line}");
    }
}

/// Keeps lines in memory, for tests.
#[derive(Debug, Default)]
pub struct MemorySink {
    lines: RefCell<Vec<String>>,
}

impl MemorySink {
    /// The lines written so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.borrow().clone()
    }
}

impl LogSink for MemorySink {
    fn write(&self, _level: Level, line: &str) {
        self.lines.borrow_mut().push(line.to_owned());
    }
}

/// A logger bound to one function and one request's correlation id.
#[derive(Clone, Copy)]
pub struct Logger<'a> {
    sink: &'a dyn LogSink,
    clock: &'a dyn Clock,
    function: &'a str,
    correlation_id: &'a str,
}

impl<'a> Logger<'a> {
    /// A logger writing to `sink`.
    pub fn new(
        sink: &'a dyn LogSink,
        clock: &'a dyn Clock,
        function: &'a str,
        correlation_id: &'a str,
    ) -> Self {
        Logger {
            sink,
            clock,
            function,
            correlation_id,
        }
    }

    /// The record for one line, as JSON.
    pub fn record(&self, level: Level, message: &str, fields: Value) -> Value {
        let mut record = Map::new();
        record.insert("timestamp".into(), self.clock.now().to_rfc3339().into());
        record.insert("level".into(), level.to_string().into());
        record.insert("service".into(), SERVICE.into());
        record.insert("function".into(), self.function.into());
        record.insert("correlation_id".into(), self.correlation_id.into());
        record.insert("message".into(), message.into());
        if let Value::Object(fields) = fields {
            for (k, v) in fields {
                record.entry(k).or_insert(v);
            }
        }
        Value::Object(record)
    }

    /// Writes one record; `fields` (a JSON object) are added after the standard ones.
    pub fn log(&self, level: Level, message: &str, fields: Value) {
        self.sink
            .write(level, &self.record(level, message, fields).to_string());
    }

    /// Logs at info level.
    pub fn info(&self, message: &str, fields: Value) {
        self.log(Level::Info, message, fields);
    }

    /// Logs at warn level.
    pub fn warn(&self, message: &str, fields: Value) {
        self.log(Level::Warn, message, fields);
    }

    /// Logs at error level.
    pub fn error(&self, message: &str, fields: Value) {
        self.log(Level::Error, message, fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::FakeClock;
    use crate::platform::Timestamp;

    #[test]
    fn records_have_the_standard_fields_first_and_win_over_fields() {
        let sink = MemorySink::default();
        let clock = FakeClock::at(Timestamp::from_millis(1_795_305_600_123));
        let log = Logger::new(&sink, &clock, "counter", "abc123");
        log.info(
            "hello",
            serde_json::json!({"status": 200, "level": "spoofed"}),
        );
        let line: Value = serde_json::from_str(&sink.lines()[0]).unwrap();
        assert_eq!(line["timestamp"], "2026-11-22T00:00:00.123Z");
        assert_eq!(line["level"], "info");
        assert_eq!(line["service"], "edge-functions");
        assert_eq!(line["function"], "counter");
        assert_eq!(line["correlation_id"], "abc123");
        assert_eq!(line["message"], "hello");
        assert_eq!(line["status"], 200);
    }
}
