//! Bombs: small inputs that claim huge sizes or counts, each refused with its reason and
//! without spending what it claims.

use sha2::{Digest, Sha256};

use super::super::*;
use super::leb;
use crate::bounds::hostile::{chunk, sync_message as message, zeros, MIB};

/// A change chunk's body with these columns (spec, data).
fn change_body(columns: &[(u32, Vec<u8>)]) -> Vec<u8> {
    // No deps; actor [1]; seq 1; start op 1; time 0; no message; no other actors.
    let mut out = vec![0, 1, 1, 1, 1, 0, 0, 0];
    leb(&mut out, columns.len() as u64);
    for (spec, data) in columns {
        leb(&mut out, u64::from(*spec));
        leb(&mut out, data.len() as u64);
    }
    for (_, data) in columns {
        out.extend(data);
    }
    out
}

/// A document chunk's body with these change and op columns.
fn document_body(change_columns: &[(u32, Vec<u8>)], op_columns: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![1, 1, 7, 0]; // one actor [7], no heads
    for columns in [change_columns, op_columns] {
        leb(&mut out, columns.len() as u64);
        for (spec, data) in columns {
            leb(&mut out, u64::from(*spec));
            leb(&mut out, data.len() as u64);
        }
    }
    for (_, data) in change_columns.iter().chain(op_columns) {
        out.extend(data);
    }
    out
}

/// A run of `count` copies of `value` (RLE of unsigned integers).
fn run(count: u64, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut count = count;
    // The count is signed LEB128: stop once the sign bit of the last byte is clear.
    loop {
        let byte = (count & 0x7f) as u8;
        count >>= 7;
        if count == 0 && byte & 0x40 == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    leb(&mut out, value);
    out
}

const ACTION: u32 = (4 << 4) | 2;
const PRED_GROUP: u32 = 7 << 4;
const OP_ID_ACTOR: u32 = (2 << 4) | 1;
const CHANGE_ACTOR: u32 = 1;
const VALUE: u32 = (5 << 4) | 7;

#[test]
fn the_zeros_stream_is_what_it_says() {
    use std::io::Read;
    let stream = zeros(3);
    let mut inflated = Vec::new();
    flate2::read::DeflateDecoder::new(&stream[..])
        .read_to_end(&mut inflated)
        .unwrap();
    assert_eq!(inflated.len(), 3 * MIB);
    assert!(inflated.iter().all(|b| *b == 0));
    assert!(zeros(1024).len() <= MIB + 16 * 1024, "1 GiB in about 1 MiB");
}

#[test]
fn a_compressed_change_of_a_gibibyte_of_zeros_stops_at_the_budget() {
    let bomb = message(&[chunk(2, [0; 4], &zeros(1024))]);
    let bounds = Bounds::default();
    let limit = bounds
        .max_inflated_bytes
        .min(bounds.max_inflation_ratio * bomb.len());
    match measure_sync_message(&bomb, &bounds) {
        Err(BoundsError::Inflation {
            what: "a compressed change",
            limit: l,
            inflated,
            ..
        }) => {
            assert_eq!(l, limit);
            assert!(
                inflated > limit && inflated <= limit + INFLATE_PIECE,
                "{inflated}"
            );
        }
        other => panic!("{other:?}"),
    }
    let error = measure_sync_message(&bomb, &bounds)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(
            "a compressed change inflates the input to more than 33554432 bytes (64 times its "
        ),
        "{error}"
    );
}

#[test]
fn the_same_chunk_small_enough_passes_so_only_its_size_stops_it() {
    // An all-zero change body parses: no deps, empty actor, no columns, the rest extra bytes.
    let mib = 2;
    let mut hashed = vec![1];
    leb(&mut hashed, (mib * MIB) as u64);
    hashed.extend(vec![0; mib * MIB]);
    let hash = Sha256::digest(&hashed);
    let checksum = [hash[0], hash[1], hash[2], hash[3]];
    let small = message(&[chunk(2, checksum, &zeros(mib))]);
    let roomy = Bounds {
        max_inflated_bytes: 64 * MIB,
        max_inflation_ratio: 10_000,
        ..Bounds::default()
    };
    let measured = measure_sync_message(&small, &roomy).unwrap();
    assert_eq!((measured.chunks, measured.ops, measured.changes), (1, 0, 1));
    assert!(measured.inflated_bytes > mib * MIB);
    // The ratio alone stops it too: 2 MiB from about 2 KiB.
    assert!(matches!(
        measure_sync_message(&small, &Bounds::default()),
        Err(BoundsError::Inflation { .. })
    ));
}

#[test]
fn a_document_with_a_deflated_column_bomb_is_refused() {
    for spec in [VALUE, ACTION, OP_ID_ACTOR] {
        let body = document_body(&[], &[(spec | 8, zeros(1024))]);
        let bomb = chunk(0, [0; 4], &body);
        match measure_chunks(&bomb, &Bounds::default()) {
            Err(BoundsError::Inflation {
                what: "a deflated column",
                limit,
                inflated,
                ..
            }) => assert!(inflated <= limit + INFLATE_PIECE),
            other => panic!("{spec:#x}: {other:?}"),
        }
    }
}

#[test]
fn a_change_whose_action_column_claims_a_billion_rows_is_refused() {
    let body = change_body(&[(ACTION, run(1_000_000_000, 1))]);
    let bomb = message(&[chunk(1, [0; 4], &body)]);
    assert!(bomb.len() < 64);
    assert_eq!(
        measure_sync_message(&bomb, &Bounds::default()),
        Err(BoundsError::OverBudget {
            what: "operations",
            at_least: 1_000_000_000,
            max: 2_000_000
        })
    );
    // A null run, or another column than the action's, claims the same.
    let null_run = change_body(&[(ACTION, vec![0, 0x80, 0x94, 0xeb, 0xdc, 0x03])]);
    let key_strings = change_body(&[
        ((1 << 4) | 5, vec![0x80, 0x94, 0xeb, 0xdc, 0x03, 1, b'k']),
        (ACTION, run(2, 1)),
    ]);
    for body in [null_run, key_strings] {
        assert!(matches!(
            measure_chunks(&chunk(1, [0; 4], &body), &Bounds::default()),
            Err(BoundsError::OverBudget {
                what: "operations",
                ..
            })
        ));
    }
}

#[test]
fn a_trillion_predecessors_for_one_op_are_refused() {
    let body = change_body(&[(ACTION, run(2, 1)), (PRED_GROUP, run(2, 1 << 40))]);
    assert!(matches!(
        measure_chunks(&chunk(1, [0; 4], &body), &Bounds::default()),
        Err(BoundsError::OverBudget {
            what: "op references",
            ..
        })
    ));
}

#[test]
fn a_document_claiming_a_billion_changes_or_ops_is_refused() {
    let changes = document_body(&[(CHANGE_ACTOR, run(1_000_000_000, 0))], &[]);
    assert!(matches!(
        measure_chunks(&chunk(0, [0; 4], &changes), &Bounds::default()),
        Err(BoundsError::OverBudget {
            what: "changes",
            ..
        })
    ));
    let ops = document_body(&[], &[(OP_ID_ACTOR, run(1_000_000_000, 0))]);
    assert!(matches!(
        measure_chunks(&chunk(0, [0; 4], &ops), &Bounds::default()),
        Err(BoundsError::OverBudget {
            what: "operations",
            ..
        })
    ));
}

/// A v1 message with one `have` holding this Bloom filter.
fn have(bloom: &[u8]) -> Vec<u8> {
    let mut out = vec![0x42, 0, 0, 1, 0];
    leb(&mut out, bloom.len() as u64);
    out.extend(bloom);
    out.push(0);
    out
}

#[test]
fn bloom_filters_with_too_many_probes_or_no_bits_are_refused() {
    let mut bloom = vec![1, 10];
    leb(&mut bloom, u64::from(u32::MAX));
    bloom.extend([0, 0]);
    assert_eq!(
        check_envelope(&have(&bloom), &Bounds::default()),
        Err(BoundsError::BloomProbes {
            probes: u32::MAX,
            max: 64
        })
    );
    assert!(matches!(
        check_envelope(&have(&[1, 0, 7]), &Bounds::default()),
        Err(BoundsError::Malformed(_))
    ));
    let fine = check_envelope(&have(&[1, 10, 7, 0, 0]), &Bounds::default()).unwrap();
    assert_eq!((fine.haves, fine.flags), (1, None));
}

#[test]
fn hash_lists_claiming_two_to_the_forty_hashes_are_refused() {
    let mut bomb = vec![0x42];
    leb(&mut bomb, 1 << 40);
    assert_eq!(
        check_envelope(&bomb, &Bounds::default()),
        Err(BoundsError::TooMany {
            what: "heads",
            count: 1 << 40,
            max: 10_000
        })
    );
    let mut changes = vec![0x43, 0, 0, 0];
    leb(&mut changes, u64::MAX);
    assert!(matches!(
        check_envelope(&changes, &Bounds::default()),
        Err(BoundsError::TooMany {
            what: "the change list",
            ..
        })
    ));
}

#[test]
fn bundles_are_refused() {
    let bundle = message(&[chunk(3, [0; 4], &[0; 16])]);
    assert_eq!(
        measure_sync_message(&bundle, &Bounds::default()),
        Err(BoundsError::ChunkType(3))
    );
}

#[test]
fn a_chunk_split_between_two_entries_is_refused() {
    let whole = chunk(1, [0; 4], &change_body(&[(ACTION, run(2, 1))]));
    let (first, second) = whole.split_at(12);
    assert!(
        measure_sync_message(&message(std::slice::from_ref(&whole)), &Bounds::default()).is_ok()
    );
    assert!(matches!(
        measure_sync_message(
            &message(&[first.to_vec(), second.to_vec()]),
            &Bounds::default()
        ),
        Err(BoundsError::Truncated(_))
    ));
}

/// Small bombs, as fuzz seeds.
pub(super) fn seeds() -> Vec<Vec<u8>> {
    let mut heads = vec![0x42];
    leb(&mut heads, 1 << 40);
    vec![
        heads,
        have(&[1, 10, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0]),
        have(&[1, 0, 7]),
        message(&[chunk(2, [0; 4], &zeros(16))]),
        message(&[chunk(3, [0; 4], &[0; 16])]),
        message(&[chunk(
            1,
            [0; 4],
            &change_body(&[(ACTION, run(1_000_000_000, 1))]),
        )]),
        chunk(
            1,
            [0; 4],
            &change_body(&[(ACTION, run(2, 1)), (PRED_GROUP, run(2, 1 << 40))]),
        ),
        chunk(0, [0; 4], &document_body(&[], &[(VALUE | 8, zeros(16))])),
        chunk(
            0,
            [0; 4],
            &document_body(&[(CHANGE_ACTOR, run(1_000_000_000, 0))], &[]),
        ),
    ]
}
