//! No byte that a non-member may not read is ever in a document a non-member receives, in
//! its state or its history. A member of IOM writes a practice the way the app does — a
//! sentence typed then deleted, a contact who did not consent, a reviewer's send-back
//! comment, a draft that is never published — and publishes it; then **every change** that
//! an anonymous JS automerge-repo client and a partner node (NLC) hold is read back and
//! searched for those markers.

use std::time::Duration;

use automerge::Automerge;
use ibis_node::client::{Client, ClientOptions};
use ibis_shared::model::catalogue::{set_entry, Entry, Listing};
use ibis_shared::model::practice::{apply_edit, Contact, PracticeEdit, TagField, TextField};
use ibis_shared::model::publication::{organization_author, publish};
use ibis_shared::model::review::ReviewAction;
use ibis_shared::model::{written_strings, Author, DocumentKind, Practice, Role};
use ibis_shared::DocumentId;
use ibis_tests::{eventually, js_tests_enabled, Federation, JsPeer, WAIT};

const MARKERS: [&str; 6] = [
    "DRAFT-SENTENCE",
    "PRIVATE-CONTACT",
    "private-contact@example.org",
    "SENDBACK-COMMENT",
    "NEVER-PUBLISHED",
    "Amy Editor",
];

fn leaks<'a>(written: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    written
        .into_iter()
        .filter(|w| MARKERS.iter().any(|m| w.contains(m)))
        .cloned()
        .collect()
}

fn person(name: &str, role: Role) -> Author {
    Author {
        name: name.into(),
        organization: "iom".into(),
        role,
    }
}

fn edit(doc: &mut Automerge, e: PracticeEdit, who: &Author) {
    apply_edit(doc, &e, who, 2_000).expect("edit");
}

fn type_text(doc: &mut Automerge, field: TextField, new: &str, who: &Author) {
    let base = field
        .of(&Practice::load(doc).expect("practice"))
        .as_str()
        .to_owned();
    edit(
        doc,
        PracticeEdit::Text {
            field,
            translation: None,
            base,
            new: new.into(),
        },
        who,
    );
}

fn review(doc: &mut Automerge, action: ReviewAction, comment: &str, who: &Author) {
    edit(
        doc,
        PracticeEdit::Review {
            action,
            comment: comment.into(),
        },
        who,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_private_reaches_a_visitor_or_a_partner_in_any_change() {
    tokio::time::timeout(Duration::from_secs(180), async {
        let fed = Federation::start(&["IOM", "NLC"], false)
            .await
            .expect("federation");
        fed.add_user(0, "amy", Role::Reviewer, "a long enough password")
            .expect("user");
        let token = fed.token(0, "amy").expect("token");
        let iom = fed.nodes[0].info().clone();
        let amy = Client::connect(
            &fed.nodes[0].sync_url(),
            ClientOptions {
                query: format!("token={token}"),
                ..ClientOptions::default()
            },
            WAIT,
        )
        .await
        .expect("member connects");

        // The practice, as the app writes it.
        let editor = person("Amy Editor", Role::Editor);
        let reviewer = person("Rita Reviewer", Role::Reviewer);
        let mut internal = Practice::new("Welcome desks", "Geneva", "CH", &editor, 1_000)
            .create(&editor, 1_000)
            .expect("draft");
        type_text(
            &mut internal,
            TextField::Summary,
            "Desks at city hall. DRAFT-SENTENCE we lost the funding.",
            &editor,
        );
        edit(
            &mut internal,
            PracticeEdit::Tag {
                field: TagField::Themes,
                key: "housing".into(),
                on: true,
            },
            &editor,
        );
        edit(
            &mut internal,
            PracticeEdit::Contact(Contact {
                name: "Jane PRIVATE-CONTACT".into(),
                email: "private-contact@example.org".into(),
                consent: false,
                ..Contact::default()
            }),
            &editor,
        );
        review(&mut internal, ReviewAction::Submit, "", &editor);
        review(
            &mut internal,
            ReviewAction::SendBack,
            "SENDBACK-COMMENT add outcomes",
            &reviewer,
        );
        type_text(
            &mut internal,
            TextField::Summary,
            "Desks at city hall.",
            &editor,
        );
        review(&mut internal, ReviewAction::Submit, "", &editor);
        let published =
            publish(&mut internal, &reviewer, &iom.organization_name, "", 3_000).expect("publish");
        let public_id = published.id;
        let internal_id = amy.create(internal).await.expect("internal practice");
        let mut public = published.document;
        // A live edit after publication, in the organization's name.
        type_text(
            &mut public,
            TextField::Outcomes,
            "4,000 newcomers served.",
            &organization_author(&editor, &iom.organization_name),
        );
        amy.host()
            .run(move |engine, now| engine.insert(now, public_id, public))
            .await
            .expect("engine")
            .expect("public practice");
        let draft = Practice::new("NEVER-PUBLISHED idea", "Geneva", "CH", &editor, 1_000)
            .create(&editor, 1_000)
            .expect("draft");
        let draft_id = amy.create(draft).await.expect("draft stored");
        // Listed as the app lists them.
        let catalogue = DocumentId::parse_id_or_url(&iom.catalogue).unwrap();
        let workspace = DocumentId::parse_id_or_url(&iom.workspace).unwrap();
        amy.open(catalogue, WAIT).await.expect("catalogue");
        amy.change(catalogue, move |doc| {
            set_entry(
                doc,
                DocumentKind::Catalogue,
                Entry::Practice,
                public_id,
                true,
                &reviewer,
                4,
            )
        })
        .await
        .expect("change")
        .expect("listed");
        amy.open(workspace, WAIT).await.expect("workspace");
        for id in [internal_id, draft_id] {
            amy.change(workspace, move |doc| {
                set_entry(
                    doc,
                    DocumentKind::Workspace,
                    Entry::Practice,
                    id,
                    true,
                    &person("Amy Editor", Role::Editor),
                    4,
                )
            })
            .await
            .expect("change")
            .expect("listed");
        }
        for id in [catalogue, workspace, internal_id, draft_id, public_id] {
            amy.wait_synced(id, WAIT).await.expect("stored at IOM");
        }

        // The partner: every document it holds, every change of each.
        let nlc = &fed.nodes[1];
        let public_at_nlc = eventually(WAIT, "NLC holds the public practice", || async {
            nlc.host()
                .run(move |engine, _| engine.is_stored(&public_id))
                .await
                .filter(|stored| *stored)
        })
        .await;
        assert!(
            public_at_nlc.is_ok(),
            "the partner replicates the public practice"
        );
        let partner_holds = nlc
            .host()
            .run(|engine, _| engine.known_documents().collect::<Vec<_>>())
            .await
            .expect("engine");
        assert!(!partner_holds.contains(&internal_id));
        assert!(!partner_holds.contains(&draft_id));
        assert!(!partner_holds.contains(&workspace));
        let mut scanned = 0;
        for id in partner_holds {
            let doc = nlc
                .host()
                .run(move |engine, now| {
                    engine.open(now, id);
                    engine.document(&id).cloned()
                })
                .await
                .flatten();
            let doc = match doc {
                Some(doc) => doc,
                None => eventually(WAIT, "a stored document loads", || async {
                    nlc.host()
                        .run(move |engine, _| engine.document(&id).cloned())
                        .await
                        .flatten()
                })
                .await
                .expect("loads"),
            };
            let written = written_strings(&doc);
            assert_eq!(leaks(&written), Vec::<String>::new(), "{id} at the partner");
            scanned += written.len();
        }
        assert!(scanned > 0);

        // An anonymous JS automerge-repo client of IOM: the catalogue, the directory, the
        // public practice; and the internal ones, which it must not get at all.
        if js_tests_enabled() {
            let urls: Vec<String> = [catalogue, public_id, internal_id, draft_id, workspace]
                .iter()
                .map(|id| id.url())
                .chain([iom.directory.clone()])
                .collect();
            let node_url = fed.nodes[0].sync_url();
            let mut args: Vec<&str> = vec![&node_url, "audit"];
            args.extend(urls.iter().map(String::as_str));
            let mut js = JsPeer::spawn("client.mjs", &args).expect("spawn");
            let mut changes = 0;
            for url in &urls {
                let answer = js.next().await.expect("audit");
                assert_eq!(answer["url"], url.as_str());
                let private = [internal_id, draft_id, workspace]
                    .iter()
                    .any(|id| id.url() == *url);
                if private {
                    assert_eq!(answer["unavailable"], true, "{url} reached a visitor");
                    continue;
                }
                let written: Vec<String> = answer["written"]
                    .as_array()
                    .expect("written")
                    .iter()
                    .filter_map(|w| w.as_str().map(str::to_owned))
                    .collect();
                assert!(!written.is_empty(), "{url} has a history");
                changes += written.len();
                assert_eq!(leaks(&written), Vec::<String>::new(), "{url} at a visitor");
            }
            js.finish().await.expect("audit finished");
            assert!(changes >= 3);
        }

        // And at IOM, members still have everything.
        let doc = amy.open(internal_id, WAIT).await.expect("internal");
        assert!(!leaks(&written_strings(&doc)).is_empty());
        let listing = Listing::load(
            &amy.open(catalogue, WAIT).await.expect("catalogue"),
            DocumentKind::Catalogue,
        )
        .expect("listing");
        assert!(listing.practice_ids().any(|id| id == public_id));
        amy.close().await;
        fed.shutdown().await.expect("shutdown");
    })
    .await
    .expect("finishes in time");
}
