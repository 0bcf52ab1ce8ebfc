//! The ledger actor: the one writer of the node's credit state.
//!
//! A dedicated thread owns the [`Ledger`] and the [`Store`]. It takes commands in batches, runs
//! each through the core, commits all of the batch's changes in one transaction (group commit),
//! and only then answers the commands and hands new IOU states to the outbox: *persist before
//! you speak*. If a commit fails, the in-memory ledger is rebuilt from the store, so memory never
//! runs ahead of the disk.

use atomicity_core::{
    Amount, Asset, ChannelView, ConditionalIou, IouState, Keypair, Ledger, LedgerError, Limits,
    Message, PaymentOutcome, PaymentRecord, PeerRecord, PublicKey, Reply, Signed, StoreOp,
};
use atomicity_store::Store;
use tokio::sync::{mpsc, oneshot};

/// Most commands folded into one transaction.
const MAX_BATCH: usize = 1024;

/// What a command can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ActorError {
    /// The caller asked for something the ledger refuses.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The change could not be made durable; nothing changed.
    #[error("storage failed: {0}")]
    Storage(String),
    /// The actor has stopped (the node is shutting down).
    #[error("the node is shutting down")]
    Stopped,
}

type Reply1<T> = oneshot::Sender<Result<T, ActorError>>;

/// A request to the actor.
pub enum Command {
    /// Add or update a peer.
    AddPeer(PublicKey, Option<String>, Reply1<()>),
    /// Set limits.
    SetLimits {
        /// The peer.
        peer: PublicKey,
        /// The asset.
        asset: Asset,
        /// New accept limit.
        accept: Option<Amount>,
        /// New issue limit.
        issue: Option<Amount>,
        /// Answer.
        reply: Reply1<Limits>,
    },
    /// Start a direct payment.
    Pay {
        /// The payee.
        peer: PublicKey,
        /// The asset.
        asset: Asset,
        /// The amount.
        amount: Amount,
        /// Random payment id.
        payment_id: [u8; 32],
        /// Memo.
        memo: String,
        /// Unix seconds.
        now: u64,
        /// Unix seconds.
        expires_at: u64,
        /// Answer: the offer to send.
        reply: Reply1<Signed<ConditionalIou>>,
    },
    /// Messages from a peer (already authenticated by their envelope).
    Inbound {
        /// The sender.
        from: PublicKey,
        /// The messages.
        messages: Vec<Message>,
        /// Unix seconds.
        now: u64,
        /// One reply per message.
        reply: Reply1<Vec<Reply>>,
    },
    /// A peer's replies to messages I sent.
    Replies {
        /// The peer.
        from: PublicKey,
        /// Its replies.
        replies: Vec<Reply>,
        /// Unix seconds.
        now: u64,
        /// Outcome of each answered payment.
        reply: Reply1<Vec<Option<PaymentOutcome>>>,
    },
    /// Read every channel.
    Balances(Reply1<Vec<ChannelView>>),
    /// Read every peer.
    Peers(Reply1<Vec<PeerRecord>>),
    /// Read the history.
    History(usize, Reply1<Vec<PaymentRecord>>),
    /// What to resend: unanswered offers and newest states.
    Outbox(Reply1<OutboxSnapshot>),
}

/// Messages the node may need to (re)send.
#[derive(Default)]
pub struct OutboxSnapshot {
    /// Offers with no answer yet.
    pub offers: Vec<(PublicKey, Signed<ConditionalIou>)>,
    /// My newest state on every line.
    pub states: Vec<(PublicKey, Signed<IouState>)>,
}

/// Handle to the actor.
#[derive(Clone)]
pub struct ActorHandle {
    tx: mpsc::UnboundedSender<Command>,
}

impl ActorHandle {
    /// Sends a command and waits for its answer.
    pub async fn call<T>(&self, make: impl FnOnce(Reply1<T>) -> Command) -> Result<T, ActorError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).map_err(|_| ActorError::Stopped)?;
        rx.await.map_err(|_| ActorError::Stopped)?
    }
}

/// Starts the actor thread. New IOU states (committed) are sent on `states_out`.
pub fn spawn(
    key: Keypair,
    ledger: Ledger,
    store: Box<dyn Store>,
    states_out: mpsc::UnboundedSender<(PublicKey, Signed<IouState>)>,
) -> (ActorHandle, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let actor = Actor {
        key,
        ledger,
        store,
        states_out,
    };
    let thread = std::thread::Builder::new()
        .name("ledger".into())
        .spawn(move || actor.run(rx))
        .unwrap_or_else(|e| panic!("cannot start the ledger thread: {e}"));
    (ActorHandle { tx }, thread)
}

struct Actor {
    key: Keypair,
    ledger: Ledger,
    store: Box<dyn Store>,
    states_out: mpsc::UnboundedSender<(PublicKey, Signed<IouState>)>,
}

/// An answer held back until the batch is committed.
type Deferred = Box<dyn FnOnce(Option<&ActorError>) + Send>;

fn defer<T: Send + 'static>(reply: Reply1<T>, result: Result<T, ActorError>) -> Deferred {
    Box::new(move |commit_error| {
        let result = match (commit_error, result) {
            (Some(e), _) => Err(e.clone()),
            (None, r) => r,
        };
        let _ = reply.send(result);
    })
}

impl Actor {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        while let Some(first) = rx.blocking_recv() {
            let mut ops = Vec::new();
            let mut answers: Vec<Deferred> = Vec::new();
            answers.push(self.process(first, &mut ops));
            while answers.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(cmd) => answers.push(self.process(cmd, &mut ops)),
                    Err(_) => break,
                }
            }
            let states = self.ledger.merge_states(&mut ops);
            match self.store.commit(&ops) {
                Ok(()) => {
                    for answer in answers {
                        answer(None);
                    }
                    for state in states {
                        let _ = self.states_out.send(state);
                    }
                }
                Err(e) => {
                    tracing::error!("commit failed, reloading the ledger from disk: {e}");
                    let error = ActorError::Storage(e.to_string());
                    for answer in answers {
                        answer(Some(&error));
                    }
                    match self.store.load() {
                        Ok(snapshot) => match Ledger::restore(self.key.clone(), snapshot) {
                            Ok(ledger) => self.ledger = ledger,
                            Err(e) => {
                                tracing::error!("cannot rebuild the ledger: {e}; stopping");
                                return;
                            }
                        },
                        Err(e) => {
                            tracing::error!("cannot reload the store: {e}; stopping");
                            return;
                        }
                    }
                }
            }
        }
    }

    fn process(&mut self, cmd: Command, ops: &mut Vec<StoreOp>) -> Deferred {
        let ledger = &mut self.ledger;
        match cmd {
            Command::AddPeer(key, url, reply) => {
                defer(reply, ledger.add_peer(key, url, ops).map_err(Into::into))
            }
            Command::SetLimits {
                peer,
                asset,
                accept,
                issue,
                reply,
            } => defer(
                reply,
                ledger
                    .set_limits(&peer, &asset, accept, issue, ops)
                    .map_err(Into::into),
            ),
            Command::Pay {
                peer,
                asset,
                amount,
                payment_id,
                memo,
                now,
                expires_at,
                reply,
            } => defer(
                reply,
                ledger
                    .pay(
                        &peer, &asset, amount, payment_id, memo, now, expires_at, ops,
                    )
                    .map_err(Into::into),
            ),
            Command::Inbound {
                from,
                messages,
                now,
                reply,
            } => {
                let replies = messages
                    .into_iter()
                    .map(|m| ledger.handle_message(&from, m, now, ops))
                    .collect();
                defer(reply, Ok(replies))
            }
            Command::Replies {
                from,
                replies,
                now,
                reply,
            } => {
                let outcomes = replies
                    .into_iter()
                    .map(|r| ledger.handle_reply(&from, r, now, ops).ok().flatten())
                    .collect();
                defer(reply, Ok(outcomes))
            }
            Command::Balances(reply) => defer(reply, Ok(ledger.balances())),
            Command::Peers(reply) => defer(reply, Ok(ledger.peers().cloned().collect())),
            Command::History(limit, reply) => defer(
                reply,
                self.store
                    .history(limit)
                    .map_err(|e| ActorError::Storage(e.to_string())),
            ),
            Command::Outbox(reply) => defer(
                reply,
                Ok(OutboxSnapshot {
                    offers: ledger.unanswered_offers(),
                    states: ledger.latest_out_states(),
                }),
            ),
        }
    }
}
