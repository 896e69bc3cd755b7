use super::*;
use crate::model::review::Role;
use crate::model::{history, kind_of};

fn editor() -> Author {
    Author {
        name: "Amy".into(),
        organization: "iom".into(),
        role: Role::Editor,
    }
}

fn reviewer() -> Author {
    Author {
        name: "Florence".into(),
        organization: "unaoc".into(),
        role: Role::Reviewer,
    }
}

fn new_doc() -> Automerge {
    Practice::new("Welcome desks", "Lisbon", "pt", &editor(), 1_000)
        .create(&editor(), 1_000)
        .unwrap()
}

fn text(field: TextField, base: &str, new: &str) -> PracticeEdit {
    PracticeEdit::Text {
        field,
        translation: None,
        base: base.into(),
        new: new.into(),
    }
}

#[test]
fn a_new_practice_is_a_valid_draft() {
    let doc = new_doc();
    assert_eq!(kind_of(&doc), Some(DocumentKind::InternalPractice));
    let p = Practice::load(&doc).unwrap();
    assert_eq!(p.title.as_str(), "Welcome desks");
    assert_eq!(p.country, "PT");
    assert_eq!(p.state(), ReviewState::Draft);
    assert_eq!(p.provenance.home_organization, "iom");
    assert_eq!(validate_document(&doc), vec![]);
}

#[test]
fn two_people_typing_in_the_summary_at_once_both_keep_their_words() {
    let mut a = new_doc();
    apply_edit(
        &mut a,
        &text(TextField::Summary, "", "One-stop desks for newcomers."),
        &editor(),
        2_000,
    )
    .unwrap();
    let mut b = a.fork();
    let base = "One-stop desks for newcomers.";
    apply_edit(
        &mut a,
        &text(
            TextField::Summary,
            base,
            "Municipal one-stop desks for newcomers.",
        ),
        &editor(),
        3_000,
    )
    .unwrap();
    apply_edit(
        &mut b,
        &text(
            TextField::Summary,
            base,
            "One-stop desks for newcomers, in 12 languages.",
        ),
        &reviewer(),
        3_000,
    )
    .unwrap();
    a.merge(&mut b).unwrap();
    let merged = Practice::load(&a).unwrap();
    assert_eq!(
        merged.summary.as_str(),
        "Municipal one-stop desks for newcomers, in 12 languages."
    );
}

#[test]
fn an_edit_based_on_a_stale_view_does_not_undo_a_remote_change() {
    let mut doc = new_doc();
    apply_edit(
        &mut doc,
        &text(TextField::Context, "", "Arrivals doubled."),
        &editor(),
        2_000,
    )
    .unwrap();
    // Someone else's change lands; this person still sees the old text when typing.
    apply_edit(
        &mut doc,
        &text(
            TextField::Context,
            "Arrivals doubled.",
            "Since 2015, arrivals doubled.",
        ),
        &reviewer(),
        3_000,
    )
    .unwrap();
    apply_edit(
        &mut doc,
        &text(
            TextField::Context,
            "Arrivals doubled.",
            "Arrivals doubled in two years.",
        ),
        &editor(),
        4_000,
    )
    .unwrap();
    assert_eq!(
        Practice::load(&doc).unwrap().context.as_str(),
        "Since 2015, arrivals doubled in two years."
    );
}

#[test]
fn the_review_flow_is_enforced_by_role_and_completeness() {
    let mut doc = new_doc();
    let submit = PracticeEdit::Review {
        action: ReviewAction::Submit,
        comment: String::new(),
    };
    // Incomplete: no summary, no theme.
    let err = apply_edit(&mut doc, &submit, &editor(), 2_000).unwrap_err();
    let ModelError::Invalid(errors) = err else {
        panic!("expected field errors, got {err:?}");
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["summary", "themes"]);

    apply_edit(
        &mut doc,
        &text(TextField::Summary, "", "Desks."),
        &editor(),
        2_000,
    )
    .unwrap();
    apply_edit(
        &mut doc,
        &PracticeEdit::Tag {
            field: TagField::Themes,
            key: "reception-services".into(),
            on: true,
        },
        &editor(),
        2_000,
    )
    .unwrap();
    apply_edit(&mut doc, &submit, &editor(), 3_000).unwrap();
    // Publishing makes a public practice; an edit cannot do it.
    let publish = PracticeEdit::Review {
        action: ReviewAction::Publish,
        comment: "Great".into(),
    };
    assert!(matches!(
        apply_edit(&mut doc, &publish, &reviewer(), 4_000),
        Err(ModelError::Forbidden(_))
    ));
    assert!(matches!(
        crate::model::publication::publish(&mut doc, &editor(), "IOM", "", 4_000),
        Err(ModelError::Forbidden(e)) if e == "a editor may not publish a practice"
    ));
    crate::model::publication::publish(&mut doc, &reviewer(), "IOM", "Great", 4_000).unwrap();
    let p = Practice::load(&doc).unwrap();
    assert_eq!(p.state(), ReviewState::Published);
    assert_eq!(p.review.comments.len(), 2);
    assert_eq!(p.review.comments[1].author, "Florence");
    assert_eq!(p.review.comments[1].text, "Great");
}

#[test]
fn invalid_edits_are_refused_and_change_nothing() {
    let mut doc = new_doc();
    let heads = doc.get_heads();
    for (edit, field) in [
        (
            PracticeEdit::Scalar {
                field: ScalarField::Country,
                value: "Atlantis".into(),
            },
            "country",
        ),
        (
            PracticeEdit::Scalar {
                field: ScalarField::StartDate,
                value: "last spring".into(),
            },
            "start_date",
        ),
        (
            PracticeEdit::Tag {
                field: TagField::GcmObjectives,
                key: "24".into(),
                on: true,
            },
            "gcm_objectives",
        ),
        (
            PracticeEdit::Tag {
                field: TagField::Themes,
                key: "astrology".into(),
                on: true,
            },
            "themes",
        ),
        (
            text(TextField::Title, "Welcome desks", &"x".repeat(301)),
            "title",
        ),
        (
            PracticeEdit::Contact(Contact {
                email: "not an email".into(),
                ..Contact::default()
            }),
            "contact.email",
        ),
        (
            PracticeEdit::Resources(vec![Resource {
                title: "Toolkit".into(),
                url: "javascript:alert(1)".into(),
            }]),
            "resources.0.url",
        ),
    ] {
        match apply_edit(&mut doc, &edit, &editor(), 2_000) {
            Err(ModelError::Invalid(errors)) => {
                assert_eq!(errors[0].field, field, "{errors:?}")
            }
            other => panic!("{edit:?} gave {other:?}"),
        }
        assert_eq!(doc.get_heads(), heads);
    }
}

#[test]
fn history_says_who_changed_what() {
    let mut doc = new_doc();
    apply_edit(
        &mut doc,
        &text(TextField::Summary, "", "Desks."),
        &reviewer(),
        5_000,
    )
    .unwrap();
    let h = history(&doc);
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[0].what.as_str(), h[0].by.as_str(), h[0].time),
        ("edited summary", "Florence", 5)
    );
    assert_eq!((h[1].what.as_str(), h[1].by.as_str()), ("created", "Amy"));
}

#[test]
fn translations_are_edited_per_field() {
    let mut doc = new_doc();
    apply_edit(
        &mut doc,
        &PracticeEdit::Text {
            field: TextField::Title,
            translation: Some("fr".into()),
            base: String::new(),
            new: "Guichets d'accueil".into(),
        },
        &editor(),
        2_000,
    )
    .unwrap();
    let p = Practice::load(&doc).unwrap();
    assert_eq!(p.translations["fr"].title.as_str(), "Guichets d'accueil");
    assert_eq!(p.title.as_str(), "Welcome desks");
}

#[test]
fn documents_of_other_kinds_or_shapes_are_not_practices() {
    let mut doc = Automerge::new();
    doc.transact::<_, _, automerge::AutomergeError>(|tx| {
        use automerge::transaction::Transactable;
        tx.put(automerge::ROOT, "type", "ibis/event")?;
        Ok(())
    })
    .unwrap();
    assert!(matches!(Practice::load(&doc), Err(ModelError::Shape(_))));
    let mut doc = Automerge::new();
    doc.transact::<_, _, automerge::AutomergeError>(|tx| {
        use automerge::transaction::Transactable;
        tx.put(automerge::ROOT, "type", "ibis/practice")?;
        tx.put(automerge::ROOT, "title", 42)?;
        Ok(())
    })
    .unwrap();
    assert_eq!(validate_document(&doc).len(), 1);
}
