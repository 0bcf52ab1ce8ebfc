//! The ledger actor: the one writer of the node's credit state.
//!
//! A dedicated thread owns the [`Ledger`] and the [`Store`]. It takes commands in batches, runs
//! each through the core, commits all of the batch's changes in one transaction (group commit),
//! and only then answers the commands and hands new IOU states to the outbox: *persist before
//! you speak*. If a commit fails, the in-memory ledger is rebuilt from the store, so memory never
//! runs ahead of the disk.

use atomicity_core::{
    Amount, Asset, ChannelView, ConditionalIou, FeePolicy, HashlockRecord, HashlockStatus,
    IouState, Keypair, Ledger, LedgerError, Limits, Message, NewHashlock, PaymentOutcome,
    PaymentRecord, PeerRecord, PublicKey, Publication, Reply, RoutePart, Signed, StoreOp,
    WitnessCondition, WitnessProof,
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
        /// The settlement messages among those sent, with their index (replies answer the
        /// messages one by one).
        settlements: Vec<(usize, Message)>,
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
    /// Set my fee policy toward a peer.
    SetFees {
        /// The peer.
        peer: PublicKey,
        /// The asset.
        asset: Asset,
        /// The policy.
        fees: FeePolicy,
        /// Answer.
        reply: Reply1<()>,
    },
    /// My fee policy toward a peer (for quotes).
    Fees(PublicKey, Asset, Reply1<Option<FeePolicy>>),
    /// Record a payment secret (an invoice, or a payer-published payment's).
    AddHashlock(Box<NewHashlock>, u64, Reply1<HashlockRecord>),
    /// Start a routed payment.
    PayRouted(Box<RoutedPay>, Reply1<()>),
    /// A secret was published; here is the proof.
    Published([u8; 32], Box<WitnessProof>, u64, Reply1<()>),
    /// A secret could not be published in time.
    PublishFailed([u8; 32], u64, Reply1<()>),
    /// Time passed: expiries.
    Tick(u64, Reply1<()>),
    /// Messages about unresolved IOUs to send again (last sent at least `min_age` ago).
    Resend {
        /// Unix seconds.
        now: u64,
        /// Seconds.
        min_age: u64,
        /// Answer.
        reply: Reply1<Vec<(PublicKey, Message)>>,
    },
    /// Secrets to publish now (to resume after a restart).
    Publications(u64, Reply1<Vec<Publication>>),
    /// A payment secret of mine, by hash (stored, any status).
    Hashlock([u8; 32], Reply1<Option<HashlockRecord>>),
    /// Every line with its fees and what I could still issue on it (for published documents),
    /// sorted by peer then asset.
    Lines(Reply1<Vec<LineInfo>>),
    /// My newest IOU state toward a holder in an asset, if I signed one.
    OutState(PublicKey, Asset, Reply1<Option<Signed<IouState>>>),
    /// Any other step on the ledger (settlements use it): runs in the batch, its answer is
    /// held back until the batch is committed like every other answer.
    Run(LedgerStep),
}

/// One line as the published documents show it ([`Command::Lines`]).
#[derive(Clone, Debug)]
pub struct LineInfo {
    /// Its summary (limits, net, seqs).
    pub view: ChannelView,
    /// My fee policy for forwarding to the peer.
    pub fees: FeePolicy,
    /// How much more I could offer the peer now without passing my issue limit.
    pub available: Amount,
}

/// A routed payment to start ([`atomicity_core::Ledger::pay_routed`]).
pub struct RoutedPay {
    /// The payee.
    pub payee: PublicKey,
    /// The asset.
    pub asset: Asset,
    /// One route per part.
    pub parts: Vec<RoutePart>,
    /// The condition every part carries.
    pub condition: WitnessCondition,
    /// The hard deadline.
    pub expires_at: u64,
    /// Random payment id.
    pub payment_id: [u8; 32],
    /// Memo.
    pub memo: String,
    /// The secret, when I publish it myself.
    pub payer_secret: Option<[u8; 32]>,
    /// Unix seconds.
    pub now: u64,
}

/// What the actor hands on after a commit.
pub enum Outbound {
    /// A new IOU state of mine for its holder.
    State(PublicKey, Signed<IouState>),
    /// A protocol message (forward, proof, release...).
    Message(PublicKey, Message),
}

/// Messages the node may need to (re)send.
#[derive(Default)]
pub struct OutboxSnapshot {
    /// Offers with no answer yet.
    pub offers: Vec<(PublicKey, Signed<ConditionalIou>)>,
    /// My newest state on every line.
    pub states: Vec<(PublicKey, Signed<IouState>)>,
    /// My routed IOUs that their holders accepted and have not claimed yet, offered again
    /// (idempotent: the holder answers as before). Sent on start, they tell each holder that I
    /// am back, so that it sends its claim at once rather than after its backoff, which may
    /// outlast the grace before I let the IOU expire.
    pub awaiting_claim: Vec<(PublicKey, Message)>,
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

    /// Runs `step` on the ledger in the actor's next batch and waits until its changes are
    /// committed.
    pub async fn run<T: Send + 'static>(
        &self,
        step: impl FnOnce(&mut Ledger, &dyn Store, &mut Vec<StoreOp>) -> Result<T, ActorError>
        + Send
        + 'static,
    ) -> Result<T, ActorError> {
        self.call(|reply| {
            Command::Run(Box::new(move |ledger, store, ops| {
                defer(reply, step(ledger, store, ops))
            }))
        })
        .await
    }
}

/// Where the actor sends what it commits.
pub struct ActorOutputs {
    /// New states and messages for peers.
    pub outbound: mpsc::UnboundedSender<Outbound>,
    /// Secrets that are ready to publish.
    pub publish: mpsc::UnboundedSender<Publication>,
    /// Callers waiting on a payment, told of its changes.
    pub payments: std::sync::Arc<crate::waiters::PaymentWaiters>,
}

/// Starts the actor thread.
pub fn spawn(
    key: Keypair,
    mut ledger: Ledger,
    store: Box<dyn Store>,
    outputs: ActorOutputs,
) -> (ActorHandle, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    ledger.set_batch_signing(true);
    let actor = Actor {
        key,
        ledger,
        store,
        outputs,
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
    outputs: ActorOutputs,
}

/// An answer held back until the batch is committed.
pub type Deferred = Box<dyn FnOnce(Option<&ActorError>) + Send>;

/// A step [`Command::Run`] runs on the ledger, returning its held-back answer.
pub type LedgerStep =
    Box<dyn FnOnce(&mut Ledger, &dyn Store, &mut Vec<StoreOp>) -> Deferred + Send>;

fn defer<T: Send + 'static>(reply: Reply1<T>, result: Result<T, ActorError>) -> Deferred {
    Box::new(move |commit_error| {
        let result = match (commit_error, result) {
            (Some(e), _) => Err(e.clone()),
            (None, r) => r,
        };
        let _ = reply.send(result);
    })
}

/// See [`OutboxSnapshot::awaiting_claim`].
fn awaiting_claim(ledger: &Ledger) -> Vec<(PublicKey, Message)> {
    ledger
        .channels()
        .flat_map(|c| {
            c.out_conditionals()
                .values()
                .filter(|o| o.is_pending() && o.answer.is_some() && o.proof.is_none())
                .map(|o| {
                    let message = match &o.onward {
                        Some(onward) => Message::Forward(o.iou.clone(), onward.clone()),
                        None => Message::Offer(o.iou.clone()),
                    };
                    (c.peer().clone(), message)
                })
        })
        .collect()
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
            let now = crate::unix_now();
            let states = self.ledger.merge_states(now, &mut ops);
            // One signature over everything this batch made, before any of it is stored or
            // sent (the ops and messages encode it when they are written).
            self.ledger.sign_batch();
            let messages = self.ledger.take_outgoing();
            match self.store.commit(&ops) {
                Ok(()) => {
                    for answer in answers {
                        answer(None);
                    }
                    for (peer, state) in states {
                        let _ = self.outputs.outbound.send(Outbound::State(peer, state));
                    }
                    for (peer, message) in messages {
                        let _ = self.outputs.outbound.send(Outbound::Message(peer, message));
                    }
                    self.announce(&ops, now);
                }
                Err(e) => {
                    tracing::error!("commit failed, reloading the ledger from disk: {e}");
                    let error = ActorError::Storage(e.to_string());
                    for answer in answers {
                        answer(Some(&error));
                    }
                    match self.store.load() {
                        Ok(snapshot) => match Ledger::restore(self.key.clone(), snapshot) {
                            Ok(mut ledger) => {
                                ledger.set_batch_signing(true);
                                self.ledger = ledger;
                            }
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

    /// Tells the waiters about changed payments, and the publisher about secrets to publish.
    fn announce(&self, ops: &[StoreOp], now: u64) {
        for op in ops {
            match op {
                StoreOp::PutPayment(p) => self.outputs.payments.notify(p),
                StoreOp::PutHashlock(h)
                    if h.status == HashlockStatus::Publishing && now < h.expires_at =>
                {
                    if let Some(condition) = atomicity_core::routed::decode_condition(&h.condition)
                    {
                        let _ = self.outputs.publish.send(Publication {
                            hash: h.hash,
                            p: h.p,
                            condition,
                            expires_at: h.expires_at,
                        });
                    }
                }
                _ => {}
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
                settlements,
                replies,
                now,
                reply,
            } => {
                for (i, message) in &settlements {
                    if let Some(r) = replies.get(*i) {
                        ledger.settlement_reply(message, r, now, ops);
                    }
                }
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
                    awaiting_claim: awaiting_claim(ledger),
                }),
            ),
            Command::SetFees {
                peer,
                asset,
                fees,
                reply,
            } => defer(
                reply,
                ledger
                    .set_fees(&peer, &asset, fees, ops)
                    .map_err(Into::into),
            ),
            Command::Fees(peer, asset, reply) => defer(reply, Ok(ledger.fees(&peer, &asset))),
            Command::AddHashlock(new, now, reply) => defer(
                reply,
                ledger.add_hashlock(*new, now, ops).map_err(Into::into),
            ),
            Command::PayRouted(pay, reply) => {
                let pay = *pay;
                let result = ledger
                    .pay_routed(
                        &pay.payee,
                        &pay.asset,
                        pay.parts,
                        pay.condition,
                        pay.expires_at,
                        pay.payment_id,
                        pay.memo,
                        pay.payer_secret,
                        pay.now,
                        ops,
                    )
                    .map(drop)
                    .map_err(Into::into);
                defer(reply, result)
            }
            Command::Published(hash, proof, now, reply) => defer(
                reply,
                ledger
                    .published(&hash, *proof, now, ops)
                    .map_err(Into::into),
            ),
            Command::PublishFailed(hash, now, reply) => {
                ledger.publish_failed(&hash, now, ops);
                defer(reply, Ok(()))
            }
            Command::Tick(now, reply) => {
                ledger.tick(now, ops);
                defer(reply, Ok(()))
            }
            Command::Resend {
                now,
                min_age,
                reply,
            } => defer(reply, Ok(ledger.resend_messages(now, min_age))),
            Command::Publications(now, reply) => defer(reply, Ok(ledger.publications(now))),
            Command::Hashlock(hash, reply) => defer(
                reply,
                self.store
                    .hashlock(&hash)
                    .map_err(|e| ActorError::Storage(e.to_string())),
            ),
            Command::Lines(reply) => {
                let mut lines: Vec<LineInfo> = ledger
                    .channels()
                    .filter_map(|c| {
                        Some(LineInfo {
                            view: c.view()?,
                            fees: c.fees,
                            available: c.available_to_issue().unwrap_or_default(),
                        })
                    })
                    .collect();
                lines.sort_by(|a, b| {
                    (a.view.peer.to_z32(), &a.view.asset)
                        .cmp(&(b.view.peer.to_z32(), &b.view.asset))
                });
                defer(reply, Ok(lines))
            }
            Command::Run(step) => step(ledger, self.store.as_ref(), ops),
            Command::OutState(peer, asset, reply) => defer(
                reply,
                Ok(ledger
                    .channel(&peer, &asset)
                    .and_then(|c| c.out_state().cloned())),
            ),
        }
    }
}
