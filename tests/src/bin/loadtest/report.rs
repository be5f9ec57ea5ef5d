//! Output: the summary as an aligned table or as one JSON object with stable
//! snake_case keys on stdout, and the live progress line on stderr.

use std::io::{IsTerminal, Write};

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::Value;

use crate::stats::Percentiles;

/// A scenario's summary: named figures, in the order they were added.
#[derive(Debug)]
pub struct Report {
    scenario: &'static str,
    rows: Vec<Row>,
    notes: Vec<String>,
    /// True when the run found a fault (exit code 1).
    pub failed: bool,
}

#[derive(Debug)]
struct Row {
    key: String,
    value: Figure,
    /// Left out of the table (e.g. figures already printed line by line).
    json_only: bool,
}

#[derive(Debug)]
enum Figure {
    Plain(Value),
    /// Named figures kept in their order (a JSON object's would be sorted).
    Group(Vec<(&'static str, Value)>),
}

impl Serialize for Figure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Figure::Plain(v) => v.serialize(s),
            Figure::Group(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl Report {
    pub fn new(scenario: &'static str) -> Self {
        Report {
            scenario,
            rows: Vec::new(),
            notes: Vec::new(),
            failed: false,
        }
    }

    pub fn add(&mut self, key: &str, value: impl Serialize) {
        self.push(key, value, false);
    }

    /// A figure for the JSON object only.
    pub fn add_json_only(&mut self, key: &str, value: impl Serialize) {
        self.push(key, value, true);
    }

    /// Latency percentiles in milliseconds, as `key.p50` and so on.
    pub fn add_latency(&mut self, key: &str, p: Option<Percentiles>) {
        let Some(p) = p else {
            return self.push(key, Value::Null, false);
        };
        let fields = vec![
            ("count", Value::from(p.count)),
            ("p50", Value::from(ms(p.p50))),
            ("p90", Value::from(ms(p.p90))),
            ("p99", Value::from(ms(p.p99))),
            ("p999", Value::from(ms(p.p999))),
            ("max", Value::from(ms(p.max))),
        ];
        self.rows.push(Row {
            key: key.to_owned(),
            value: Figure::Group(fields),
            json_only: false,
        });
    }

    fn push(&mut self, key: &str, value: impl Serialize, json_only: bool) {
        let value = serde_json::to_value(value).expect("report values are plain data");
        self.rows.push(Row {
            key: key.to_owned(),
            value: Figure::Plain(value),
            json_only,
        });
    }

    /// A sentence for the human reader (and a `notes` entry in JSON).
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    pub fn print(&self, json: bool) {
        let mut out = std::io::stdout().lock();
        let text = if json {
            serde_json::to_string(self).expect("a report encodes")
        } else {
            self.table()
        };
        // A closed stdout (`| head`) is not worth a panic.
        let _ = writeln!(out, "{text}");
    }

    fn table(&self) -> String {
        let mut lines = Vec::new();
        for row in self.rows.iter().filter(|r| !r.json_only) {
            match &row.value {
                Figure::Plain(v) => flatten(&row.key, v, &mut lines),
                Figure::Group(fields) => {
                    for (k, v) in fields {
                        flatten(&format!("{}.{k}", row.key), v, &mut lines);
                    }
                }
            }
        }
        let key_width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let value_width = lines.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        let mut out = format!("loadtest {}\n", self.scenario);
        for (key, value) in &lines {
            out.push_str(&format!("  {key:<key_width$}  {value:>value_width$}\n"));
        }
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        out.push_str(if self.failed {
            "result: FAIL"
        } else {
            "result: ok"
        });
        out
    }
}

impl Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Written by hand so the keys keep their order.
        let mut map = s.serialize_map(Some(self.rows.len() + 3))?;
        map.serialize_entry("scenario", self.scenario)?;
        for row in &self.rows {
            map.serialize_entry(&row.key, &row.value)?;
        }
        map.serialize_entry("notes", &self.notes)?;
        map.serialize_entry("passed", &!self.failed)?;
        map.end()
    }
}

/// Nested objects become `outer.inner` rows.
fn flatten(key: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(&format!("{key}.{k}"), v, out);
            }
        }
        Value::Object(_) => out.push((key.to_owned(), "-".into())),
        Value::Null => out.push((key.to_owned(), "-".into())),
        Value::String(s) => out.push((key.to_owned(), s.clone())),
        Value::Array(items) if items.is_empty() => out.push((key.to_owned(), "-".into())),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{key}[{i}]"), v, out);
            }
        }
        Value::Number(n) => out.push((key.to_owned(), number(n))),
        Value::Bool(b) => out.push((key.to_owned(), b.to_string())),
    }
}

fn number(n: &serde_json::Number) -> String {
    match (n.as_u64(), n.as_i64(), n.as_f64()) {
        (Some(u), _, _) => u.to_string(),
        (None, Some(i), _) => i.to_string(),
        (None, None, Some(f)) => format!("{f:.3}"),
        _ => n.to_string(),
    }
}

/// Microseconds as milliseconds, rounded to a microsecond.
pub fn ms(us: u32) -> f64 {
    f64::from(us) / 1000.0
}

/// Rounds a figure for display and JSON alike.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The once-a-second status line, shown only when stderr is a terminal (a
/// log file should not fill with carriage returns).
pub struct Progress {
    enabled: bool,
    shown: bool,
}

impl Progress {
    pub fn new() -> Self {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    pub fn show(&mut self, line: &str) {
        if self.enabled {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
            self.shown = true;
        }
    }

    /// Removes the line, so what follows starts on a clean one.
    pub fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_the_order_rows_were_added_in() {
        let mut r = Report::new("fanout");
        r.add("zeta", 1);
        r.add("alpha", 2.5);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"scenario":"fanout","zeta":1,"alpha":2.5,"notes":[],"passed":true}"#
        );
    }

    #[test]
    fn latency_keeps_percentile_order() {
        let mut r = Report::new("fanout");
        let p = Percentiles {
            count: 2,
            p50: 1500,
            p90: 2000,
            p99: 2000,
            p999: 2000,
            max: 2000,
        };
        r.add_latency("latency_ms", Some(p));
        r.add_latency("none_ms", None);
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains(r#""latency_ms":{"count":2,"p50":1.5,"p90":2.0,"p99":2.0,"p999":2.0,"max":2.0},"none_ms":null"#),
            "{json}"
        );
    }

    #[test]
    fn the_table_flattens_and_aligns() {
        let mut r = Report::new("fanout");
        r.add("lost", 0);
        r.add("rejected", serde_json::json!({"cooldown": 12}));
        r.failed = true;
        assert_eq!(
            r.table(),
            "loadtest fanout\n  lost                0\n  rejected.cooldown  12\nresult: FAIL"
        );
    }
}
