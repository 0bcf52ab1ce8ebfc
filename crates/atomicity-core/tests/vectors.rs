//! Test vectors: fixed keys and fields, and the exact bytes they must give. Ed25519 is
//! deterministic, so the signatures are fixed too. `docs/protocol.md` repeats every vector for
//! other implementations; a test here checks that it still does.

use atomicity_core::delegation::{Cap, DelegatedPayment, Delegation};
use atomicity_core::published::EndpointId;
use atomicity_core::signed::{SignedBody, signing_input};
use atomicity_core::{
    Acceptance, Amount, Asset, Condition, ConditionalIou, Envelope, Evidence, Hop, Invoice,
    IouState, Keypair, LineId, Message, Onward, Outcome, ProofError, Release, ReleaseReason, Reply,
    ResolvedSet, SettlementKind, SettlementRequest, SettlementUpdate, Signed, Total,
    WitnessCondition, WitnessProof, WitnessTerms, decode_replies, encode_replies, payment_hash,
    payout_payment_id, receipt_payment_id,
};
use sha2::{Digest, Sha256};

/// The issuer (and envelope sender): secret key `[1; 32]`.
const ISSUER_PUBLIC: &str = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c";
/// Its z-base32 (Pkarr) form.
const ISSUER_Z32: &str = "tkrq8zmwb8a3m9k15csu3q17qmfgqnp9dskbrg9uq1rydpyxp7qy";
/// The holder (and envelope recipient): secret key `[2; 32]`.
const HOLDER_PUBLIC: &str = "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394";
/// Its z-base32 (Pkarr) form.
const HOLDER_Z32: &str = "orhzqdiexwmi6iidktucgud63ufa5nwtsuzdxe176a8izd6jsqky";

/// The payee of the routed vectors (the next hop after the holder): secret key `[3; 32]`.
const PAYEE_PUBLIC: &str = "ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d1";
/// Its z-base32 (Pkarr) form.
const PAYEE_Z32: &str = "7ir1ttte48bcp4zjychjyscicrwi1j34mtt91ptsafdbjmr8g9eo";

/// The witness log's verifier key: `Signer::new("witness.example/log", [3; 32])`.
const WITNESS_VKEY: &str =
    "witness.example/log+d38d3d46+Ae1JKMYo0cLG6ukDOJBZlWEpWSc6XGP5NjbBRhSshzfR";
/// The same key as the bytes of the encoding (73 bytes, after its `u32` length `00000049`).
const WITNESS_VKEY_HEX: &str = concat!(
    "7769746e6573732e6578616d706c652f6c6f672b64333864336434362b416531",
    "4a4b4d596f30634c4736756b444f4a425a6c57457057536336584750354e6a62",
    "4252685373687a6652",
);
/// The routed payment's secret `p` is `[0x42; 32]`; this is `SHA-256(p)`.
const PAYMENT_HASH: &str = "425ed4e4a36b30ea21b90e21c712c649e8214c29b7eaf68089d1039c6e55384c";

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

/// The routed conditional-iou vector (condition 2, witness commit).
const ROUTED_IOU: Vector = Vector {
    name: "conditional-iou",
    signing_prefix: "61746f6d69636974792f76312f636f6e646974696f6e616c2d696f7500",
    unsigned: concat!(
        "01028a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f",
        "6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9",
        "b3940355534402000000000000000b00000000000003e802425ed4e4a36b30ea",
        "21b90e21c712c649e8214c29b7eaf68089d1039c6e55384c0000000100000049",
        "7769746e6573732e6578616d706c652f6c6f672b64333864336434362b416531",
        "4a4b4d596f30634c4736756b444f4a425a6c57457057536336584750354e6a62",
        "4252685373687a66520000000000000000000000006400000000000000a00001",
        "02030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0000",
        "00006553ff1000000006726f75746564",
    ),
    signature: concat!(
        "54c43811ff1745249049350e596bd940a6fcc5d13f5ca8730a6c8cc31f060e75",
        "07cb5ccf15ca90508ba06b792ef397a1560bbd1c0f0a8e11b5e5fac97956850e",
    ),
    hash: "4fb5586753dea1d75a24d5a68fca27c45137b2e173637b9dfedd5a3ccd0e1454",
};

/// The object bytes of the forward message (tag 5): the routed IOU's wire form as bytes, then
/// the instructions (one hop: the payee, 9.90 USD; the payee publishes).
const FORWARD_OBJECT: &str = concat!(
    "0000015001028a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf374",
    "8801b40f6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df6",
    "0f5b8fc9b3940355534402000000000000000b00000000000003e802425ed4e4",
    "a36b30ea21b90e21c712c649e8214c29b7eaf68089d1039c6e55384c00000001",
    "000000497769746e6573732e6578616d706c652f6c6f672b6433386433643436",
    "2b4165314a4b4d596f30634c4736756b444f4a425a6c57457057536336584750",
    "354e6a624252685373687a665200000000000000000000000064000000000000",
    "00a0000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d",
    "1e1f000000006553ff1000000006726f7574656454c43811ff1745249049350e",
    "596bd940a6fcc5d13f5ca8730a6c8cc31f060e7507cb5ccf15ca90508ba06b79",
    "2ef397a1560bbd1c0f0a8e11b5e5fac97956850e00000001ed4928c628d1c2c6",
    "eae90338905995612959273a5c63f93636c14614ac8737d100000000000003de",
    "00",
);

/// The envelope vector with the forward message.
const FORWARD_ENVELOPE: Vector = Vector {
    name: "envelope",
    signing_prefix: "61746f6d69636974792f76312f656e76656c6f706500",
    unsigned: concat!(
        "01058a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f",
        "6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9",
        "b394000000006553f1000000000105000001810000015001028a88e3dd7409f1",
        "95fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c8139770ea87d17",
        "5f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b39403555344020000",
        "00000000000b00000000000003e802425ed4e4a36b30ea21b90e21c712c649e8",
        "214c29b7eaf68089d1039c6e55384c00000001000000497769746e6573732e65",
        "78616d706c652f6c6f672b64333864336434362b4165314a4b4d596f30634c47",
        "36756b444f4a425a6c57457057536336584750354e6a624252685373687a6652",
        "0000000000000000000000006400000000000000a0000102030405060708090a",
        "0b0c0d0e0f101112131415161718191a1b1c1d1e1f000000006553ff10000000",
        "06726f7574656454c43811ff1745249049350e596bd940a6fcc5d13f5ca8730a",
        "6c8cc31f060e7507cb5ccf15ca90508ba06b792ef397a1560bbd1c0f0a8e11b5",
        "e5fac97956850e00000001ed4928c628d1c2c6eae90338905995612959273a5c",
        "63f93636c14614ac8737d100000000000003de00",
    ),
    signature: concat!(
        "8f0902b2d2418a1fc400c6a36a190b9db6edee11ff83e86353580ee4f35d6b66",
        "4b9ade7abd4cf9b587cf4559c0954c30e271ed3286ace0bf779348b2de795206",
    ),
    hash: "eb200b11b755199a8dc79bc5d2e39668f1194448f6b4fbea58d3af1f1a2bc9ef",
};

/// The object bytes of the proof message (tag 6): the payment hash, then the proof (the secret,
/// the log's verifier key, and an 8-byte stand-in for a bundle).
const PROOF_OBJECT: &str = concat!(
    "425ed4e4a36b30ea21b90e21c712c649e8214c29b7eaf68089d1039c6e55384c",
    "4242424242424242424242424242424242424242424242424242424242424242",
    "000000497769746e6573732e6578616d706c652f6c6f672b6433386433643436",
    "2b4165314a4b4d596f30634c4736756b444f4a425a6c57457057536336584750",
    "354e6a624252685373687a6652000000084154574201000000",
);

/// The envelope vector with the proof message (holder to issuer: a claim).
const PROOF_ENVELOPE: Vector = Vector {
    name: "envelope",
    signing_prefix: "61746f6d69636974792f76312f656e76656c6f706500",
    unsigned: concat!(
        "01058139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9",
        "b3948a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f",
        "6f5c000000006553f164000000010600000099425ed4e4a36b30ea21b90e21c7",
        "12c649e8214c29b7eaf68089d1039c6e55384c42424242424242424242424242",
        "42424242424242424242424242424242424242000000497769746e6573732e65",
        "78616d706c652f6c6f672b64333864336434362b4165314a4b4d596f30634c47",
        "36756b444f4a425a6c57457057536336584750354e6a624252685373687a6652",
        "000000084154574201000000",
    ),
    signature: concat!(
        "a6ae7d5fa54b4d6668977f3da773653ff026ff2a133ef8fbb83907136f78e7b2",
        "8a15be0492999aedffd380a588c07365f44f86009db0c1b5499bf8077e14b902",
    ),
    hash: "e33e8563d575ec78fe23deaa3e601f6858f2ff8cc16defc9c5fe5a77461508e0",
};

/// The invoice for the routed payment: the payee asks 9.90 USD with the routed IOU's condition
/// and deadline.
const INVOICE_URI: &str = concat!(
    "atomicity:7ir1ttte48bcp4zjychjyscicrwi1j34mtt91ptsafdbjmr8g9eo",
    "?amount=9.90&asset=USD",
    "&hash=425ed4e4a36b30ea21b90e21c712c649e8214c29b7eaf68089d1039c6e55384c",
    "&expires=1700003600",
    "&witness=witness.example%2Flog%2Bd38d3d46%2BAe1JKMYo0cLG6ukDOJBZlWEpWSc6XGP5NjbBRhSshzfR",
    "%3B100%3B160",
    "&memo=routed",
);

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

/// The settlement-request vector: a swap from the issuer to the holder with the routed vectors'
/// witness condition.
const SETTLEMENT_REQUEST: Vector = Vector {
    name: "settlement-request",
    signing_prefix: "61746f6d69636974792f76312f736574746c656d656e742d7265717565737400",
    unsigned: concat!(
        "0106202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d",
        "3e3f8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f",
        "6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9",
        "b39402035553440200000000000003e800000001000000146274632d6c696768",
        "746e696e672d626f6c7431310000000b6c6e626331766563746f7201425ed4e4",
        "a36b30ea21b90e21c712c649e8214c29b7eaf68089d1039c6e55384c00000001",
        "000000497769746e6573732e6578616d706c652f6c6f672b6433386433643436",
        "2b4165314a4b4d596f30634c4736756b444f4a425a6c57457057536336584750",
        "354e6a624252685373687a665200000000000000000000000064000000000000",
        "00a0000000006553f100000000006553ff100000000473776170",
    ),
    signature: concat!(
        "41e18a91125eb040546a204170aa4498258b1f39648c9cbf2229bdd40bf06188",
        "1e8b9c17ae3644b55ff53e694aa01b0e9b9dcdae7c4654119f57f428630a9605",
    ),
    hash: "cd5953f587d075f25930e4abf04cc8fc7b2c312f0d8b374c5d8966ec30cddcd4",
};

/// The settlement-update vector: the holder paid the request's invoice (preimage evidence).
const SETTLEMENT_UPDATE: Vector = Vector {
    name: "settlement-update",
    signing_prefix: "61746f6d69636974792f76312f736574746c656d656e742d75706461746500",
    unsigned: concat!(
        "0107202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d",
        "3e3fcd5953f587d075f25930e4abf04cc8fc7b2c312f0d8b374c5d8966ec30cd",
        "dcd48139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9",
        "b3948a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f",
        "6f5c02000000146274632d6c696768746e696e672d626f6c7431310242424242",
        "42424242424242424242424242424242424242424242424242424242",
    ),
    signature: concat!(
        "17729aee0f06470cf3ea6005c28551a8a43f6772e7b76eaf215ecb23c694473f",
        "53d2b30be7e3d2a442594384da9f108174f84819a5be7a9cad770d3b0d7b7c02",
    ),
    hash: "ef39f04190375022eac915e536b5aa2f90752d96b5387761bd3cef2735fbfd76",
};

/// The settlement vectors' id: the bytes `20 21 22 .. 3f`.
const SETTLEMENT_ID: &str = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
/// `payout_payment_id(SETTLEMENT_ID)`.
const PAYOUT_PAYMENT_ID: &str = "40ea66b62e824c1fe12986073857f2655bdde6ed283adcea26b2d43690b67aca";
/// `receipt_payment_id(SETTLEMENT_ID)`.
const RECEIPT_PAYMENT_ID: &str = "bd415a53791f5c5ba474d95cc37de7981585fd8bd564544cc277a86492b9f851";
/// The endpoint id of the request's one method, `btc-lightning-bolt11`, in hex.
const LIGHTNING_METHOD_HEX: &str = "6274632d6c696768746e696e672d626f6c743131";
/// The request's invoice, a stand-in (the decoder only checks that it is ASCII).
const SETTLEMENT_INVOICE: &str = "lnbc1vector";

/// The delegation vectors' sub key: secret key `[4; 32]`.
const SUB_PUBLIC: &str = "ca93ac1705187071d67b83c7ff0efe8108e8ec4530575d7726879333dbdabe7c";
/// Its z-base32 (Pkarr) form.
const SUB_Z32: &str = "3kj4afafdba8diu5oxd96dz6orrqt5nfgbmi473go6ju8s64z36y";

/// The delegation vector (kind 8).
const DELEGATION: Vector = Vector {
    name: "delegation",
    signing_prefix: "61746f6d69636974792f76312f64656c65676174696f6e00",
    unsigned: concat!(
        "0108101112131415161718191a1b1c1d1e1f8a88e3dd7409f195fd52db2d3cba",
        "5d72ca6709bf1d94121bf3748801b40f6f5cca93ac1705187071d67b83c7ff0e",
        "fe8108e8ec4530575d7726879333dbdabe7c0000000a636f6666656520617070",
        "00000002034555520200000000000001f4035553440200000000000007d00000",
        "00000001518000000001ed4928c628d1c2c6eae90338905995612959273a5c63",
        "f93636c14614ac8737d1000000006553f10000000000657b7e00",
    ),
    signature: concat!(
        "8dfca63eabf7d5c5644de2afcc216c0995dd82c39aa6c1c97276fb2e7a73e232",
        "0eaf5989e18271e85c2a8111776c66ed672d586d8537ed5d5a9b600de9206f08",
    ),
    hash: "53470a8e463f2b519aaf6c7a6491c1d7a8b0038fa18d4e52c56b81b36066a4a6",
};

/// The delegated-payment vector (kind 9).
const DELEGATED_PAYMENT: Vector = Vector {
    name: "delegated-payment",
    signing_prefix: "61746f6d69636974792f76312f64656c6567617465642d7061796d656e7400",
    unsigned: concat!(
        "0109101112131415161718191a1b1c1d1e1f303132333435363738393a3b3c3d",
        "3e3fca93ac1705187071d67b83c7ff0efe8108e8ec4530575d7726879333dbda",
        "be7ced4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac87",
        "37d1035553440200000000000001f4000000056c61747465000000006553f164",
    ),
    signature: concat!(
        "57c4ff8f4553199cf11d1c114ca55e3c70980b648c5aaab4816ba3edf24eea98",
        "ea94bf5f51693745c5d43970c8c8bb064af062af85d8b35df94934bdedbee701",
    ),
    hash: "4a5beab4ff9f50fe40ff3f1761d7feaf7bb36e4953bfce9d20c4fd3ca67b535e",
};

fn issuer() -> Keypair {
    Keypair::from_secret_key(&[1; 32])
}

fn holder() -> Keypair {
    Keypair::from_secret_key(&[2; 32])
}

fn payee() -> Keypair {
    Keypair::from_secret_key(&[3; 32])
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

/// The routed payment's secret.
const SECRET: [u8; 32] = [0x42; 32];

/// The witness log's verifier key, made from its signing key.
fn witness_vkey() -> String {
    atomicity_witness::note::Signer::new(
        "witness.example/log",
        ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
    )
    .expect("signer")
    .verifier()
    .vkey()
}

/// The witness condition: `SHA-256(SECRET)`, one log, blocks 100 (first) to 160 (first after).
fn witness_condition() -> WitnessCondition {
    WitnessCondition {
        hash: payment_hash(&SECRET),
        witnesses: vec![WitnessTerms::new(witness_vkey(), 100, 160)],
    }
}

/// Routed conditional IOU 11: 10.00 USD, the witness condition, payment id 00 01 .. 1f,
/// expires at 1700003600, memo "routed".
fn routed_iou() -> Signed<ConditionalIou> {
    let mut payment_id = [0u8; 32];
    for (i, b) in payment_id.iter_mut().enumerate() {
        *b = i as u8;
    }
    Signed::sign(
        ConditionalIou {
            line: line(),
            id: 11,
            amount: Amount::from_minor(1000),
            condition: Condition::WitnessCommit(witness_condition()),
            payment_id,
            expires_at: 1_700_003_600,
            memo: "routed".into(),
        },
        &issuer(),
    )
}

/// Forward [`routed_iou`] to the payee, who receives 9.90 USD (the holder keeps 0.10 as its fee).
fn forward() -> Message {
    Message::Forward(
        routed_iou(),
        Onward {
            hops: vec![Hop {
                next: payee().public_key(),
                amount: Amount::from_minor(990),
            }],
            payer_publishes: false,
        },
    )
}

/// An envelope from the issuer to the holder, sent at 1700000000, with [`forward`].
fn forward_envelope() -> Signed<Envelope> {
    Signed::sign(
        Envelope {
            from: issuer().public_key(),
            to: holder().public_key(),
            sent_at: 1_700_000_000,
            messages: vec![forward()],
        },
        &issuer(),
    )
}

/// The proof message: the secret and an 8-byte stand-in bundle (`"ATWB" 01 00 00 00`, a header
/// only: decoding does not parse the bundle, verifying it fails).
fn proof() -> Message {
    Message::Proof {
        hash: payment_hash(&SECRET),
        proof: WitnessProof {
            p: SECRET,
            log: witness_vkey(),
            bundle: b"ATWB\x01\x00\x00\x00".to_vec(),
        },
    }
}

/// An envelope from the holder to the issuer, sent at 1700000100, with [`proof`] (a claim).
fn proof_envelope() -> Signed<Envelope> {
    Signed::sign(
        Envelope {
            from: holder().public_key(),
            to: issuer().public_key(),
            sent_at: 1_700_000_100,
            messages: vec![proof()],
        },
        &holder(),
    )
}

/// The payee's invoice: 9.90 USD, the witness condition, the routed IOU's deadline.
fn invoice() -> Invoice {
    Invoice {
        payee: payee().public_key(),
        amount: Amount::from_minor(990),
        asset: Asset::new("USD", 2).expect("USD"),
        condition: witness_condition(),
        expires_at: 1_700_003_600,
        memo: "routed".into(),
    }
}

/// The settlement id `20 21 .. 3f`.
fn settlement_id() -> [u8; 32] {
    let mut id = [0u8; 32];
    for (i, b) in id.iter_mut().enumerate() {
        *b = 0x20 + i as u8;
    }
    id
}

/// A swap request from the issuer (who will issue the conditional IOU) to the holder (who is to
/// pay the invoice): 10.00 USD of credit for the invoice, the routed vectors' witness condition,
/// created at 1700000000, payable until 1700003600 (the IOU's deadline too), memo "swap".
fn settlement_request() -> Signed<SettlementRequest> {
    Signed::sign(
        SettlementRequest {
            id: settlement_id(),
            from: issuer().public_key(),
            to: holder().public_key(),
            kind: SettlementKind::Swap,
            asset: Asset::new("USD", 2).expect("USD"),
            amount: Amount::from_minor(1000),
            methods: vec![EndpointId::parse("btc-lightning-bolt11").expect("endpoint id")],
            invoice: SETTLEMENT_INVOICE.into(),
            condition: Some(witness_condition()),
            created_at: 1_700_000_000,
            expires_at: 1_700_003_600,
            memo: "swap".into(),
        },
        &issuer(),
    )
}

/// The holder's answer: paid through `btc-lightning-bolt11`, the evidence the preimage.
fn settlement_update() -> Signed<SettlementUpdate> {
    Signed::sign(
        SettlementUpdate {
            id: settlement_id(),
            request_hash: settlement_request().hash(),
            from: holder().public_key(),
            to: issuer().public_key(),
            outcome: Outcome::Paid {
                method: EndpointId::parse("btc-lightning-bolt11").expect("endpoint id"),
                evidence: Evidence::Preimage(SECRET),
            },
        },
        &holder(),
    )
}

/// The delegation vectors' sub key (the app's): secret key `[4; 32]`.
fn sub_key() -> Keypair {
    Keypair::from_secret_key(&[4; 32])
}

/// The delegation id `10 11 .. 1f`.
fn delegation_id() -> [u8; 16] {
    std::array::from_fn(|i| 0x10 + i as u8)
}

/// The issuer (the master) lets the sub key spend 5.00 EUR and 20.00 USD a day, to the payee
/// only, from 1700000000 for 30 days, labelled "coffee app".
fn delegation() -> Signed<Delegation> {
    Signed::sign(
        Delegation {
            id: delegation_id(),
            master: issuer().public_key(),
            sub: sub_key().public_key(),
            label: "coffee app".into(),
            caps: vec![
                Cap {
                    asset: Asset::new("EUR", 2).expect("EUR"),
                    cap: Amount::from_minor(500),
                },
                Cap {
                    asset: Asset::new("USD", 2).expect("USD"),
                    cap: Amount::from_minor(2000),
                },
            ],
            period_secs: 86_400,
            payees: vec![payee().public_key()],
            not_before: 1_700_000_000,
            expires_at: 1_702_592_000,
        },
        &issuer(),
    )
}

/// The app's order under it: 5.00 USD to the payee, order id `30 31 .. 3f`, memo "latte",
/// created at 1700000100.
fn delegated_payment() -> Signed<DelegatedPayment> {
    Signed::sign(
        DelegatedPayment {
            delegation_id: delegation_id(),
            order_id: std::array::from_fn(|i| 0x30 + i as u8),
            sub: sub_key().public_key(),
            payee: payee().public_key(),
            asset: Asset::new("USD", 2).expect("USD"),
            amount: Amount::from_minor(500),
            memo: "latte".into(),
            created_at: 1_700_000_100,
        },
        &sub_key(),
    )
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
    assert_eq!(hex::encode(payee().public_key().as_bytes()), PAYEE_PUBLIC);
    assert_eq!(payee().public_key().to_z32(), PAYEE_Z32);
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
fn routed_iou_vector() {
    check(&routed_iou(), &ROUTED_IOU);
    assert_eq!(witness_vkey(), WITNESS_VKEY);
    assert_eq!(hex::encode(WITNESS_VKEY), WITNESS_VKEY_HEX);
    assert_eq!(hex::encode(payment_hash(&SECRET)), PAYMENT_HASH);
    // The condition sits between the amount and the payment id: tag 2, the hash, one witness
    // (its key with a u32 length), no cosigners, threshold 0, blocks 100 and 160.
    let condition = format!(
        "02{PAYMENT_HASH}00000001{:08x}{WITNESS_VKEY_HEX}{}{}{}{}",
        WITNESS_VKEY.len(),
        "00000000",
        "00",
        "0000000000000064",
        "00000000000000a0",
    );
    assert!(ROUTED_IOU.unsigned.contains(&condition));
}

#[test]
fn forward_vector() {
    check(&forward_envelope(), &FORWARD_ENVELOPE);
    assert_eq!(hex::encode(forward().object_bytes()), FORWARD_OBJECT);
    // Message tag 5, the object's length, the object: the IOU's wire form as bytes, one hop
    // (the payee's key, 9.90), and 0 (the payee publishes).
    let iou = format!("{}{}", ROUTED_IOU.unsigned, ROUTED_IOU.signature);
    assert_eq!(
        FORWARD_OBJECT,
        format!(
            "{:08x}{iou}00000001{PAYEE_PUBLIC}{:016x}00",
            iou.len() / 2,
            990
        )
    );
    assert!(FORWARD_ENVELOPE.unsigned.ends_with(&format!(
        "0105{:08x}{FORWARD_OBJECT}",
        FORWARD_OBJECT.len() / 2
    )));
    let bytes = hex::decode(format!(
        "{}{}",
        FORWARD_ENVELOPE.unsigned, FORWARD_ENVELOPE.signature
    ))
    .expect("hex");
    let back = Signed::<Envelope>::decode_verified(&bytes).expect("verifies");
    assert_eq!(back.body().messages, vec![forward()]);
}

#[test]
fn proof_vector() {
    check(&proof_envelope(), &PROOF_ENVELOPE);
    assert_eq!(hex::encode(proof().object_bytes()), PROOF_OBJECT);
    // The hash, then the proof: p, the log's key with a u32 length, the bundle with a u32
    // length.
    assert_eq!(
        PROOF_OBJECT,
        format!(
            "{PAYMENT_HASH}{}{:08x}{WITNESS_VKEY_HEX}000000084154574201000000",
            "42".repeat(32),
            WITNESS_VKEY.len()
        )
    );
    assert!(
        PROOF_ENVELOPE
            .unsigned
            .ends_with(&format!("0106{:08x}{PROOF_OBJECT}", PROOF_OBJECT.len() / 2))
    );
    let bytes = hex::decode(format!(
        "{}{}",
        PROOF_ENVELOPE.unsigned, PROOF_ENVELOPE.signature
    ))
    .expect("hex");
    let back = Signed::<Envelope>::decode_verified(&bytes).expect("verifies");
    assert_eq!(back.body().messages, vec![proof()]);
    // Decoding took the stand-in bundle; verifying it against the condition does not.
    let Message::Proof { proof, .. } = proof() else {
        unreachable!()
    };
    assert!(matches!(
        proof.verify(&witness_condition(), 1_700_003_600),
        Err(ProofError::Bundle(_))
    ));
}

#[test]
fn invoice_vector() {
    assert_eq!(invoice().to_uri(), INVOICE_URI);
    let parsed = Invoice::parse(INVOICE_URI).expect("parses");
    assert_eq!(parsed, invoice());
    assert_eq!(parsed.payee.to_z32(), PAYEE_Z32);
    assert_eq!(hex::encode(parsed.payee.as_bytes()), PAYEE_PUBLIC);
    assert_eq!(parsed.asset.format(parsed.amount), "9.90");
    assert_eq!(hex::encode(parsed.condition.hash), PAYMENT_HASH);
    assert_eq!(parsed.condition.witnesses[0].log, WITNESS_VKEY);
    // The routed IOU of the vectors carries exactly the invoice's condition and deadline, and
    // its forward message delivers the invoice's amount to its payee.
    let routed = routed_iou();
    assert_eq!(
        routed.body().condition,
        Condition::WitnessCommit(parsed.condition.clone())
    );
    assert_eq!(routed.body().expires_at, parsed.expires_at);
    let Message::Forward(_, onward) = forward() else {
        unreachable!()
    };
    assert_eq!(onward.hops[0].next, parsed.payee);
    assert_eq!(onward.hops[0].amount, parsed.amount);
}

#[test]
fn settlement_request_vector() {
    check(&settlement_request(), &SETTLEMENT_REQUEST);
    assert_eq!(hex::encode(settlement_id()), SETTLEMENT_ID);
    assert_eq!(hex::encode("btc-lightning-bolt11"), LIGHTNING_METHOD_HEX);
    // id, from, to, kind 2 (swap), USD:2, 10.00, one method, the invoice, the condition (flag 1,
    // then exactly the routed IOU's condition without its tag 02), created at, expires at, memo.
    let condition = format!(
        "{PAYMENT_HASH}00000001{:08x}{WITNESS_VKEY_HEX}000000000000000000000000640000000000000\
         0a0",
        WITNESS_VKEY.len()
    );
    assert!(ROUTED_IOU.unsigned.contains(&format!("02{condition}")));
    let expected = format!(
        "0106{SETTLEMENT_ID}{ISSUER_PUBLIC}{HOLDER_PUBLIC}02035553440200000000000003e8\
         00000001{:08x}{LIGHTNING_METHOD_HEX}{:08x}{}01{condition}{:016x}{:016x}{:08x}{}",
        LIGHTNING_METHOD_HEX.len() / 2,
        SETTLEMENT_INVOICE.len(),
        hex::encode(SETTLEMENT_INVOICE),
        1_700_000_000u64,
        1_700_003_600u64,
        4,
        hex::encode("swap"),
    );
    assert_eq!(SETTLEMENT_REQUEST.unsigned, expected);
    // The conditional IOU that comes with it: the routed IOU's condition and deadline, payable
    // to the request's payer, under the request's receipt payment id.
    let request = settlement_request();
    let routed = routed_iou();
    assert_eq!(
        routed.body().condition,
        Condition::WitnessCommit(request.body().condition.clone().expect("condition"))
    );
    assert_eq!(routed.body().expires_at, request.body().expires_at);
    assert_eq!(routed.body().line.issuer, request.body().from);
    assert_eq!(routed.body().line.holder, request.body().to);
    assert_eq!(
        hex::encode(receipt_payment_id(&settlement_id())),
        RECEIPT_PAYMENT_ID
    );
    assert_eq!(
        hex::encode(payout_payment_id(&settlement_id())),
        PAYOUT_PAYMENT_ID
    );
    // The derived ids: SHA-256 of the tag, 0x00 and the id.
    for (tag, id) in [
        ("atomicity/v1/settlement-payout", PAYOUT_PAYMENT_ID),
        ("atomicity/v1/settlement-receipt", RECEIPT_PAYMENT_ID),
    ] {
        let mut input = tag.as_bytes().to_vec();
        input.push(0);
        input.extend(settlement_id());
        assert_eq!(hex::encode(Sha256::digest(&input)), id, "{tag}");
    }
}

#[test]
fn settlement_update_vector() {
    check(&settlement_update(), &SETTLEMENT_UPDATE);
    assert_eq!(
        hex::encode(settlement_update().body().request_hash),
        SETTLEMENT_REQUEST.hash
    );
    // id, request hash, from (the holder), to (the issuer), outcome 2 (paid), the method, the
    // evidence: tag 2 (preimage) and the 32 bytes of p.
    let evidence = format!("02{}", "42".repeat(32));
    assert_eq!(
        SETTLEMENT_UPDATE.unsigned,
        format!(
            "0107{SETTLEMENT_ID}{}{HOLDER_PUBLIC}{ISSUER_PUBLIC}02{:08x}{LIGHTNING_METHOD_HEX}\
             {evidence}",
            SETTLEMENT_REQUEST.hash,
            LIGHTNING_METHOD_HEX.len() / 2,
        )
    );
    assert_eq!(hex::encode(Evidence::Preimage(SECRET).to_bytes()), evidence);
    // The preimage is the invoice's: it hashes to the request's payment hash.
    let update = settlement_update();
    let Outcome::Paid {
        evidence: Evidence::Preimage(p),
        ..
    } = &update.body().outcome
    else {
        unreachable!()
    };
    assert_eq!(hex::encode(payment_hash(p)), PAYMENT_HASH);
}

#[test]
fn delegation_vector() {
    check(&delegation(), &DELEGATION);
    assert_eq!(hex::encode(sub_key().public_key().as_bytes()), SUB_PUBLIC);
    assert_eq!(sub_key().public_key().to_z32(), SUB_Z32);
    // id, master, sub, the label with a u32 length, two caps (EUR before USD: asset, u64
    // cap), the period, one payee, not before, expires at.
    assert_eq!(
        DELEGATION.unsigned,
        format!(
            "0108{}{ISSUER_PUBLIC}{SUB_PUBLIC}{:08x}{}00000002{}{:016x}{}{:016x}{:016x}00000001\
             {PAYEE_PUBLIC}{:016x}{:016x}",
            hex::encode(delegation_id()),
            10,
            hex::encode("coffee app"),
            "0345555202",
            500,
            "0355534402",
            2000,
            86_400,
            1_700_000_000u64,
            1_702_592_000u64,
        )
    );
}

#[test]
fn delegated_payment_vector() {
    check(&delegated_payment(), &DELEGATED_PAYMENT);
    assert_eq!(
        DELEGATED_PAYMENT.unsigned,
        format!(
            "0109{}{}{SUB_PUBLIC}{PAYEE_PUBLIC}0355534402{:016x}{:08x}{}{:016x}",
            hex::encode(delegation_id()),
            "303132333435363738393a3b3c3d3e3f",
            500,
            5,
            hex::encode("latte"),
            1_700_000_100u64,
        )
    );
    // The order passes the node's checks under the delegation, on the master's node, in the
    // delegation's first day.
    let period = atomicity_core::check_order(
        &delegation(),
        &delegated_payment(),
        &issuer().public_key(),
        1_700_000_100,
        Amount::ZERO,
        false,
        false,
    )
    .expect("accepted");
    assert_eq!(period.index, 0);
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
        PAYEE_PUBLIC,
        PAYEE_Z32,
        WITNESS_VKEY,
        WITNESS_VKEY_HEX,
        PAYMENT_HASH,
        FORWARD_OBJECT,
        PROOF_OBJECT,
        INVOICE_URI,
        SETTLEMENT_ID,
        PAYOUT_PAYMENT_ID,
        RECEIPT_PAYMENT_ID,
        LIGHTNING_METHOD_HEX,
        SUB_PUBLIC,
        SUB_Z32,
        BATCH_ROOT,
        BATCH_SIGNING_INPUT,
        BATCH_SIGNATURE,
        BATCH_IOU,
    ];
    expected.extend(BATCH_LEAVES);
    for v in [
        &STATE,
        &IOU,
        &ACCEPTANCE,
        &RELEASE,
        &ENVELOPE,
        &ROUTED_IOU,
        &FORWARD_ENVELOPE,
        &PROOF_ENVELOPE,
        &SETTLEMENT_REQUEST,
        &SETTLEMENT_UPDATE,
        &DELEGATION,
        &DELEGATED_PAYMENT,
    ] {
        expected.extend([v.signing_prefix, v.unsigned, v.signature, v.hash]);
    }
    for hex in expected {
        assert!(doc.contains(hex), "docs/protocol.md lacks {hex}");
    }
}

/// The batch vector: the issuer signs [`state`], [`iou`] and [`routed_iou`] as one batch of 3.
/// Leaves are `SHA-256(0x00 || signing input)`; the tree is RFC 9162's, so the root is
/// `node(node(leaf 0, leaf 1), leaf 2)` and the IOU (index 1) carries the path
/// `leaf 0, leaf 2`.
fn batch() -> (
    Signed<IouState>,
    Signed<ConditionalIou>,
    Signed<ConditionalIou>,
) {
    let signer = atomicity_core::Signer::batching(issuer());
    let made = (
        signer.sign(state().body().clone()),
        signer.sign(iou().body().clone()),
        signer.sign(routed_iou().body().clone()),
    );
    assert_eq!(signer.sign_batch(), 3);
    made
}

/// The three leaf hashes of the batch vector.
const BATCH_LEAVES: [&str; 3] = [
    "265293bb466aa4949b4dcf1b8a4a0df245f23e0bec2d0288b558842755dcca36",
    "340b8eee3cd3be2e71acae87b151d8be5ea00757eb29b4492316f32e7e9ffed5",
    "63211c4560ff0db5a57ef51aee7bffbae15f6e903a34faeaf28f0941f1cb4996",
];
/// Its root.
const BATCH_ROOT: &str = "6a2ed77261da6f2849aa60fdaed55b1aac3820d444a753461521b66dceec2f6d";
/// `"atomicity/v1/batch" || 0x00 || size (u32) || root`.
const BATCH_SIGNING_INPUT: &str = concat!(
    "61746f6d69636974792f76312f626174636800000000036a2ed77261da6f2849",
    "aa60fdaed55b1aac3820d444a753461521b66dceec2f6d",
);
/// The issuer's signature over it.
const BATCH_SIGNATURE: &str = concat!(
    "2455378d49db8f06cf388d4a67c06c7edf145086c9430613bd93efbb71488853",
    "36851ae650c53f11bfa592b6d5134e0752546879e77488e68deb43f09c34fe00",
);
/// The IOU's wire form in the batch: `02 || kind || body || path || index || size || signature`.
const BATCH_IOU: &str = concat!(
    "02028a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f",
    "6f5c8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9",
    "b3940355534402000000000000000a00000000000001f4010001020304050607",
    "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f000000006553f358",
    "000000056c756e6368265293bb466aa4949b4dcf1b8a4a0df245f23e0bec2d02",
    "88b558842755dcca3663211c4560ff0db5a57ef51aee7bffbae15f6e903a34fa",
    "eaf28f0941f1cb499600000001000000032455378d49db8f06cf388d4a67c06c",
    "7edf145086c9430613bd93efbb7148885336851ae650c53f11bfa592b6d5134e",
    "0752546879e77488e68deb43f09c34fe00",
);

#[test]
fn batch_vector() {
    use atomicity_core::signed::batch_signing_input;
    use atomicity_witness::merkle::{leaf_hash, node_hash};
    let (s, i, r) = batch();
    let leaves: Vec<[u8; 32]> = [
        signing_input::<IouState>(&unsigned(&state())),
        signing_input::<ConditionalIou>(&unsigned(&iou())),
        signing_input::<ConditionalIou>(&unsigned(&routed_iou())),
    ]
    .iter()
    .map(|input| leaf_hash(input))
    .collect();
    let root = node_hash(&node_hash(&leaves[0], &leaves[1]), &leaves[2]);
    let input = batch_signing_input(3, &root);
    for (leaf, hex) in leaves.iter().zip(BATCH_LEAVES) {
        assert_eq!(hex::encode(leaf), hex);
    }
    assert_eq!(hex::encode(root), BATCH_ROOT);
    assert_eq!(hex::encode(&input), BATCH_SIGNING_INPUT);
    for signature in [s.signature(), i.signature(), r.signature()] {
        assert_eq!(signature.map(hex::encode).as_deref(), Some(BATCH_SIGNATURE));
    }
    assert_eq!(hex::encode(i.to_bytes()), BATCH_IOU);
    // The wire form is the unsigned encoding with its first byte 2, then the path, the index,
    // the size and the signature.
    let mut expected = unsigned(&iou());
    expected[0] = 2;
    expected.extend_from_slice(&leaves[0]);
    expected.extend_from_slice(&leaves[2]);
    expected.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 3]);
    expected.extend_from_slice(i.signature().expect("signed"));
    assert_eq!(i.to_bytes(), expected);
    // The other way: the hex decodes and verifies to the same IOU, with the IOU's own hash.
    let back = Signed::<ConditionalIou>::decode_verified(&hex::decode(BATCH_IOU).expect("hex"))
        .expect("vector verifies");
    assert_eq!(back.body(), iou().body());
    assert_eq!(hex::encode(back.hash()), IOU.hash);
}

/// The unsigned encoding of an object signed alone.
fn unsigned<T: SignedBody>(signed: &Signed<T>) -> Vec<u8> {
    let wire = signed.to_bytes();
    wire[..wire.len() - 64].to_vec()
}
