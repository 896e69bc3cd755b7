//! Archive import runs every check a change arriving by sync passes (bounds before
//! loading, `NodePolicy`, erased documents), and refuses the whole archive, writing
//! nothing, when anything in it is refused; the public export form holds only what
//! partners may read.

use std::path::{Path, PathBuf};

use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ROOT};
use ibis_node::archive::{export, import, Form};
use ibis_node::init::load_document;
use ibis_node::store::Store;
use ibis_node::{init, Durability, InitOptions, NodeInfo};
use ibis_shared::bounds::hostile::{chunk, zeros};
use ibis_shared::model::event::Event;
use ibis_shared::model::practice::{apply_edit, PracticeEdit};
use ibis_shared::model::review::{ReviewAction, Role};
use ibis_shared::model::{kind_of, written_strings, Author, DocumentKind, Practice};
use ibis_shared::sync::StoreOp;
use ibis_shared::DocumentId;
use sha2::{Digest, Sha256};

const NOW: i64 = 1_700_000_000_000;

fn node(root: &Path, name: &str) -> (PathBuf, NodeInfo) {
    let dir = root.join(name);
    let info = init(&InitOptions::new(&dir, name)).expect("init");
    (dir, info)
}

fn author(organization: &str, role: Role) -> Author {
    Author {
        name: "Someone".into(),
        organization: organization.into(),
        role,
    }
}

/// Every stored document's id and sorted heads: what "nothing was written" compares.
fn stored(dir: &Path) -> Vec<(DocumentId, Vec<ChangeHash>)> {
    documents(dir)
        .into_iter()
        .map(|(id, doc)| {
            let mut heads = doc.get_heads();
            heads.sort();
            (id, heads)
        })
        .collect()
}

fn documents(dir: &Path) -> Vec<(DocumentId, Automerge)> {
    let store = Store::open(dir, Durability::Full).expect("store");
    store
        .document_ids()
        .expect("ids")
        .into_iter()
        .map(|id| {
            (
                id,
                load_document(&store, &id).expect("loads").expect("held"),
            )
        })
        .collect()
}

/// An archive as `export` writes it, holding these document bytes.
fn archive(path: &Path, docs: &[(DocumentId, Vec<u8>)]) {
    let file = std::fs::File::create(path).expect("create");
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    let mut add = |name: &str, bytes: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, bytes)
            .expect("entry");
    };
    for (id, bytes) in docs {
        add(&format!("documents/{id}.automerge"), bytes);
    }
    let manifest = serde_json::json!({
        "format": "ibis-archive/1",
        "organization_id": "elsewhere",
        "organization_name": "Elsewhere",
        "directory": DocumentId::random().url(),
        "catalogue": DocumentId::random().url(),
        "documents": docs.len(),
        "practices": 0,
        "created_at": NOW,
    });
    add(
        "manifest.json",
        &serde_json::to_vec(&manifest).expect("json"),
    );
    builder
        .into_inner()
        .expect("tar")
        .finish()
        .expect("gzip")
        .sync_all()
        .expect("sync");
}

fn event(organization: &str, online_link: &str) -> Vec<u8> {
    let event = Event::new(
        "Welcome desks webinar",
        "webinar",
        "2025-05-01",
        &author(organization, Role::Editor),
    );
    let mut doc = event
        .create(&author(organization, Role::Editor), NOW)
        .expect("event");
    let mut tx = doc.transaction();
    tx.put(ROOT, "online_link", online_link).expect("put");
    tx.commit();
    doc.save()
}

use ibis_shared::bounds::hostile::leb;

/// A saved document whose one op column is deflated and inflates to `mib` MiB of zeros,
/// with a valid checksum: only its inflated size is wrong with it (as in
/// `shared/src/bounds/tests/bombs.rs`).
fn deflated_column_bomb(mib: usize) -> Vec<u8> {
    const ACTION: u64 = (4 << 4) | 2;
    const DEFLATED: u64 = 8;
    let column = zeros(mib);
    let mut body = vec![1, 1, 7, 0]; // one actor [7], no heads
    body.push(0); // no change columns
    body.push(1); // one op column
    leb(&mut body, ACTION | DEFLATED);
    leb(&mut body, column.len() as u64);
    body.extend(&column);
    let mut hashed = vec![0];
    leb(&mut hashed, body.len() as u64);
    hashed.extend(&body);
    let hash = Sha256::digest(&hashed);
    chunk(0, [hash[0], hash[1], hash[2], hash[3]], &body)
}

#[test]
fn an_archive_with_a_javascript_link_in_an_event_is_refused_and_stores_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let (dir, _) = node(root.path(), "IOM");
    let bad = DocumentId::random();
    let path = root.path().join("events.tar.gz");
    archive(
        &path,
        &[
            (
                DocumentId::random(),
                event("nlc", "https://example.org/live"),
            ),
            (bad, event("nlc", "javascript:alert(1)")),
        ],
    );
    let before = stored(&dir);
    let error = format!("{:#}", import(&dir, &path).expect_err("refused"));
    assert!(
        error.contains(&format!(
            "documents/{bad}.automerge: invalid event: online_link: must be"
        )),
        "{error}"
    );
    assert!(error.contains("nothing was written"), "{error}");
    assert!(
        error.contains("1 of its documents is refused"),
        "only the bad one: {error}"
    );
    assert_eq!(stored(&dir), before, "not even the valid event is written");

    // Without the bad one, the partner's event comes in, as relayed.
    let good = root.path().join("good.tar.gz");
    archive(
        &good,
        &[(
            DocumentId::random(),
            event("nlc", "https://example.org/live"),
        )],
    );
    let report = import(&dir, &good).expect("imported");
    assert_eq!(report.new_documents, 1);
}

#[test]
fn an_archive_holding_a_deflated_column_bomb_is_refused_unread() {
    let root = tempfile::tempdir().expect("tempdir");
    let (dir, _) = node(root.path(), "IOM");
    let bomb = deflated_column_bomb(128);
    assert!(bomb.len() < 256 * 1024, "{}", bomb.len());
    let id = DocumentId::random();
    let path = root.path().join("bomb.tar.gz");
    archive(&path, &[(id, bomb)]);
    let before = stored(&dir);
    let error = format!("{:#}", import(&dir, &path).expect_err("refused"));
    assert!(
        error.contains(&format!(
            "documents/{id}.automerge: refused unread: a deflated column inflates the input to more than"
        )),
        "{error}"
    );
    assert!(error.contains("stopped after"), "{error}");
    assert_eq!(stored(&dir), before);
}

#[test]
fn an_archive_with_another_organizations_internal_practice_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let (dir, info) = node(root.path(), "IOM");
    let theirs = Practice::new(
        "Their draft",
        "Porto",
        "PT",
        &author("nlc", Role::Editor),
        NOW,
    )
    .create(&author("nlc", Role::Editor), NOW)
    .expect("practice");
    let id = DocumentId::random();
    let path = root.path().join("theirs.tar.gz");
    archive(&path, &[(id, theirs.save())]);
    let before = stored(&dir);
    let error = format!("{:#}", import(&dir, &path).expect_err("refused"));
    assert!(
        error.contains(&format!(
            "documents/{id}.automerge: internal practices never leave their organization"
        )),
        "{error}"
    );
    assert_eq!(stored(&dir), before);

    // This organization's own internal practice is imported, as an admin's.
    let ours = Practice::new(
        "Our draft",
        "Porto",
        "PT",
        &author(&info.organization_id, Role::Editor),
        NOW,
    )
    .create(&author(&info.organization_id, Role::Editor), NOW)
    .expect("practice");
    let path = root.path().join("ours.tar.gz");
    archive(&path, &[(DocumentId::random(), ours.save())]);
    let report = import(&dir, &path).expect("imported");
    assert_eq!((report.new_documents, report.practices), (1, 1));
}

#[test]
fn a_public_archive_round_trips_and_holds_nothing_private() {
    let root = tempfile::tempdir().expect("tempdir");
    let (a, info) = node(root.path(), "IOM");
    let json = root.path().join("p.json");
    std::fs::write(
        &json,
        r#"[{"title": "Welcome desks", "summary": "Desks.", "city": "Lisbon", "country": "PT",
             "themes": ["reception-services"], "review_state": "published",
             "contact_name": "Private Person", "contact_email": "private.person@example.org"},
            {"title": "A draft", "city": "Porto", "country": "PT"}]"#,
    )
    .expect("write");
    ibis_node::import::import(&a, &json, ibis_node::import::Format::Json, "t").expect("import");
    // A reviewer's comment on the published practice, in its internal practice.
    {
        let mut store = Store::open(&a, Durability::Full).expect("store");
        let (id, mut doc) = documents(&a)
            .into_iter()
            .find(|(_, doc)| {
                Practice::load(doc).is_ok_and(|p| p.is_internal() && p.public_id().is_some())
            })
            .expect("the published practice's internal practice");
        let heads = doc.get_heads();
        apply_edit(
            &mut doc,
            &PracticeEdit::Review {
                action: ReviewAction::Comment,
                comment: "SECRET REVIEW NOTE".into(),
            },
            &author(&info.organization_id, Role::Reviewer),
            NOW,
        )
        .expect("comment");
        store
            .apply(&[StoreOp::AppendChanges {
                document: id,
                chunk: doc.save_after(&heads),
            }])
            .expect("write");
    }
    let private = ["private.person@example.org", "SECRET REVIEW NOTE"];
    let holds_private = |path: &Path| {
        let out = root.path().join("unpacked");
        let _ = std::fs::remove_dir_all(&out);
        let file = std::fs::File::open(path).expect("open");
        tar::Archive::new(flate2::read::GzDecoder::new(file))
            .unpack(&out)
            .expect("unpack");
        let mut found: Vec<&str> = Vec::new();
        let mut kinds = Vec::new();
        for entry in std::fs::read_dir(out.join("documents")).expect("documents") {
            let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
            let doc = Automerge::load(&bytes).expect("loads");
            kinds.push(kind_of(&doc));
            let written = written_strings(&doc).join("\n");
            found.extend(private.iter().filter(|p| written.contains(**p)));
        }
        let practices = std::fs::read_to_string(out.join("practices.json")).expect("json");
        found.extend(private.iter().filter(|p| practices.contains(**p)));
        (kinds, found)
    };

    let public = root.path().join("public.tar.gz");
    let exported = export(&a, &public, Form::Public).expect("export");
    assert_eq!(exported.manifest.form, Form::Public);
    let (kinds, found) = holds_private(&public);
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    for kind in &kinds {
        assert!(
            matches!(
                kind,
                Some(DocumentKind::Practice | DocumentKind::Catalogue | DocumentKind::Directory)
            ),
            "{kind:?}"
        );
    }
    // The full form holds them (so the check above would have seen them): the private
    // contact in its documents and `practices.json`, the comment in the internal practice.
    let full = root.path().join("full.tar.gz");
    export(&a, &full, Form::Full).expect("export");
    let (kinds, found) = holds_private(&full);
    assert!(kinds.contains(&Some(DocumentKind::InternalPractice)));
    assert!(kinds.contains(&Some(DocumentKind::Workspace)));
    for marker in private {
        assert!(found.contains(&marker), "{marker} in {found:?}");
    }

    // Every change of every exported document passes a partner's checks: the public
    // practice and the catalogue come in as relayed, and elsewhere they are as at home.
    let (b, _) = node(root.path(), "NLC");
    let report = import(&b, &public).expect("imported");
    assert_eq!(report.form, Form::Public);
    assert_eq!((report.documents, report.new_documents), (3, 3));
    assert_eq!(report.practices, 1);
    let at_home = stored(&a);
    let elsewhere = stored(&b);
    let same = at_home.iter().filter(|d| elsewhere.contains(d)).count();
    assert_eq!(same, 3);
    let again = import(&b, &public).expect("imported");
    assert_eq!((again.new_documents, again.merged_documents), (0, 0));
}

#[test]
fn an_archive_never_brings_back_an_erased_document() {
    let root = tempfile::tempdir().expect("tempdir");
    let (a, _) = node(root.path(), "IOM");
    let json = root.path().join("p.json");
    std::fs::write(
        &json,
        r#"[{"title": "Welcome desks", "summary": "Desks.", "city": "Lisbon", "country": "PT",
             "themes": ["reception-services"], "review_state": "published"}]"#,
    )
    .expect("write");
    ibis_node::import::import(&a, &json, ibis_node::import::Format::Json, "t").expect("import");
    let public = root.path().join("public.tar.gz");
    export(&a, &public, Form::Public).expect("export");

    let (b, _) = node(root.path(), "NLC");
    import(&b, &public).expect("imported");
    let practice = documents(&b)
        .into_iter()
        .find(|(_, doc)| kind_of(doc) == Some(DocumentKind::Practice))
        .map(|(id, _)| id)
        .expect("the public practice");
    let mut store = Store::open(&b, Durability::Full).expect("store");
    store
        .apply(&[StoreOp::Erase { document: practice }])
        .expect("erase");
    drop(store);

    let report = import(&b, &public).expect("imported");
    assert_eq!(report.skipped, vec![practice]);
    let store = Store::open(&b, Durability::Full).expect("store");
    assert!(
        store.load(&practice).expect("load").is_none(),
        "still erased"
    );
}
