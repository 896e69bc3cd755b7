//! Turning what a person typed into a splice, so two people typing in the same field at once
//! both keep their words.
//!
//! An input event gives the field's value before and after the keystroke (or paste, or cut).
//! [`diff`] finds the one contiguous edit between them. If the document's text moved on in
//! the meantime (a remote change arrived between render and keystroke), [`rebase`] shifts
//! the edit past the remote one instead of overwriting it. Offsets are byte offsets on char
//! boundaries, as autosurgeon's `Text::splice` expects.

/// Replace `delete` bytes at `pos` with `insert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    pub pos: usize,
    pub delete: usize,
    pub insert: String,
}

impl Splice {
    pub fn apply_to(&self, text: &mut autosurgeon::Text) {
        text.splice(self.pos, self.delete as isize, &self.insert);
    }

    pub fn apply_to_string(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len() + self.insert.len());
        out.push_str(&s[..self.pos]);
        out.push_str(&self.insert);
        out.push_str(&s[self.pos + self.delete..]);
        out
    }
}

/// The single contiguous edit that turns `old` into `new`; `None` if they are equal.
pub fn diff(old: &str, new: &str) -> Option<Splice> {
    if old == new {
        return None;
    }
    let prefix = old
        .char_indices()
        .zip(new.chars())
        .find(|((_, a), b)| a != b)
        .map(|((i, _), _)| i)
        .unwrap_or_else(|| old.len().min(new.len()));
    let prefix = floor_boundary(new, floor_boundary(old, prefix));
    let max_suffix = (old.len() - prefix).min(new.len() - prefix);
    let mut suffix = 0;
    for (a, b) in old[prefix..].chars().rev().zip(new[prefix..].chars().rev()) {
        if a != b || suffix + a.len_utf8() > max_suffix {
            break;
        }
        suffix += a.len_utf8();
    }
    Some(Splice {
        pos: prefix,
        delete: old.len() - prefix - suffix,
        insert: new[prefix..new.len() - suffix].to_owned(),
    })
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Moves `edit`, made against `base`, onto `current` (base plus someone else's changes), so
/// that it applies where the person meant it and leaves the other changes alone.
pub fn rebase(edit: &Splice, base: &str, current: &str) -> Splice {
    let Some(remote) = diff(base, current) else {
        return edit.clone();
    };
    let remote_end = remote.pos + remote.delete;
    let grow = |p: usize| p + remote.insert.len() - remote.delete;
    let edit_end = edit.pos + edit.delete;
    let (pos, end) = if remote_end <= edit.pos && !(remote.delete == 0 && remote.pos == edit.pos) {
        // The remote edit is entirely before ours: shift ours.
        (grow(edit.pos), grow(edit_end))
    } else if remote.pos >= edit_end {
        // Entirely after ours: nothing moves.
        (edit.pos, edit_end)
    } else {
        // Overlapping: keep what the remote side inserted; delete only what is still there
        // of the range the person meant.
        let pos = if edit.pos < remote.pos {
            edit.pos
        } else {
            grow(remote_end)
        };
        let end = if edit_end > remote_end {
            grow(edit_end)
        } else {
            pos
        };
        (pos, end.max(pos))
    };
    let pos = floor_boundary(current, pos);
    let end = floor_boundary(current, end).max(pos);
    Splice {
        pos,
        delete: end - pos,
        insert: edit.insert.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn typing_deleting_pasting() {
        assert_eq!(diff("abc", "abc"), None);
        assert_eq!(
            diff("helo", "hello"),
            Some(Splice {
                pos: 3,
                delete: 0,
                insert: "l".into()
            })
        );
        assert_eq!(
            diff("hello world", "hello"),
            Some(Splice {
                pos: 5,
                delete: 6,
                insert: String::new()
            })
        );
        assert_eq!(
            diff("aaa", "aaaa"),
            Some(Splice {
                pos: 3,
                delete: 0,
                insert: "a".into()
            })
        );
        // Multibyte characters stay whole.
        let s = diff("café au lait", "cafés au lait").unwrap();
        assert_eq!(s.apply_to_string("café au lait"), "cafés au lait");
        let s = diff("Ωmega", "ωmega").unwrap();
        assert_eq!(s.pos, 0);
        assert_eq!(s.apply_to_string("Ωmega"), "ωmega");
    }

    #[test]
    fn an_edit_after_a_remote_insertion_is_shifted() {
        let base = "the city runs language classes.";
        let mine = diff(base, "the city runs free language classes.").unwrap();
        let current = "Since 2010, the city runs language classes.";
        assert_eq!(
            rebase(&mine, base, current).apply_to_string(current),
            "Since 2010, the city runs free language classes."
        );
    }

    #[test]
    fn an_edit_before_a_remote_change_stays_put() {
        let base = "classes for adults";
        let mine = diff(base, "free classes for adults").unwrap();
        let current = "classes for adults and children";
        assert_eq!(
            rebase(&mine, base, current).apply_to_string(current),
            "free classes for adults and children"
        );
    }

    proptest! {
        #[test]
        fn diff_reproduces_the_new_text(old in "\\PC{0,20}", new in "\\PC{0,20}") {
            match diff(&old, &new) {
                None => prop_assert_eq!(&old, &new),
                Some(s) => prop_assert_eq!(s.apply_to_string(&old), new),
            }
        }

        #[test]
        fn rebase_keeps_both_insertions(
            text in "[a-z ]{0,30}",
            a in 0usize..31, b in 0usize..31,
            mine in "[A-Z]{1,4}", theirs in "[0-9]{1,4}",
        ) {
            let a = a.min(text.len());
            let b = b.min(text.len());
            let edit = Splice { pos: a, delete: 0, insert: mine.clone() };
            let remote = Splice { pos: b, delete: 0, insert: theirs.clone() };
            let current = remote.apply_to_string(&text);
            let result = rebase(&edit, &text, &current).apply_to_string(&current);
            prop_assert!(result.contains(&mine), "{} lost {}", result, mine);
            prop_assert!(result.contains(&theirs), "{} lost {}", result, theirs);
            prop_assert_eq!(result.len(), text.len() + mine.len() + theirs.len());
        }
    }
}
