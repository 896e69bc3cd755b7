//! What a stored snapshot says about itself, read without loading it.
//!
//! Loading a document (`Automerge::load`) rebuilds every change to hash it: for the node that
//! is most of the cost of serving a fresh peer, who only needs the snapshot's bytes and our
//! heads. A snapshot is one automerge *document chunk*:
//!
//! ```text
//! magic (85 6f 4a 83) | checksum (4) | type (0 = document) | uLEB length | data
//! data = uLEB count, actor ids (uLEB length + bytes each) | uLEB count, heads (32 bytes each) | ...
//! ```
//!
//! where the checksum is the first four bytes of SHA-256(type, uLEB length, data). We check
//! the checksum (so storage corruption is caught here as a load would catch it) and read the
//! heads; everything else is left to whoever loads the bytes.

use automerge::ChangeHash;
use sha2::{Digest, Sha256};

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const DOCUMENT_CHUNK: u8 = 0;
/// More actors or heads than this in a practice document means the bytes are not what we
/// think they are: leave them to a real load.
const MAX_LISTED: u64 = 1 << 16;

/// The heads of `bytes` if they are exactly one document chunk with a valid checksum and at
/// least one head; `None` for anything else (several chunks, change chunks, corruption).
pub(crate) fn snapshot_heads(bytes: &[u8]) -> Option<Vec<ChangeHash>> {
    let rest = bytes.strip_prefix(&MAGIC)?;
    let (checksum, rest) = rest.split_first_chunk::<4>()?;
    let (&chunk_type, rest) = rest.split_first()?;
    if chunk_type != DOCUMENT_CHUNK {
        return None;
    }
    let (length, data) = uleb(rest)?;
    if u64::try_from(data.len()).ok()? != length {
        return None;
    }
    let length_bytes = &rest[..rest.len() - data.len()];
    let digest = Sha256::new()
        .chain_update([chunk_type])
        .chain_update(length_bytes)
        .chain_update(data)
        .finalize();
    if digest[..4] != checksum[..] {
        return None;
    }
    let (actors, mut rest) = uleb(data)?;
    if actors > MAX_LISTED {
        return None;
    }
    for _ in 0..actors {
        let (len, after) = uleb(rest)?;
        rest = after.get(usize::try_from(len).ok()?..)?;
    }
    let (count, mut rest) = uleb(rest)?;
    if count == 0 || count > MAX_LISTED {
        return None;
    }
    let mut heads = Vec::with_capacity(usize::try_from(count).ok()?);
    for _ in 0..count {
        let (hash, after) = rest.split_first_chunk::<32>()?;
        heads.push(ChangeHash(*hash));
        rest = after;
    }
    heads.sort_unstable();
    Some(heads)
}

/// An unsigned LEB128 number and what follows it.
fn uleb(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value: u64 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f).checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ROOT};

    use super::*;

    fn edited(n: usize) -> Automerge {
        let mut doc = Automerge::new();
        for i in 0..n {
            let mut tx = doc.transaction();
            let _ = tx.put(ROOT, "title", format!("Welcome desks {i}"));
            tx.commit();
        }
        doc
    }

    #[test]
    fn reads_the_heads_a_load_would_give() {
        let mut doc = edited(3);
        // Two concurrent heads, from two actors.
        let mut other = doc.fork();
        let mut tx = other.transaction();
        let _ = tx.put(ROOT, "city", "Lisbon");
        tx.commit();
        let mut tx = doc.transaction();
        let _ = tx.put(ROOT, "country", "PT");
        tx.commit();
        doc.merge(&mut other).unwrap();
        assert_eq!(doc.get_heads().len(), 2);
        assert_eq!(snapshot_heads(&doc.save()), Some(doc.get_heads()));
        let uncompressed = doc.save_nocompress();
        assert_eq!(snapshot_heads(&uncompressed), Some(doc.get_heads()));
    }

    #[test]
    fn anything_but_one_intact_document_chunk_is_left_to_a_load() {
        let mut doc = edited(2);
        let heads = doc.get_heads();
        let snapshot = doc.save();
        // An increment after the snapshot (the stored form of later edits).
        let mut tx = doc.transaction();
        let _ = tx.put(ROOT, "city", "Lyon");
        tx.commit();
        let increment = doc.save_after(&heads);
        assert_eq!(snapshot_heads(&increment), None, "a change chunk");
        assert_eq!(
            snapshot_heads(&[snapshot.clone(), increment].concat()),
            None
        );
        assert_eq!(snapshot_heads(&Automerge::new().save()), None, "no heads");
        assert_eq!(snapshot_heads(&[]), None);
        for at in [0, 5, 8, 12, snapshot.len() - 1] {
            let mut corrupt = snapshot.clone();
            corrupt[at] ^= 0x40;
            assert_eq!(snapshot_heads(&corrupt), None, "byte {at} flipped");
        }
        for len in 0..snapshot.len() {
            assert_eq!(snapshot_heads(&snapshot[..len]), None, "cut at {len}");
        }
    }
}
