//! How long the collector dashboard takes to show a fleet, and what one live update costs,
//! measured in headless Chromium with the page's own clock (`performance.now()`, whose origin is
//! the navigation start).
//!
//! Synchronous: it drives the browser over blocking pipes, so call it from a plain thread or
//! `tokio::task::spawn_blocking` while the collector serves elsewhere. The includer must declare
//! the browser driver next to this module (`mod browser;`, e.g.
//! `#[path = ".../collector_support/browser.rs"] mod browser;`): it is used as
//! `super::browser::Browser`.
//!
//! ```ignore
//! let figures = measure_dashboard(&dir, &format!("{api}/"), 1000,
//!     &row_contains("n0013", "probe 1"), || post_report("n0013", "probe 1"));
//! eprintln!("{figures}");
//! ```
#![allow(dead_code)]

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::browser::Browser;

/// How long the page may take to show every row, or one update.
const DEADLINE: Duration = Duration::from_secs(60);
/// The page is idle when it has started no read of the fleet for this long.
const QUIET: f64 = 1500.0;

/// Runs before any script of every document the tab loads. It records in `window.__scale`:
/// - `renderAt`: `performance.now()` when `#nodes tbody` first holds `want` rows. A
///   MutationObserver callback runs at the microtask checkpoint right after the script that
///   added the rows, so this is "every row is in the DOM", before layout and paint;
/// - `paintAt`: the first task after the next animation frame (style, layout and paint of
///   that frame are done by then);
/// - `events`: arrival of each `changed` server-sent event (a listener registered in the
///   EventSource constructor runs before the page's own);
/// - `fetches`: start and response-header time of each `fetch` (the polling fallback's clock);
/// - `parsed`: when each fleet document (`/v1/nodes`) read with `Response.json()` was parsed:
///   the page's continuation runs in the same microtask checkpoint, right after;
/// - `watch`: set by [`DashboardPage::update`]: when its expression first holds after a DOM
///   change; `redrawn` counts the node rows (`tr#node-…`) inserted from then on, alone or
///   inside a replaced table body.
const PROBE: &str = r##"(() => {
  if (window.__scale) return;
  const S = window.__scale = { want: __WANT__, renderAt: null, paintAt: null, events: [], fetches: [], parsed: [], watch: null };
  if (window.EventSource) {
    const Base = window.EventSource;
    window.EventSource = class extends Base {
      constructor(...a) { super(...a); this.addEventListener("changed", () => S.events.push(performance.now())); }
    };
  }
  const baseFetch = window.fetch;
  window.fetch = function (input, init) {
    const f = { url: String((input && input.url) || input), start: performance.now(), end: null };
    S.fetches.push(f);
    return baseFetch.call(this, input, init).then(
      (r) => { f.end = performance.now(); return r; },
      (e) => { f.end = performance.now(); throw e; });
  };
  const baseJson = Response.prototype.json;
  Response.prototype.json = function () {
    const fleet = this.url.includes("/v1/nodes");
    return baseJson.call(this).then((v) => { if (fleet) S.parsed.push(performance.now()); return v; });
  };
  const rows = new MutationObserver(() => {
    if (document.querySelectorAll("#nodes tbody tr").length < S.want) return;
    S.renderAt = performance.now();
    rows.disconnect();
    requestAnimationFrame(() => setTimeout(() => { S.paintAt = performance.now(); }, 0));
  });
  rows.observe(document, { childList: true, subtree: true });
  const ROW = "tr[id^='node-']";
  S.startWatch = (test) => {
    const w = S.watch = { at: null, test };
    const obs = new MutationObserver(() => {
      let ok = false;
      try { ok = !!w.test(); } catch (_) { ok = false; }
      if (ok) { w.at = performance.now(); obs.disconnect(); }
    });
    obs.observe(document, { childList: true, subtree: true, characterData: true, attributes: true });
    S.redrawn = 0;
    if (S.count) S.count.disconnect();
    const nodeRows = (n) => n.nodeType !== 1 ? 0
      : n.matches(ROW) ? 1 : n.querySelectorAll(ROW).length;
    const count = S.count = new MutationObserver((recs) => {
      for (const r of recs) for (const n of r.addedNodes) S.redrawn += nodeRows(n);
    });
    count.observe(document, { childList: true, subtree: true });
  };
})();"##;

/// The first view of the fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderFigures {
    /// Node rows in `#nodes tbody` once rendered.
    pub rows: usize,
    /// Navigation start → `expect_rows` rows in the DOM (fetch, parse, build).
    pub render_ms: f64,
    /// Navigation start → the first task after the frame that painted them (None when the
    /// headless browser produced no frame).
    pub painted_ms: Option<f64>,
}

/// One live update: the caller's report for one node, until its row shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateFigures {
    /// Main-thread time the page spent on the update (Performance.getMetrics `TaskDuration`
    /// delta over the window: reading and parsing the fleet document, script, style, layout,
    /// the frame; less `DevToolsCommandDuration`, this module's own polling), in ms.
    pub update_ms: f64,
    /// The page's own script for it: fleet document parsed → the row shows the update in the
    /// DOM (page clock). Not `ScriptDuration`: that leaves out promise continuations, where a
    /// `fetch`-driven page does its work. NaN when the page did not read `/v1/nodes` with
    /// `Response.json()`.
    pub update_render_ms: f64,
    /// Style recalculation and layout of the update (`RecalcStyleDuration`, `LayoutDuration`
    /// deltas), in ms: redrawing the whole table shows up here, as every row's.
    pub update_style_ms: f64,
    pub update_layout_ms: f64,
    /// Arrival of the change notice (the `changed` event; with polling, the start of the
    /// fetch that brought it) → the row shows the update in the DOM.
    pub update_visible_ms: f64,
    /// Just before `trigger_update` → the row shows it: the report's POST and commit, the
    /// collector's event throttle (250 ms), the fleet read and the page's handling.
    pub update_end_to_end_ms: f64,
    /// Fleet reads (`/v1/nodes`) the page started in the window: 1 unless a periodic refresh
    /// or another change fell into it (then the costs above include that too).
    pub refreshes: usize,
    /// Node rows the page inserted for the update (a rebuilt row counts 1; a rebuilt table
    /// counts all of them): how much of the table one report redraws.
    pub rows_redrawn: usize,
    /// The notice came as a server-sent event (false: the page was polling).
    pub via_events: bool,
}

/// [`measure_dashboard`]'s result.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardFigures {
    pub render: RenderFigures,
    pub update: UpdateFigures,
}

impl fmt::Display for DashboardFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, u) = (&self.render, &self.update);
        write!(
            f,
            "dashboard rows={} render_ms={:.0} painted_ms={} update_ms={:.1} (render {:.1}, style {:.1}, \
             layout {:.1}) update_visible_ms={:.1} update_end_to_end_ms={:.0} refreshes={} rows_redrawn={} via={}",
            r.rows,
            r.render_ms,
            r.painted_ms
                .map_or_else(|| "-".into(), |p| format!("{p:.0}")),
            u.update_ms,
            u.update_render_ms,
            u.update_style_ms,
            u.update_layout_ms,
            u.update_visible_ms,
            u.update_end_to_end_ms,
            u.refreshes,
            u.rows_redrawn,
            if u.via_events { "events" } else { "polling" }
        )
    }
}

/// A JavaScript expression, true once node `hostname`'s row contains `text`: the usual
/// `update_shows` for a report whose message is `text`.
pub fn row_contains(hostname: &str, text: &str) -> String {
    let id = json!(format!("node-{hostname}"));
    let text = json!(text);
    format!("((document.getElementById({id}) || {{}}).textContent || '').includes({text})")
}

/// Open the dashboard at `dashboard_url` (it must show the fleet to a browser without a client
/// certificate: `--public-dashboard`, or a lab collector), wait for `expect_rows` node rows,
/// then measure one live update: `trigger_update` posts a report (returning once the collector
/// acknowledged it) whose effect makes the JavaScript expression `update_shows` true. Panics
/// when the page does not get there within a minute. Launches Chromium in `browser_dir`
/// (created if missing; it must not hold a previous run's pipes).
pub fn measure_dashboard(
    browser_dir: &Path,
    dashboard_url: &str,
    expect_rows: usize,
    update_shows: &str,
    trigger_update: impl FnOnce(),
) -> DashboardFigures {
    let mut page = DashboardPage::open(browser_dir, dashboard_url, expect_rows);
    let render = page.rendered();
    let update = page.update(update_shows, trigger_update);
    DashboardFigures { render, update }
}

/// The dashboard in a headless tab with the probe installed, for several measurements.
pub struct DashboardPage {
    pub browser: Browser,
    expect_rows: usize,
}

impl DashboardPage {
    /// Launch Chromium in `browser_dir` and start loading `url` with the probe.
    pub fn open(browser_dir: &Path, url: &str, expect_rows: usize) -> DashboardPage {
        std::fs::create_dir_all(browser_dir).expect("browser directory");
        let mut browser = Browser::launch(browser_dir);
        // A blank tab first: the probe must be registered before the dashboard's document
        // exists, and `Browser::open` navigates as soon as it attaches.
        browser.open("about:blank");
        browser.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": PROBE.replace("__WANT__", &expect_rows.to_string())}),
        );
        browser.call("Performance.enable", json!({}));
        browser.call("Page.navigate", json!({"url": url}));
        DashboardPage {
            browser,
            expect_rows,
        }
    }

    /// Wait until every expected row is in the DOM (and the frame after it, when there is one).
    pub fn rendered(&mut self) -> RenderFigures {
        let v = self.poll("every fleet row", "window.__scale && window.__scale.renderAt !== null ? \
             [__scale.renderAt, __scale.paintAt, document.querySelectorAll('#nodes tbody tr').length] : \
             (window.__scale ? document.querySelectorAll('#nodes tbody tr').length : -1)",
            Value::is_array,
        );
        // Give the frame up to a second: without one, paint is unknown rather than a hang.
        let painted = self
            .poll_for(Duration::from_secs(1), "window.__scale.paintAt", |v| {
                !v.is_null()
            })
            .and_then(|v| v.as_f64());
        RenderFigures {
            rows: v[2].as_u64().unwrap_or(0) as usize,
            render_ms: v[0].as_f64().unwrap_or(f64::NAN),
            painted_ms: painted,
        }
    }

    /// Measure one live update (see [`measure_dashboard`]). Waits first until the page has been
    /// idle for a moment (its start-up reads done), so the window holds this update only.
    pub fn update(&mut self, update_shows: &str, trigger_update: impl FnOnce()) -> UpdateFigures {
        self.poll(
            "the page to settle",
            &format!(
                "(() => {{ const f = __scale.fetches; const now = performance.now(); \
                 const last = f.length ? f[f.length - 1] : null; \
                 return !!last && last.end !== null && now - last.start > {QUIET} \
                   && document.querySelectorAll('#nodes tbody tr').length >= __scale.want; }})()"
            ),
            |v| v == &json!(true),
        );
        assert_eq!(
            self.browser.eval(&format!("!!({update_shows})")),
            json!(false),
            "the page shows the update before it was made: {update_shows}"
        );
        let before = self.metrics();
        let mark = self.browser.eval(&format!(
            "(() => {{ __scale.mark = performance.now(); __scale.startWatch(() => {update_shows}); \
             return __scale.mark; }})()"
        ));
        trigger_update();
        let seen = self.poll("the row to show the update", "__scale.watch.at", |v| {
            !v.is_null()
        });
        // Let the frame that lays the change out run, so its style and layout are counted.
        self.browser.call(
            "Runtime.evaluate",
            json!({"expression": "Promise.race([new Promise(r => requestAnimationFrame(() => setTimeout(r, 0))), \
                   new Promise(r => setTimeout(r, 500))])", "awaitPromise": true}),
        );
        let after = self.metrics();
        let (mark, seen) = (mark.as_f64().unwrap(), seen.as_f64().unwrap());
        let window = self.browser.eval(&format!(
            "[__scale.events.filter(t => t >= {mark}), \
              __scale.fetches.filter(f => f.start >= {mark} && f.url.includes('/v1/nodes')).map(f => f.start), \
              __scale.parsed.filter(t => t >= {mark} && t <= {seen}), __scale.redrawn]"
        ));
        let first = |v: &Value| v.as_array().and_then(|a| a.first()).and_then(Value::as_f64);
        let event = first(&window[0]);
        let arrival = event.or(first(&window[1])).unwrap_or(mark);
        // The last fleet document parsed before the row changed is the one that changed it.
        let parsed = window[2]
            .as_array()
            .and_then(|a| a.last())
            .and_then(Value::as_f64);
        // NaN for a metric this Chromium does not report (names are not a stable interface).
        let delta = |k: &str| match (before.get(k), after.get(k)) {
            (Some(b), Some(a)) => (a - b) * 1000.0,
            _ => f64::NAN,
        };
        let polling = delta("DevToolsCommandDuration");
        UpdateFigures {
            update_ms: delta("TaskDuration") - if polling.is_nan() { 0.0 } else { polling },
            update_render_ms: parsed.map_or(f64::NAN, |p| seen - p),
            update_style_ms: delta("RecalcStyleDuration"),
            update_layout_ms: delta("LayoutDuration"),
            update_visible_ms: seen - arrival,
            update_end_to_end_ms: seen - mark,
            refreshes: window[1].as_array().map_or(0, Vec::len),
            rows_redrawn: window[3].as_u64().unwrap_or(0) as usize,
            via_events: event.is_some(),
        }
    }

    /// Performance.getMetrics as name → seconds.
    fn metrics(&mut self) -> std::collections::HashMap<String, f64> {
        let r = self.browser.call("Performance.getMetrics", json!({}));
        r["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| Some((m["name"].as_str()?.to_string(), m["value"].as_f64()?)))
            .collect()
    }

    fn poll(&mut self, what: &str, expr: &str, done: impl Fn(&Value) -> bool) -> Value {
        let rows = self.expect_rows;
        self.poll_for(DEADLINE, expr, &done).unwrap_or_else(|| {
            let last = self.browser.eval(expr);
            panic!("timed out waiting for {what} ({rows} rows expected); last value {last}")
        })
    }

    fn poll_for(
        &mut self,
        limit: Duration,
        expr: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.browser.eval(expr);
            if done(&v) {
                return Some(v);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
