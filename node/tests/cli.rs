//! The command line, as an operator types it.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_ibis-node");

/// Node keys are base64url: about one in 64 starts with a dash, and must still be taken as
/// a value, not an option.
#[test]
fn a_key_that_starts_with_a_dash_is_a_key() {
    let dir = tempfile::tempdir().unwrap();
    ibis_node::init(&ibis_node::InitOptions::new(dir.path().join("node"), "IOM")).unwrap();
    let key = (0..10_000)
        .map(|_| {
            let other = tempfile::tempdir().unwrap();
            ibis_node::federation::NodeKey::load_or_create(other.path())
                .unwrap()
                .public()
                .to_string()
        })
        .find(|k| k.starts_with('-'))
        .expect("a key starting with a dash");
    let out = Command::new(BIN)
        .args([
            "peer",
            "add",
            "UNAOC",
            "--org",
            "unaoc",
            "--key",
            &key,
            "--data-dir",
        ])
        .arg(dir.path().join("node"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peers = ibis_node::registry::Registry::open(&dir.path().join("node"))
        .unwrap()
        .peers()
        .unwrap();
    assert_eq!(peers[0].public_key, key);
    assert_eq!(peers[0].organization, "unaoc");
}
