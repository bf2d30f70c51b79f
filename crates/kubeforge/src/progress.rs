//! Progress of a run across hosts: a spinner per host on a terminal, plain lines otherwise.

#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kubeforge_core::steps::Order;
use kubeforge_engine::run::{HostError, PhaseInfo, Reporter};

pub struct Progress {
    quiet: bool,
    /// Show each script run on a host (masked).
    verbose: bool,
    terminal: bool,
    multi: MultiProgress,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
    /// Without a terminal: per host, the last progress line printed (its digits left out)
    /// and when, so that a wait counting seconds prints a line when what it waits for
    /// changes, or every [`PLAIN_PROGRESS_EVERY`], not every second.
    printed: Mutex<BTreeMap<String, (String, Instant)>>,
}

/// How often, without a terminal, a host's unchanged progress is printed again.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(15);

impl Progress {
    pub fn new(quiet: bool, verbose: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if terminal && !quiet {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Self {
            quiet,
            verbose,
            terminal,
            multi,
            bars: Mutex::new(BTreeMap::new()),
            printed: Mutex::new(BTreeMap::new()),
        }
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        if self.terminal {
            let _ = self.multi.println(text);
        } else {
            eprintln!("{text}");
        }
    }
}

impl Reporter for Progress {
    fn phase_started(&self, index: usize, total: usize, phase: &PhaseInfo) {
        let hosts = match (phase.order, phase.hosts.len()) {
            (_, 1) => format!("on {}", phase.hosts[0]),
            (Order::One, n) => format!("{n} hosts asked, one acts"),
            (_, n) => format!("{n} hosts"),
        };
        self.line(&format!(
            "phase {}/{total} {}: {} ({hosts})",
            index + 1,
            phase.name,
            phase.title,
        ));
        if self.terminal && !self.quiet {
            let style = ProgressStyle::with_template("  {spinner} {prefix:<10} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
                .tick_strings(&["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", " "]);
            let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
            for host in &phase.hosts {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(host.clone());
                bar.set_message("waiting");
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.insert(host.clone(), bar);
            }
        }
    }

    fn host_command(&self, host: &str, step: &str, script: &str) {
        if self.verbose {
            let mut text = format!("  {host}: {step}: running:");
            for line in script.lines() {
                text.push_str("\n    | ");
                text.push_str(line);
            }
            self.line(&text);
        }
    }

    fn host_progress(&self, host: &str, message: &str) {
        let bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        match bars.get(host) {
            Some(bar) => bar.set_message(message.to_string()),
            None if !self.terminal => {
                let shape: String = message.chars().filter(|c| !c.is_ascii_digit()).collect();
                let mut printed = self.printed.lock().unwrap_or_else(|e| e.into_inner());
                let due = printed.get(host).is_none_or(|(last, at)| {
                    *last != shape || at.elapsed() >= PLAIN_PROGRESS_EVERY
                });
                if due {
                    printed.insert(host.to_string(), (shape, Instant::now()));
                    drop(printed);
                    self.line(&format!("  {host}: {message}"));
                }
            }
            None => {}
        }
    }

    fn host_finished(&self, host: &str, changes: usize, error: Option<&HostError>) {
        let text = match error {
            Some(_) => "failed".to_string(),
            None if changes == 0 => "no changes".to_string(),
            None => format!("{changes} change{}", if changes == 1 { "" } else { "s" }),
        };
        // The spinner goes; a line with the outcome stays above the running ones.
        let bar = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(host);
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        self.line(&format!("  {host}: {text}"));
    }

    fn phase_finished(&self, _phase: &PhaseInfo) {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        for (_, bar) in std::mem::take(&mut *bars) {
            bar.finish_and_clear();
        }
    }
}
