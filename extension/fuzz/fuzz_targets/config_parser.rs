//! Fuzzes configuration parsing: arbitrary `NAME=value` lines must always give a config (bad values become
//! defaults with an error line), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secretcache::fuzzing::check_config;

fuzz_target!(|data: &[u8]| {
    check_config(data);
});
