//! Items 5, 6, 7: what happens to a node beside its sockets: credentials revoked while
//! their sockets are open, a disk that fills up, and an archive an operator imports.

use std::time::{Duration, Instant};

use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ReadDoc, ScalarValue, ROOT};
use ibis_node::client::ClientError;
use ibis_node::init::now_ms;
use ibis_shared::bounds::hostile::{chunk, zeros};
use ibis_shared::model::event::Event as ModelEvent;
use ibis_shared::model::Role;
use ibis_shared::protocol::Message;
use ibis_shared::DocumentId;
use sha2::{Digest, Sha256};

use crate::federation::partner_key;
use crate::harness::{
    cli, report, report_command, run_measured, stored_heads, within, DataDir, Node, PASSWORD, WAIT,
};
use crate::peers::{author, client, publish_at, token_query, Witness};
use crate::wire::{get, http, made_up, upgrade, DocSync, Event, Raw, ELSEWHERE, HERE};

/// The document `doc` as the node sends it, on a raw socket.
async fn served(raw: &mut Raw, doc: DocumentId) {
    raw.send(raw.request(doc)).await;
    raw.expect(
        "the document",
        |m| matches!(m, Message::Sync { document_id, .. } if *document_id == doc),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_live_sockets() {
    within(Duration::from_secs(120), async {
        let root = tempfile::tempdir().expect("tempdir");
        let iom = DataDir::init(root.path(), "iom", "IOM", "iom", None);
        for (name, role) in [("amy", "editor"), ("bob", "editor"), ("carol", "reviewer")] {
            iom.add_user(name, role);
        }
        let amy = token_query(&iom.token("amy"));
        let bob = token_query(&iom.token("bob"));
        let carol = token_query(&iom.token("carol"));
        let key = partner_key(root.path(), "unaoc");
        let partner_public = key.public().to_string();
        iom.add_peer("UNAOC", "", &partner_public, "unaoc");
        let iom_key = iom.key();
        let node = Node::start(&iom, false).await;
        // Bob, the second member, is the witness.
        let witness = Witness::start(&node, &bob, &bob).await;
        let doc = witness.doc;
        let catalogue = iom.info.catalogue_id();

        let meter = node.measure();
        let checking = witness.keep_checking();

        // 1. Amy is removed by another process while her socket is open.
        let amy_path = format!("/sync?{amy}");
        let mut amy_socket = Raw::join(HERE, node.addr, &amy_path, &made_up("amy"), None).await;
        served(&mut amy_socket, doc).await;
        let removed = Instant::now();
        cli(&["user", "remove", "--data-dir", iom.dir(), "amy"], &[]);
        let amy_closing = amy_socket.expect_close().await;
        let amy_after = removed.elapsed();
        assert!(amy_closing.errors.is_empty(), "{amy_closing:?}");
        assert_eq!(
            amy_closing.reason.as_deref(),
            Some("your session ended; log in again"),
            "{amy_closing:?}"
        );
        let again = upgrade(HERE, node.addr, &amy_path, &[]).await;
        let Err(amy_refused) = again else {
            panic!("a removed member's token opened a socket");
        };
        assert_eq!(amy_refused.status, 401, "{amy_refused:?}");
        assert_eq!(
            amy_refused.body,
            "invalid or expired credentials; log in again"
        );

        // 2. UNAOC, a partner registered with its key, is removed while connected.
        let mut partner =
            Raw::partner(node.addr, &key, &iom_key, &made_up("ibis-node-unaoc")).await;
        served(&mut partner, catalogue).await;
        let removed = Instant::now();
        cli(&["peer", "remove", "--data-dir", iom.dir(), "UNAOC"], &[]);
        let partner_closing = partner.expect_close().await;
        let partner_after = removed.elapsed();
        assert!(partner_closing.errors.is_empty(), "{partner_closing:?}");
        assert_eq!(
            partner_closing.reason.as_deref(),
            Some("this partner was removed"),
            "{partner_closing:?}"
        );
        let cnonce = ibis_node::federation::nonce().expect("a nonce");
        let path = format!("/sync?node={partner_public}&cnonce={cnonce}");
        let Err(partner_refused) = upgrade(HERE, node.addr, &path, &[]).await else {
            panic!("a removed partner's key opened a socket");
        };
        assert_eq!(partner_refused.status, 401, "{partner_refused:?}");

        // 3. Carol logs out: her session's socket closes; her token's stays.
        let login = serde_json::json!({ "name": "carol", "password": PASSWORD }).to_string();
        let logged_in = http(ELSEWHERE, node.addr, "POST", "/api/login", &[], &login).await;
        assert_eq!(logged_in.status, 200, "{}", logged_in.body);
        let cookie = logged_in
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_owned();
        let (ws, _) = upgrade(ELSEWHERE, node.addr, "/sync", &[("Cookie", &cookie)])
            .await
            .expect("carol's session opens a socket");
        let mut session = Raw::handshake(ws, &made_up("carol-browser"), None).await;
        served(&mut session, doc).await;
        let carol_path = format!("/sync?{carol}");
        let mut script = Raw::join(HERE, node.addr, &carol_path, &made_up("carol"), None).await;
        served(&mut script, doc).await;
        let logged_out = Instant::now();
        let logout = http(
            ELSEWHERE,
            node.addr,
            "POST",
            "/api/logout",
            &[("Cookie", &cookie)],
            "",
        )
        .await;
        assert_eq!(logout.status, 200, "{}", logout.body);
        let session_closing = session.expect_close().await;
        let session_after = logged_out.elapsed();
        assert!(session_closing.errors.is_empty(), "{session_closing:?}");
        assert_eq!(
            session_closing.reason.as_deref(),
            Some("your session ended; log in again"),
            "{session_closing:?}"
        );
        // (A revocation check every 2 s would have reached it by now.)
        assert!(
            script.stays_open(Duration::from_millis(2500)).await,
            "carol's token socket was closed by her logout"
        );
        served(&mut script, doc).await;
        let spent = meter.finish();
        let (checks, slowest) = checking.stop().await;
        witness
            .check()
            .await
            .expect("syncing after the revocations");
        spent.assert_peak_below(150.0, "revocations");
        witness.finish().await;
        report(
            "revocation_reaches_live_sockets",
            &spent,
            &format!(
                "`user remove amy` from another process: her socket closed `{}` after {:.1} s, \
                 her token then {} `{}`; `peer remove UNAOC`: its socket closed `{}` after \
                 {:.1} s, its key then {}; carol's logout: her session's socket closed `{}` \
                 after {:.2} s, her token's socket kept; witness (bob) {checks} checks ok, \
                 slowest {slowest:?}",
                amy_closing.reason.unwrap_or_default(),
                amy_after.as_secs_f64(),
                amy_refused.status,
                amy_refused.body,
                partner_closing.reason.unwrap_or_default(),
                partner_after.as_secs_f64(),
                partner_refused.status,
                session_closing.reason.unwrap_or_default(),
                session_after.as_secs_f64(),
            ),
        );
    })
    .await;
}

/// Random (incompressible) bytes per change: a 1 MiB database fills in a few dozen.
const UPLOAD_BYTES: usize = 48 * 1024;

/// What became of one change sent to the node.
enum Written {
    /// The node's sync message says it holds it (sent only once it is committed).
    Acknowledged(ChangeHash),
    /// The node closed the connection first, with this reason; the change's hash.
    Closed(String, ChangeHash),
}

/// Makes a change of [`UPLOAD_BYTES`] random bytes in the replica, sends it, and reads
/// until the node acknowledges it or closes the connection (`error`s are collected).
async fn upload(
    raw: &mut Raw,
    replica: &mut DocSync,
    doc: DocumentId,
    key: String,
    errors: &mut Vec<String>,
) -> Written {
    let mut blob = vec![0u8; UPLOAD_BYTES];
    getrandom::fill(&mut blob).expect("random bytes");
    let mut tx = replica.doc.transaction();
    tx.put(ROOT, key, ScalarValue::Bytes(blob)).expect("put");
    tx.commit();
    let hash = replica.doc.get_heads()[0];
    let message = replica.generate().expect("a message with the change");
    if !raw.try_send(raw.sync(doc, message)).await {
        return Written::Closed("the socket failed to send".into(), hash);
    }
    loop {
        match raw.next(WAIT).await {
            Event::Message(Message::Sync {
                document_id, data, ..
            }) if document_id == doc => {
                if let Some(answer) = replica.receive(&data) {
                    if !raw.try_send(raw.sync(doc, answer)).await {
                        return Written::Closed("the socket failed to send".into(), hash);
                    }
                }
                let held = replica.state.their_heads.as_ref();
                if held.is_some_and(|h| h.contains(&hash)) {
                    return Written::Acknowledged(hash);
                }
            }
            Event::Message(Message::Error { message, .. }) => errors.push(message),
            Event::Message(_) => {}
            Event::Closed(reason) => return Written::Closed(reason.unwrap_or_default(), hash),
            Event::Dropped(why) => {
                return Written::Closed(format!("dropped without a close frame: {why}"), hash)
            }
            Event::TimedOut => panic!("a change neither acknowledged nor refused within {WAIT:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_service_and_loses_nothing_acknowledged() {
    within(Duration::from_secs(120), async {
        const MOST_CHANGES: usize = 200;
        let root = tempfile::tempdir().expect("tempdir");
        let iom = DataDir::init(root.path(), "iom", "IOM", "iom", None);
        iom.add_user("amy", "editor");
        let query = token_query(&iom.token("amy"));
        iom.set_max_database_mb(1);
        let mut node = Node::start(&iom, false).await;

        // Amy's document, and her replica of it on a raw socket.
        let doc = {
            let amy = client(&node, &query).await;
            let mut doc = Automerge::new();
            let mut tx = doc.transaction();
            tx.put(ROOT, "note", "amy's uploads").expect("put");
            tx.commit();
            let id = amy.create(doc).await.expect("create");
            amy.wait_synced(id, WAIT).await.expect("stored");
            amy.close().await;
            id
        };
        let path = format!("/sync?{query}");
        let mut raw = Raw::join(HERE, node.addr, &path, &made_up("amy"), None).await;
        let mut replica = raw.replica(doc).await;

        // Changes until the node stops taking them.
        let meter = node.measure();
        let mut acknowledged: Vec<ChangeHash> = Vec::new();
        let mut errors = Vec::new();
        let mut ended = None;
        for i in 0..MOST_CHANGES {
            let key = format!("upload {i}");
            match upload(&mut raw, &mut replica, doc, key, &mut errors).await {
                Written::Acknowledged(hash) => acknowledged.push(hash),
                Written::Closed(reason, hash) => {
                    ended = Some((reason, hash));
                    break;
                }
            }
        }
        // Out of service at once: health and new sockets say so (asked together, well
        // before storage is probed again, 2 s after the failure).
        let (health, refused) = tokio::join!(
            get(node.addr, "/healthz"),
            upgrade(HERE, node.addr, &path, &[])
        );
        let spent = meter.finish();
        let (reason, unacknowledged) = ended.unwrap_or_else(|| {
            panic!("{MOST_CHANGES} changes of {UPLOAD_BYTES} bytes fit in 1 MiB")
        });
        assert!(
            reason.contains("storage failure"),
            "the member's socket closed: `{reason}` (errors {errors:?})"
        );
        assert!(!acknowledged.is_empty(), "no change was acknowledged");
        assert_eq!(health.status, 503, "{}", health.body);
        assert_eq!(health.json()["status"], "failing", "{}", health.body);
        let Err(refused) = refused else {
            panic!("a socket opened while storage fails");
        };
        assert_eq!(refused.status, 503, "{refused:?}");
        assert_eq!(
            refused.body,
            "the node cannot store changes right now; try again later"
        );
        // A while later, the database still full: does the node serve again by itself, and
        // what becomes of the next change? (Reported, not asserted.)
        tokio::time::sleep(Duration::from_secs(3)).await;
        let health_later = get(node.addr, "/healthz").await.status;
        let retried = match upgrade(HERE, node.addr, &path, &[]).await {
            Err(r) => format!("a new socket: {} `{}`", r.status, r.body),
            Ok((ws, _)) => {
                let mut raw = Raw::handshake(ws, &made_up("amy"), None).await;
                let mut replica = raw.replica(doc).await;
                let key = "upload after the failure".to_owned();
                match upload(&mut raw, &mut replica, doc, key, &mut errors).await {
                    Written::Acknowledged(hash) => {
                        acknowledged.push(hash);
                        "a new socket opened, and its change was acknowledged".into()
                    }
                    Written::Closed(reason, _) => format!(
                        "a new socket opened (101), and its change closed it again: `{reason}`"
                    ),
                }
            }
        };

        // Stopped, given room, started again: everything acknowledged is there.
        node.stop().await;
        let on_disk = std::fs::metadata(iom.database()).map_or(0, |m| m.len());
        let stored = stored_heads(&iom);
        let kept = crate::harness::stored_document(&iom, doc).expect("amy's document is stored");
        for hash in &acknowledged {
            assert!(
                kept.get_change_by_hash(hash).is_some(),
                "acknowledged change {hash} was lost"
            );
        }
        let unacknowledged_kept = kept.get_change_by_hash(&unacknowledged).is_some();
        iom.set_max_database_mb(64);
        let node = Node::start(&iom, false).await;
        let health_after = get(node.addr, "/healthz").await;
        assert_eq!(health_after.status, 200, "{}", health_after.body);
        let amy = client(&node, &query).await;
        let served = amy.open(doc, WAIT).await.expect("amy's document");
        for hash in &acknowledged {
            assert!(
                served.get_change_by_hash(hash).is_some(),
                "acknowledged change {hash} is not served"
            );
        }
        amy.change(doc, |d| {
            let mut tx = d.transaction();
            tx.put(ROOT, "after", "the disk had room again")
                .expect("put");
            tx.commit();
        })
        .await
        .expect("change");
        amy.wait_synced(doc, WAIT)
            .await
            .expect("the node takes changes again");
        amy.close().await;
        let witness = Witness::start(&node, &query, &query).await;
        witness.check().await.expect("syncing after the restart");
        witness.finish().await;
        report(
            "a_full_disk_stops_service_and_loses_nothing_acknowledged",
            &spent,
            &format!(
                "max_database_mb = 1: {} changes of {} KiB acknowledged, the next one {}; \
                 amy's socket closed `{reason}`; then /healthz {} and /sync {} `{}`; 3 s later, \
                 the database still full: /healthz {health_later}, {retried}; restarted with \
                 64 MiB: all {} stored documents load ({} kB on disk), every acknowledged \
                 change there and served, /healthz 200, changes taken again",
                acknowledged.len(),
                UPLOAD_BYTES / 1024,
                if unacknowledged_kept {
                    "unacknowledged but kept"
                } else {
                    "unacknowledged and not kept"
                },
                health.status,
                refused.status,
                refused.body,
                stored.len(),
                on_disk / 1000,
            ),
        );
    })
    .await;
}

fn leb(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            return out.push(byte);
        }
        out.push(byte | 0x80);
    }
}

/// A saved document (a valid chunk, checksum included) whose one op column is deflated and
/// inflates to `mib` MiB of zeros.
fn deflated_column_bomb(mib: usize) -> Vec<u8> {
    const DEFLATED_ACTIONS: u64 = (4 << 4) | 2 | 8;
    let column = zeros(mib);
    // One actor, no heads, no change columns, one op column.
    let mut body = vec![1, 1, 7, 0, 0, 1];
    leb(&mut body, DEFLATED_ACTIONS);
    leb(&mut body, column.len() as u64);
    body.extend(&column);
    let mut hashed = vec![0];
    leb(&mut hashed, body.len() as u64);
    hashed.extend(&body);
    let hash = Sha256::digest(&hashed);
    chunk(0, [hash[0], hash[1], hash[2], hash[3]], &body)
}

/// A saved event of another organization, with this online link.
fn event(online_link: &str) -> Vec<u8> {
    let by = author("nlc", "Nadia", Role::Editor);
    let mut doc = ModelEvent::new("Welcome desks webinar", "webinar", "2025-05-01", &by)
        .create(&by, now_ms())
        .expect("an event");
    let mut tx = doc.transaction();
    tx.put(ROOT, "online_link", online_link).expect("put");
    tx.commit();
    doc.save()
}

/// An archive as `ibis-node export` writes one (gzipped tar, `documents/<id>.automerge`,
/// a manifest), holding these documents.
fn archive(path: &std::path::Path, docs: &[(DocumentId, Vec<u8>)]) {
    let file = std::fs::File::create(path).expect("create the archive");
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::fast(),
    ));
    let manifest = serde_json::json!({
        "format": "ibis-archive/1",
        "organization_id": "nlc",
        "organization_name": "NLC",
        "directory": DocumentId::random().url(),
        "catalogue": DocumentId::random().url(),
        "documents": docs.len(),
        "practices": 0,
        "created_at": now_ms(),
    });
    let manifest = serde_json::to_vec(&manifest).expect("json");
    let entries = docs
        .iter()
        .map(|(id, bytes)| (format!("documents/{id}.automerge"), bytes.as_slice()))
        .chain([("manifest.json".to_owned(), manifest.as_slice())]);
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes).expect("an entry");
    }
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .expect("write the archive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_import_checks_every_document() {
    within(Duration::from_secs(120), async {
        let root = tempfile::tempdir().expect("tempdir");
        let iom = DataDir::init(root.path(), "iom", "IOM", "iom", None);
        iom.add_user("rita", "reviewer");
        let query = token_query(&iom.token("rita"));
        let mut node = Node::start(&iom, false).await;
        let rita = client(&node, &query).await;
        let practice = publish_at(rita.host(), &iom.info, "Welcome desks")
            .await
            .public;
        rita.close().await;
        node.stop().await;
        let before = stored_heads(&iom);

        // (a) A partner's event linking to `javascript:`, beside a valid one.
        let (good, bad) = (DocumentId::random(), DocumentId::random());
        let events = root.path().join("events.tar.gz");
        archive(
            &events,
            &[
                (good, event("https://example.org/live")),
                (bad, event("javascript:alert(1)")),
            ],
        );
        // (b) A document of 1 MB whose deflated column inflates to 1 GiB.
        let bomb = DocumentId::random();
        let bomb_bytes = deflated_column_bomb(1024);
        let bombed = root.path().join("bomb.tar.gz");
        archive(&bombed, &[(bomb, bomb_bytes.clone())]);

        let import = |archive: &std::path::Path| {
            let file = archive.to_str().expect("a UTF-8 path");
            run_measured(&["import", file, "--data-dir", iom.dir()], root.path())
        };
        let link = import(&events);
        let inflated = import(&bombed);
        for (run, entry, expected) in [
            (&link, bad, "invalid event: online_link: must be"),
            (
                &inflated,
                bomb,
                "refused unread: a deflated column inflates the input to more than",
            ),
        ] {
            assert!(!run.success, "the import succeeded: {run:?}");
            let named = format!("documents/{entry}.automerge: {expected}");
            assert!(
                run.stderr.contains(&named),
                "{named} in {}{}",
                run.stdout,
                run.stderr
            );
            assert!(run.stderr.contains("nothing was written"), "{}", run.stderr);
            assert!(
                run.peak_mb < 200.0,
                "the import's peak RSS {:.1} MB ({})",
                run.peak_mb,
                run.measured_by
            );
        }
        assert!(
            link.stderr.contains("1 of its documents is refused"),
            "only the javascript: link: {}",
            link.stderr
        );
        assert_eq!(stored_heads(&iom), before, "the imports wrote nothing");

        // Started again: it holds what it held, and serves.
        let node = Node::start(&iom, false).await;
        let witness = Witness::start(&node, &query, &query).await;
        witness.check().await.expect("syncing after the imports");
        let visitor = client(&node, "").await;
        assert!(visitor.open(practice, WAIT).await.is_ok(), "the practice");
        for id in [good, bad, bomb] {
            assert!(
                matches!(
                    visitor.open(id, Duration::from_secs(5)).await,
                    Err(ClientError::Unavailable(_))
                ),
                "{id} was imported"
            );
        }
        visitor.close().await;
        witness.finish().await;
        let first_line = |run: &crate::harness::Finished| {
            run.stderr
                .lines()
                .find(|l| l.contains("documents/"))
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        report_command(
            "an_archive_import_checks_every_document",
            link.peak_mb.max(inflated.peak_mb),
            link.cpu_s + inflated.cpu_s,
            &format!(
                "`ibis-node import` of an event linking to javascript:alert(1): exit {:?}, \
                 `{}` (peak {:.1} MB); of a {} kB document inflating to 1 GiB: exit {:?}, `{}` \
                 (peak {:.1} MB; peaks by {}); the restarted node holds the same {} documents \
                 with the same heads and serves",
                link.code,
                first_line(&link),
                link.peak_mb,
                bomb_bytes.len() / 1000,
                inflated.code,
                first_line(&inflated),
                inflated.peak_mb,
                inflated.measured_by,
                before.len(),
            ),
        );
    })
    .await;
}
