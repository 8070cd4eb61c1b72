//! Fuzzes configuration parsing: arbitrary `NAME=value` lines must give a config or a `ConfigError`, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secretcache::fuzzing::check_config;

fuzz_target!(|data: &[u8]| {
    check_config(data);
});
