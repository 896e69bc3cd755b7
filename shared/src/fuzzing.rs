//! The bodies of the fuzz targets (`fuzz/`), here so that ordinary tests replay the fuzz
//! corpora too (`shared/tests/fuzz_corpus.rs`). Not part of the API.

use std::collections::HashMap;

use automerge::{transaction::Transactable, ReadDoc, ROOT};

use crate::protocol::{decode, encode, Limits, Message, PeerId, PeerMetadata};
use crate::sync::{
    ConnectionId, Direction, Engine, EngineConfig, Input, OpenPolicy, Output, StoreOp,
    StoredDocument,
};
use crate::DocumentId;

/// Any bytes into the frame decoder: an error or a message, never a panic; a message that
/// decodes re-encodes to the same message.
pub fn frame_decode(data: &[u8]) {
    let limits = Limits::default();
    if let Ok(message) = decode(data, &limits) {
        let again = decode(&encode(&message), &limits);
        assert_eq!(
            again.as_ref(),
            Ok(&message),
            "re-encoding changed the message"
        );
    }
}

/// Any bytes as a presence payload: an error or a presence, never a panic; a presence
/// that decodes re-encodes to the same presence.
pub fn presence_decode(data: &[u8]) {
    if let Ok(presence) = crate::presence::Presence::decode(data) {
        let again = crate::presence::Presence::decode(&presence.encode());
        assert_eq!(
            again.as_ref(),
            Ok(&presence),
            "re-encoding changed the presence"
        );
    }
}

const GOOD: ConnectionId = ConnectionId(1);
const FUZZED: ConnectionId = ConnectionId(2);

fn join(name: &str) -> Vec<u8> {
    encode(&Message::Join {
        sender_id: PeerId::new(name),
        supported_protocol_versions: vec!["1".into()],
        peer_metadata: Some(PeerMetadata::default()),
    })
}

/// Carries out the engine's outputs against in-memory storage; answers loads at once.
fn drive(
    engine: &mut Engine<OpenPolicy>,
    now: u64,
    storage: &mut HashMap<DocumentId, Vec<Vec<u8>>>,
) {
    loop {
        let outputs: Vec<Output> = engine.drain_outputs().collect();
        if outputs.is_empty() {
            return;
        }
        for out in outputs {
            match out {
                Output::Close { conn, .. } => {
                    assert_eq!(conn, FUZZED, "only the fuzzed connection may be closed")
                }
                Output::Store(StoreOp::AppendChanges { document, chunk }) => {
                    storage.entry(document).or_default().push(chunk)
                }
                Output::Store(StoreOp::ReplaceWithSnapshot { document, snapshot }) => {
                    storage.insert(document, vec![snapshot]);
                }
                Output::Load { document } => {
                    let result = Ok(storage.get(&document).map(|chunks| StoredDocument {
                        chunks: chunks.clone(),
                        sync_states: Vec::new(),
                    }));
                    engine.handle(now, Input::Loaded { document, result });
                }
                _ => {}
            }
        }
    }
}

/// A node engine with a well-behaved client sharing a document, and one connection that
/// sends the input's frames (after a valid handshake; frames are length-prefixed:
/// `[len_lo, len_hi, bytes…]`). The engine must not panic, must close only the fuzzed
/// connection, and the document must still work afterwards.
pub fn engine_frames(data: &[u8]) {
    let mut storage = HashMap::new();
    let mut engine = Engine::new(
        EngineConfig::new(PeerId::new("node"), None),
        OpenPolicy,
        [],
        0,
    );
    let doc = DocumentId::from_bytes([7; 16]);
    let seeded = engine.change(0, doc, |d| {
        let mut tx = d.transaction();
        let _ = tx.put(ROOT, "title", "seed");
        tx.commit();
    });
    assert!(seeded.is_ok());
    drive(&mut engine, 0, &mut storage);
    for (conn, name) in [(GOOD, "good"), (FUZZED, "fuzzed")] {
        engine.handle(
            0,
            Input::Connected {
                conn,
                direction: Direction::Incoming,
                principal: (),
            },
        );
        engine.handle(
            0,
            Input::Frame {
                conn,
                frame: join(name),
            },
        );
    }
    let mut rest = data;
    let mut now = 1;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let frame = rest[2..2 + len].to_vec();
        rest = &rest[2 + len..];
        now += 1;
        engine.handle(
            now,
            Input::Frame {
                conn: FUZZED,
                frame,
            },
        );
        drive(&mut engine, now, &mut storage);
        if now % 7 == 0 {
            // Time jumps: handshakes and requests time out, idle documents are evicted.
            now += 10_000;
            engine.handle(now, Input::Tick);
            drive(&mut engine, now, &mut storage);
        }
    }
    engine.open(now, doc);
    drive(&mut engine, now, &mut storage);
    let changed = engine.change(now, doc, |d| {
        let mut tx = d.transaction();
        let _ = tx.put(ROOT, "after", 1);
        tx.commit();
    });
    assert!(changed.is_ok(), "the document still works: {changed:?}");
    drive(&mut engine, now, &mut storage);
    assert!(engine
        .document(&doc)
        .is_some_and(|d| d.get(ROOT, "after").ok().flatten().is_some()));
}

/// Any bytes as a sync message and as chunks for `Automerge::load`: refused or measured
/// within the bounds, never a panic; a message that is measured decodes with automerge or is
/// refused by it, without a panic either.
pub fn bounds(data: &[u8]) {
    use crate::bounds::{check_envelope, measure_chunks, measure_sync_message, Bounds};
    let bounds = Bounds {
        max_inflated_bytes: 4 << 20,
        ..Bounds::default()
    };
    if let Ok(measured) = measure_sync_message(data, &bounds) {
        assert!(check_envelope(data, &bounds).is_ok(), "measured: checked");
        assert!(measured.inflated_bytes <= bounds.max_inflated_bytes);
        assert!(measured.ops <= bounds.max_ops && measured.references <= bounds.max_ops);
        let _ = automerge::sync::Message::decode(data);
    }
    if let Ok(measured) = measure_chunks(data, &bounds) {
        assert!(measured.inflated_bytes <= bounds.max_inflation_ratio * data.len());
    }
}
