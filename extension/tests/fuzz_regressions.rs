//! Replays every input saved under extension/fuzz/regressions (crashes found by `make fuzz` land there) through
//! the same checks the fuzz targets run.

use std::path::Path;

fn replay(dir: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(dir);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        check(&data);
        n += 1;
    }
    n
}

#[test]
fn saved_query_inputs_do_not_break_the_parser() {
    assert!(replay("query", secretcache::fuzzing::check_query) > 0);
}

#[test]
fn saved_config_inputs_do_not_break_the_parser() {
    assert!(replay("config", secretcache::fuzzing::check_config) > 0);
}

#[test]
fn saved_agent_toml_inputs_do_not_break_the_parser() {
    assert!(replay("agent_toml", secretcache::fuzzing::check_agent_toml) > 0);
}

#[test]
fn saved_reference_inputs_print_back_to_themselves() {
    assert!(replay("reference", secretcache::fuzzing::check_reference) > 0);
}

#[test]
fn saved_path_route_inputs_do_not_break_the_parser() {
    assert!(replay("path_route", secretcache::fuzzing::check_path_route) > 0);
}

#[test]
fn saved_sigv4_inputs_never_verify() {
    assert!(replay("sigv4", secretcache::fuzzing::check_sigv4) > 0);
}

#[test]
fn saved_sdk_bodies_map_to_one_answer_or_a_client_error() {
    assert!(replay("sdk_body", secretcache::fuzzing::check_sdk_body) > 0);
}

#[test]
fn saved_token_file_contents_are_a_trimmed_token_or_a_reason() {
    assert!(replay("token_file", secretcache::fuzzing::check_token_file) > 0);
}

#[test]
fn saved_projections_return_only_the_named_field() {
    assert!(replay("projection", secretcache::fuzzing::check_projection) > 0);
}

#[test]
fn saved_cached_bodies_change_only_their_date_member() {
    assert!(replay("epoch_date", secretcache::fuzzing::check_epoch_date) > 0);
}

#[test]
fn saved_listing_requests_key_the_same_request_alike() {
    assert!(replay("listing_key", secretcache::fuzzing::check_listing_key) > 0);
}
