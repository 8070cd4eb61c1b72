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

/// The environment variable naming the peer's binary, for its size cells.
pub const PEER_BIN_VAR: &str = "BENCH_PEER_BIN";

/// A stripped copy of the peer's binary (`BENCH_PEER_BIN`) in `out_dir`, so that it is sized as ours is.
fn stripped_peer(out_dir: &std::path::Path) -> Result<Option<std::path::PathBuf>, String> {
    let Some(bin) = std::env::var_os(PEER_BIN_VAR).filter(|b| !b.is_empty()) else {
        return Ok(None);
    };
    let copy = out_dir.join("peer-stripped");
    let out = std::process::Command::new("strip")
        .arg("-o")
        .arg(&copy)
        .arg(&bin)
        .output()
        .map_err(|e| format!("strip {}: {e}", bin.to_string_lossy()))?;
    if !out.status.success() {
        return Err(format!(
            "strip {}: {}",
            bin.to_string_lossy(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Some(copy))
}

/// Runs item 6. Sizes do not vary between repeats, so each is measured once. With `BENCH_PEER_BIN`, the peer gets
/// the size of a stripped copy of that binary and of that copy deflated (what its zip would hold).
pub fn run(out_dir: &std::path::Path) -> Result<Vec<Row>, String> {
    let peer = stripped_peer(out_dir)?;
    let ours = secretcache_tests::extension_bin();
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
        peer.as_deref().map_or(Cell::Absent, sized),
    )
    .note(format!(
        "ours {}; baseline: the minimal hyper server, same profile, {}{}",
        stripped(&ours),
        stripped(&base),
        if peer.is_some() {
            "; peer: `BENCH_PEER_BIN`, stripped copy"
        } else {
            ""
        }
    ));
    let peer_zip = || {
        peer.as_deref().map_or(Cell::Absent, |p| {
            deflated_size(p).map_or(Cell::text("n/a"), |d| Cell::of(&[mib(d)]))
        })
    };
    let zip = secretcache_tests::workspace_root().join(LAYER_ZIP);
    let layer = match file_size(&zip) {
        Some(b) => Row::new(
            6,
            "size: layer zip",
            "MiB",
            deflated_size(&base).map_or(Cell::text("n/a"), |d| Cell::of(&[mib(d)])),
            Cell::of(&[mib(b)]),
            peer_zip(),
        )
        .note(format!(
            "{LAYER_ZIP}; baseline and peer: their stripped binary, deflated (`gzip -9`, as a zip would)"
        )),
        None => Row::new(
            6,
            "size: layer zip",
            "MiB",
            Cell::text("n/a"),
            Cell::text("not built"),
            peer_zip(),
        )
        .note(format!("{LAYER_ZIP} does not exist (`make package` builds it)")),
    };
    Ok(vec![binary, layer])
}
