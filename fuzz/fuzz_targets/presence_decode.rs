//! Any bytes into the presence decoder (see `ibis_shared::fuzzing::presence_decode`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ibis_shared::fuzzing::presence_decode(data));
