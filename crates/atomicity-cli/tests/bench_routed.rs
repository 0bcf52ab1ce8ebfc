//! The routed-payment benchmark runs end to end (a small run: this checks that it works, not
//! how fast; the figures come from `atomicity bench routed` in release mode).

use atomicity_cli::bench_routed::{RoutedBenchArgs, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routed_benchmark_completes_every_payment() {
    run(RoutedBenchArgs {
        latency_payments: 5,
        cosigned_payments: 2,
        payments: 40,
        concurrency: 8,
        json: true,
        program: Some(env!("CARGO_BIN_EXE_atomicity").into()),
    })
    .await
    .expect("every benchmark payment completes");
}
