//! Log lines as Powertools for AWS Lambda writes them, so that the queries, dashboards and
//! habits of its users work unchanged on Tollgate's logs: one JSON object per line with
//! `level`, `location`, `message`, `timestamp`, `service`, `function_name`,
//! `function_memory_size`, and inside an invocation `function_arn`, `function_request_id`,
//! `cold_start` and `xray_trace_id`; the event's own fields follow at the top level.
//!
//! The per-invocation keys come from the Lambda [`Context`] the handler receives, kept in a
//! task-local for the time of the handler ([`in_invocation`]), so they are right for every
//! handler type (API Gateway, SQS, EventBridge) and would stay right if a process served
//! invocations concurrently. Lines written outside an invocation (start-up) carry the
//! process keys only.
//!
//! `timestamp` is in the line although CloudWatch stamps every line itself: CloudWatch's
//! stamp is the time the line was received and lives beside the message, not in it, so it is
//! lost when lines are exported, forwarded by a subscription or read from `sam logs` output;
//! Powertools puts one in the line for the same reason. It is ISO 8601 in UTC with
//! milliseconds (`2026-11-22T10:15:30.123Z`).
//!
//! Values are written as the event gives them: strings and numbers as JSON strings and
//! numbers, anything recorded with `?` or `%` as its `Debug` or `Display` text, so a
//! [`crate::secret::Secret`] stays redacted exactly as it is in any other output.

use lambda_runtime::Context;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The keys this format writes itself. An event field with one of these names is written
/// with a leading underscore (`_service`), so it can neither hide nor duplicate a key.
pub const STANDARD_KEYS: &[&str] = &[
    "level",
    "location",
    "message",
    "timestamp",
    "service",
    "function_name",
    "function_memory_size",
    "function_arn",
    "function_request_id",
    "cold_start",
    "xray_trace_id",
];

/// The service name when `POWERTOOLS_SERVICE_NAME` is not set.
pub const DEFAULT_SERVICE: &str = "tollgate";

/// Whether the next invocation is the first of its process.
pub struct ColdStart(AtomicBool);

impl ColdStart {
    pub const fn new() -> Self {
        ColdStart(AtomicBool::new(true))
    }

    /// True the first time only.
    pub fn take(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

impl Default for ColdStart {
    fn default() -> Self {
        Self::new()
    }
}

/// This process's cold start: the first invocation that [`in_invocation`] runs takes it.
static PROCESS_COLD_START: ColdStart = ColdStart::new();

/// What the lines written during one invocation carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub request_id: String,
    pub function_arn: String,
    /// The `Root` of the trace header (`1-5759e988-bd862e3fe1be46a994272793`), as
    /// Powertools writes it; the whole header when it has no `Root`.
    pub xray_trace_id: Option<String>,
    pub cold_start: bool,
}

impl Invocation {
    /// The invocation `context` describes; `cold` says whether it is the first one.
    pub fn new(context: &Context, cold: &ColdStart) -> Self {
        Invocation {
            request_id: context.request_id.clone(),
            function_arn: context.invoked_function_arn.clone(),
            xray_trace_id: context.xray_trace_id.as_deref().map(trace_root),
            cold_start: cold.take(),
        }
    }
}

/// `Root=1-…;Parent=…;Sampled=1` → `1-…`.
fn trace_root(header: &str) -> String {
    header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
        .unwrap_or(header)
        .to_owned()
}

tokio::task_local! {
    static INVOCATION: Arc<Invocation>;
}

/// Runs `handler` with the invocation `context` describes as the one its log lines name.
/// Without a context (a handler called directly, in tests) the lines carry no invocation.
pub async fn in_invocation<F: Future>(context: Option<&Context>, handler: F) -> F::Output {
    match context {
        Some(context) => {
            let invocation = Arc::new(Invocation::new(context, &PROCESS_COLD_START));
            INVOCATION.scope(invocation, handler).await
        }
        None => handler.await,
    }
}

/// [`in_invocation`] for synchronous code (tests of the format).
pub fn with_invocation<R>(invocation: Invocation, f: impl FnOnce() -> R) -> R {
    INVOCATION.sync_scope(Arc::new(invocation), f)
}

/// The keys that are the same on every line of a process.
#[derive(Debug, Clone)]
pub struct PowertoolsJson {
    service: String,
    function_name: Option<String>,
    function_memory_size: Option<u64>,
}

impl PowertoolsJson {
    /// From `POWERTOOLS_SERVICE_NAME`, `AWS_LAMBDA_FUNCTION_NAME` and
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, as `env` answers them.
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Self {
        PowertoolsJson {
            service: env("POWERTOOLS_SERVICE_NAME")
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_SERVICE.to_owned()),
            function_name: env("AWS_LAMBDA_FUNCTION_NAME").filter(|s| !s.is_empty()),
            function_memory_size: env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                .and_then(|m| m.trim().parse().ok()),
        }
    }

    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// One line (without its newline) for an event of `level` at `location` with the
    /// `fields` it recorded, written at `timestamp`, during `invocation` if any.
    pub fn line(
        &self,
        level: &tracing::Level,
        location: &str,
        timestamp: chrono::DateTime<chrono::Utc>,
        invocation: Option<&Invocation>,
        fields: EventFields,
    ) -> String {
        let mut out = String::with_capacity(256);
        let mut object = JsonObject::new(&mut out);
        object.entry("level", &serde_json::Value::from(level.as_str()));
        object.entry("location", &serde_json::Value::from(location));
        object.entry(
            "message",
            &serde_json::Value::from(fields.message.unwrap_or_default()),
        );
        object.entry(
            "timestamp",
            &serde_json::Value::from(timestamp.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
        );
        object.entry("service", &serde_json::Value::from(self.service.as_str()));
        if let Some(name) = &self.function_name {
            object.entry("function_name", &serde_json::Value::from(name.as_str()));
        }
        if let Some(memory) = self.function_memory_size {
            object.entry("function_memory_size", &serde_json::Value::from(memory));
        }
        if let Some(invocation) = invocation {
            object.entry(
                "function_arn",
                &serde_json::Value::from(invocation.function_arn.as_str()),
            );
            object.entry(
                "function_request_id",
                &serde_json::Value::from(invocation.request_id.as_str()),
            );
            object.entry(
                "cold_start",
                &serde_json::Value::from(invocation.cold_start),
            );
            if let Some(trace) = &invocation.xray_trace_id {
                object.entry("xray_trace_id", &serde_json::Value::from(trace.as_str()));
            }
        }
        for (name, value) in &fields.others {
            if STANDARD_KEYS.contains(&name.as_str()) {
                object.entry(&format!("_{name}"), value);
            } else {
                object.entry(name, value);
            }
        }
        object.close();
        out
    }
}

/// Writes a JSON object's entries in the order given (serde_json's map would sort them, and
/// `level` first is what a reader scans for).
struct JsonObject<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> JsonObject<'a> {
    fn new(out: &'a mut String) -> Self {
        out.push('{');
        JsonObject { out, first: true }
    }

    fn entry(&mut self, key: &str, value: &serde_json::Value) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        // Display of a serde_json value is its JSON text, which cannot fail.
        let _ = write!(self.out, "{}:{}", serde_json::Value::from(key), value);
    }

    fn close(self) {
        self.out.push('}');
    }
}

/// The message and the other fields an event recorded, in order.
#[derive(Debug, Default)]
pub struct EventFields {
    pub message: Option<String>,
    pub others: Vec<(String, serde_json::Value)>,
}

impl EventFields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.others.push((field.name().to_owned(), value));
        }
    }
}

impl Visit for EventFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, serde_json::Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, serde_json::Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, serde_json::Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, serde_json::Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, serde_json::Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, serde_json::Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, serde_json::Value::from(format!("{value:?}")));
    }
}

impl<S, N> FormatEvent<S, N> for PowertoolsJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let location = match meta.line() {
            Some(line) => format!("{}:{line}", meta.module_path().unwrap_or(meta.target())),
            None => meta.module_path().unwrap_or(meta.target()).to_owned(),
        };
        let invocation = INVOCATION.try_with(Arc::clone).ok();
        let line = self.line(
            meta.level(),
            &location,
            chrono::Utc::now(),
            invocation.as_deref(),
            fields,
        );
        writeln!(writer, "{line}")
    }
}

/// The level filter: `RUST_LOG` when set, else `AWS_LAMBDA_LOG_LEVEL` (what Lambda's
/// advanced logging controls set), else `info`.
pub fn filter() -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    if let Ok(filter) = EnvFilter::try_from_default_env() {
        return filter;
    }
    std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .and_then(|level| EnvFilter::try_new(level.to_ascii_lowercase()).ok())
        .unwrap_or_else(|| EnvFilter::new("info"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A writer that keeps what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn format() -> PowertoolsJson {
        PowertoolsJson::from_lookup(|name| match name {
            "POWERTOOLS_SERVICE_NAME" => Some("payments".into()),
            "AWS_LAMBDA_FUNCTION_NAME" => Some("tollgate-verifier".into()),
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Some("256".into()),
            _ => None,
        })
    }

    /// The lines `f` logs through a subscriber with this format, as written.
    fn raw_lines(f: impl FnOnce()) -> Vec<String> {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(format())
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    /// The lines `f` logs, parsed.
    fn logged(f: impl FnOnce()) -> Vec<serde_json::Map<String, serde_json::Value>> {
        raw_lines(f)
            .iter()
            .map(|l| match serde_json::from_str(l) {
                Ok(serde_json::Value::Object(o)) => o,
                other => panic!("not a JSON object: {l} ({other:?})"),
            })
            .collect()
    }

    fn context(request_id: &str) -> Context {
        let mut c = Context::default();
        c.request_id = request_id.into();
        c.invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:verifier".into();
        c.xray_trace_id = Some(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into(),
        );
        c
    }

    #[test]
    fn a_line_has_every_standard_key_and_the_event_fields_at_top_level() {
        let cold = ColdStart::new();
        let lines = logged(|| {
            with_invocation(Invocation::new(&context("req-1"), &cold), || {
                tracing::warn!(order_id = "ord_1", receives = 3u64, ok = false, why = ?"late", "job will be retried");
            })
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "job will be retried");
        assert_eq!(line["service"], "payments");
        assert_eq!(line["function_name"], "tollgate-verifier");
        assert_eq!(line["function_memory_size"], 256);
        assert_eq!(line["function_request_id"], "req-1");
        assert_eq!(
            line["function_arn"],
            "arn:aws:lambda:us-east-1:123456789012:function:verifier"
        );
        assert_eq!(line["cold_start"], true);
        assert_eq!(line["xray_trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
        assert!(line["location"]
            .as_str()
            .unwrap()
            .starts_with("tollgate::log_format::tests:"));
        let ts = line["timestamp"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == 24, "{ts}");
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        // The event's own fields, at the top level with their JSON types.
        assert_eq!(line["order_id"], "ord_1");
        assert_eq!(line["receives"], 3);
        assert_eq!(line["ok"], false);
        assert_eq!(line["why"], "\"late\"");
        assert!(!line.contains_key("fields"));
        assert!(!line.contains_key("target"));
        assert_eq!(line.keys().count(), 15);
    }

    #[test]
    fn keys_come_in_a_fixed_order_level_first() {
        let lines = raw_lines(|| tracing::info!(z = 1, a = 2, "m"));
        assert!(
            lines[0].starts_with(r#"{"level":"INFO","location":"#),
            "{}",
            lines[0]
        );
        let z = lines[0].find(r#""z":1"#).unwrap();
        let a = lines[0].find(r#""a":2"#).unwrap();
        assert!(z < a, "event fields keep their order: {}", lines[0]);
    }

    #[test]
    fn cold_start_is_true_on_the_first_invocation_only() {
        let cold = ColdStart::new();
        let lines = logged(|| {
            for id in ["req-1", "req-2", "req-3"] {
                with_invocation(Invocation::new(&context(id), &cold), || {
                    tracing::info!("handled");
                    tracing::info!("still the same invocation");
                })
            }
        });
        let seen: Vec<(&str, bool)> = lines
            .iter()
            .map(|l| {
                (
                    l["function_request_id"].as_str().unwrap(),
                    l["cold_start"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("req-1", true),
                ("req-1", true),
                ("req-2", false),
                ("req-2", false),
                ("req-3", false),
                ("req-3", false)
            ]
        );
    }

    #[test]
    fn lines_outside_an_invocation_carry_the_process_keys_only() {
        let lines = logged(|| tracing::info!(table = "t", "started"));
        let line = &lines[0];
        assert_eq!(line["service"], "payments");
        assert_eq!(line["function_name"], "tollgate-verifier");
        assert_eq!(line["table"], "t");
        for key in [
            "function_request_id",
            "cold_start",
            "xray_trace_id",
            "function_arn",
        ] {
            assert!(!line.contains_key(key), "{key} outside an invocation");
        }
    }

    #[test]
    fn an_event_field_named_like_a_standard_key_cannot_replace_it() {
        let lines = logged(|| tracing::error!(level = "fake", service = "other", "x"));
        let line = &lines[0];
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["service"], "payments");
        assert_eq!(line["_level"], "fake");
        assert_eq!(line["_service"], "other");
    }

    #[test]
    fn a_secret_field_stays_redacted() {
        let secret = crate::secret::Secret::new("hunter2-very-secret");
        let lines = logged(|| tracing::info!(key = ?secret, "configured"));
        let text = serde_json::to_string(&lines[0]).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn defaults_without_the_environment() {
        let f = PowertoolsJson::from_lookup(|_| None);
        let line = f.line(
            &tracing::Level::INFO,
            "m:1",
            chrono::DateTime::from_timestamp_millis(1_795_000_000_123).unwrap(),
            None,
            EventFields::default(),
        );
        assert_eq!(
            line,
            r#"{"level":"INFO","location":"m:1","message":"","timestamp":"2026-11-18T11:06:40.123Z","service":"tollgate"}"#
        );
    }

    #[test]
    fn the_trace_id_is_the_root_of_the_header() {
        assert_eq!(trace_root("Root=1-a-b;Parent=c;Sampled=1"), "1-a-b");
        assert_eq!(trace_root("Parent=c;Root=1-a-b"), "1-a-b");
        assert_eq!(trace_root("1-a-b"), "1-a-b");
    }
}
