//! The fast subset of the reliability suite (`make reliability` runs the full one and prints the table). Row 11,
//! refresh-ahead, is not here: its rule is a wall-clock target, which `make test` does not assert.

use secretcache_tests::reliability::{self, Outcome, Scale};

/// RSS bound for the extension under these scenarios (a debug build; the release build uses far less).
const RSS_BOUND_KIB: u64 = 64 * 1024;

fn check(rows: &[Outcome]) {
    println!("{}", reliability::table(rows));
    for r in rows {
        assert!(
            r.passed(),
            "{}: {} failed, {} leaks ({})",
            r.scenario,
            r.failed,
            r.leaks,
            r.rule
        );
        assert!(
            r.max_rss_kib <= RSS_BOUND_KIB,
            "{}: RSS {} KiB over the bound",
            r.scenario,
            r.max_rss_kib
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_of_cached_reads() {
    check(&[reliability::load::run(Scale::fast()).await]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_faults_never_fail_a_cached_read() {
    check(&reliability::upstream_faults::run(Scale::fast()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_fails_no_items_request() {
    check(&[reliability::rotation_under_load::run(Scale::fast()).await]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_matrix() {
    let row = reliability::hostile_input::run().await;
    assert!(row.sent >= 41, "the matrix has at least 40 cases");
    check(&[row]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_do_not_starve_new_clients() {
    check(&[reliability::connection_exhaustion::run(Scale::fast()).await]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_faults() {
    check(&reliability::lifecycle_faults::run().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invokes_during_an_upstream_outage_never_wait_on_the_upstream() {
    check(&[reliability::invoke_outage::run(Scale::fast()).await]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_instances_concurrent_readers_through_an_upstream_outage_never_fail() {
    check(&[reliability::managed_instances::run(Scale::fast()).await]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_protocol_soak_reads_its_own_writes_with_flat_memory() {
    check(&[reliability::sdk_soak::run(Scale::fast()).await]);
}
