//! A scripted transport for tests: each host answers through a closure, and every script run
//! is recorded in one shared, ordered log.

use std::sync::{Arc, Mutex};

use crate::transport::{ExecOutput, Transport, TransportError};

type Answer = dyn FnMut(&str, &[u8]) -> Result<ExecOutput, TransportError> + Send;

pub struct FakeTransport {
    pub host: String,
    answer: Mutex<Box<Answer>>,
    pub calls: Arc<Mutex<Vec<(String, String)>>>,
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
        }
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

impl Transport for FakeTransport {
    async fn exec(&self, script: &str, stdin: &[u8]) -> Result<ExecOutput, TransportError> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push((self.host.clone(), script.to_string()));
        }
        // Let other hosts' work interleave, as it would over a network.
        tokio::task::yield_now().await;
        let mut answer = self
            .answer
            .lock()
            .map_err(|_| TransportError::Lost("fake poisoned".into()))?;
        answer(script, stdin)
    }
}
