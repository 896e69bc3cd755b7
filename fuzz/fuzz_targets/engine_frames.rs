//! Arbitrary frames into a node engine (see `ibis_shared::fuzzing::engine_frames`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ibis_shared::fuzzing::engine_frames(data));
