//! One writer thread with group commit, as both services run it.
//!
//! Requests queue up on a channel; the writer takes a batch of them, applies each to its state,
//! commits everything the batch changed in one transaction, and only then answers them all
//! (persist before you speak). If the commit fails, every request of the batch is answered with
//! [`ActorError::Storage`] and the writer rebuilds its state from disk, so memory never runs
//! ahead of the disk.

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

use crate::http::{ApiError, unix_now};

/// What a request to a writer can fail with besides its own refusal.
#[derive(Debug, Clone, Error)]
pub(crate) enum ActorError {
    /// The request does not fit the state (sizes out of range and such).
    #[error("{0}")]
    Bad(String),
    /// The change could not be made durable; nothing changed.
    #[error("storage failed: {0}")]
    Storage(String),
    /// The service is shutting down.
    #[error("the service is shutting down")]
    Stopped,
}

impl From<ActorError> for ApiError {
    fn from(e: ActorError) -> ApiError {
        use axum::http::StatusCode;
        match e {
            ActorError::Bad(m) => ApiError::bad("bad_request", m),
            ActorError::Storage(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage", m),
            ActorError::Stopped => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping", e.to_string())
            }
        }
    }
}

/// Where a request's answer goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, ActorError>>;

/// An answer held back until the batch is committed; it is given the commit's error, if any.
pub(crate) type Deferred = Box<dyn FnOnce(Option<&ActorError>) + Send>;

/// Holds `result` back for `reply` until the commit: a failed commit replaces it.
pub(crate) fn defer<T: Send + 'static>(reply: Reply<T>, result: Result<T, ActorError>) -> Deferred {
    Box::new(move |commit_error| {
        let result = match (commit_error, result) {
            (Some(e), _) => Err(e.clone()),
            (None, r) => r,
        };
        let _ = reply.send(result);
    })
}

/// The state a writer thread owns.
pub(crate) trait Writer: Send + 'static {
    /// The requests it takes.
    type Request: Send + 'static;

    /// Called before the first request of each batch.
    fn begin_batch(&mut self) {}

    /// Applies one request; its answer is sent once the batch is committed.
    fn process(&mut self, request: Self::Request, now: u64) -> Deferred;

    /// Whether the batch is full after `taken` requests.
    fn batch_full(&self, taken: usize) -> bool;

    /// Makes everything the batch changed durable.
    fn commit(&mut self) -> Result<(), String>;

    /// Rebuilds the state from disk after a failed commit.
    fn reload(&mut self) -> Result<(), String>;
}

/// Sends requests to a writer thread.
pub(crate) struct Handle<R> {
    tx: mpsc::UnboundedSender<R>,
}

impl<R> Clone for Handle<R> {
    fn clone(&self) -> Self {
        Handle {
            tx: self.tx.clone(),
        }
    }
}

impl<R> Handle<R> {
    /// Sends the request `make` builds around a reply channel, and waits for the answer.
    pub(crate) async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> R) -> Result<T, ActorError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(|_| ActorError::Stopped)?;
        rx.await.map_err(|_| ActorError::Stopped)?
    }
}

/// Starts the writer thread `name`; it stops when every [`Handle`] is dropped.
pub(crate) fn spawn<W: Writer>(
    writer: W,
    name: &str,
) -> (Handle<W::Request>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || run(writer, rx))
        .unwrap_or_else(|e| panic!("cannot start the {name} thread: {e}"));
    (Handle { tx }, thread)
}

fn run<W: Writer>(mut writer: W, mut rx: mpsc::UnboundedReceiver<W::Request>) {
    while let Some(first) = rx.blocking_recv() {
        let now = unix_now();
        writer.begin_batch();
        let mut answers = vec![writer.process(first, now)];
        while !writer.batch_full(answers.len()) {
            match rx.try_recv() {
                Ok(request) => answers.push(writer.process(request, now)),
                Err(_) => break,
            }
        }
        match writer.commit() {
            Ok(()) => {
                for answer in answers {
                    answer(None);
                }
            }
            Err(e) => {
                tracing::error!("commit failed, reloading from disk: {e}");
                let error = ActorError::Storage(e);
                for answer in answers {
                    answer(Some(&error));
                }
                if let Err(e) = writer.reload() {
                    tracing::error!("cannot rebuild the state from disk: {e}; stopping");
                    return;
                }
            }
        }
    }
}
