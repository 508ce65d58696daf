//! One JSON object per line on stdout (journald), each carrying the run's context:
//! `{"level":"INFO","message":"Local chainfire healthy","node_id":"node01",
//!   "service":"chainfire","phase":"local-healthy","elapsed_ms":812, ...event fields}`.
//!
//! A small layer instead of tracing-subscriber's JSON formatter: that one nests span fields,
//! while the runbook's examples (and `jq 'select(.phase=="joining")'`) want them flat.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::Registry;

/// The fields every line carries. Shared between the layer and the command that updates it.
#[derive(Clone)]
pub struct LogContext {
    inner: Arc<Mutex<Ctx>>,
    /// tokio's clock, so that elapsed_ms follows the paused clock in tests.
    start: Instant,
}

struct Ctx {
    node_id: Option<String>,
    service: Option<String>,
    phase: Option<&'static str>,
}

impl Default for LogContext {
    fn default() -> Self {
        LogContext::new()
    }
}

impl LogContext {
    pub fn new() -> LogContext {
        LogContext {
            inner: Arc::new(Mutex::new(Ctx {
                node_id: None,
                service: None,
                phase: None,
            })),
            start: Instant::now(),
        }
    }

    pub fn set_node(&self, node_id: &str, service: &str) {
        let mut c = self.lock();
        c.node_id = Some(node_id.to_owned());
        c.service = Some(service.to_owned());
    }

    pub fn set_phase(&self, phase: &'static str) {
        self.lock().phase = Some(phase);
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ctx> {
        // A panic while holding this lock cannot leave it inconsistent: plain fields.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where lines go: stdout in the binary, a buffer in tests.
pub type Sink = Box<dyn Write + Send>;

/// An in-memory [`Sink`] whose clones share one buffer: give one clone to the layer and read
/// the lines from another (tests).
#[derive(Clone, Default)]
pub struct MemorySink(Arc<Mutex<Vec<u8>>>);

impl MemorySink {
    /// Everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Write for MemorySink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct JsonLayer {
    ctx: LogContext,
    sink: Mutex<Sink>,
    max_level: Level,
}

impl JsonLayer {
    pub fn new(ctx: LogContext, sink: Sink, max_level: Level) -> JsonLayer {
        JsonLayer {
            ctx,
            sink: Mutex::new(sink),
            max_level,
        }
    }
}

impl<S: Subscriber> Layer<S> for JsonLayer {
    fn enabled(&self, meta: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        *meta.level() <= self.max_level
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut obj = Map::new();
        obj.insert(
            "level".into(),
            Value::from(event.metadata().level().as_str()),
        );
        obj.insert("message".into(), Value::from(""));
        {
            let c = self.ctx.lock();
            let opt = |v: Option<&str>| v.map(Value::from).unwrap_or(Value::Null);
            obj.insert("node_id".into(), opt(c.node_id.as_deref()));
            obj.insert("service".into(), opt(c.service.as_deref()));
            obj.insert("phase".into(), opt(c.phase));
        }
        obj.insert("elapsed_ms".into(), Value::from(self.ctx.elapsed_ms()));
        event.record(&mut FieldVisitor(&mut obj));
        let mut line = serde_json::to_vec(&Value::Object(obj)).unwrap_or_default();
        line.push(b'\n');
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        // Logging must never fail the join; a closed stdout only loses the line.
        let _ = sink.write_all(&line).and_then(|()| sink.flush());
    }
}

struct FieldVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0.insert(f.name().into(), Value::from(v));
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.0.insert(f.name().into(), Value::from(v));
    }
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.0.insert(f.name().into(), Value::from(v));
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.0.insert(f.name().into(), Value::from(v));
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        self.0
            .insert(f.name().into(), Value::from(format!("{v:?}")));
    }
}

/// The subscriber used by the binary and by in-process tests.
pub fn subscriber(ctx: LogContext, sink: Sink, max_level: Level) -> impl Subscriber + Send + Sync {
    Registry::default().with(JsonLayer::new(ctx, sink, max_level))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_flat_json_with_context() {
        let ctx = LogContext::new();
        let buf = MemorySink::default();
        let sub = subscriber(ctx.clone(), Box::new(buf.clone()), Level::INFO);
        tracing::subscriber::with_default(sub, || {
            ctx.set_node("node01", "chainfire");
            ctx.set_phase("waiting-local");
            tracing::info!(
                url = "https://localhost:2379/health",
                "Waiting for local chainfire service..."
            );
            tracing::debug!("not shown");
        });
        let out = String::from_utf8(buf.contents()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let v: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "Waiting for local chainfire service...");
        assert_eq!(v["node_id"], "node01");
        assert_eq!(v["service"], "chainfire");
        assert_eq!(v["phase"], "waiting-local");
        assert_eq!(v["url"], "https://localhost:2379/health");
        assert!(v["elapsed_ms"].is_u64());
    }
}
