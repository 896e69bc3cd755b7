//! What a stored document says about itself, read without loading it.
//!
//! Loading a document (`Automerge::load`) rebuilds every change to hash it: for the node that
//! is most of the cost of serving a fresh peer, who only needs the stored bytes and our
//! heads. Storage holds a snapshot (one automerge *document chunk*) and then increments
//! (each a run of *change chunks*):
//!
//! ```text
//! chunk    = magic (85 6f 4a 83) | checksum (4) | type | uLEB length | data
//! document = type 0; data: uLEB count, actor ids (uLEB length + bytes) | uLEB count, heads (32 bytes) | ...
//! change   = type 1; data: uLEB count, dependencies (32 bytes each) | ...
//! ```
//!
//! A chunk's hash is SHA-256(type, uLEB length, data) and its checksum the first four bytes
//! of that; a change's hash is its chunk's hash. The heads of the whole are the snapshot's
//! heads and the increments' changes, less every change some increment depends on. We check
//! every checksum (so storage corruption is caught here as a load would catch it); anything
//! we do not read this way (compressed changes, stray bytes) is left to a real load.

use std::collections::BTreeSet;

use automerge::ChangeHash;
use sha2::{Digest, Sha256};

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const DOCUMENT_CHUNK: u8 = 0;
const CHANGE_CHUNK: u8 = 1;
/// More actors, heads or dependencies than this in a practice document means the bytes are
/// not what we think they are: leave them to a real load.
const MAX_LISTED: u64 = 1 << 16;

/// The heads of a document stored as `chunks` (a snapshot, then increments), if every chunk
/// reads as it should and there is at least one head; `None` for anything else.
pub(crate) fn stored_heads(chunks: &[Vec<u8>]) -> Option<Vec<ChangeHash>> {
    let (snapshot, increments) = chunks.split_first()?;
    let mut heads: BTreeSet<ChangeHash> = snapshot_heads(snapshot)?.into_iter().collect();
    let mut depended = BTreeSet::new();
    for increment in increments {
        let mut rest = increment.as_slice();
        while !rest.is_empty() {
            let (chunk, after) = read_chunk(rest)?;
            rest = after;
            if chunk.kind != CHANGE_CHUNK {
                return None;
            }
            let (count, mut deps) = uleb(chunk.data)?;
            if count > MAX_LISTED {
                return None;
            }
            for _ in 0..count {
                let (hash, after) = deps.split_first_chunk::<32>()?;
                depended.insert(ChangeHash(*hash));
                deps = after;
            }
            heads.insert(chunk.hash);
        }
    }
    let heads: Vec<ChangeHash> = heads.difference(&depended).copied().collect();
    (!heads.is_empty()).then_some(heads)
}

/// The heads of `bytes` if they are exactly one document chunk with a valid checksum and at
/// least one head; `None` for anything else (several chunks, change chunks, corruption).
pub(crate) fn snapshot_heads(bytes: &[u8]) -> Option<Vec<ChangeHash>> {
    let (chunk, rest) = read_chunk(bytes)?;
    if chunk.kind != DOCUMENT_CHUNK || !rest.is_empty() {
        return None;
    }
    let (actors, mut rest) = uleb(chunk.data)?;
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

/// One chunk whose checksum holds.
struct Chunk<'a> {
    kind: u8,
    data: &'a [u8],
    hash: ChangeHash,
}

/// The chunk at the start of `bytes`, and what follows it.
fn read_chunk(bytes: &[u8]) -> Option<(Chunk<'_>, &[u8])> {
    let rest = bytes.strip_prefix(&MAGIC)?;
    let (checksum, rest) = rest.split_first_chunk::<4>()?;
    let (&kind, rest) = rest.split_first()?;
    let (length, after_length) = uleb(rest)?;
    let length_bytes = &rest[..rest.len() - after_length.len()];
    let (data, after) = after_length.split_at_checked(usize::try_from(length).ok()?)?;
    let digest: [u8; 32] = Sha256::new()
        .chain_update([kind])
        .chain_update(length_bytes)
        .chain_update(data)
        .finalize()
        .into();
    if digest[..4] != checksum[..] {
        return None;
    }
    Some((
        Chunk {
            kind,
            data,
            hash: ChangeHash(digest),
        },
        after,
    ))
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

    #[test]
    fn reads_the_heads_of_a_snapshot_and_its_increments() {
        let mut doc = edited(2);
        let mut stored = vec![doc.save()];
        let mut saved = doc.get_heads();
        // One increment of one change, one of two changes, one that merges a concurrent
        // branch (two heads), and one that joins them again.
        let steps: [fn(&mut Automerge); 4] = [
            |d| {
                let mut tx = d.transaction();
                let _ = tx.put(ROOT, "city", "Lyon");
                tx.commit();
            },
            |d| {
                for value in ["FR", "France"] {
                    let mut tx = d.transaction();
                    let _ = tx.put(ROOT, "country", value);
                    tx.commit();
                }
            },
            |d| {
                let mut other = d.fork();
                let mut tx = other.transaction();
                let _ = tx.put(ROOT, "summary", "desks");
                tx.commit();
                let mut tx = d.transaction();
                let _ = tx.put(ROOT, "theme", "reception");
                tx.commit();
                d.merge(&mut other).unwrap();
            },
            |d| {
                let mut tx = d.transaction();
                let _ = tx.put(ROOT, "city", "Lyon 3e");
                tx.commit();
            },
        ];
        for step in steps {
            step(&mut doc);
            stored.push(doc.save_after(&saved));
            saved = doc.get_heads();
            assert_eq!(stored_heads(&stored), Some(doc.get_heads()));
        }
        assert_eq!(doc.get_heads().len(), 1);
        // The two-headed state, too.
        assert_eq!(stored_heads(&stored[..4]).map(|h| h.len()), Some(2));

        // A damaged or cut increment, or stray bytes after one, is left to a real load.
        let mut damaged = stored.clone();
        let last = damaged[2].len() - 1;
        damaged[2][last] ^= 0x01;
        assert_eq!(stored_heads(&damaged), None);
        let mut cut = stored.clone();
        let len = cut[3].len();
        cut[3].truncate(len - 3);
        assert_eq!(stored_heads(&cut), None);
        let mut stray = stored.clone();
        stray[1].push(0);
        assert_eq!(stored_heads(&stray), None);
        // Increments without their snapshot are not a document we can describe.
        assert_eq!(stored_heads(&stored[1..]), None);
        assert_eq!(stored_heads(&[]), None);
    }
}
