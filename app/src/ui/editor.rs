//! A text field two people can type in at once.
//!
//! Every input event becomes a splice against the value this field last showed (its
//! *base*), applied to the document with `PracticeEdit::Text` — so a concurrent edit by
//! someone else is kept, and an edit made against a stale view is rebased, not replayed
//! over the top. When the document changes underneath, the field takes the new text and
//! the caret stays where the person was typing.

use ibis_shared::model::practice::{apply_edit, PracticeEdit, TextField};
use ibis_shared::model::text_edit::diff;
use ibis_shared::model::{ModelError, Practice};
use ibis_shared::DocumentId;
use leptos::html::Textarea;
use leptos::prelude::*;

use super::ctx;
use crate::replica::{now_ms, replica};

/// The field's text in the document (a translation's, if `lang` is set).
pub fn field_text(p: &Practice, field: TextField, lang: Option<&str>) -> String {
    match lang {
        None => field.of(p).as_str().to_owned(),
        Some(lang) => p
            .translations
            .get(lang)
            .and_then(|t| match field {
                TextField::Title => Some(&t.title),
                TextField::Summary => Some(&t.summary),
                TextField::Context => Some(&t.context),
                TextField::Process => Some(&t.process),
                TextField::Outcomes => Some(&t.outcomes),
                TextField::Transferability => Some(&t.transferability),
                TextField::Funding => None,
            })
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
    }
}

/// UTF-16 offset (what the DOM uses) → byte offset in `s`.
pub fn utf16_to_byte(s: &str, utf16: u32) -> usize {
    let mut units = 0u32;
    for (i, c) in s.char_indices() {
        if units >= utf16 {
            return i;
        }
        units += c.len_utf16() as u32;
    }
    s.len()
}

/// Byte offset in `s` → UTF-16 offset.
pub fn byte_to_utf16(s: &str, byte: usize) -> u32 {
    let byte = byte.min(s.len());
    let mut end = byte;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].encode_utf16().count() as u32
}

/// Where a caret at byte `pos` of `old` belongs in `new`.
pub fn map_caret(old: &str, new: &str, pos: usize) -> usize {
    let Some(s) = diff(old, new) else {
        return pos;
    };
    if pos <= s.pos {
        pos
    } else if pos >= s.pos + s.delete {
        pos + s.insert.len() - s.delete
    } else {
        s.pos + s.insert.len()
    }
}

#[component]
pub fn CollabText(
    id: DocumentId,
    field: TextField,
    #[prop(optional)] lang: Option<String>,
    label: &'static str,
    #[prop(default = 4)] rows: u32,
) -> impl IntoView {
    let ctx = ctx();
    let element: NodeRef<Textarea> = NodeRef::new();
    let base = StoredValue::new(String::new());
    let problem = RwSignal::new(String::new());
    let testid = match &lang {
        None => format!("edit-{}", field.key()),
        Some(l) => format!("edit-{}-{l}", field.key()),
    };
    let lang_for_effect = lang.clone();
    // Follow the document. This effect alone sets the field's value (a `prop:value`
    // binding would be re-applied after mount and wipe it).
    Effect::new(move |_| {
        ctx.signals.revision.track();
        let Some(text) = replica().and_then(|r| {
            r.with_doc(&id, |doc| {
                Practice::load(doc)
                    .ok()
                    .map(|p| field_text(&p, field, lang_for_effect.as_deref()))
            })
            .flatten()
        }) else {
            return;
        };
        let Some(el) = element.get() else {
            base.set_value(text);
            return;
        };
        let shown = el.value();
        if shown != text {
            let start = el.selection_start().ok().flatten().unwrap_or(0);
            let end = el.selection_end().ok().flatten().unwrap_or(start);
            let map =
                |u: u32| byte_to_utf16(&text, map_caret(&shown, &text, utf16_to_byte(&shown, u)));
            el.set_value(&text);
            let _ = el.set_selection_range(map(start), map(end));
        }
        base.set_value(text);
    });
    let lang_for_input = lang.clone();
    let on_input = move |_| {
        let (Some(el), Some(replica)) = (element.get(), replica()) else {
            return;
        };
        let new = el.value();
        let edit = PracticeEdit::Text {
            field,
            translation: lang_for_input.clone(),
            base: base.get_value(),
            new: new.clone(),
        };
        // In the person's name, or in a public practice the organization's.
        let result = replica.change(id, |doc| {
            let author = ctx
                .author_for(doc)
                .ok_or_else(|| ModelError::Forbidden("log in to edit".into()))?;
            apply_edit(doc, &edit, &author, now_ms() as i64)
        });
        match result {
            Ok(Ok(())) => problem.set(String::new()),
            Ok(Err(e)) => problem.set(e.to_string()),
            Err(e) => problem.set(e.to_string()),
        }
        // What the document now says (our edit, plus anything rebased around it).
        let text = replica
            .with_doc(&id, |doc| {
                Practice::load(doc)
                    .ok()
                    .map(|p| field_text(&p, field, lang_for_input.as_deref()))
            })
            .flatten()
            .unwrap_or(new.clone());
        if text != new {
            let start = el.selection_start().ok().flatten().unwrap_or(0);
            let caret = byte_to_utf16(&text, map_caret(&new, &text, utf16_to_byte(&new, start)));
            el.set_value(&text);
            let _ = el.set_selection_range(caret, caret);
        }
        base.set_value(text);
        // The organization's name on a public practice (visitors receive presence too).
        let who = replica.with_doc(&id, |doc| ctx.author_for(doc)).flatten();
        if let Some(name) = who.map(|a| a.name) {
            replica.announce_presence(id, &name, field.key());
        }
    };
    view! {
        <label class="collab">
            {move || ctx.t(label)}
            <textarea node_ref=element data-testid=testid rows=rows
                on:input=on_input></textarea>
        </label>
        <Show when=move || !problem.get().is_empty()>
            <p class="field-error" data-testid="field-error" role="alert">{move || problem.get()}</p>
        </Show>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_convert_between_utf16_and_bytes() {
        let s = "a€b😀c";
        assert_eq!(utf16_to_byte(s, 0), 0);
        assert_eq!(utf16_to_byte(s, 2), 4);
        assert_eq!(utf16_to_byte(s, 5), 9);
        assert_eq!(utf16_to_byte(s, 99), s.len());
        assert_eq!(byte_to_utf16(s, 4), 2);
        assert_eq!(byte_to_utf16(s, 9), 5);
    }

    #[test]
    fn the_caret_stays_with_the_text_around_it() {
        // Someone inserts before the caret: it moves right.
        assert_eq!(map_caret("hello world", "oh, hello world", 6), 10);
        // After the caret: it stays.
        assert_eq!(map_caret("hello world", "hello world!", 3), 3);
        // Inside a replaced range: it goes to the end of the replacement.
        assert_eq!(map_caret("abcdef", "aXf", 3), 2);
    }
}
