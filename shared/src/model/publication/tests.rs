use super::*;
use crate::model::practice::{apply_edit, PracticeEdit, TagField};
use crate::model::review::Role;
use crate::model::{kind_of, written_strings};

const ORG: &str = "IOM";

fn person(name: &str, role: Role) -> Author {
    Author {
        name: name.into(),
        organization: "iom".into(),
        role,
    }
}

fn edit(doc: &mut Automerge, e: PracticeEdit, who: &Author) {
    apply_edit(doc, &e, who, 2_000).unwrap();
}

fn type_text(doc: &mut Automerge, field: TextField, new: &str, who: &Author) {
    let base = field.of(&Practice::load(doc).unwrap()).as_str().to_owned();
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

/// A draft written, sent back and resubmitted, with a contact who did not consent and a
/// sentence deleted before publishing.
fn submitted_draft() -> Automerge {
    let amy = person("Amy Editor", Role::Editor);
    let rita = person("Rita Reviewer", Role::Reviewer);
    let mut doc = Practice::new("Welcome desks", "Geneva", "CH", &amy, 1_000)
        .create(&amy, 1_000)
        .unwrap();
    type_text(
        &mut doc,
        TextField::Summary,
        "Desks at city hall. DRAFT-SENTENCE we lost the funding.",
        &amy,
    );
    edit(
        &mut doc,
        PracticeEdit::Tag {
            field: TagField::Themes,
            key: "housing".into(),
            on: true,
        },
        &amy,
    );
    edit(
        &mut doc,
        PracticeEdit::Contact(Contact {
            name: "Jane PRIVATE-CONTACT".into(),
            email: "private-contact@example.org".into(),
            consent: false,
            ..Contact::default()
        }),
        &amy,
    );
    review(&mut doc, ReviewAction::Submit, "", &amy);
    review(
        &mut doc,
        ReviewAction::SendBack,
        "SENDBACK-COMMENT add outcomes",
        &rita,
    );
    type_text(&mut doc, TextField::Summary, "Desks at city hall.", &amy);
    review(&mut doc, ReviewAction::Submit, "", &amy);
    doc
}

const MARKERS: [&str; 6] = [
    "PRIVATE-CONTACT",
    "private-contact@example.org",
    "SENDBACK-COMMENT",
    "DRAFT-SENTENCE",
    "Amy Editor",
    "Rita Reviewer",
];

fn leaks(doc: &Automerge) -> Vec<String> {
    written_strings(doc)
        .into_iter()
        .filter(|w| MARKERS.iter().any(|m| w.contains(m)))
        .collect()
}

#[test]
fn new_drafts_are_internal_practices() {
    let doc = submitted_draft();
    assert_eq!(kind_of(&doc), Some(DocumentKind::InternalPractice));
    let p = Practice::load(&doc).unwrap();
    assert!(p.is_internal());
    assert_eq!(p.public_id(), None);
    // The audit sees what the history holds, deleted text included.
    assert!(!leaks(&doc).is_empty());
    assert!(written_strings(&doc)
        .iter()
        .any(|w| w.contains("DRAFT-SENTENCE we lost the funding")));
}

#[test]
fn publishing_makes_a_public_practice_that_never_held_anything_private() {
    let mut internal = submitted_draft();
    let rita = person("Rita Reviewer", Role::Reviewer);
    let published = publish(&mut internal, &rita, ORG, "looks good", 3_000).unwrap();

    let public = Practice::load(&published.document).unwrap();
    assert_eq!(kind_of(&published.document), Some(DocumentKind::Practice));
    assert_eq!(public.state(), ReviewState::Published);
    assert_eq!(public.summary.as_str(), "Desks at city hall.");
    assert_eq!(public.contact, Contact::default());
    assert!(public.review.comments.is_empty());
    assert_eq!(public.provenance.created_by, ORG);
    assert_eq!(public.provenance.home_organization, "iom");
    assert_eq!(
        validate_public(&published.document, Some(ORG)),
        Vec::<FieldError>::new()
    );
    assert_eq!(leaks(&published.document), Vec::<String>::new());
    assert_eq!(published.document.get_changes(&[]).len(), 1);

    // The internal practice knows its public id; the public one does not point home.
    let p = Practice::load(&internal).unwrap();
    assert_eq!(p.state(), ReviewState::Published);
    assert_eq!(p.public_id(), Some(published.id));
    assert_eq!(p.contact.email, "private-contact@example.org");
    assert!(public.public.is_empty());
}

#[test]
fn only_reviewers_publish_only_internal_complete_practices() {
    let amy = person("Amy Editor", Role::Editor);
    let rita = person("Rita Reviewer", Role::Reviewer);
    let mut doc = submitted_draft();
    let heads = doc.get_heads();
    assert!(matches!(
        publish(&mut doc, &amy, ORG, "", 3_000),
        Err(ModelError::Forbidden(_))
    ));
    assert_eq!(
        doc.get_heads(),
        heads,
        "a refused publication writes nothing"
    );

    let mut incomplete = Practice::new("Bare", "Geneva", "CH", &amy, 1_000)
        .create(&amy, 1_000)
        .unwrap();
    assert!(matches!(
        publish(&mut incomplete, &rita, ORG, "", 3_000),
        Err(ModelError::Invalid(_))
    ));

    let published = publish(&mut doc, &rita, ORG, "", 3_000).unwrap();
    let mut public = published.document;
    assert!(matches!(
        publish(&mut public, &rita, ORG, "", 4_000),
        Err(ModelError::Forbidden(_))
    ));
    assert!(matches!(
        publish(&mut doc, &rita, ORG, "", 4_000),
        Err(ModelError::Forbidden(_)),
    ));
}

#[test]
fn a_consenting_contact_is_public_and_a_public_practice_is_checked() {
    let amy = person("Amy Editor", Role::Editor);
    let rita = person("Rita Reviewer", Role::Reviewer);
    let mut doc = submitted_draft();
    edit(
        &mut doc,
        PracticeEdit::Contact(Contact {
            name: "Public Person".into(),
            consent: true,
            ..Contact::default()
        }),
        &amy,
    );
    let published = publish(&mut doc, &rita, ORG, "", 3_000).unwrap();
    let public = Practice::load(&published.document).unwrap();
    assert_eq!(public.contact.name, "Public Person");

    let mut wrong = public.clone();
    wrong.contact.consent = false;
    wrong
        .review
        .comments
        .push(super::super::practice::ReviewComment {
            author: "x".into(),
            at: 1,
            action: "comment".into(),
            text: "internal".into(),
        });
    wrong.public = "automerge:2j9PSBxXXbRNsWPSbaQQrhsyNbLH".into();
    wrong.provenance.updated_by = "Amy Editor".into();
    wrong.review.state = "draft".into();
    let fields: Vec<String> = check_public(&wrong, Some(ORG))
        .into_iter()
        .map(|e| e.field)
        .collect();
    for field in [
        "contact",
        "review.comments",
        "public",
        "provenance.updated_by",
        "review.state",
    ] {
        assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
    }
}

#[test]
fn live_edits_to_the_public_practice_are_in_the_organizations_name() {
    let mut internal = submitted_draft();
    let rita = person("Rita Reviewer", Role::Reviewer);
    let amy = person("Amy Editor", Role::Editor);
    let mut public = publish(&mut internal, &rita, ORG, "", 3_000)
        .unwrap()
        .document;
    let as_org = organization_author(&amy, ORG);
    type_text(
        &mut public,
        TextField::Summary,
        "Desks at city hall, in 12 languages.",
        &as_org,
    );
    assert_eq!(
        validate_public(&public, Some(ORG)),
        Vec::<FieldError>::new()
    );
    assert_eq!(leaks(&public), Vec::<String>::new());
    let last = crate::model::history(&public);
    assert_eq!(last[0].by, ORG);
}

#[test]
fn withdrawing_takes_live_edits_back_and_republishes_under_a_new_id() {
    let mut internal = submitted_draft();
    let rita = person("Rita Reviewer", Role::Reviewer);
    let amy = person("Amy Editor", Role::Editor);
    let first = publish(&mut internal, &rita, ORG, "", 3_000).unwrap();
    let mut public = first.document;
    type_text(
        &mut public,
        TextField::Outcomes,
        "4,000 newcomers served.",
        &organization_author(&amy, ORG),
    );
    assert!(matches!(
        withdraw(&mut internal, &public, &amy, ORG, true, "", 4_000),
        Err(ModelError::Forbidden(_))
    ));
    let again = withdraw(
        &mut internal,
        &public,
        &rita,
        ORG,
        true,
        "consent withdrawn",
        4_000,
    )
    .unwrap()
    .expect("republished");
    assert_ne!(again.id, first.id);
    let p = Practice::load(&internal).unwrap();
    assert_eq!(p.outcomes.as_str(), "4,000 newcomers served.");
    assert_eq!(p.public_id(), Some(again.id));
    assert_eq!(p.state(), ReviewState::Published);
    let republished = Practice::load(&again.document).unwrap();
    assert_eq!(republished.outcomes.as_str(), "4,000 newcomers served.");
    assert_eq!(leaks(&again.document), Vec::<String>::new());

    // Erasing: back to draft, nothing public left.
    let none = withdraw(
        &mut internal,
        &again.document,
        &rita,
        ORG,
        false,
        "mistake",
        5_000,
    )
    .unwrap();
    assert!(none.is_none());
    let p = Practice::load(&internal).unwrap();
    assert_eq!(p.state(), ReviewState::Draft);
    assert_eq!(p.public_id(), None);
}

#[test]
fn a_listing_names_what_was_withdrawn_and_what_replaced_it() {
    use crate::model::catalogue::{
        new_listing, set_entry, withdraw as withdraw_entry, Entry, Listing,
    };
    let rita = person("Rita Reviewer", Role::Reviewer);
    let mut catalogue = new_listing(DocumentKind::Catalogue, "iom").unwrap();
    let old = DocumentId::from_bytes([1; 16]);
    let new = DocumentId::from_bytes([2; 16]);
    set_entry(
        &mut catalogue,
        DocumentKind::Catalogue,
        Entry::Practice,
        old,
        true,
        &rita,
        1,
    )
    .unwrap();
    withdraw_entry(
        &mut catalogue,
        DocumentKind::Catalogue,
        old,
        Some(new),
        &rita,
        2,
    )
    .unwrap();
    let listing = Listing::load(&catalogue, DocumentKind::Catalogue).unwrap();
    assert_eq!(listing.practice_ids().collect::<Vec<_>>(), vec![new]);
    assert_eq!(
        listing.withdrawn_ids().collect::<Vec<_>>(),
        vec![(old, Some(new))]
    );
}
