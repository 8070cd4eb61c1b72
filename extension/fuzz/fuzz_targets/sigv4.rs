//! Fuzzes `secretcache::fuzzing::check_sigv4`: any input must be handled without a panic, and what parses must uphold
//! the invariants that function asserts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secretcache::fuzzing::check_sigv4;

fuzz_target!(|data: &[u8]| {
    check_sigv4(data);
});
