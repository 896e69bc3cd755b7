//! The review, which only members of the practice's organization see: the comments (they
//! live in the internal practice) and the moves their role allows. On a draft: submit,
//! publish (which makes the public practice and goes to its page), send back, comment. On a
//! published practice's page: comment; archive and restore, which both documents record (the
//! public one the move only, the internal one the move and its comment); and erase, which
//! withdraws the public practice for good and returns the practice to draft.

use ibis_shared::model::practice::PracticeEdit;
use ibis_shared::model::review::{transition, ReviewAction};
use ibis_shared::model::Role;
use ibis_shared::DocumentId;
use leptos::prelude::*;

use super::practice::{js_date, Current};
use super::practice_edit::apply_to;
use super::{ctx, publishing, route::navigate};

/// A review move made on the page of `shown` (a draft, or a public practice); returns the
/// page to go to, if it is another.
fn review_move(
    shown: &Current,
    internal: DocumentId,
    action: ReviewAction,
    comment: &str,
) -> Result<Option<DocumentId>, String> {
    let edit = |comment: &str| PracticeEdit::Review {
        action,
        comment: comment.to_owned(),
    };
    match action {
        ReviewAction::Publish => publishing::publish(internal, comment).map(Some),
        ReviewAction::Archive | ReviewAction::Restore if !shown.practice.is_internal() => {
            apply_to(shown.id, &edit(""))?;
            apply_to(internal, &edit(comment)).map(|()| None)
        }
        _ => apply_to(internal, &edit(comment)).map(|()| None),
    }
}

#[component]
pub fn Review(
    id: DocumentId,
    practice: Memo<Option<Current>>,
    internal: Memo<Option<Current>>,
    problem: RwSignal<String>,
) -> impl IntoView {
    let ctx = ctx();
    let comment = RwSignal::new(String::new());
    let draft = move || practice.with(|c| c.as_ref().is_some_and(|c| c.practice.is_internal()));
    let state = move || {
        practice
            .get()
            .map(|c| c.practice.state())
            .unwrap_or_default()
    };
    let comments = move || {
        internal
            .get()
            .map(|c| c.practice.review.comments)
            .unwrap_or_default()
    };
    // A draft page's practice that is published already: its page is the public one.
    let published_as = move || {
        practice
            .get()
            .filter(|c| c.practice.is_internal())
            .and_then(|c| c.practice.public_id())
    };
    let done = move |result: Result<Option<DocumentId>, String>, replace: bool| match result {
        Ok(to) => {
            comment.set(String::new());
            problem.set(String::new());
            if let Some(to) = to {
                navigate(&format!("/practices/{to}"), replace);
            }
        }
        Err(e) => problem.set(e),
    };
    let act = move |action: ReviewAction| {
        let (Some(shown), Some(internal)) = (practice.get_untracked(), internal.get_untracked())
        else {
            return;
        };
        done(
            review_move(&shown, internal.id, action, &comment.get_untracked()),
            false,
        );
    };
    let allowed = move |action: ReviewAction| {
        let Some(role) = ctx.role() else {
            return false;
        };
        let here = match (draft(), action) {
            (_, ReviewAction::Comment) => true,
            (true, ReviewAction::Archive | ReviewAction::Restore) => false,
            (true, _) => published_as().is_none(),
            (false, ReviewAction::Archive | ReviewAction::Restore) => true,
            (false, _) => false,
        };
        here && transition(state(), action, role, "x").is_ok()
    };
    let buttons = [
        (ReviewAction::Submit, "Submit for review"),
        (ReviewAction::Publish, "Publish"),
        (ReviewAction::SendBack, "Send back"),
        (ReviewAction::Archive, "Archive"),
        (ReviewAction::Restore, "Restore"),
        (ReviewAction::Comment, "Comment"),
    ];
    // Erasing: an admin's, on a published practice's page, confirmed first.
    let may_erase = move || !draft() && ctx.role() == Some(Role::Admin);
    let confirming = RwSignal::new(false);
    let erase = move |_| {
        let Some(internal) = internal.get_untracked() else {
            return;
        };
        confirming.set(false);
        let result = publishing::withdraw(id, internal.id, false, &comment.get_untracked());
        done(result.map(Some), true);
    };
    view! {
        <Show when=move || internal.get().is_some()>
            <section class="review" aria-labelledby="review-heading">
                <h2 id="review-heading">{move || ctx.t("Review")}</h2>
                {move || published_as().map(|public| view! {
                    <p data-testid="published-as">
                        <a href=format!("/practices/{public}")>{ctx.t("This practice is published: see its public page.")}</a>
                    </p>
                })}
                <ul class="comments" data-testid="review-comments">
                    {move || comments().into_iter().map(|c| view! {
                        <li><strong>{c.author}</strong> " · " {c.action} " · " <time>{js_date(c.at)}</time>
                            {(!c.text.is_empty()).then(|| view! { <p>{c.text.clone()}</p> })}</li>
                    }).collect_view()}
                </ul>
                <Show when=move || ctx.role().is_some()>
                    <label>{move || ctx.t("Comment")}
                        <textarea data-testid="review-text" rows="2" prop:value=comment
                            on:input=move |ev| comment.set(event_target_value(&ev))></textarea>
                    </label>
                    <div class="actions">
                        {buttons.into_iter().map(|(action, label)| view! {
                            <Show when=move || allowed(action)>
                                <button data-testid=format!("review-{}", action.key()) on:click=move |_| act(action)>{move || ctx.t(label)}</button>
                            </Show>
                        }).collect_view()}
                        <Show when=move || may_erase() && !confirming.get()>
                            <button data-testid="erase" on:click=move |_| confirming.set(true)>{move || ctx.t("Erase")}</button>
                        </Show>
                    </div>
                    <Show when=move || may_erase() && confirming.get()>
                        <div class="confirm" role="alert">
                            <p>{move || ctx.t("Erasing withdraws this published practice from every ibis node and app that holds it, and returns it to draft here. Copies on servers outside the network cannot be recalled.")}</p>
                            <button data-testid="erase-confirm" on:click=erase>{move || ctx.t("Erase for good")}</button>
                            <button on:click=move |_| confirming.set(false)>{move || ctx.t("Cancel")}</button>
                        </div>
                    </Show>
                </Show>
            </section>
        </Show>
    }
}
