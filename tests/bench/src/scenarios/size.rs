//! Item 6: what a deployment carries. The release binary (the release profile strips it; `file` confirms), against
//! the minimal hyper server built with the same profile; and the layer zip, when `make package` has built it.

use crate::host::{file_size, is_stripped};
use crate::report::{Cell, Row};

/// Where `make package` puts the layer zip.
pub const LAYER_ZIP: &str = "layer/dist/secretcache-layer-x86_64.zip";

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Bytes of `path` deflated by `gzip -9` (zip's compression), or `None` without gzip.
fn deflated_size(path: &std::path::Path) -> Option<u64> {
    let out = std::process::Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout.len() as u64)
}

/// Runs item 6. Sizes do not vary between repeats, so each is measured once.
pub fn run() -> Vec<Row> {
    let ours = secretcache_tests::bin_path("secretcache");
    let base = secretcache_tests::bin_path("bench-baseline-server");
    let sized =
        |p: &std::path::Path| file_size(p).map_or(Cell::text("missing"), |b| Cell::of(&[mib(b)]));
    let stripped = |p: &std::path::Path| match is_stripped(p) {
        Some(true) => "stripped",
        Some(false) => "NOT stripped",
        None => "strip state unknown (no `file`)",
    };
    let binary = Row::new(
        6,
        "size: release binary",
        "MiB",
        sized(&base),
        sized(&ours),
        Cell::Absent,
    )
    .note(format!(
        "ours {}; baseline: the minimal hyper server, same profile, {}",
        stripped(&ours),
        stripped(&base)
    ));
    let zip = secretcache_tests::workspace_root().join(LAYER_ZIP);
    let layer = match file_size(&zip) {
        Some(b) => Row::new(
            6,
            "size: layer zip",
            "MiB",
            deflated_size(&base).map_or(Cell::text("n/a"), |d| Cell::of(&[mib(d)])),
            Cell::of(&[mib(b)]),
            Cell::Absent,
        )
        .note(format!(
            "{LAYER_ZIP}; baseline: the minimal server's binary, deflated (`gzip -9`, as a zip would)"
        )),
        None => Row::new(
            6,
            "size: layer zip",
            "MiB",
            Cell::text("n/a"),
            Cell::text("not built"),
            Cell::Absent,
        )
        .note(format!("{LAYER_ZIP} does not exist (`make package` builds it)")),
    };
    vec![binary, layer]
}
