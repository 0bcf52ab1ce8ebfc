//! The route-finding benchmark runs end to end (tiny networks: this checks that it works, not
//! how fast; the figures come from `atomicity bench route` in release mode).

use atomicity_cli::bench_route::{RouteBenchArgs, run};

#[tokio::test]
async fn the_route_benchmark_runs() {
    run(RouteBenchArgs {
        queries: 5,
        json: true,
        small_only: true,
        sizes: Some(vec![(300, 1_200), (500, 1_800)]),
    })
    .await
    .expect("the benchmark runs");
}
