//! Writes `node/tests/fixtures/data-dir-v2`: a data dir made by the node as it stood at
//! schema version 2 (before public and internal practices were split), holding what the
//! migration must carry over. Run once, with that code, and committed with its output:
//!
//! ```sh
//! cargo run -p ibis-node --example make_fixture_v2
//! ```
//!
//! The markers (`PRIVATE-…`, `SENDBACK-…`, `DRAFT-SENTENCE-…`) are what the migrated node
//! must never give a partner or an anonymous visitor.

use std::path::Path;

use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT};
use ibis_node::config::Config;
use ibis_node::init::{load_document, snapshot};
use ibis_node::registry::{Acl, Peer, Registry};
use ibis_node::store::Store;
use ibis_node::{InitOptions, Network};
use ibis_shared::model::catalogue::{new_listing, set_entry, Entry};
use ibis_shared::model::directory::{register, Organization};
use ibis_shared::model::event::Event;
use ibis_shared::model::practice::{apply_edit, Contact, PracticeEdit, TextField};
use ibis_shared::model::review::ReviewAction;
use ibis_shared::model::{Author, DocumentKind, Practice, Role};
use ibis_shared::protocol::StorageId;
use ibis_shared::sync::StoreOp;
use ibis_shared::DocumentId;

const T0: i64 = 1_764_000_000_000;

fn author(name: &str, org: &str, role: Role) -> Author {
    Author {
        name: name.into(),
        organization: org.into(),
        role,
    }
}

fn edit(doc: &mut Automerge, e: PracticeEdit, who: &Author, at: i64) {
    apply_edit(doc, &e, who, at).unwrap();
}

/// Types `new` into a text field, as the app would.
fn type_text(doc: &mut Automerge, field: TextField, new: &str, who: &Author, at: i64) {
    let e = text(doc, field, new);
    edit(doc, e, who, at);
}

fn text(doc: &Automerge, field: TextField, new: &str) -> PracticeEdit {
    let p = Practice::load(doc).unwrap();
    PracticeEdit::Text {
        field,
        translation: None,
        base: field.of(&p).as_str().to_owned(),
        new: new.into(),
    }
}

fn review(action: ReviewAction, comment: &str) -> PracticeEdit {
    PracticeEdit::Review {
        action,
        comment: comment.into(),
    }
}

fn main() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-dir-v2");
    if out.exists() {
        std::fs::remove_dir_all(&out).unwrap();
    }
    let mut options = InitOptions::new(&out, "IOM");
    options.org_id = Some("iom".into());
    options.country = "CH".into();
    options.city = "Geneva".into();
    options.public_url = "https://ibis.iom.example".into();
    options.network = Network::New {
        name: "Fixture network".into(),
    };
    ibis_node::init(&options).unwrap();
    let config = Config::load(&out).unwrap();
    let registry = Registry::open(&out).unwrap();
    registry
        .add_user("amy", Role::Editor, "amy's long password")
        .unwrap();
    registry
        .add_user("rita", Role::Reviewer, "rita's long password")
        .unwrap();
    registry
        .add_user("ada", Role::Admin, "ada's long password")
        .unwrap();
    let token = registry.issue_token("amy", "fixture", 3650).unwrap();
    std::fs::write(out.join("amy.token"), &token).unwrap();
    let partner_dir = tempfile::tempdir().unwrap();
    let partner_key = ibis_node::federation::NodeKey::load_or_create(partner_dir.path())
        .unwrap()
        .public()
        .to_string();
    registry
        .add_peer(&Peer {
            name: "UNAOC".into(),
            url: "ws://127.0.0.1:9/sync".into(),
            public_key: partner_key,
            acl: Acl::FULL,
        })
        .unwrap();
    drop(registry);

    let amy = author("Amy Editor", "iom", Role::Editor);
    let rita = author("Rita Reviewer", "iom", Role::Reviewer);
    let ada = author("Ada Admin", "iom", Role::Admin);
    let mut writes = Vec::new();
    let mut workspace_ids = Vec::new();
    let mut catalogue_ids = Vec::new();

    // 1. Published after a send-back, with a private contact and a draft sentence deleted
    //    before publication: everything the split must keep home.
    let mut doc = Practice::new("Welcome desks in 12 languages", "Geneva", "CH", &amy, T0)
        .create(&amy, T0)
        .unwrap();
    let welcome = DocumentId::from_bytes([0x11; 16]);
    type_text(
        &mut doc,
        TextField::Summary,
        "City hall welcome desks staffed by volunteers. DRAFT-SENTENCE-we-lost-the-funding.",
        &amy,
        T0 + 1_000,
    );
    edit(
        &mut doc,
        PracticeEdit::Tag {
            field: ibis_shared::model::practice::TagField::Themes,
            key: "civic-participation".into(),
            on: true,
        },
        &amy,
        T0 + 2_000,
    );
    edit(
        &mut doc,
        PracticeEdit::Contact(Contact {
            name: "Jane PRIVATE-CONTACT".into(),
            role: "Coordinator".into(),
            email: "private-contact@example.org".into(),
            phone: "+41 22 000 00 00".into(),
            consent: false,
        }),
        &amy,
        T0 + 3_000,
    );
    edit(&mut doc, review(ReviewAction::Submit, ""), &amy, T0 + 4_000);
    edit(
        &mut doc,
        review(
            ReviewAction::SendBack,
            "SENDBACK-COMMENT the outcomes are missing",
        ),
        &rita,
        T0 + 5_000,
    );
    type_text(
        &mut doc,
        TextField::Summary,
        "City hall welcome desks staffed by volunteers.",
        &amy,
        T0 + 6_000,
    );
    type_text(
        &mut doc,
        TextField::Outcomes,
        "4,000 newcomers served in the first year.",
        &amy,
        T0 + 7_000,
    );
    edit(&mut doc, review(ReviewAction::Submit, ""), &amy, T0 + 8_000);
    edit(
        &mut doc,
        review(ReviewAction::Publish, ""),
        &rita,
        T0 + 9_000,
    );
    writes.push(snapshot(welcome, &doc));
    workspace_ids.push(welcome);
    catalogue_ids.push(welcome);

    // 2. A draft, never published.
    let mut doc = Practice::new("Night school pilot", "Lyon", "FR", &amy, T0)
        .create(&amy, T0)
        .unwrap();
    type_text(
        &mut doc,
        TextField::Summary,
        "DRAFT-ONLY-night-school: an idea still being written.",
        &amy,
        T0 + 10_000,
    );
    let draft = DocumentId::from_bytes([0x22; 16]);
    writes.push(snapshot(draft, &doc));
    workspace_ids.push(draft);

    // 3. Published with a consenting contact, then archived.
    let mut doc = Practice::new("Sports clubs for newcomers", "Bern", "CH", &amy, T0)
        .create(&amy, T0)
        .unwrap();
    type_text(
        &mut doc,
        TextField::Summary,
        "Local clubs open their doors.",
        &amy,
        T0 + 11_000,
    );
    edit(
        &mut doc,
        PracticeEdit::Tag {
            field: ibis_shared::model::practice::TagField::Themes,
            key: "health".into(),
            on: true,
        },
        &amy,
        T0 + 11_500,
    );
    edit(
        &mut doc,
        PracticeEdit::Contact(Contact {
            name: "Public Person".into(),
            role: "Club liaison".into(),
            email: "clubs@example.org".into(),
            phone: String::new(),
            consent: true,
        }),
        &amy,
        T0 + 12_000,
    );
    edit(
        &mut doc,
        review(ReviewAction::Publish, ""),
        &rita,
        T0 + 13_000,
    );
    edit(
        &mut doc,
        review(ReviewAction::Archive, ""),
        &ada,
        T0 + 14_000,
    );
    let archived = DocumentId::from_bytes([0x33; 16]);
    writes.push(snapshot(archived, &doc));
    workspace_ids.push(archived);
    catalogue_ids.push(archived);

    // 4. A partner's published practice, replicated here, that replicated ours.
    let theirs = author("Una Partner", "unaoc", Role::Reviewer);
    let mut doc = Practice::new("Language cafés", "New York", "US", &theirs, T0)
        .create(&theirs, T0)
        .unwrap();
    type_text(
        &mut doc,
        TextField::Summary,
        "Weekly conversation tables.",
        &theirs,
        T0 + 15_000,
    );
    edit(
        &mut doc,
        PracticeEdit::Tag {
            field: ibis_shared::model::practice::TagField::Themes,
            key: "education-language".into(),
            on: true,
        },
        &theirs,
        T0 + 15_500,
    );
    edit(
        &mut doc,
        PracticeEdit::ReplicatedBy {
            url: welcome.url(),
            on: true,
        },
        &theirs,
        T0 + 15_800,
    );
    edit(
        &mut doc,
        review(ReviewAction::Publish, ""),
        &theirs,
        T0 + 16_000,
    );
    let partner_practice = DocumentId::from_bytes([0x44; 16]);
    writes.push(snapshot(partner_practice, &doc));
    let partner_catalogue_id = DocumentId::from_bytes([0x45; 16]);
    let mut partner_catalogue = new_listing(DocumentKind::Catalogue, "unaoc").unwrap();
    set_entry(
        &mut partner_catalogue,
        DocumentKind::Catalogue,
        Entry::Practice,
        partner_practice,
        true,
        &theirs,
        T0 + 16_500,
    )
    .unwrap();
    writes.push(snapshot(partner_catalogue_id, &partner_catalogue));

    // 5. An event about our published practice.
    let mut event = Event::new("Welcome desks webinar", "webinar", "2026-03-01", &amy);
    event.related_practices.insert(welcome.to_string());
    event.organizers.push("IOM".into());
    let event_doc = event.create(&amy, T0 + 17_000).unwrap();
    let event_id = DocumentId::from_bytes([0x55; 16]);
    writes.push(snapshot(event_id, &event_doc));

    // 6. A document of another application, relayed through the node.
    let mut untyped = Automerge::new();
    untyped
        .transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, "note", "another app's document")?;
            Ok(())
        })
        .unwrap();
    let untyped_id = DocumentId::from_bytes([0x66; 16]);
    writes.push(snapshot(untyped_id, &untyped));

    let mut store = Store::open(&out, config.node.durability).unwrap();
    // The organization's listings and the partner's directory entry.
    for (kind, ids, id) in [
        (
            DocumentKind::Workspace,
            &workspace_ids,
            config.documents.workspace,
        ),
        (
            DocumentKind::Catalogue,
            &catalogue_ids,
            config.documents.catalogue,
        ),
    ] {
        let mut listing = load_document(&store, &id).unwrap().unwrap();
        for practice in ids.iter() {
            set_entry(
                &mut listing,
                kind,
                Entry::Practice,
                *practice,
                true,
                &rita,
                T0 + 18_000,
            )
            .unwrap();
        }
        if kind == DocumentKind::Catalogue {
            set_entry(
                &mut listing,
                kind,
                Entry::Event,
                event_id,
                true,
                &amy,
                T0 + 18_500,
            )
            .unwrap();
        }
        writes.push(snapshot(id, &listing));
    }
    let mut directory = load_document(&store, &config.documents.directory)
        .unwrap()
        .unwrap();
    register(
        &mut directory,
        "unaoc",
        &Organization {
            name: "UNAOC".into(),
            kind: "un-agency".into(),
            city: "New York".into(),
            country: "US".into(),
            website: "https://www.unaoc.org/".into(),
            node_url: "https://ibis.unaoc.example".into(),
            catalogue: partner_catalogue_id.to_string(),
        },
        &theirs,
        T0 + 19_000,
    )
    .unwrap();
    writes.push(snapshot(config.documents.directory, &directory));
    // A sync state an anonymous browser left behind.
    writes.push(StoreOp::SaveSyncState {
        document: welcome,
        peer: StorageId::new("5e0d1f2a-0000-4000-8000-00000000a11e"),
        state: automerge::sync::State::new().encode(),
    });
    store.apply(&writes).unwrap();
    ibis_node::index::mark_stale(&store).unwrap();
    drop(store);
    for transient in ["ibis.lock", "ibis.sqlite3-wal", "ibis.sqlite3-shm"] {
        let _ = std::fs::remove_file(out.join(transient));
    }
    println!("wrote {}", out.display());
}
