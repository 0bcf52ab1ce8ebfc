//! The DHT benchmark runs end to end (a small run: this checks that it works, not how fast;
//! the figures come from `atomicity bench dht` in release mode).

use atomicity_cli::bench_dht::{DhtBenchArgs, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dht_benchmark_resolves_every_record() {
    run(DhtBenchArgs {
        nodes: 4,
        keys: 5,
        json: true,
    })
    .await
    .expect("every record published and resolved");
}
