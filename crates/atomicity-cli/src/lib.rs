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
