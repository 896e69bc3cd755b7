//! Any bytes into the frame decoder (see `ibis_shared::fuzzing::frame_decode`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ibis_shared::fuzzing::frame_decode(data));
