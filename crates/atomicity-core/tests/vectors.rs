//! Test vectors: fixed keys and fields, and the exact bytes they must give. Ed25519 is
//! deterministic, so the signatures are fixed too. `docs/protocol.md` repeats every vector for
//! other implementations; a test here checks that it still does.

use atomicity_core::signed::{SignedBody, signing_input};
use atomicity_core::{
    Acceptance, Amount, Asset, Condition, ConditionalIou, Envelope, IouState, Keypair, LineId,
    Message, Release, ReleaseReason, Reply, ResolvedSet, Signed, Total, decode_replies,
    encode_replies,
};

/// The issuer (and envelope sender): secret key `[1; 32]`.
const ISSUER_PUBLIC: &str = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";
/// Its z-base32 (Pkarr) form.
const ISSUER_Z32: &str = "tkrq8zmwb8a3m9k15csu3q17qmfgqnp9dskbrg9uq1rydpyxp7qy";
/// The holder (and envelope recipient): secret key `[2; 32]`.
const HOLDER_PUBLIC: &str = "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394";
/// Its z-base32 (Pkarr) form.
const HOLDER_Z32: &str = "orhzqdiexwmi6iidktucgud63ufa5nwtsuzdxe176a8izd6jsqky";

/// One signed object's expected bytes, all in lower-case hex.
struct Vector {
    /// The domain name.
    name: &'static str,
    /// `"atomicity/v1/" || name || 0x00`: the signing input is this followed by `unsigned`.
    signing_prefix: &'static str,
    /// `version || kind || body`.
    unsigned: &'static str,
    /// The Ed25519 signature over `signing_prefix || unsigned`.
    signature: &'static str,
    /// SHA-256 of `unsigned` (the object's id, e.g. in an acceptance's `iou_hash`).
    hash: &'static str,
}

/// The iou-state vector.
const STATE: Vector = Vector {
    name: "iou-state",
    signing_prefix: "61746f6d69636974792f76312f696f752d737461746500",
    unsigned: concat!(
        "01018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f",
        "6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9",
        "b394035553440200000000000000070000000000000000000000000000303900",
        "000000000000030000000200000000000000050000000000000009",
    ),
    signature: concat!(
        "bf7593c2b5b25b2013ce5b30d75c25eb6448e43ab33eb526e1e6227a2527162f",
        "99126ced40a2297184972cd10013a12ce99b3353845f7112cffff960f53e5a08",
    ),
    hash: "a309851ea4e961716da4a4822b226e50f7f1feed3c11915ee9cdb1a33288da1c",
};

/// The conditional-iou vector.
const IOU: Vector = Vector {
    name: "conditional-iou",
    signing_prefix: "61746f6d69636974792f76312f636f6e646974696f6e616c2d696f7500",
    unsigned: concat!(
        "01028a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f",
        "6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9",
        "b3940355534402000000000000000a00000000000001f4010001020304050607",
        "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f000000006553f358",
        "000000056c756e6368",
    ),
    signature: concat!(
        "a13de8f352bd963d2ceb4b35c2ea9121bc6b4003b1dea8011d8bcff3175afc56",
        "303661caae83b71841077824a90c71c7d0b85d8613c80b6f65af6049a6caa20b",
    ),
    hash: "ca5f6096f4b04848b42c6dfc541484fbcab04966971038106a737b0c83153ef2",
};

/// The acceptance vector.
const ACCEPTANCE: Vector = Vector {
    name: "acceptance",
    signing_prefix: "61746f6d69636974792f76312f616363657074616e636500",
    unsigned: concat!(
        "01038a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f",
        "6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9",
        "b3940355534402000000000000000aca5f6096f4b04848b42c6dfc541484fbca",
        "b04966971038106a737b0c83153ef2",
    ),
    signature: concat!(
        "6e223bb48156747a0fab064c1eb6ed6a83091343a00357e6e2217acbe4ac675b",
        "0b678ab241d76532041ba5b2c265be4019b4c353e801def4b86abdf9416f1d08",
    ),
    hash: "7d1343d9d8328f754859b7d63206ceaff3676c9b9417438bd9246c511887a8cb",
};

/// The release vector.
const RELEASE: Vector = Vector {
    name: "release",
    signing_prefix: "61746f6d69636974792f76312f72656c6561736500",
    unsigned: concat!(
        "01048a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f",
        "6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9",
        "b3940355534402000000000000000aca5f6096f4b04848b42c6dfc541484fbca",
        "b04966971038106a737b0c83153ef201",
    ),
    signature: concat!(
        "9f34587005c05a8b5fa542289ee1aa11728a04477cbaf18c294dc914aca4dc98",
        "e8106939417e04f5e44ba6056b5aee2aa252243125c1e8a6eace110edd31a60f",
    ),
    hash: "5350726c92b5fe2ea885fc3310f79f1f24f8bd221e4735b720ff011a156faca1",
};

/// The envelope vector.
const ENVELOPE: Vector = Vector {
    name: "envelope",
    signing_prefix: "61746f6d69636974792f76312f656e76656c6f706500",
    unsigned: concat!(
        "01058a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f",
        "6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9",
        "b394000000006553f1000000000201000000c901028a88e3dd7409f195fd52db",
        "2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c8139770ea87d175f56a354",
        "66c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b3940355534402000000000000",
        "000a00000000000001f401000102030405060708090a0b0c0d0e0f1011121314",
        "15161718191a1b1c1d1e1f000000006553f358000000056c756e6368a13de8f3",
        "52bd963d2ceb4b35c2ea9121bc6b4003b1dea8011d8bcff3175afc56303661ca",
        "ae83b71841077824a90c71c7d0b85d8613c80b6f65af6049a6caa20b02000000",
        "bb01018a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b4",
        "0f6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8f",
        "c9b3940355534402000000000000000700000000000000000000000000003039",
        "00000000000000030000000200000000000000050000000000000009bf7593c2",
        "b5b25b2013ce5b30d75c25eb6448e43ab33eb526e1e6227a2527162f99126ced",
        "40a2297184972cd10013a12ce99b3353845f7112cffff960f53e5a08",
    ),
    signature: concat!(
        "1d9c6070216093aa5e0b7cba674def4da1a602c736ae94172a3102f8d2718289",
        "412869a33cdfac3f1f99b6b65b789b27e68fddbd5a7325bd70603673b7c0ea08",
    ),
    hash: "c28a7f6c57939c6fd0361e8c8a52ed1b7b1d386f04c00314f02ce69a1bc88c69",
};

/// The replies vector.
const REPLIES: &str = concat!(
    "010000000401000000af01038a88e3dd7409f195fd52db2d3cba5d72ca6709bf",
    "1d94121bf3748801b40f6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91",
    "b4ee37a25df60f5b8fc9b3940355534402000000000000000aca5f6096f4b048",
    "48b42c6dfc541484fbcab04966971038106a737b0c83153ef26e223bb4815674",
    "7a0fab064c1eb6ed6a83091343a00357e6e2217acbe4ac675b0b678ab241d765",
    "32041ba5b2c265be4019b4c353e801def4b86abdf9416f1d0803000000000000",
    "0007040500000014000000057374616c65",
);

fn issuer() -> Keypair {
    Keypair::from_secret_key(&[1; 32])
}

fn holder() -> Keypair {
    Keypair::from_secret_key(&[2; 32])
}

fn line() -> LineId {
    LineId {
        issuer: issuer().public_key(),
        holder: holder().public_key(),
        asset: Asset::new("USD", 2).expect("USD"),
    }
}

/// IOU state: seq 7, total 123.45 USD, ids 0, 1, 2, 5 and 9 resolved.
fn state() -> Signed<IouState> {
    let mut resolved = ResolvedSet::new();
    for id in [0, 1, 2, 5, 9] {
        resolved.insert(id);
    }
    Signed::sign(
        IouState {
            line: line(),
            seq: 7,
            total: Total::from_minor(12_345),
            resolved,
        },
        &issuer(),
    )
}

/// Conditional IOU 10: 5.00 USD, payment id 00 01 02 .. 1f, expires at 1700000600, memo "lunch".
fn iou() -> Signed<ConditionalIou> {
    let mut payment_id = [0u8; 32];
    for (i, b) in payment_id.iter_mut().enumerate() {
        *b = i as u8;
    }
    Signed::sign(
        ConditionalIou {
            line: line(),
            id: 10,
            amount: Amount::from_minor(500),
            condition: Condition::HolderAccepts,
            payment_id,
            expires_at: 1_700_000_600,
            memo: "lunch".into(),
        },
        &issuer(),
    )
}

/// The holder's acceptance of [`iou`].
fn acceptance() -> Signed<Acceptance> {
    Signed::sign(
        Acceptance {
            line: line(),
            id: 10,
            iou_hash: iou().hash(),
        },
        &holder(),
    )
}

/// The holder's release of [`iou`], over its limit.
fn release() -> Signed<Release> {
    Signed::sign(
        Release {
            line: line(),
            id: 10,
            iou_hash: iou().hash(),
            reason: ReleaseReason::OverLimit,
        },
        &holder(),
    )
}

/// An envelope from the issuer to the holder, sent at 1700000000, with the offer and the state.
fn envelope() -> Signed<Envelope> {
    Signed::sign(
        Envelope {
            from: issuer().public_key(),
            to: holder().public_key(),
            sent_at: 1_700_000_000,
            messages: vec![Message::Offer(iou()), Message::State(state())],
        },
        &issuer(),
    )
}

/// Replies: the acceptance, an ack of seq 7, ok, and a rejection (code 20, "stale").
fn replies() -> Vec<Reply> {
    vec![
        Reply::Accepted(acceptance()),
        Reply::StateAck { seq: 7 },
        Reply::Ok,
        Reply::Rejected {
            code: 20,
            text: "stale".into(),
        },
    ]
}

fn check<T: SignedBody + PartialEq + std::fmt::Debug>(signed: &Signed<T>, v: &Vector) {
    assert_eq!(T::NAME, v.name);
    let wire = signed.to_bytes();
    let (unsigned, signature) = wire.split_at(wire.len() - 64);
    assert_eq!(
        hex::encode(unsigned),
        v.unsigned,
        "{}: unsigned encoding",
        v.name
    );
    assert_eq!(
        hex::encode(signing_input::<T>(unsigned)),
        format!("{}{}", v.signing_prefix, v.unsigned),
        "{}: signing input",
        v.name
    );
    assert_eq!(
        hex::encode(format!("atomicity/v1/{}\0", v.name)),
        v.signing_prefix
    );
    assert_eq!(hex::encode(signature), v.signature, "{}: signature", v.name);
    assert_eq!(hex::encode(signed.hash()), v.hash, "{}: hash", v.name);

    // The other way: the hex decodes and verifies to the same object.
    let bytes = hex::decode(format!("{}{}", v.unsigned, v.signature)).expect("hex");
    let back = Signed::<T>::decode_verified(&bytes).expect("vector verifies");
    assert_eq!(back.body(), signed.body());
}

#[test]
fn keys() {
    assert_eq!(hex::encode(issuer().public_key().as_bytes()), ISSUER_PUBLIC);
    assert_eq!(hex::encode(holder().public_key().as_bytes()), HOLDER_PUBLIC);
    assert_eq!(issuer().public_key().to_z32(), ISSUER_Z32);
    assert_eq!(holder().public_key().to_z32(), HOLDER_Z32);
}

#[test]
fn iou_state_vector() {
    check(&state(), &STATE);
}

#[test]
fn conditional_iou_vector() {
    check(&iou(), &IOU);
}

#[test]
fn acceptance_vector() {
    check(&acceptance(), &ACCEPTANCE);
    assert_eq!(hex::encode(acceptance().body().iou_hash), IOU.hash);
}

#[test]
fn release_vector() {
    check(&release(), &RELEASE);
    assert_eq!(hex::encode(release().body().iou_hash), IOU.hash);
}

#[test]
fn envelope_vector() {
    check(&envelope(), &ENVELOPE);
    // The envelope carries each object's full wire bytes (unsigned || signature).
    for inner in [&IOU, &STATE] {
        assert!(
            ENVELOPE
                .unsigned
                .contains(&format!("{}{}", inner.unsigned, inner.signature))
        );
    }
}

#[test]
fn replies_vector() {
    assert_eq!(hex::encode(encode_replies(&replies())), REPLIES);
    let bytes = hex::decode(REPLIES).expect("hex");
    assert_eq!(decode_replies(&bytes), Ok(replies()));
}

#[test]
fn the_protocol_document_repeats_every_vector() {
    let doc: String = include_str!("../../../docs/protocol.md")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut expected = vec![
        ISSUER_PUBLIC,
        HOLDER_PUBLIC,
        ISSUER_Z32,
        HOLDER_Z32,
        REPLIES,
    ];
    for v in [&STATE, &IOU, &ACCEPTANCE, &RELEASE, &ENVELOPE] {
        expected.extend([v.signing_prefix, v.unsigned, v.signature, v.hash]);
    }
    for hex in expected {
        assert!(doc.contains(hex), "docs/protocol.md lacks {hex}");
    }
}
