//! Fuzzes the query-string parsers: any input must parse or give a `QueryError`, never panic, and a successful
//! parse must uphold the invariants the cache and upstream rely on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secretcache::fuzzing::check_query;

fuzz_target!(|data: &[u8]| {
    check_query(data);
});
