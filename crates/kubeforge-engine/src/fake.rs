//! A scripted transport for tests: each host answers through a closure, and every script run
//! is recorded in one shared, ordered log.

use std::sync::{Arc, Mutex};

use crate::transport::{ExecOutput, Holder, Input, LockGuard, Transport, TransportError};

type Answer = dyn FnMut(&str, &[u8]) -> Result<ExecOutput, TransportError> + Send;

pub struct FakeTransport {
    pub host: String,
    answer: Mutex<Box<Answer>>,
    pub calls: Arc<Mutex<Vec<(String, String)>>>,
    /// Who holds this host's run lock (`None`: free).
    pub locked_by: Mutex<Option<String>>,
    /// Scripts containing this text take this long to answer.
    delay: Option<(String, std::time::Duration)>,
}

impl FakeTransport {
    pub fn new(
        host: &str,
        calls: Arc<Mutex<Vec<(String, String)>>>,
        answer: impl FnMut(&str, &[u8]) -> Result<ExecOutput, TransportError> + Send + 'static,
    ) -> Self {
        Self {
            host: host.to_string(),
            answer: Mutex::new(Box::new(answer)),
            calls,
            locked_by: Mutex::new(None),
            delay: None,
        }
    }

    /// Scripts containing `needle` answer only after `delay` (a step that hangs).
    pub fn delay_when(mut self, needle: &str, delay: std::time::Duration) -> Self {
        self.delay = Some((needle.to_string(), delay));
        self
    }
}

/// A successful run printing `stdout`.
pub fn ok(stdout: &str) -> Result<ExecOutput, TransportError> {
    Ok(ExecOutput {
        code: Some(0),
        stdout: stdout.as_bytes().to_vec(),
        stderr: Vec::new(),
    })
}

struct NoLock;
impl LockGuard for NoLock {}

impl Transport for FakeTransport {
    async fn exec(&self, script: &str, stdin: &Input<'_>) -> Result<ExecOutput, TransportError> {
        let stdin = stdin
            .to_vec()
            .map_err(|e| TransportError::Lost(format!("reading the input: {e}")))?;
        if let Ok(mut calls) = self.calls.lock() {
            calls.push((self.host.clone(), script.to_string()));
        }
        // Let other hosts' work interleave, as it would over a network.
        tokio::task::yield_now().await;
        if let Some((needle, delay)) = &self.delay
            && script.contains(needle.as_str())
        {
            tokio::time::sleep(*delay).await;
        }
        let mut answer = self
            .answer
            .lock()
            .map_err(|_| TransportError::Lost("fake poisoned".into()))?;
        answer(script, &stdin)
    }

    async fn lock(&self, _holder: &Holder) -> Result<Box<dyn LockGuard>, TransportError> {
        match self.locked_by.lock().ok().and_then(|l| l.clone()) {
            Some(other) => Err(TransportError::Locked(format!("held by {other}"))),
            None => Ok(Box::new(NoLock)),
        }
    }
}
