//! Fuzzes `secretcache::fuzzing::check_projection`: any input must be handled without a panic, and the invariants that
//! function asserts must hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secretcache::fuzzing::check_projection;

fuzz_target!(|data: &[u8]| {
    check_projection(data);
});
