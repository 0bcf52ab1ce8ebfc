//! Splitting a sender's messages into envelopes: every envelope stays within the count and the
//! byte limit a peer takes, in order, and as full as the limits allow.

mod common;

use atomicity_core::{
    Envelope, MAX_ENVELOPE_LEN, Message, Signed, WitnessProof, envelope_batches,
    message::MAX_MESSAGES,
};
use common::{key, message, witness_vkey};
use proptest::prelude::*;

/// A proof message with a bundle of `len` bytes (a real bundle is about 1 KB).
fn proof(i: usize, len: usize) -> Message {
    Message::Proof {
        hash: [(i % 251) as u8; 32],
        proof: WitnessProof {
            p: [(i % 241) as u8; 32],
            log: witness_vkey(0),
            bundle: vec![0xab; len],
        },
    }
}

/// The signed envelope of a batch, as a sender puts it on the wire.
fn wire(messages: &[Message]) -> Vec<u8> {
    Signed::sign(
        Envelope {
            from: key(0).public_key(),
            to: key(1).public_key(),
            sent_at: 1_700_000_000,
            messages: messages.to_vec(),
        },
        key(0),
    )
    .to_bytes()
}

/// Checks the batches of `messages` against every rule; returns how many there are.
fn check_batches(messages: &[Message]) -> Result<usize, TestCaseError> {
    let batches = envelope_batches(messages);
    let rejoined: Vec<Message> = batches.iter().flat_map(|b| b.to_vec()).collect();
    prop_assert_eq!(&rejoined, &messages.to_vec(), "in order, each message once");
    for (i, batch) in batches.iter().enumerate() {
        prop_assert!(!batch.is_empty());
        prop_assert!(batch.len() <= MAX_MESSAGES);
        let bytes = wire(batch);
        prop_assert!(
            bytes.len() <= MAX_ENVELOPE_LEN,
            "envelope {i} of {} bytes",
            bytes.len()
        );
        let sizes: usize = batch.iter().map(Message::envelope_len).sum();
        prop_assert_eq!(bytes.len(), sizes + 142, "envelope_len is exact");
        // As full as the limits allow: the next message would have broken one.
        if let Some(next) = batches.get(i + 1).map(|b| &b[0]) {
            prop_assert!(
                batch.len() == MAX_MESSAGES || bytes.len() + next.envelope_len() > MAX_ENVELOPE_LEN
            );
        }
    }
    Ok(batches.len())
}

#[test]
fn a_thousand_proofs_take_two_envelopes() {
    // About what a hop queues for one peer when a thousand payments complete at once: in one
    // envelope they would pass the byte limit, though not the count.
    let proofs: Vec<Message> = (0..1000).map(|i| proof(i, 1_000)).collect();
    assert!(proofs.len() <= MAX_MESSAGES);
    assert!(wire(&proofs).len() > MAX_ENVELOPE_LEN);
    assert_eq!(check_batches(&proofs).expect("batches"), 2);
    for batch in envelope_batches(&proofs) {
        let decoded = Signed::<Envelope>::decode_verified(&wire(batch)).expect("decodes");
        assert_eq!(decoded.body().messages, batch.to_vec());
    }
}

#[test]
fn small_messages_split_at_the_count() {
    let many: Vec<Message> = (0..2 * MAX_MESSAGES + 1).map(|i| proof(i, 10)).collect();
    assert_eq!(check_batches(&many).expect("batches"), 3);
    assert!(envelope_batches(&[]).is_empty());
}

/// A message of any kind, or many small proofs (to reach the count), or large ones (to reach
/// the byte limit).
fn mixed() -> impl Strategy<Value = Vec<Message>> {
    prop::collection::vec(
        prop_oneof![
            4 => (0..1usize << 20, 0..200usize).prop_map(|(i, n)| vec![proof(i, 8); n]),
            2 => (0..1usize << 20, 1..40usize, 1_000..48_000usize)
                .prop_map(|(i, n, len)| vec![proof(i, len); n]),
            1 => prop::collection::vec(message(), 1..8),
        ],
        0..24,
    )
    .prop_map(|runs| runs.into_iter().flatten().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn batches_keep_every_limit(messages in mixed()) {
        check_batches(&messages)?;
    }
}
