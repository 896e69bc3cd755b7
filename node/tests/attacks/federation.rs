//! Items 2 and 4a, 4c: partners that overreach, impostors of partners, and made-up
//! document ids that must not become work for partners.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use automerge::transaction::Transactable;
use automerge::{Automerge, ObjType, ReadDoc, ROOT};
use futures_util::{SinkExt, StreamExt};
use ibis_node::client::ClientError;
use ibis_node::federation::NodeKey;
use ibis_node::init::now_ms;
use ibis_shared::model::directory::{register, Directory, Organization};
use ibis_shared::model::review::ReviewState;
use ibis_shared::model::{Practice, Role};
use ibis_shared::protocol::{self, Message, PeerId};
use ibis_shared::DocumentId;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::harness::{eventually, report, stored_document, within, DataDir, Node, WAIT};
use crate::peers::{
    author, client, node_error, open, public_practice, publish_at, token_query, wait_synced,
    PartnerClient, Witness,
};
use crate::wire::{decode, first_sync_message, get, made_up, metric, upgrade, Raw, HERE};

/// Puts `value` at a path of maps in `doc`, as any automerge peer could.
fn put_at(doc: &mut Automerge, path: &[&str], value: &str) {
    let mut tx = doc.transaction();
    let (last, maps) = path.split_last().expect("a path");
    let mut obj = ROOT;
    for key in maps {
        obj = match tx.get(&obj, *key).expect("read") {
            Some((automerge::Value::Object(ObjType::Map), id)) => id,
            _ => panic!("no map at {key}"),
        };
    }
    tx.put(&obj, *last, value).expect("put");
    tx.commit();
}

/// A partner's node key, made in a directory of its own.
pub fn partner_key(root: &std::path::Path, name: &str) -> NodeKey {
    let dir = root.join(format!("{name}-key"));
    std::fs::create_dir_all(&dir).expect("key dir");
    NodeKey::load_or_create(&dir).expect("a node key")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_cannot_overrule_this_organization() {
    within(Duration::from_secs(120), async {
        let root = tempfile::tempdir().expect("tempdir");
        let iom = DataDir::init(root.path(), "iom", "IOM", "iom", None);
        iom.add_user("rita", "reviewer");
        let token = iom.token("rita");
        let key = partner_key(root.path(), "unaoc");
        iom.add_peer("UNAOC", "", &key.public().to_string(), "unaoc");
        let iom_key = iom.key();
        let mut node = Node::start(&iom, false).await;
        let query = token_query(&token);
        let rita = client(&node, &query).await;
        let ours = publish_at(rita.host(), &iom.info, "Welcome desks").await;
        rita.close().await;
        let witness = Witness::start(&node, &query, &query).await;

        let meter = node.measure();
        let checking = witness.keep_checking();
        let partner = PartnerClient::connect(&node, key, &iom_key, "ibis-node-unaoc").await;
        let mut errors = partner.subscribe();

        // 1. IOM's public practice, moved to UNAOC and archived: refused unread.
        let before = open(partner.host(), ours.public).await;
        crate::peers::change(partner.host(), ours.public, |doc| {
            put_at(doc, &["provenance", "home_organization"], "unaoc");
            put_at(doc, &["review", "state"], "archived");
        })
        .await;
        let hijack = node_error(&mut errors, &ours.public.to_string()).await;
        assert_eq!(
            hijack,
            format!(
                "change to {} rejected: this ibis/practice is iom's: only its members change it",
                ours.public
            )
        );

        // 2. A new document that arrives already published, with IOM as its home.
        let (forged, forged_doc) = public_practice("iom", "IOM", "Forged in IOM's name");
        crate::peers::insert(partner.host(), forged, forged_doc).await;
        let forgery = node_error(&mut errors, &forged.to_string()).await;
        assert_eq!(
            forgery,
            format!("change to {forged} rejected: only iom's members create its documents")
        );

        // 3. IOM's directory entry, rewritten.
        let directory = iom.info.directory_id();
        let listed = Directory::load(&open(partner.host(), directory).await)
            .expect("a directory")
            .organizations
            .get("iom")
            .cloned()
            .expect("IOM's entry");
        crate::peers::change(partner.host(), directory, |doc| {
            let entry = Organization {
                name: "IOM (now run by UNAOC)".into(),
                website: "https://evil.example".into(),
                ..Organization::default()
            };
            register(
                doc,
                "iom",
                &entry,
                &author("unaoc", "Mallory", Role::Admin),
                now_ms(),
            )
            .expect("rewrite the entry");
        })
        .await;
        let rewrite = node_error(&mut errors, &directory.to_string()).await;
        assert_eq!(
            rewrite,
            format!(
                "change to {directory} rejected: only iom's members change its directory entry"
            )
        );

        // 4. The partner's own practice still syncs.
        let (theirs, theirs_doc) = public_practice("unaoc", "UNAOC", "Intercultural cities");
        crate::peers::insert(partner.host(), theirs, theirs_doc).await;
        wait_synced(partner.host(), theirs).await;
        let spent = meter.finish();
        spent.assert_peak_below(150.0, "a partner's refused changes");
        let (checks, slowest) = checking.stop().await;
        witness.check().await.expect("syncing after the attack");

        // What IOM serves: its practice and entry as they were, UNAOC's practice, no forgery.
        let visitor = client(&node, "").await;
        let served = visitor
            .open(ours.public, WAIT)
            .await
            .expect("IOM's practice");
        assert_eq!(
            served.get_heads(),
            before.get_heads(),
            "IOM's practice unchanged"
        );
        let practice = Practice::load(&served).expect("a practice");
        assert_eq!(practice.provenance.home_organization, "iom");
        assert_eq!(practice.state(), ReviewState::Published);
        let entry = Directory::load(&visitor.open(directory, WAIT).await.expect("directory"))
            .expect("a directory")
            .organizations
            .get("iom")
            .cloned();
        assert_eq!(entry.as_ref(), Some(&listed), "IOM's entry unchanged");
        let relayed = visitor.open(theirs, WAIT).await.expect("UNAOC's practice");
        assert_eq!(
            Practice::load(&relayed)
                .expect("a practice")
                .provenance
                .home_organization,
            "unaoc"
        );
        assert!(
            matches!(
                visitor.open(forged, Duration::from_secs(5)).await,
                Err(ClientError::Unavailable(_))
            ),
            "the forgery is not served"
        );
        visitor.close().await;
        partner.close().await;
        witness.finish().await;

        // And what it stored.
        node.stop().await;
        let stored = stored_document(&iom, ours.public).expect("IOM's practice is stored");
        let stored = Practice::load(&stored).expect("a practice");
        assert_eq!(stored.provenance.home_organization, "iom");
        assert_eq!(stored.state(), ReviewState::Published);
        assert!(
            stored_document(&iom, forged).is_none(),
            "the forgery is not stored"
        );
        assert!(
            stored_document(&iom, theirs).is_some(),
            "UNAOC's practice is stored"
        );
        report(
            "a_partner_cannot_overrule_this_organization",
            &spent,
            &format!(
                "hijack refused: `{hijack}`; forgery refused: `{forgery}`; directory rewrite \
                 refused: `{rewrite}`; the partner's own practice stored; witness {checks} \
                 checks ok, slowest {slowest:?}"
            ),
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impostor_cannot_keep_a_partner_out() {
    within(Duration::from_secs(120), async {
        let root = tempfile::tempdir().expect("tempdir");
        let iom = DataDir::init(root.path(), "iom", "IOM", "iom", None);
        let unaoc = DataDir::init(
            root.path(),
            "unaoc",
            "UNAOC",
            "unaoc",
            Some(&iom.info.directory),
        );
        iom.add_user("rita", "reviewer");
        let token = iom.token("rita");
        let (iom_key, unaoc_key) = (iom.key(), unaoc.key());
        iom.add_peer("UNAOC", "", &unaoc_key, "unaoc");
        let a = Node::start(&iom, false).await;
        unaoc.add_peer("IOM", &a.sync_url(), &iom_key, "iom");
        let query = token_query(&token);
        let witness = Witness::start(&a, &query, &query).await;

        // Someone claims UNAOC's peer id on an anonymous socket, and stays.
        let claimed = unaoc.info.peer_id.clone();
        let meter = a.measure();
        let checking = witness.keep_checking();
        let mut impostor = Raw::join(HERE, a.addr, "/sync", &claimed, None).await;
        assert!(
            impostor.stays_open(Duration::from_millis(300)).await,
            "the impostor is connected before the partner comes"
        );

        // The real UNAOC node dials in, proves its key, and takes its id back.
        let b = Node::start(&unaoc, false).await;
        let closing = impostor.expect_close().await;
        let reason = closing.reason.clone().unwrap_or_default();
        assert_eq!(
            reason,
            format!("peer id {claimed} was claimed by a peer that proved who it is")
        );
        let b_says = get(b.addr, "/api/node").await.json();
        assert_eq!(
            b_says["peer_id"],
            claimed.as_str(),
            "the id claimed was UNAOC's"
        );
        // Claiming it again, while UNAOC is connected, is refused at once.
        let (ws, _) = upgrade(HERE, a.addr, "/sync", &[])
            .await
            .expect("an anonymous socket");
        let mut again = Raw {
            ws,
            me: PeerId::new(claimed.as_str()),
            node: PeerId::new(""),
        };
        again.send(crate::wire::join(&claimed, None)).await;
        let refused = again.expect_close().await;
        let already = format!("peer id {claimed} is already connected");
        assert_eq!(refused.errors, vec![already.clone()]);
        assert_eq!(refused.reason.as_deref(), Some(already.as_str()));

        // UNAOC syncs: a practice IOM publishes now reaches it.
        let rita = client(&a, &query).await;
        let published = publish_at(rita.host(), &iom.info, "Language cafés").await;
        rita.close().await;
        let at_b = eventually("IOM's new practice at UNAOC", || async {
            let reply = get(b.addr, &format!("/api/practices/{}", published.public)).await;
            (reply.status == 200).then(|| reply.json())
        })
        .await;
        assert_eq!(at_b["title"], "Language cafés");
        let spent = meter.finish();
        spent.assert_peak_below(150.0, "an impostor's claim");
        let (checks, slowest) = checking.stop().await;
        witness.check().await.expect("syncing after the attack");
        witness.finish().await;
        report(
            "an_impostor_cannot_keep_a_partner_out",
            &spent,
            &format!(
                "impostor closed: `{reason}`; a second claim refused: `{already}`; UNAOC \
                 connected and received a new practice; witness {checks} checks ok, slowest \
                 {slowest:?}"
            ),
        );
    })
    .await;
}

/// Requests a raw partner socket received, by document.
type Seen = Arc<Mutex<HashSet<DocumentId>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_document_ids() {
    within(Duration::from_secs(150), async {
        const REQUESTS: usize = 100_000;
        /// Within the anonymous burst (12,000), so each one is answered.
        const FIRST: usize = 10_000;
        let root = tempfile::tempdir().expect("tempdir");
        let iom = DataDir::init(root.path(), "iom", "IOM", "iom", None);
        iom.add_user("amy", "editor");
        let token = iom.token("amy");
        let key = partner_key(root.path(), "unaoc");
        iom.add_peer("UNAOC", "", &key.public().to_string(), "unaoc");
        let node = Node::start(&iom, false).await;
        let query = token_query(&token);

        // The partner, as a raw node-keyed socket: it notes every `request` it receives
        // and answers it `doc-unavailable`.
        let partner = Raw::partner(node.addr, &key, &iom.key(), &made_up("ibis-node-unaoc")).await;
        let requested: Seen = Arc::default();
        let partner_task = {
            let requested = requested.clone();
            let (me, them) = (partner.me.clone(), partner.node.clone());
            let (mut sink, mut stream) = partner.ws.split();
            tokio::spawn(async move {
                while let Some(Ok(frame)) = stream.next().await {
                    let WsMessage::Binary(frame) = frame else {
                        continue;
                    };
                    if let Message::Request { document_id, .. } = decode(&frame) {
                        requested.lock().unwrap().insert(document_id);
                        let answer = protocol::encode(&Message::DocUnavailable {
                            sender_id: me.clone(),
                            target_id: them.clone(),
                            document_id,
                        });
                        if sink.send(WsMessage::Binary(answer.into())).await.is_err() {
                            return;
                        }
                    }
                }
            })
        };
        // A member's request for a document IOM lacks is forwarded to the partner: the
        // partner link would show a forwarded request.
        let amy = client(&node, &query).await;
        let missing = DocumentId::random();
        assert!(matches!(
            amy.open(missing, WAIT).await,
            Err(ClientError::Unavailable(_))
        ));
        assert!(
            requested.lock().unwrap().contains(&missing),
            "a member's request reaches the partner"
        );
        amy.close().await;
        let witness = Witness::start(&node, &query, &query).await;

        let in_memory_before = metric(&node, "ibis_documents_loaded").await;
        let meter = node.measure();
        let checking = witness.keep_checking();
        let visitor = Raw::join(HERE, node.addr, "/sync", &made_up("visitor"), None).await;
        let (me, them) = (visitor.me.clone(), visitor.node.clone());
        let (mut sink, mut stream) = visitor.ws.split();
        let ids: Vec<DocumentId> = (0..REQUESTS).map(|_| DocumentId::random()).collect();
        let sent: HashSet<DocumentId> = ids.iter().copied().collect();
        // What the visitor hears: `doc-unavailable` ids, anything else, and the end.
        let (answered_tx, mut answered) = tokio::sync::watch::channel(0usize);
        let listener = tokio::spawn(async move {
            let mut unavailable = HashSet::new();
            let mut other = Vec::new();
            let mut errors = Vec::new();
            let mut reason = None;
            while let Some(Ok(frame)) = stream.next().await {
                match frame {
                    WsMessage::Binary(frame) => match decode(&frame) {
                        Message::DocUnavailable { document_id, .. } => {
                            unavailable.insert(document_id);
                            answered_tx.send_replace(unavailable.len());
                        }
                        Message::Error { message, .. } => errors.push(message),
                        m => other.push(m.type_name()),
                    },
                    WsMessage::Close(frame) => {
                        reason = frame.map(|f| f.reason.to_string());
                        break;
                    }
                    _ => {}
                }
            }
            (unavailable, other, errors, reason)
        });
        let data = first_sync_message();
        let request = |id: DocumentId| {
            protocol::encode(&Message::Request {
                sender_id: me.clone(),
                target_id: them.clone(),
                document_id: id,
                data: data.clone(),
            })
        };
        for id in &ids[..FIRST] {
            sink.feed(WsMessage::Binary(request(*id).into()))
                .await
                .expect("send a request");
        }
        sink.flush().await.expect("send");
        tokio::time::timeout(WAIT, answered.wait_for(|n| *n >= FIRST))
            .await
            .expect("the first requests are answered in time")
            .expect("answers");
        // The rest, as fast as the socket takes them: past the visitor's message rate.
        let mut sent_all = FIRST;
        for id in &ids[FIRST..] {
            if sink
                .feed(WsMessage::Binary(request(*id).into()))
                .await
                .is_err()
            {
                break;
            }
            sent_all += 1;
        }
        let _ = sink.flush().await;
        // Until the node closes the connection, or has answered every request (then the
        // visitor leaves).
        let deadline = tokio::time::Instant::now() + WAIT;
        while !listener.is_finished() {
            if *answered.borrow() >= REQUESTS {
                let _ = sink.close().await;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "neither answered nor closed within {WAIT:?}: {} answers",
                *answered.borrow()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (unavailable, other, errors, reason) = listener.await.expect("the listener");
        let spent = meter.finish();
        let (checks, slowest) = checking.stop().await;
        witness.check().await.expect("syncing after the attack");
        // Documents in memory (the engine's table, empty entries for made-up ids included):
        // within the budget of loaded documents (500), whatever was asked.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let in_memory_after = metric(&node, "ibis_documents_loaded").await;
        assert!(
            in_memory_after <= 600,
            "{in_memory_after} documents in memory after the made-up requests"
        );

        assert!(other.is_empty(), "the visitor heard {other:?}");
        assert!(
            unavailable.is_subset(&sent),
            "answers only for what was asked"
        );
        assert!(unavailable.len() >= FIRST, "{} answered", unavailable.len());
        let closed_for_rate = errors == ["message rate limit exceeded"]
            && reason.as_deref() == Some("message rate limit exceeded");
        assert!(
            unavailable.len() == REQUESTS || closed_for_rate,
            "every request answered, or the connection closed for its rate: {} answered, \
             errors {errors:?}, close {reason:?}",
            unavailable.len()
        );
        // The partner was asked for none of them.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let forwarded = requested
            .lock()
            .unwrap()
            .iter()
            .filter(|id| sent.contains(id))
            .count();
        assert_eq!(
            forwarded, 0,
            "a visitor's made-up ids were forwarded to the partner"
        );
        assert!(
            spent.peak_mb < 150.0,
            "peak RSS {:.1} MB after {REQUESTS} made-up requests",
            spent.peak_mb
        );
        partner_task.abort();
        witness.finish().await;
        report(
            "made_up_document_ids",
            &spent,
            &format!(
                "{sent_all} requests sent, {} answered doc-unavailable, then {}; 0 forwarded to \
                 the partner (a member's was); documents in memory {in_memory_before} before, \
                 {in_memory_after} after; witness {checks} checks ok, slowest {slowest:?}",
                unavailable.len(),
                if closed_for_rate {
                    "closed: `message rate limit exceeded`".to_owned()
                } else {
                    format!("close {reason:?}")
                }
            ),
        );
    })
    .await;
}
