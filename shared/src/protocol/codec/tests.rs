use super::*;

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn doc() -> DocumentId {
    DocumentId::parse("oc8YCwQ7ShkTzJqwpdMn1LzSfjJ").unwrap()
}

fn all_messages() -> Vec<Message> {
    let a = PeerId::new("peer-a");
    let b = PeerId::new("peer-b");
    vec![
        Message::Join {
            sender_id: a.clone(),
            supported_protocol_versions: vec!["1".into()],
            peer_metadata: Some(PeerMetadata {
                storage_id: Some(StorageId::new("3760df37-a4c6-4f66-9ecd-732039a9dd8f")),
                is_ephemeral: false,
            }),
        },
        Message::Join {
            sender_id: a.clone(),
            supported_protocol_versions: vec!["1".into(), "2".into()],
            peer_metadata: None,
        },
        Message::Peer {
            sender_id: b.clone(),
            target_id: a.clone(),
            selected_protocol_version: "1".into(),
            peer_metadata: Some(PeerMetadata {
                storage_id: None,
                is_ephemeral: true,
            }),
        },
        Message::Request {
            sender_id: a.clone(),
            target_id: b.clone(),
            document_id: doc(),
            data: vec![0x42, 0, 0, 1, 0, 0],
        },
        Message::Sync {
            sender_id: a.clone(),
            target_id: b.clone(),
            document_id: DocumentId::random(),
            data: vec![0x43; 300],
        },
        Message::DocUnavailable {
            sender_id: b.clone(),
            target_id: a.clone(),
            document_id: doc(),
        },
        Message::Ephemeral {
            sender_id: a.clone(),
            target_id: b.clone(),
            document_id: doc(),
            session_id: "s1".into(),
            count: u64::from(u32::MAX) + 7,
            data: vec![0xa1, 0x61, 0x78, 0x01],
        },
        Message::Error {
            sender_id: Some(b.clone()),
            message: "unsupported protocol version".into(),
        },
        Message::Error {
            sender_id: None,
            message: "no sender".into(),
        },
        Message::Leave {
            sender_id: a.clone(),
        },
        Message::Gossip {
            kind: GossipKind::RemoteHeadsChanged,
            sender_id: a.clone(),
        },
        Message::Gossip {
            kind: GossipKind::RemoteSubscriptionChange,
            sender_id: b,
        },
    ]
}

#[test]
fn every_message_type_round_trips() {
    for m in all_messages() {
        let bytes = encode(&m);
        assert_eq!(decode(&bytes, &Limits::default()), Ok(m));
    }
}

#[test]
fn decodes_frames_written_by_js_automerge_repo() {
    // Captured from @automerge/automerge-repo 2.5.6 `cbor.encode` (cbor-x): 16-bit map
    // headers and `undefined` for an absent storage id.
    let join = hex("b900046474797065646a6f696e6873656e646572496466706565722d616c706565724d65746164617461b900026973746f726167654964f76b6973457068656d6572616cf57819737570706f7274656450726f746f636f6c56657273696f6e73816131");
    assert_eq!(
        decode(&join, &Limits::default()),
        Ok(Message::Join {
            sender_id: PeerId::new("peer-a"),
            supported_protocol_versions: vec!["1".into()],
            peer_metadata: Some(PeerMetadata {
                storage_id: None,
                is_ephemeral: true
            }),
        })
    );

    let peer = hex("b90005647479706564706565726873656e64657249646373727668746172676574496466706565722d616c706565724d65746164617461b900026973746f726167654964782433373630646633372d613463362d346636362d396563642d3733323033396139646438666b6973457068656d6572616cf47773656c656374656450726f746f636f6c56657273696f6e6131");
    assert_eq!(
        decode(&peer, &Limits::default()),
        Ok(Message::Peer {
            sender_id: PeerId::new("srv"),
            target_id: PeerId::new("peer-a"),
            selected_protocol_version: "1".into(),
            peer_metadata: Some(PeerMetadata {
                storage_id: Some(StorageId::new("3760df37-a4c6-4f66-9ecd-732039a9dd8f")),
                is_ephemeral: false
            }),
        })
    );

    let sync = hex("b9000564747970656473796e636873656e6465724964616168746172676574496461626a646f63756d656e744964781b6f6338594377513753686b547a4a717770644d6e314c7a53666a4a6464617461454200000000");
    assert_eq!(
        decode(&sync, &Limits::default()),
        Ok(Message::Sync {
            sender_id: PeerId::new("a"),
            target_id: PeerId::new("b"),
            document_id: doc(),
            data: vec![0x42, 0, 0, 0, 0],
        })
    );

    let ephemeral = hex("b90007647479706569657068656d6572616c6873656e6465724964616168746172676574496461626a646f63756d656e744964781b6f6338594377513753686b547a4a717770644d6e314c7a53666a4a6973657373696f6e496462733165636f756e740364646174614101");
    assert_eq!(
        decode(&ephemeral, &Limits::default()),
        Ok(Message::Ephemeral {
            sender_id: PeerId::new("a"),
            target_id: PeerId::new("b"),
            document_id: doc(),
            session_id: "s1".into(),
            count: 3,
            data: vec![1],
        })
    );
}

/// Builds a CBOR map from (key, raw CBOR value) pairs.
fn map(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    e.map(entries.len() as u64).unwrap();
    let mut out = e.into_writer();
    for (k, v) in entries {
        let mut e = Encoder::new(Vec::new());
        e.str(k).unwrap();
        out.extend(e.into_writer());
        out.extend(v);
    }
    out
}

fn text(s: &str) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    e.str(s).unwrap();
    e.into_writer()
}

fn bytes(b: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    e.bytes(b).unwrap();
    e.into_writer()
}

fn f64_value(x: f64) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    e.f64(x).unwrap();
    e.into_writer()
}

fn ephemeral_with_count(count: Vec<u8>) -> Vec<u8> {
    map(&[
        ("type", text("ephemeral")),
        ("senderId", text("a")),
        ("targetId", text("b")),
        ("documentId", text(&doc().to_string())),
        ("sessionId", text("s")),
        ("count", count),
        ("data", bytes(&[1])),
    ])
}

#[test]
fn counts_written_as_floats_are_accepted() {
    let m = decode(
        &ephemeral_with_count(f64_value(1_099_511_627_776.0)),
        &Limits::default(),
    )
    .unwrap();
    assert!(matches!(
        m,
        Message::Ephemeral {
            count: 1_099_511_627_776,
            ..
        }
    ));
}

#[test]
fn bad_counts_are_rejected() {
    for bad in [
        f64_value(1.5),
        f64_value(-1.0),
        f64_value(f64::NAN),
        text("3"),
    ] {
        assert_eq!(
            decode(&ephemeral_with_count(bad), &Limits::default()),
            Err(DecodeError::WrongType {
                field: "count",
                expected: "a non-negative integer"
            })
        );
    }
}

#[test]
fn document_ids_as_raw_bytes_are_accepted() {
    let frame = map(&[
        ("type", text("doc-unavailable")),
        ("senderId", text("a")),
        ("targetId", text("b")),
        ("documentId", bytes(doc().as_bytes())),
    ]);
    assert!(matches!(
        decode(&frame, &Limits::default()),
        Ok(Message::DocUnavailable { document_id, .. }) if document_id == doc()
    ));
}

#[test]
fn unknown_keys_are_skipped() {
    let frame = map(&[
        ("type", text("leave")),
        ("extra", map(&[("nested", bytes(&[1, 2, 3]))])),
        ("senderId", text("a")),
    ]);
    assert_eq!(
        decode(&frame, &Limits::default()),
        Ok(Message::Leave {
            sender_id: PeerId::new("a")
        })
    );
}

#[test]
fn malformed_input_is_rejected_with_the_reason() {
    let limits = Limits::default();
    assert!(matches!(decode(&[], &limits), Err(DecodeError::Cbor(_))));
    assert!(matches!(
        decode(&[0xff, 0x00], &limits),
        Err(DecodeError::Cbor(_)) | Err(DecodeError::NotAMap)
    ));
    assert_eq!(decode(&text("sync"), &limits), Err(DecodeError::NotAMap));
    assert_eq!(decode(&[0x80], &limits), Err(DecodeError::NotAMap));

    // Truncated in the middle of a map.
    let good = encode(&all_messages()[3]);
    assert!(matches!(
        decode(&good[..good.len() - 3], &limits),
        Err(DecodeError::Cbor(_))
    ));

    // Trailing garbage.
    let mut trailing = good.clone();
    trailing.extend([0, 0]);
    assert_eq!(
        decode(&trailing, &limits),
        Err(DecodeError::TrailingBytes(2))
    );

    assert_eq!(
        decode(&map(&[("senderId", text("a"))]), &limits),
        Err(DecodeError::MissingType)
    );
    assert_eq!(
        decode(&map(&[("type", text("gossip-everything"))]), &limits),
        Err(DecodeError::UnknownType("gossip-everything".into()))
    );
    assert_eq!(
        decode(
            &map(&[
                ("type", text("sync")),
                ("senderId", text("a")),
                ("targetId", text("b")),
                ("data", bytes(&[0x42])),
            ]),
            &limits
        ),
        Err(DecodeError::MissingField {
            message_type: "sync",
            field: "documentId"
        })
    );
    assert_eq!(
        decode(
            &map(&[
                ("type", text("sync")),
                ("senderId", text("a")),
                ("targetId", text("b")),
                ("documentId", text(&doc().to_string())),
                ("data", text("not bytes")),
            ]),
            &limits
        ),
        Err(DecodeError::WrongType {
            field: "data",
            expected: "a byte string"
        })
    );
    assert_eq!(
        decode(
            &map(&[("type", text("leave")), ("type", text("leave"))]),
            &limits
        ),
        Err(DecodeError::DuplicateField { field: "type" })
    );
}

#[test]
fn bad_document_ids_are_rejected() {
    let mut id = doc().to_string().into_bytes();
    let last = id.len() - 1;
    id[last] = if id[last] == b'2' { b'3' } else { b'2' };
    let frame = map(&[
        ("type", text("doc-unavailable")),
        ("senderId", text("a")),
        ("targetId", text("b")),
        ("documentId", text(std::str::from_utf8(&id).unwrap())),
    ]);
    assert_eq!(
        decode(&frame, &Limits::default()),
        Err(DecodeError::DocumentId(DocumentIdError::Checksum))
    );
    let frame = map(&[
        ("type", text("doc-unavailable")),
        ("senderId", text("a")),
        ("targetId", text("b")),
        ("documentId", bytes(&[1; 15])),
    ]);
    assert_eq!(
        decode(&frame, &Limits::default()),
        Err(DecodeError::DocumentId(DocumentIdError::WrongLength(15)))
    );
}

#[test]
fn limits_are_enforced() {
    let limits = Limits {
        max_frame_bytes: 100,
        max_id_bytes: 8,
        max_text_bytes: 10,
        max_versions: 2,
    };
    let big = encode(&all_messages()[4]);
    assert_eq!(
        decode(&big, &limits),
        Err(DecodeError::FrameTooLarge {
            size: big.len(),
            limit: 100
        })
    );
    let long_id = map(&[("type", text("leave")), ("senderId", text("123456789"))]);
    assert_eq!(
        decode(&long_id, &limits),
        Err(DecodeError::FieldTooLong {
            field: "senderId",
            size: 9,
            limit: 8
        })
    );
    let many_versions = encode(&Message::Join {
        sender_id: PeerId::new("a"),
        supported_protocol_versions: vec!["1".into(), "2".into(), "3".into()],
        peer_metadata: None,
    });
    assert!(matches!(
        decode(&many_versions, &limits),
        Err(DecodeError::FieldTooLong {
            field: "supportedProtocolVersions",
            ..
        })
    ));
}

#[test]
fn deeply_nested_unknown_values_do_not_overflow_the_stack() {
    // 100,000 nested arrays under an unknown key: skipped iteratively, then rejected as
    // truncated rather than crashing.
    let mut frame = map(&[("type", text("leave")), ("senderId", text("a"))]);
    frame[0] = 0xa3; // three entries; the third is the deep one
    frame.extend(text("deep"));
    frame.extend(std::iter::repeat_n(0x81u8, 100_000));
    frame.push(0x00);
    assert!(decode(&frame, &Limits::default()).is_ok());
    frame.pop();
    assert!(matches!(
        decode(&frame, &Limits::default()),
        Err(DecodeError::Cbor(_))
    ));
}
