//! The event trace both simulations keep: a digest of every line (so one seed can be shown to
//! replay exactly), the last few lines for a violation's report, and, on request, every line.

use std::collections::VecDeque;

use crate::rng::Digest;

/// A run's events.
pub(crate) struct Trace {
    digest: Digest,
    tail: VecDeque<String>,
    tail_len: usize,
    /// Every line, when the run keeps them all.
    all: Option<Vec<String>>,
}

impl Trace {
    /// A trace that keeps the last `tail_len` lines, and every line with `keep_all`.
    pub(crate) fn new(tail_len: usize, keep_all: bool) -> Trace {
        Trace {
            digest: Digest::default(),
            tail: VecDeque::new(),
            tail_len,
            all: keep_all.then(Vec::new),
        }
    }

    /// Records `[step t+seconds] what`.
    pub(crate) fn event(&mut self, step: u64, seconds: u64, what: &str) {
        let line = format!("[{step} t+{seconds}] {what}");
        self.digest.write(line.as_bytes());
        if let Some(all) = &mut self.all {
            all.push(line.clone());
        }
        if self.tail.len() == self.tail_len {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    /// The digest of every line so far.
    pub(crate) fn digest(&self) -> Digest {
        self.digest.clone()
    }

    /// The lines to show with a violation: all of them if kept, else the tail.
    pub(crate) fn lines(&self) -> Vec<String> {
        match &self.all {
            Some(all) => all.clone(),
            None => self.tail.iter().cloned().collect(),
        }
    }

    /// Every line, for the report (empty unless kept).
    pub(crate) fn take_all(&mut self) -> Vec<String> {
        self.all.as_mut().map(std::mem::take).unwrap_or_default()
    }
}
