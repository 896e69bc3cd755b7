//! The demo's seed practices import cleanly: every record is complete and valid.

#[test]
fn every_demo_seed_imports_without_errors() {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo");
    let dir = tempfile::tempdir().expect("tempdir");
    ibis_node::init(&ibis_node::InitOptions::new(dir.path(), "Demo")).expect("init");
    let mut seen = 0;
    for org in ["iom", "unaoc", "nlc"] {
        let file = demo.join(format!("{org}.json"));
        let report =
            ibis_node::import::import(dir.path(), &file, ibis_node::import::Format::Json, "test")
                .expect("import");
        assert_eq!(
            report.failed(),
            0,
            "{org}: {:?}",
            ibis_node::import::describe(&report)
        );
        assert!(report.rows.len() >= 4, "{org} seeds a handful of practices");
        seen += report.rows.len();
    }
    assert!(seen >= 12);
}
