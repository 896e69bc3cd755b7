use super::*;
use automerge::transaction::Transactable;
use automerge::ReadDoc;
use ibis_shared::model::catalogue::{new_listing, set_entry, Entry};
use ibis_shared::model::directory::{new_directory, register, Organization};
use ibis_shared::model::practice::{apply_edit, PracticeEdit, TagField, TextField};
use ibis_shared::model::publication::{organization_author, publish};
use ibis_shared::model::review::ReviewAction;
use ibis_shared::model::Author;

use crate::registry::Acl;

const ORG_NAME: &str = "IOM";

fn policy() -> NodePolicy {
    NodePolicy {
        organization: "iom".into(),
        organization_name: ORG_NAME.into(),
        catalogue: DocumentId::from_bytes([8; 16]),
        workspace: DocumentId::from_bytes([9; 16]),
        published_edits: PublishedEdits::Editors,
        untyped: Arc::new(UntypedQuota::in_memory(2, 1 << 20)),
    }
}

fn member(role: Role) -> Principal {
    Principal::Visitor(Access::Member {
        name: "Amy".into(),
        role,
    })
}

fn anonymous() -> Principal {
    Principal::Visitor(Access::Anonymous)
}

fn partner() -> Principal {
    Principal::Partner {
        name: "UNAOC".into(),
        organization: Some("unaoc".into()),
        acl: Acl::FULL,
    }
}

fn relay() -> Principal {
    Principal::Partner {
        name: "ws://sync.example/".into(),
        organization: None,
        acl: Acl::FULL,
    }
}

fn author(org: &str, role: Role) -> Author {
    Author {
        name: "Amy".into(),
        organization: org.into(),
        role,
    }
}

/// A complete internal draft of `org`'s.
fn draft_of(org: &str) -> Automerge {
    let a = author(org, Role::Admin);
    let mut doc = Practice::new("Welcome desks", "Lisbon", "PT", &a, 1)
        .create(&a, 1)
        .unwrap();
    for edit in [
        PracticeEdit::Text {
            field: TextField::Summary,
            translation: None,
            base: String::new(),
            new: "One-stop desks.".into(),
        },
        PracticeEdit::Tag {
            field: TagField::Themes,
            key: "housing".into(),
            on: true,
        },
    ] {
        apply_edit(&mut doc, &edit, &a, 2).unwrap();
    }
    doc
}

/// `org`'s public practice.
fn public_of(org: &str) -> Automerge {
    let mut internal = draft_of(org);
    publish(&mut internal, &author(org, Role::Reviewer), ORG_NAME, "", 3)
        .unwrap()
        .document
}

fn edited(doc: &Automerge, edit: PracticeEdit, by: &Author) -> Automerge {
    let mut after = doc.clone();
    apply_edit(&mut after, &edit, by, 4).unwrap();
    after
}

/// The document with `value` put at a path of maps, as any automerge peer could.
fn with(doc: &Automerge, path: &[&str], value: &str) -> Automerge {
    let mut after = doc.clone();
    after
        .transact::<_, _, automerge::AutomergeError>(|tx| {
            let (last, maps) = path.split_last().unwrap();
            let mut obj = automerge::ROOT;
            for key in maps {
                obj = match tx.get(&obj, *key).unwrap() {
                    Some((_, id)) => id,
                    None => panic!("no {key}"),
                };
            }
            tx.put(&obj, *last, value)?;
            Ok(())
        })
        .unwrap();
    after
}

fn review(action: ReviewAction) -> PracticeEdit {
    PracticeEdit::Review {
        action,
        comment: "ok".into(),
    }
}

fn summary(new: &str) -> PracticeEdit {
    PracticeEdit::Text {
        field: TextField::Summary,
        translation: None,
        base: "One-stop desks.".into(),
        new: new.into(),
    }
}

fn id() -> DocumentId {
    DocumentId::from_bytes([1; 16])
}

fn empty() -> Automerge {
    Automerge::new()
}

#[test]
fn internal_practices_and_the_workspace_are_for_members_only() {
    let p = policy();
    let doc = draft_of("iom");
    assert!(p.may_read(&member(Role::Editor), &id(), &doc));
    assert!(!p.may_read(&partner(), &id(), &doc));
    assert!(!p.may_read(&anonymous(), &id(), &doc));
    // Even published, an internal practice stays home: the public one is another document.
    let mut published = doc.clone();
    publish(
        &mut published,
        &author("iom", Role::Reviewer),
        ORG_NAME,
        "",
        3,
    )
    .unwrap();
    assert!(!p.may_read(&partner(), &id(), &published));
    assert!(p.may_read(&anonymous(), &id(), &public_of("iom")));
    assert!(!p.may_read(&partner(), &p.workspace, &empty()));
    // A partner never brings one, nor writes ours.
    assert_eq!(
        p.check_write(&partner(), &id(), &empty(), &draft_of("unaoc")),
        Err("internal practices never leave their organization".into())
    );
    assert_eq!(
        p.may_change(&partner(), &id(), &doc),
        Err("this ibis/internal-practice is iom's: only its members change it".into())
    );
}

#[test]
fn review_moves_follow_roles() {
    let p = policy();
    let doc = draft_of("iom");
    let submitted = edited(
        &doc,
        review(ReviewAction::Submit),
        &author("iom", Role::Editor),
    );
    assert_eq!(
        p.check_write(&member(Role::Editor), &id(), &doc, &submitted),
        Ok(())
    );
    let published = with(&doc, &["review", "state"], "published");
    assert_eq!(
        p.check_write(&member(Role::Editor), &id(), &doc, &published),
        Err("a editor may not move a practice from draft to published".into())
    );
    assert_eq!(
        p.check_write(&member(Role::Reviewer), &id(), &doc, &published),
        Ok(())
    );
    // Only reviewers make a public practice.
    let public = public_of("iom");
    assert_eq!(
        p.check_write(&member(Role::Editor), &id(), &empty(), &public),
        Err("a editor may not publish a practice".into())
    );
    assert_eq!(
        p.check_write(&member(Role::Reviewer), &id(), &empty(), &public),
        Ok(())
    );
}

#[test]
fn anonymous_visitors_change_nothing() {
    let p = policy();
    let refusal = Err("anonymous visitors cannot change documents; log in first".into());
    assert_eq!(p.may_write(&anonymous()), refusal);
    assert_eq!(
        p.check_write(&anonymous(), &id(), &empty(), &draft_of("iom")),
        refusal
    );
}

#[test]
fn partners_never_overrule_this_organization() {
    let p = policy();
    let ours = public_of("iom");
    // Anything to a document we own is refused before it is read, whatever it claims.
    for who in [partner(), relay()] {
        assert_eq!(
            p.may_change(&who, &id(), &ours),
            Err("this ibis/practice is iom's: only its members change it".into())
        );
    }
    // A change that names another home and archives ours: decided on what we store.
    let hijacked = with(
        &with(&ours, &["provenance", "home_organization"], "unaoc"),
        &["review", "state"],
        "archived",
    );
    assert!(p
        .check_write(&partner(), &id(), &ours, &hijacked)
        .unwrap_err()
        .to_string()
        .contains("only its members change it"));
    // A member cannot move it to another organization either.
    assert_eq!(
        p.check_write(&member(Role::Admin), &id(), &ours, &hijacked),
        Err("a ibis/practice's organization cannot change".into())
    );
    // A new document claiming to be ours, already published, from a partner: refused.
    assert_eq!(
        p.check_write(
            &partner(),
            &DocumentId::from_bytes([7; 16]),
            &empty(),
            &ours
        ),
        Err("only iom's members create its documents".into())
    );
    // Another organization's public practice is accepted as relayed, from a partner or a
    // relay, and stays public.
    let theirs = public_of("unaoc");
    assert_eq!(p.check_write(&relay(), &id(), &empty(), &theirs), Ok(()));
    let archived = edited(
        &theirs,
        review(ReviewAction::Archive),
        &organization_author(&author("unaoc", Role::Admin), ORG_NAME),
    );
    assert_eq!(p.check_write(&partner(), &id(), &theirs, &archived), Ok(()));
    // Members do not co-edit other organizations' practices (that comes with provenance).
    assert_eq!(
        p.may_change(&member(Role::Admin), &id(), &theirs),
        Err("this ibis/practice is unaoc's: only its organization changes it".into())
    );
}

#[test]
fn a_public_practice_holds_nothing_private_and_names_only_the_organization() {
    let p = policy();
    let ours = public_of("iom");
    let as_org = organization_author(&author("iom", Role::Editor), ORG_NAME);
    let live = edited(&ours, summary("One-stop desks, live."), &as_org);
    assert_eq!(
        p.check_write(&member(Role::Editor), &id(), &ours, &live),
        Ok(())
    );
    // A person's name in the change.
    let named = edited(
        &ours,
        summary("One-stop desks, by Amy."),
        &author("iom", Role::Editor),
    );
    assert!(p
        .check_write(&member(Role::Editor), &id(), &ours, &named)
        .unwrap_err()
        .to_string()
        .contains("only the organization (IOM) is named"));
    // A contact without consent (put as any peer could).
    let private = with(&ours, &["contact", "email"], "jane@example.org");
    assert!(p
        .check_write(&member(Role::Editor), &id(), &ours, &private)
        .unwrap_err()
        .to_string()
        .contains("contact details are public only with the contact's consent"));
    // Only reviewers change it, where the organization says so.
    let strict = NodePolicy {
        published_edits: PublishedEdits::Reviewers,
        ..policy()
    };
    assert!(strict
        .check_write(&member(Role::Editor), &id(), &ours, &live)
        .unwrap_err()
        .to_string()
        .contains("published_edits = reviewers"));
    assert_eq!(
        strict.check_write(&member(Role::Reviewer), &id(), &ours, &live),
        Ok(())
    );
}

#[test]
fn catalogues_are_known_by_id_and_keep_their_organization() {
    let p = policy();
    let ours = new_listing(DocumentKind::Catalogue, "iom").unwrap();
    assert_eq!(
        p.check_write(&member(Role::Editor), &p.catalogue, &empty(), &ours),
        Ok(())
    );
    // Another document claiming to be our catalogue.
    assert_eq!(
        p.check_write(&member(Role::Editor), &id(), &empty(), &ours),
        Err(format!("iom's catalogue is {}; no other document is", p.catalogue).into())
    );
    // Our catalogue, whatever it holds, is ours: a partner's change is refused unread.
    let theirs = new_listing(DocumentKind::Catalogue, "unaoc").unwrap();
    assert!(p
        .may_change(&partner(), &p.catalogue, &theirs)
        .unwrap_err()
        .to_string()
        .contains("only its members change it"));
    // A partner's catalogue passes; its organization does not change.
    assert_eq!(p.check_write(&partner(), &id(), &empty(), &theirs), Ok(()));
    let mut renamed = theirs.clone();
    renamed
        .transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(automerge::ROOT, "organization", "nlc")?;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        p.check_write(&partner(), &id(), &theirs, &renamed),
        Err("a ibis/catalogue's organization cannot change".into())
    );
    let mut listed = theirs.clone();
    set_entry(
        &mut listed,
        DocumentKind::Catalogue,
        Entry::Practice,
        id(),
        true,
        &author("unaoc", Role::Admin),
        5,
    )
    .unwrap();
    assert_eq!(p.check_write(&partner(), &id(), &theirs, &listed), Ok(()));
}

#[test]
fn directory_entries_are_changed_or_removed_by_their_own_organization() {
    let p = policy();
    let dir_id = DocumentId::from_bytes([5; 16]);
    let mut before = new_directory(dir_id).unwrap();
    let entry = |name: &str| Organization {
        name: name.into(),
        ..Organization::default()
    };
    register(
        &mut before,
        "iom",
        &entry("IOM"),
        &author("iom", Role::Admin),
        1,
    )
    .unwrap();
    register(
        &mut before,
        "unaoc",
        &entry("UNAOC"),
        &author("unaoc", Role::Admin),
        1,
    )
    .unwrap();
    let change = |org: &str, name: &str| {
        let mut after = before.clone();
        register(&mut after, org, &entry(name), &author(org, Role::Admin), 2).unwrap();
        after
    };
    let delete = |org: &str| {
        let mut after = before.clone();
        after
            .transact::<_, _, automerge::AutomergeError>(|tx| {
                let orgs = match tx.get(automerge::ROOT, "organizations").unwrap() {
                    Some((_, obj)) => obj,
                    None => panic!("no organizations"),
                };
                tx.delete(&orgs, org)?;
                Ok(())
            })
            .unwrap();
        after
    };
    assert_eq!(
        p.check_write(&partner(), &dir_id, &before, &change("iom", "Hijacked")),
        Err("only iom's members change its directory entry".into())
    );
    assert_eq!(
        p.check_write(&partner(), &dir_id, &before, &delete("iom")),
        Err("only iom's members change its directory entry".into())
    );
    assert_eq!(
        p.check_write(&partner(), &dir_id, &before, &change("unaoc", "UNAOC!")),
        Ok(())
    );
    assert_eq!(
        p.check_write(&member(Role::Admin), &dir_id, &before, &delete("unaoc")),
        Err("members change iom's directory entry only, not unaoc's".into())
    );
    assert_eq!(
        p.check_write(
            &member(Role::Admin),
            &dir_id,
            &before,
            &change("iom", "IOM!")
        ),
        Ok(())
    );
}

#[test]
fn invalid_or_retyped_documents_are_refused() {
    let p = policy();
    let doc = draft_of("iom");
    let mut broken = doc.clone();
    broken
        .transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(automerge::ROOT, "country", "Atlantis")?;
            Ok(())
        })
        .unwrap();
    assert!(p
        .check_write(&member(Role::Admin), &id(), &doc, &broken)
        .unwrap_err()
        .to_string()
        .starts_with("invalid practice: country"));
    let mut retyped = doc.clone();
    retyped
        .transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(automerge::ROOT, "type", "ibis/event")?;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        p.check_write(&member(Role::Admin), &id(), &doc, &retyped),
        Err("a document's type cannot change".into())
    );
}

fn plain(count: i64) -> Automerge {
    let mut doc = Automerge::new();
    doc.transact::<_, _, automerge::AutomergeError>(|tx| {
        tx.put(automerge::ROOT, "count", count)?;
        Ok(())
    })
    .unwrap();
    doc
}

#[test]
fn untyped_documents_are_relayed_within_each_organizations_quota() {
    let p = policy();
    for n in 0..2u8 {
        assert_eq!(
            p.check_write(
                &partner(),
                &DocumentId::from_bytes([20 + n; 16]),
                &empty(),
                &plain(1)
            ),
            Ok(())
        );
    }
    assert!(p
        .check_write(
            &partner(),
            &DocumentId::from_bytes([30; 16]),
            &empty(),
            &plain(1)
        )
        .unwrap_err()
        .to_string()
        .contains("unaoc already has 2 documents of no ibis type"));
    // Another organization, and a relay, have quotas of their own.
    assert_eq!(
        p.check_write(
            &relay(),
            &DocumentId::from_bytes([31; 16]),
            &empty(),
            &plain(1)
        ),
        Ok(())
    );
    assert_eq!(
        p.check_write(
            &member(Role::Editor),
            &DocumentId::from_bytes([32; 16]),
            &empty(),
            &plain(1)
        ),
        Ok(())
    );
}

#[test]
fn partner_acls_limit_reading_and_writing() {
    let p = policy();
    let public = public_of("unaoc");
    let read_only = Principal::Partner {
        name: "mirror".into(),
        organization: None,
        acl: Acl {
            read: true,
            write: false,
        },
    };
    assert!(p.may_read(&read_only, &id(), &public));
    assert_eq!(
        p.may_write(&read_only),
        Err("partner mirror may read but not send changes".into())
    );
    let write_only = Principal::Partner {
        name: "inbox".into(),
        organization: None,
        acl: Acl {
            read: false,
            write: true,
        },
    };
    assert!(!p.may_read(&write_only, &id(), &public));
}

#[test]
fn only_untyped_documents_that_the_sender_may_write_are_checked_in_place() {
    let p = policy();
    let doc = plain(1);
    assert!(p.may_check_in_place(&member(Role::Editor), &id(), &doc));
    assert!(p.may_check_in_place(&partner(), &id(), &doc));
    assert!(!p.may_check_in_place(&member(Role::Admin), &id(), &draft_of("iom")));
    assert!(!p.may_check_in_place(&member(Role::Admin), &id(), &empty()));
    assert!(!p.may_check_in_place(&anonymous(), &id(), &doc));
    let before = doc.get_heads();
    assert_eq!(
        p.check_in_place(&partner(), &id(), &before, &plain(2)),
        Ok(())
    );
    let mut retyped = doc.clone();
    retyped
        .transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(automerge::ROOT, "type", "ibis/practice")?;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        p.check_in_place(&member(Role::Admin), &id(), &before, &retyped),
        Err("a document's type cannot change".into())
    );
}

#[test]
fn verified_partners_outrank_members_who_outrank_visitors() {
    let p = policy();
    assert!(p.outranks(&partner(), &anonymous()));
    assert!(p.outranks(&member(Role::Editor), &anonymous()));
    assert!(!p.outranks(&anonymous(), &partner()));
    assert!(!p.outranks(&member(Role::Admin), &partner()));
    assert!(
        p.limits(&anonymous()).max_frame_bytes < p.limits(&member(Role::Editor)).max_frame_bytes
    );
    assert!(!p.limits(&anonymous()).forward_requests);
    assert!(!p.limits(&anonymous()).keep_sync_states);
}
