use super::*;
use automerge::transaction::Transactable;
use ibis_shared::model::practice::{apply_edit, PracticeEdit, TagField, TextField};
use ibis_shared::model::review::ReviewAction;
use ibis_shared::model::Author;

use crate::registry::Acl;

fn policy() -> NodePolicy {
    NodePolicy {
        organization: "iom".into(),
        workspace: DocumentId::from_bytes([9; 16]),
    }
}

fn member(role: Role) -> Principal {
    Principal::Visitor(Access::Member {
        name: "Amy".into(),
        role,
    })
}

fn partner() -> Principal {
    Principal::Partner {
        name: "unaoc".into(),
        acl: Acl::FULL,
    }
}

fn author(role: Role) -> Author {
    Author {
        name: "Amy".into(),
        organization: "iom".into(),
        role,
    }
}

/// A complete draft of IOM's.
fn draft() -> Automerge {
    let a = author(Role::Admin);
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

fn review(doc: &Automerge, action: ReviewAction, role: Role) -> Automerge {
    let mut after = doc.clone();
    apply_edit(
        &mut after,
        &PracticeEdit::Review {
            action,
            comment: "ok".into(),
        },
        &author(role),
        3,
    )
    .unwrap();
    after
}

fn id() -> DocumentId {
    DocumentId::from_bytes([1; 16])
}

#[test]
fn drafts_are_for_members_only() {
    let p = policy();
    let doc = draft();
    assert!(p.may_read(&member(Role::Editor), &id(), &doc));
    assert!(!p.may_read(&partner(), &id(), &doc));
    assert!(!p.may_read(&Principal::Visitor(Access::Anonymous), &id(), &doc));
    let published = review(&doc, ReviewAction::Publish, Role::Reviewer);
    assert!(p.may_read(&partner(), &id(), &published));
    assert!(p.may_read(&Principal::Visitor(Access::Anonymous), &id(), &published));
    // The workspace never leaves.
    assert!(!p.may_read(&partner(), &p.workspace, &Automerge::new()));
}

#[test]
fn review_moves_follow_roles() {
    let p = policy();
    let doc = draft();
    let published = review(&doc, ReviewAction::Publish, Role::Reviewer);
    assert_eq!(
        p.check_write(&member(Role::Editor), &id(), &doc, &published),
        Err("a editor may not move a practice from draft to published".into())
    );
    assert_eq!(
        p.check_write(&member(Role::Reviewer), &id(), &doc, &published),
        Ok(())
    );
    let submitted = review(&doc, ReviewAction::Submit, Role::Editor);
    assert_eq!(
        p.check_write(&member(Role::Editor), &id(), &doc, &submitted),
        Ok(())
    );
}

#[test]
fn anonymous_visitors_change_nothing() {
    let p = policy();
    let doc = draft();
    assert_eq!(
        p.check_write(
            &Principal::Visitor(Access::Anonymous),
            &id(),
            &Automerge::new(),
            &doc
        ),
        Err("anonymous visitors cannot change documents; log in first".into())
    );
}

#[test]
fn partners_never_bring_drafts_and_never_move_our_practices() {
    let p = policy();
    let doc = draft();
    assert_eq!(
        p.check_write(&partner(), &id(), &Automerge::new(), &doc),
        Err("partners share published practices only".into())
    );
    let published = review(&doc, ReviewAction::Publish, Role::Reviewer);
    assert_eq!(
        p.check_write(&partner(), &id(), &Automerge::new(), &published),
        Ok(())
    );
    let archived = review(&published, ReviewAction::Archive, Role::Admin);
    assert!(p
        .check_write(&partner(), &id(), &published, &archived)
        .unwrap_err()
        .contains("only this organization's members"));
}

#[test]
fn invalid_or_retyped_documents_are_refused() {
    let p = policy();
    let doc = draft();
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
    // Plain automerge documents (any automerge-repo peer's) pass through.
    let mut plain = Automerge::new();
    plain
        .transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(automerge::ROOT, "count", 1)?;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        p.check_write(&partner(), &id(), &Automerge::new(), &plain),
        Ok(())
    );
}

#[test]
fn partner_acls_limit_reading_and_writing() {
    let p = policy();
    let published = review(&draft(), ReviewAction::Publish, Role::Reviewer);
    let read_only = Principal::Partner {
        name: "mirror".into(),
        acl: Acl {
            read: true,
            write: false,
        },
    };
    assert!(p.may_read(&read_only, &id(), &published));
    assert_eq!(
        p.check_write(&read_only, &id(), &Automerge::new(), &published),
        Err("partner mirror may read but not send changes".into())
    );
    let write_only = Principal::Partner {
        name: "inbox".into(),
        acl: Acl {
            read: false,
            write: true,
        },
    };
    assert!(!p.may_read(&write_only, &id(), &published));
}

#[test]
fn only_untyped_documents_that_the_sender_may_write_are_checked_in_place() {
    let p = policy();
    let mut plain = Automerge::new();
    plain
        .transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(automerge::ROOT, "count", 1)?;
            Ok(())
        })
        .unwrap();
    assert!(p.may_check_in_place(&member(Role::Editor), &id(), &plain));
    assert!(p.may_check_in_place(&partner(), &id(), &plain));
    // Practices (and every ibis type) need the full check on a copy.
    assert!(!p.may_check_in_place(&member(Role::Admin), &id(), &draft()));
    // So do new documents, anonymous visitors and partners that may not write.
    assert!(!p.may_check_in_place(&member(Role::Admin), &id(), &Automerge::new()));
    assert!(!p.may_check_in_place(&Principal::Visitor(Access::Anonymous), &id(), &plain));
    let read_only = Principal::Partner {
        name: "mirror".into(),
        acl: Acl {
            read: true,
            write: false,
        },
    };
    assert!(!p.may_check_in_place(&read_only, &id(), &plain));

    // In place, a change that keeps the document untyped passes; one that gives it a type
    // is refused, as check_write refuses it.
    let before = plain.get_heads();
    let mut counted = plain.clone();
    counted
        .transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(automerge::ROOT, "count", 2)?;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        p.check_in_place(&partner(), &id(), &before, &counted),
        Ok(())
    );
    let mut retyped = plain.clone();
    retyped
        .transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(automerge::ROOT, "type", "ibis/practice")?;
            Ok(())
        })
        .unwrap();
    let refusal = p.check_in_place(&member(Role::Admin), &id(), &before, &retyped);
    assert_eq!(refusal, Err("a document's type cannot change".into()));
    assert_eq!(
        refusal,
        p.check_write(&member(Role::Admin), &id(), &plain, &retyped)
    );
}
