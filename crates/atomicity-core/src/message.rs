//! What peers send each other: signed envelopes of messages, and the per-message replies.

use pkarr::PublicKey;

use crate::condition::WitnessProof;
use crate::encoding::{DecodeError, Reader, Writer};
use crate::forward::Onward;
use crate::objects::{Acceptance, ConditionalIou, IouState, Release};
use crate::settlement::{SettlementRequest, SettlementUpdate};
use crate::signed::{Signed, SignedBody, VERSION, VerifiedRoots};

/// Most messages in one envelope.
pub const MAX_MESSAGES: usize = 1024;
/// Largest encoded signed object inside an envelope.
pub const MAX_OBJECT_LEN: usize = 64 * 1024;
/// Longest human-readable rejection text in a reply.
pub const MAX_REJECTION_TEXT: usize = 512;
/// Largest envelope, as sent (signature included), that a node takes. A sender splits its
/// messages into envelopes under it ([`envelope_batches`]): a thousand proofs (about 1.1 KB
/// each) would not fit in one.
pub const MAX_ENVELOPE_LEN: usize = 1024 * 1024;
/// The bytes of an envelope that are not its messages: version, kind, from, to, sent at,
/// count and signature.
const ENVELOPE_OVERHEAD: usize = 1 + 1 + 32 + 32 + 8 + 4 + 64;

/// One protocol message. Each carries its own signed object, so a message is meaningful
/// (and harmless to repeat) on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A conditional IOU offered to the holder.
    Offer(Signed<ConditionalIou>),
    /// The issuer's newest IOU state.
    State(Signed<IouState>),
    /// The holder's acceptance of an offer (also sent as the reply to an offer).
    Accept(Signed<Acceptance>),
    /// The holder's release of an offer (also sent as the reply to an offer), or an early
    /// release of an accepted routed IOU whose payment failed.
    Release(Signed<Release>),
    /// A routed conditional IOU offered to the holder, with where to forward it.
    Forward(Signed<ConditionalIou>, Onward),
    /// The proof that the secret of `hash` was published. From a holder it claims every IOU
    /// with that hash the recipient issued to it; from an issuer it reveals the secret so the
    /// holder can claim.
    Proof {
        /// The payment hash.
        hash: [u8; 32],
        /// The secret and the witness log's bundle.
        proof: WitnessProof,
    },
    /// The IOU the last hop of a payer-published route issued to the payee, passed back up the
    /// route to the payer (who publishes the secret once every part is in place).
    Issued(Signed<ConditionalIou>),
    /// A request to pay out credit (or to pay an invoice against a conditional IOU).
    Settle(Box<Signed<SettlementRequest>>),
    /// The payer's answer to a settlement request: refused, or paid with evidence.
    SettleUpdate(Box<Signed<SettlementUpdate>>),
}

impl Message {
    /// Checks the signatures this message carries and remembers the ones that verify
    /// ([`Signed::verify`]), so that the ledger's own checks are free. A node calls it where it
    /// receives, off the ledger's thread; a signature that fails is left for the ledger to
    /// reject with its reason.
    ///
    /// `roots` remembers the batch roots that verified ([`VerifiedRoots`]): keep one for all
    /// the messages of an envelope, whose objects mostly come from a few batches.
    pub fn precheck(&self, roots: &mut VerifiedRoots) {
        let _ = match self {
            Message::Offer(iou) | Message::Forward(iou, _) | Message::Issued(iou) => {
                iou.verify_with(roots)
            }
            Message::State(state) => state.verify_with(roots),
            Message::Accept(a) => a.verify_with(roots),
            Message::Release(r) => r.verify_with(roots),
            Message::Settle(request) => request.verify_with(roots),
            Message::SettleUpdate(update) => update.verify_with(roots),
            Message::Proof { .. } => Ok(()),
        };
    }

    fn tag(&self) -> u8 {
        match self {
            Message::Offer(_) => 1,
            Message::State(_) => 2,
            Message::Accept(_) => 3,
            Message::Release(_) => 4,
            Message::Forward(..) => 5,
            Message::Proof { .. } => 6,
            Message::Issued(_) => 7,
            Message::Settle(_) => 8,
            Message::SettleUpdate(_) => 9,
        }
    }

    /// The encoded object the message carries (for `Forward`: the IOU's bytes, length-prefixed,
    /// then the instructions; for `Proof`: the hash, then the proof).
    pub fn object_bytes(&self) -> Vec<u8> {
        match self {
            Message::Offer(o) | Message::Issued(o) => o.to_bytes(),
            Message::State(s) => s.to_bytes(),
            Message::Settle(r) => r.to_bytes(),
            Message::SettleUpdate(u) => u.to_bytes(),
            Message::Accept(a) => a.to_bytes(),
            Message::Release(r) => r.to_bytes(),
            Message::Forward(iou, onward) => {
                let mut w = Writer::new();
                w.bytes(&iou.to_bytes());
                onward.encode(&mut w);
                w.into_bytes()
            }
            Message::Proof { hash, proof } => {
                let mut w = Writer::new();
                w.fixed(hash);
                proof.encode(&mut w);
                w.into_bytes()
            }
        }
    }

    /// How many bytes the message takes in an envelope: its tag, its object's length and the
    /// object.
    pub fn envelope_len(&self) -> usize {
        let object = match self {
            Message::Offer(o) | Message::Issued(o) => o.wire_len(),
            Message::State(s) => s.wire_len(),
            Message::Settle(r) => r.wire_len(),
            Message::SettleUpdate(u) => u.wire_len(),
            Message::Accept(a) => a.wire_len(),
            Message::Release(r) => r.wire_len(),
            Message::Forward(..) | Message::Proof { .. } => self.object_bytes().len(),
        };
        1 + 4 + object
    }

    fn decode(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
        let tag = r.u8("message tag")?;
        let bytes = r.bytes("message object", MAX_OBJECT_LEN)?;
        Ok(match tag {
            1 => Message::Offer(Signed::decode(bytes)?),
            2 => Message::State(Signed::decode(bytes)?),
            3 => Message::Accept(Signed::decode(bytes)?),
            4 => Message::Release(Signed::decode(bytes)?),
            5 => {
                let mut inner = Reader::new(bytes);
                let iou = Signed::decode(inner.bytes("forwarded IOU", MAX_OBJECT_LEN)?)?;
                let onward = Onward::decode(&mut inner)?;
                inner.finish()?;
                Message::Forward(iou, onward)
            }
            6 => {
                let mut inner = Reader::new(bytes);
                let hash = inner.array("payment hash")?;
                let proof = WitnessProof::decode(&mut inner)?;
                inner.finish()?;
                Message::Proof { hash, proof }
            }
            7 => Message::Issued(Signed::decode(bytes)?),
            8 => Message::Settle(Box::new(Signed::decode(bytes)?)),
            9 => Message::SettleUpdate(Box::new(Signed::decode(bytes)?)),
            tag => {
                return Err(DecodeError::UnknownTag {
                    field: "message",
                    tag,
                });
            }
        })
    }
}

/// Splits `messages`, in order, into runs that each make one envelope of at most
/// [`MAX_MESSAGES`] messages and [`MAX_ENVELOPE_LEN`] bytes. Each message fits in an envelope
/// on its own (its object is at most [`MAX_OBJECT_LEN`]); one that is larger, which no peer
/// would take, goes alone.
pub fn envelope_batches(messages: &[Message]) -> Vec<&[Message]> {
    let mut batches = Vec::new();
    let (mut start, mut len) = (0, ENVELOPE_OVERHEAD);
    for (i, message) in messages.iter().enumerate() {
        let add = message.envelope_len();
        if i > start && (i - start == MAX_MESSAGES || len.saturating_add(add) > MAX_ENVELOPE_LEN) {
            batches.push(&messages[start..i]);
            (start, len) = (i, ENVELOPE_OVERHEAD);
        }
        len = len.saturating_add(add);
    }
    if start < messages.len() {
        batches.push(&messages[start..]);
    }
    batches
}

/// A batch of messages from one key to another, signed by the sender.
///
/// The envelope authenticates the sender and names the recipient (so it cannot be replayed to
/// somebody else); `sent_at` lets the recipient refuse stale envelopes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The sender, who signs.
    pub from: PublicKey,
    /// The recipient.
    pub to: PublicKey,
    /// Unix seconds when it was sent.
    pub sent_at: u64,
    /// One to [`MAX_MESSAGES`] messages.
    pub messages: Vec<Message>,
}

impl SignedBody for Envelope {
    const KIND: u8 = 5;
    const NAME: &'static str = "envelope";

    fn encode_body(&self, w: &mut Writer) {
        w.key(&self.from);
        w.key(&self.to);
        w.u64(self.sent_at);
        // Bounded by MAX_MESSAGES when built by this implementation.
        w.u32(self.messages.len() as u32);
        for m in &self.messages {
            w.u8(m.tag());
            w.bytes(&m.object_bytes());
        }
    }

    fn decode_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let from = r.key("from")?;
        let to = r.key("to")?;
        let sent_at = r.u64("sent at")?;
        let count = r.count("messages", MAX_MESSAGES)?;
        if count == 0 {
            return Err(DecodeError::Invalid {
                field: "messages",
                why: "an envelope carries at least one message",
            });
        }
        let messages = (0..count)
            .map(|_| Message::decode(r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Envelope {
            from,
            to,
            sent_at,
            messages,
        })
    }

    fn signer(&self) -> &PublicKey {
        &self.from
    }
}

/// The recipient's answer to one message of an envelope, in the same order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The offer is accepted (a fresh or the stored acceptance).
    Accepted(Signed<Acceptance>),
    /// The offer is refused (a fresh or the stored release).
    Released(Signed<Release>),
    /// The state with this seq is the newest the recipient holds.
    StateAck {
        /// The seq now held.
        seq: u64,
    },
    /// The message was taken (or had been taken before).
    Ok,
    /// The message was rejected and changed nothing.
    Rejected {
        /// A stable code (see `docs/protocol.md`).
        code: u16,
        /// What was wrong, for humans.
        text: String,
    },
}

impl Reply {
    /// [`Message::precheck`] for the answer a reply carries.
    pub fn precheck(&self, roots: &mut VerifiedRoots) {
        let _ = match self {
            Reply::Accepted(a) => a.verify_with(roots),
            Reply::Released(r) => r.verify_with(roots),
            _ => Ok(()),
        };
    }
}

/// Encodes replies: `version || count (u32) || (tag || fields)*`.
pub fn encode_replies(replies: &[Reply]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(VERSION);
    w.u32(replies.len() as u32);
    for reply in replies {
        match reply {
            Reply::Accepted(a) => {
                w.u8(1);
                w.bytes(&a.to_bytes());
            }
            Reply::Released(r) => {
                w.u8(2);
                w.bytes(&r.to_bytes());
            }
            Reply::StateAck { seq } => {
                w.u8(3);
                w.u64(*seq);
            }
            Reply::Ok => w.u8(4),
            Reply::Rejected { code, text } => {
                w.u8(5);
                w.u32(u32::from(*code));
                let text = truncate_utf8(text, MAX_REJECTION_TEXT);
                w.bytes(text.as_bytes());
            }
        }
    }
    w.into_bytes()
}

/// Decodes replies (signatures inside are not checked here).
pub fn decode_replies(bytes: &[u8]) -> Result<Vec<Reply>, DecodeError> {
    let mut r = Reader::new(bytes);
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let count = r.count("replies", MAX_MESSAGES)?;
    let mut replies = Vec::with_capacity(count);
    for _ in 0..count {
        replies.push(match r.u8("reply tag")? {
            1 => Reply::Accepted(Signed::decode(r.bytes("acceptance", MAX_OBJECT_LEN)?)?),
            2 => Reply::Released(Signed::decode(r.bytes("release", MAX_OBJECT_LEN)?)?),
            3 => Reply::StateAck { seq: r.u64("seq")? },
            4 => Reply::Ok,
            5 => {
                let code = r.u32("code")?;
                let code = u16::try_from(code).map_err(|_| DecodeError::Invalid {
                    field: "code",
                    why: "above 65535",
                })?;
                let text = r.bytes("text", MAX_REJECTION_TEXT)?;
                let text = String::from_utf8_lossy(text).into_owned();
                Reply::Rejected { code, text }
            }
            tag => {
                return Err(DecodeError::UnknownTag {
                    field: "reply",
                    tag,
                });
            }
        });
    }
    r.finish()?;
    Ok(replies)
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
