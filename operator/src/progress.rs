//! What a long operator run shows while it works: in a terminal one live line per node
//! (indicatif), otherwise one plain line per step, so logs and CI stay readable. Every line
//! also goes to the node's own log file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bars: Option<(MultiProgress, BTreeMap<String, ProgressBar>)>,
    logs: BTreeMap<String, Mutex<File>>,
    log_dir: PathBuf,
    start: Instant,
}

impl Progress {
    /// `log_dir/<node>/` gets each node's `provision.log`; `terminal: None` asks stderr.
    pub fn new(
        nodes: &[String],
        log_dir: &Path,
        file: &str,
        terminal: Option<bool>,
    ) -> std::io::Result<Progress> {
        let mut logs = BTreeMap::new();
        for node in nodes {
            let dir = log_dir.join(node);
            fs::create_dir_all(&dir)?;
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(file))?;
            logs.insert(node.clone(), Mutex::new(f));
        }
        let tty = terminal.unwrap_or_else(|| std::io::stderr().is_terminal());
        let bars = tty.then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let width = nodes.iter().map(String::len).max().unwrap_or(4);
            let style = ProgressStyle::with_template(&format!(
                "{{spinner}} {{prefix:{width}}} [{{elapsed_precise}}] {{wide_msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let bars = nodes
                .iter()
                .map(|n| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(style.clone());
                    bar.set_prefix(n.clone());
                    bar.set_message("waiting");
                    bar.enable_steady_tick(Duration::from_millis(250));
                    (n.clone(), bar)
                })
                .collect();
            (multi, bars)
        });
        Ok(Progress {
            bars,
            logs,
            log_dir: log_dir.to_path_buf(),
            start: Instant::now(),
        })
    }

    pub fn log_file(&self, node: &str, file: &str) -> PathBuf {
        self.log_dir.join(node).join(file)
    }

    /// A step of `node` began or changed: on screen and in its log.
    pub fn step(&self, node: &str, message: &str) {
        self.to_log(node, message);
        match &self.bars {
            Some((_, bars)) => {
                if let Some(bar) = bars.get(node) {
                    bar.set_message(message.to_string());
                }
            }
            None => eprintln!("{}  {node}: {message}", self.elapsed()),
        }
    }

    /// The node is finished, well or not: its line stops with `message`.
    pub fn finish(&self, node: &str, ok: bool, message: &str) {
        self.to_log(node, message);
        let mark = if ok { "done" } else { "FAILED" };
        match &self.bars {
            Some((_, bars)) => {
                if let Some(bar) = bars.get(node) {
                    bar.finish_with_message(format!("{mark}: {message}"));
                }
            }
            None => eprintln!("{}  {node}: {mark}: {message}", self.elapsed()),
        }
    }

    /// A line that belongs to no node (or to all), above the live lines.
    pub fn note(&self, line: &str) {
        match &self.bars {
            Some((multi, _)) => {
                let _ = multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    fn to_log(&self, node: &str, message: &str) {
        if let Some(f) = self.logs.get(node) {
            let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(f, "[{}] {message}", self.elapsed());
        }
    }

    fn elapsed(&self) -> String {
        let s = self.start.elapsed().as_secs();
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some((_, bars)) = &self.bars {
            for bar in bars.values().filter(|b| !b.is_finished()) {
                bar.abandon();
            }
        }
    }
}
