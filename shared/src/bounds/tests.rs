//! Real messages and documents made by automerge pass with the counts automerge itself
//! reports; bombs are refused cheaply; nothing panics.

use std::sync::OnceLock;

use automerge::sync::{Message, State, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{AutoCommit, Automerge, Change, ObjType, ReadDoc, ScalarValue, ROOT};
use proptest::prelude::*;

use super::*;

mod bombs;

pub(super) use super::hostile::leb;

/// Some edits of every kind: map keys, a list, text typed and deleted, a counter.
fn edit(doc: &mut AutoCommit, round: usize, text_len: usize) {
    let get = |doc: &AutoCommit, key: &str| doc.get(ROOT, key).unwrap().map(|(_, id)| id);
    doc.put(ROOT, "title", format!("round {round}")).unwrap();
    let list = match get(doc, "list") {
        Some(list) => list,
        None => doc.put_object(ROOT, "list", ObjType::List).unwrap(),
    };
    for i in 0..20 {
        doc.insert(&list, 0, (round * 100 + i) as i64).unwrap();
    }
    doc.commit();
    let text = match get(doc, "text") {
        Some(text) => text,
        None => doc.put_object(ROOT, "text", ObjType::Text).unwrap(),
    };
    let typed: String = (0..text_len)
        .map(|i| (b'a' + (i * 7 % 26) as u8) as char)
        .collect();
    doc.splice_text(&text, 0, 0, &typed).unwrap();
    doc.commit();
    for i in 0..10 {
        doc.splice_text(&text, i * 3, 2, "xy ").unwrap();
        doc.commit();
    }
    if get(doc, "count").is_none() {
        doc.put(ROOT, "count", ScalarValue::counter(0)).unwrap();
    }
    doc.increment(ROOT, "count", 3).unwrap();
    let meta = doc.put_object(ROOT, "meta", ObjType::Map).unwrap();
    for key in ["a", "b", "c"] {
        doc.put(&meta, key, round as u64).unwrap();
    }
    doc.commit();
}

/// One message from `from` to `to`, kept; v1 when flags are stripped (no v2 capability).
fn step(
    (from, sent): (&mut AutoCommit, &mut State),
    (to, received): (&mut AutoCommit, &mut State),
    v1: bool,
    out: &mut Vec<Vec<u8>>,
) -> bool {
    let Some(mut message) = from.sync().generate_sync_message(sent) else {
        return false;
    };
    if v1 {
        message.flags = None;
    }
    let bytes = message.encode();
    let message = Message::decode(&bytes).unwrap();
    to.sync().receive_sync_message(received, message).unwrap();
    out.push(bytes);
    true
}

fn sync(a: &mut AutoCommit, b: &mut AutoCommit, v1: bool, out: &mut Vec<Vec<u8>>) {
    let (mut sa, mut sb) = (State::new(), State::new());
    for _ in 0..20 {
        let one = step((a, &mut sa), (b, &mut sb), v1, out);
        let other = step((b, &mut sb), (a, &mut sa), v1, out);
        if !one && !other {
            break;
        }
    }
    assert_eq!(a.get_heads(), b.get_heads());
}

/// A session between two peers: a first sync from an empty peer, concurrent edits, a 30,000
/// character text typed and deleted, a large text; every message and the saved documents.
fn session(v1: bool) -> Samples {
    let (mut a, mut b) = (AutoCommit::new(), AutoCommit::new());
    let (mut messages, mut saved) = (Vec::new(), Vec::new());
    edit(&mut a, 0, 300);
    sync(&mut a, &mut b, v1, &mut messages);
    edit(&mut a, 1, 50);
    edit(&mut b, 2, 2000);
    sync(&mut a, &mut b, v1, &mut messages);
    // A document as storage holds it: a saved document, then the changes saved since.
    let mut stored = a.save();
    let long = a.put_object(ROOT, "long", ObjType::Text).unwrap();
    a.splice_text(&long, 0, 0, &"0123456789".repeat(3000))
        .unwrap();
    a.commit();
    a.splice_text(&long, 0, 30_000, "").unwrap();
    a.commit();
    sync(&mut a, &mut b, v1, &mut messages);
    stored.extend(a.save_incremental());
    saved.push(stored);
    saved.push(a.save());
    edit(&mut b, 3, 20_000);
    sync(&mut a, &mut b, v1, &mut messages);
    saved.push(b.save());
    (messages, saved)
}

/// Sync messages, and bytes for `Automerge::load`.
type Samples = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// Real messages (v1, then v2) and saved documents, made once.
pub(super) fn real() -> &'static Samples {
    static REAL: OnceLock<Samples> = OnceLock::new();
    REAL.get_or_init(|| {
        let (mut messages, mut saved) = session(true);
        let (more, docs) = session(false);
        messages.extend(more);
        saved.extend(docs);
        (messages, saved)
    })
}

/// What automerge says about chunks back to back: chunk types, ops, changes, predecessors
/// (of changes only), and about the size they come to uncompressed.
#[derive(Debug, Default)]
struct Reference {
    types: Vec<u8>,
    ops: u64,
    changes: u64,
    preds: u64,
    size: usize,
}

impl Reference {
    fn add(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let mut r = Reader::new(bytes);
            r.take(9, "header").unwrap();
            let len = r.uleb("header").unwrap() as usize;
            let (chunk, rest) = bytes.split_at(r.pos + len);
            self.types.push(chunk[8]);
            if chunk[8] == 0 {
                let doc = Automerge::load(chunk).unwrap();
                self.ops += doc.stats().num_ops;
                self.changes += doc.stats().num_changes;
                self.size += doc.save_nocompress().len();
            } else {
                let change = Change::from_bytes(chunk.to_vec()).unwrap();
                self.ops += change.len() as u64;
                self.changes += 1;
                self.size += change.raw_bytes().len();
                let ops = change.decode().operations;
                self.preds += ops.iter().map(|op| op.pred.len() as u64).sum::<u64>();
            }
            bytes = rest;
        }
    }

    fn check(&self, measured: &Measured) {
        assert_eq!(measured.chunks, self.types.len());
        assert_eq!(measured.ops, self.ops, "{self:?}");
        assert_eq!(measured.changes, self.changes, "{self:?}");
        if !self.types.contains(&0) {
            assert_eq!(measured.references, self.preds, "{self:?}");
        }
        // Column lengths are LEB128 and so differ a little deflated and inflated.
        let slack = 16 + self.size / 100;
        assert!(
            measured.inflated_bytes.abs_diff(self.size) <= slack,
            "{measured:?} against {self:?}"
        );
    }
}

#[test]
fn real_messages_measure_as_automerge_counts() {
    let bounds = Bounds::default();
    let mut types = std::collections::BTreeMap::new();
    for message in &real().0 {
        let decoded = Message::decode(message).unwrap();
        let envelope = check_envelope(message, &bounds).unwrap();
        assert_eq!(envelope.heads, decoded.heads.len());
        assert_eq!(envelope.need, decoded.need.len());
        assert_eq!(envelope.haves, decoded.have.len());
        assert_eq!(envelope.change_chunks, decoded.changes.len());
        assert_eq!(envelope.flags.is_some(), decoded.flags.is_some());
        let mut reference = Reference::default();
        for entry in decoded.changes.iter() {
            reference.add(entry);
        }
        let measured = measure_sync_message(message, &bounds).unwrap();
        reference.check(&measured);
        for t in reference.types {
            *types.entry((envelope.version, t)).or_insert(0) += 1;
        }
    }
    // Which chunk types real messages hold, by message version.
    println!("(version, chunk type) → chunks: {types:?}");
    assert!(
        types.contains_key(&(1, 1)),
        "v1 messages carry change chunks"
    );
    assert!(
        types.contains_key(&(2, 0)),
        "v2 messages carry whole documents"
    );
}

#[test]
fn real_documents_measure_as_automerge_counts() {
    for (i, saved) in real().1.iter().enumerate() {
        let measured = measure_chunks(saved, &Bounds::default()).unwrap();
        let mut reference = Reference::default();
        reference.add(saved);
        reference.check(&measured);
        if i % 3 == 0 {
            assert!(reference.types.len() > 1 && reference.types[1..].iter().all(|t| *t == 1));
        }
        let doc = Automerge::load(saved).unwrap();
        assert!(measured.ops >= doc.stats().num_ops);
    }
}

#[test]
fn compressed_changes_measure_as_automerge_counts() {
    // automerge 0.12 sends and saves changes uncompressed, but `Change::bytes` deflates those
    // over 256 bytes into compressed change chunks, as other implementations may send them.
    let mut doc = AutoCommit::load(&real().1[2]).unwrap();
    let mut compressed: Vec<Vec<u8>> = doc
        .get_changes(&[])
        .into_iter()
        .map(|mut change| change.bytes().into_owned())
        .collect();
    assert!(compressed.iter().any(|c| c[8] == 2));
    let mut reference = Reference::default();
    for change in &compressed {
        reference.add(change);
    }
    let stored = compressed.concat();
    reference.check(&measure_chunks(&stored, &Bounds::default()).unwrap());
    compressed.truncate(40);
    let mut reference = Reference::default();
    for change in &compressed {
        reference.add(change);
    }
    let mut message = Message::decode(&real().0[0]).unwrap();
    message.changes = compressed.into();
    let measured = measure_sync_message(&message.encode(), &Bounds::default()).unwrap();
    reference.check(&measured);
}

#[test]
fn large_texts_deflate_their_columns_and_are_counted_inflated() {
    let saved = &real().1[2];
    let measured = measure_chunks(saved, &Bounds::default()).unwrap();
    assert!(
        measured.inflated_bytes > saved.len(),
        "{measured:?}, {} bytes",
        saved.len()
    );
    let small = Bounds {
        max_inflated_bytes: saved.len(),
        ..Bounds::default()
    };
    assert!(matches!(
        measure_chunks(saved, &small),
        Err(BoundsError::Inflation { .. })
    ));
}

#[test]
fn tighter_bounds_refuse_real_messages_by_their_counts() {
    let (messages, saved) = real();
    let biggest = messages
        .iter()
        .max_by_key(|m| measure_sync_message(m, &Bounds::default()).unwrap().ops)
        .unwrap();
    let ops = measure_sync_message(biggest, &Bounds::default())
        .unwrap()
        .ops;
    let bounds = Bounds {
        max_ops: ops - 1,
        ..Bounds::default()
    };
    assert!(matches!(
        measure_sync_message(biggest, &bounds),
        Err(BoundsError::OverBudget { what: "operations", at_least, max })
            if at_least >= ops && max == ops - 1
    ));
    let changes = measure_chunks(&saved[0], &Bounds::default())
        .unwrap()
        .changes;
    let bounds = Bounds {
        max_changes: changes as usize - 1,
        ..Bounds::default()
    };
    assert!(matches!(
        measure_chunks(&saved[0], &bounds),
        Err(BoundsError::OverBudget {
            what: "changes",
            ..
        })
    ));
}

#[test]
fn envelopes_are_read_without_the_changes() {
    let message = &real().0[3];
    let envelope = check_envelope(message, &Bounds::default()).unwrap();
    assert!(envelope.change_bytes < message.len());
    assert_eq!(
        check_envelope(&[0x44], &Bounds::default()),
        Err(BoundsError::NotSyncMessage(0x44))
    );
    assert_eq!(
        check_envelope(&[0x42, 1, 7], &Bounds::default()),
        Err(BoundsError::Truncated("heads"))
    );
}

fn mutate(message: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut out = message.to_vec();
    for &(at, op, byte) in edits {
        if out.is_empty() {
            out.push(byte);
            continue;
        }
        let at = at % out.len();
        match op % 4 {
            0 => out[at] = byte,
            1 => out[at] ^= 1 << (byte % 8),
            2 => out.insert(at, byte),
            _ => out.truncate(at),
        }
    }
    out
}

/// Whatever passes is decoded by automerge or refused by it, without a panic.
fn agrees_with_automerge(bytes: &[u8]) {
    let small = Bounds {
        max_inflated_bytes: 1 << 20,
        ..Bounds::default()
    };
    if measure_sync_message(bytes, &small).is_ok() {
        let _ = Message::decode(bytes);
    }
    let _ = check_envelope(bytes, &small);
    let _ = measure_chunks(bytes, &small);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        agrees_with_automerge(&bytes);
        let mut message = vec![0x42];
        message.extend(&bytes);
        agrees_with_automerge(&message);
    }

    #[test]
    fn mutated_messages_never_panic(
        which in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        let (messages, saved) = real();
        let all: Vec<&Vec<u8>> = messages.iter().chain(saved).collect();
        let picked: &&Vec<u8> = which.get(&all);
        agrees_with_automerge(&mutate(picked, &edits));
    }
}

/// Writes the seeds of the `bounds` fuzz corpus (`fuzz/corpus/bounds/`): real messages,
/// saved documents, the chunks of each alone, and small bombs. Run by hand:
/// `cargo test -p ibis-shared bounds::tests::write_fuzz_seeds -- --ignored`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    use sha2::{Digest, Sha256};
    let (messages, saved) = real();
    let mut seeds: Vec<Vec<u8>> = messages.iter().chain(saved).cloned().collect();
    for message in messages {
        for entry in Message::decode(message).unwrap().changes.iter() {
            seeds.push(entry.to_vec());
        }
    }
    seeds.extend(bombs::seeds());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/bounds");
    std::fs::create_dir_all(&dir).unwrap();
    for seed in seeds {
        let name = hex::encode(&Sha256::digest(&seed)[..20]);
        std::fs::write(dir.join(name), seed).unwrap();
    }
}
