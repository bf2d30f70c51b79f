//! The one place that decides where output goes: results to stdout, progress and errors to
//! stderr. No other module prints.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

pub struct Printer {
    verbosity: Verbosity,
}

impl Printer {
    pub fn new(verbosity: Verbosity) -> Self {
        Self { verbosity }
    }

    /// A command's result, exactly as given.
    pub fn raw(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// A JSON document on stdout.
    pub fn json(&self, value: &impl serde::Serialize) {
        let text = serde_json::to_string_pretty(value)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        self.raw(&text);
        self.raw("\n");
    }

    /// A progress or context line on stderr, unless quiet.
    pub fn note(&self, text: &str) {
        if self.verbosity > Verbosity::Quiet {
            eprintln!("{text}");
        }
    }

    /// Detail shown with -v.
    pub fn detail(&self, text: &str) {
        if self.verbosity >= Verbosity::Verbose {
            eprintln!("{text}");
        }
    }

    pub fn is_verbose(&self) -> bool {
        self.verbosity >= Verbosity::Verbose
    }

    pub fn is_quiet(&self) -> bool {
        self.verbosity == Verbosity::Quiet
    }

    /// A question on stderr, and the answer read from stdin (`None`: stdin is not a
    /// terminal, or closed).
    pub fn ask(&self, question: &str) -> Option<String> {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return None;
        }
        eprint!("{question} ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        match std::io::stdin().read_line(&mut answer) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(answer.trim().to_string()),
        }
    }

    /// One error line on stderr, always shown.
    pub fn error_line(&self, text: &str) {
        eprintln!("error: {text}");
    }

    /// An error and its chain of causes.
    pub fn error(&self, error: &dyn std::error::Error) {
        let mut text = format!("error: {error}");
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(&format!("\n  caused by: {cause}"));
            source = cause.source();
        }
        eprintln!("{text}");
    }
}
