//! JSON structured logs, one object per line: `timestamp` (RFC 3339 UTC),
//! `level`, `service`, `function`, `correlation_id`, `message`, then fields.
//!
//! Formatting lives here so every runtime logs the same shape; the platform
//! only supplies a [`LogSink`] (stderr, `console.log`).

use std::cell::RefCell;
use std::fmt;

use serde::ser::{SerializeMap, Serializer as _};
use serde_json::Value;

use crate::platform::Clock;

/// The `service` every record names.
pub const SERVICE: &str = "edge-functions";

/// The fields every record starts with, in this order; a field of the
/// caller's with one of these names is dropped.
pub const STANDARD_FIELDS: [&str; 6] = [
    "timestamp",
    "level",
    "service",
    "function",
    "correlation_id",
    "message",
];

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

impl Level {
    /// The level's name in a record.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

    /// One line: the standard fields in the documented order, then
    /// `fields` (a JSON object) without those whose names the standard
    /// ones take. Written straight to the line, with no map in between:
    /// this runs on every request.
    pub fn line(&self, level: Level, message: &str, fields: &Value) -> String {
        let mut line = Vec::with_capacity(256);
        let mut serializer = serde_json::Serializer::new(&mut line);
        let written = (|| {
            let mut map = serializer.serialize_map(None)?;
            map.serialize_entry("timestamp", &self.clock.now().to_rfc3339())?;
            map.serialize_entry("level", level.as_str())?;
            map.serialize_entry("service", SERVICE)?;
            map.serialize_entry("function", self.function)?;
            map.serialize_entry("correlation_id", self.correlation_id)?;
            map.serialize_entry("message", message)?;
            if let Value::Object(fields) = fields {
                for (key, value) in fields {
                    if !STANDARD_FIELDS.contains(&key.as_str()) {
                        map.serialize_entry(key, value)?;
                    }
                }
            }
            map.end()
        })();
        match written {
            // serde_json writes UTF-8 only.
            Ok(()) => String::from_utf8(line).unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Writes one line; `fields` (a JSON object) are added after the standard ones.
    pub fn log(&self, level: Level, message: &str, fields: Value) {
        self.sink.write(level, &self.line(level, message, &fields));
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
        let text = &sink.lines()[0];
        let line: Value = serde_json::from_str(text).unwrap();
        let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap();
        let order: Vec<usize> = STANDARD_FIELDS.iter().map(|k| at(k)).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(at("message") < at("status"), "{text}");
        assert_eq!(text.matches("\"level\":").count(), 1, "{text}");
        assert_eq!(line["timestamp"], "2026-11-22T00:00:00.123Z");
        assert_eq!(line["level"], "info");
        assert_eq!(line["service"], "edge-functions");
        assert_eq!(line["function"], "counter");
        assert_eq!(line["correlation_id"], "abc123");
        assert_eq!(line["message"], "hello");
        assert_eq!(line["status"], 200);
    }
}
