//! Fuzzes `secretcache::fuzzing::check_sdk_body`: any input must be handled without a panic, and what parses must uphold
//! the invariants that function asserts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secretcache::fuzzing::check_sdk_body;

fuzz_target!(|data: &[u8]| {
    check_sdk_body(data);
});
