//! The pieces of the `atomicity` command that are more than argument parsing: the local devnet,
//! the benchmarks, process management for nodes (used by both and by the end-to-end tests), and
//! human-readable output.
#![deny(missing_docs)]

pub mod bench;
pub mod bench_dht;
pub mod bench_route;
pub mod bench_routed;
pub mod bench_witness;
pub mod delegate_cmd;
pub mod devnet;
pub mod harness;
pub mod output;
pub mod request_cmd;
pub mod settle_cmd;
pub mod trust_cmd;

/// Exit code of a payment command when the payee has not answered yet (the node keeps trying).
pub const EXIT_PENDING: u8 = 3;

/// `--route K1,K2 --route K3` as lists of keys: one list a route, empty keys dropped.
pub fn split_routes(routes: &[String]) -> Vec<Vec<String>> {
    routes
        .iter()
        .map(|r| {
            r.split(',')
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect()
        })
        .collect()
}
