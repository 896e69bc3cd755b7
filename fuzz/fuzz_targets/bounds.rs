//! Any bytes into the bounds checks (see `ibis_shared::fuzzing::bounds`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ibis_shared::fuzzing::bounds(data));
