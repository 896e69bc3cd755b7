//! Replays the fuzz corpora (`fuzz/corpus/`) through the fuzz targets' bodies, so every
//! input the fuzzers kept is checked on every test run, not only when fuzzing.

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        let result = std::panic::catch_unwind(|| body(&data));
        assert!(result.is_ok(), "{} fails", path.display());
        n += 1;
    }
    assert!(n > 100, "the {target} corpus is there ({n} inputs)");
}

#[test]
fn frame_decode_corpus() {
    replay("frame_decode", ibis_shared::fuzzing::frame_decode);
}

#[test]
fn engine_frames_corpus() {
    replay("engine_frames", ibis_shared::fuzzing::engine_frames);
}

#[test]
fn presence_decode_corpus() {
    replay("presence_decode", ibis_shared::fuzzing::presence_decode);
}

#[test]
fn bounds_corpus() {
    replay("bounds", ibis_shared::fuzzing::bounds);
}
