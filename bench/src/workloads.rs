//! The workloads, each run the same way against every server.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use automerge::transaction::Transactable;
use automerge::{Automerge, ReadDoc, ROOT};
use ibis_shared::model::practice::{apply_edit, PracticeEdit, TagField, TextField};
use ibis_shared::model::{Author, Practice, Role};
use ibis_shared::DocumentId;
use tokio::sync::mpsc;

use crate::driver::{Conn, Event};
use crate::servers::cpu_secs_of;

/// Sizes for one run of the suite.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sizes {
    pub fanout_clients: usize,
    pub fanout_changes: usize,
    pub writers: usize,
    pub throughput_secs: u64,
    pub create_docs: usize,
    pub in_flight: usize,
    pub idle_docs: usize,
    pub idle_secs: u64,
    pub full_sync_docs: usize,
    /// Practices in the catalogue the app opens in Chromium.
    pub app_practices: usize,
    /// Practices in the large catalogue the node alone serves pages and searches of.
    pub catalogue_practices: usize,
    pub runs: usize,
}

impl Sizes {
    pub fn full() -> Self {
        Self {
            fanout_clients: 100,
            fanout_changes: 200,
            writers: 10,
            throughput_secs: 5,
            create_docs: 2_000,
            in_flight: 32,
            idle_docs: 10_000,
            idle_secs: 75,
            full_sync_docs: 5_000,
            app_practices: 5_000,
            catalogue_practices: 50_000,
            runs: 3,
        }
    }

    /// Tiny sizes, so CI checks the benchmark still runs; its numbers mean nothing.
    pub fn quick() -> Self {
        Self {
            fanout_clients: 4,
            fanout_changes: 5,
            writers: 2,
            throughput_secs: 1,
            create_docs: 40,
            in_flight: 8,
            idle_docs: 60,
            idle_secs: 1,
            full_sync_docs: 50,
            app_practices: 100,
            catalogue_practices: 200,
            runs: 1,
        }
    }
}

const WAIT: Duration = Duration::from_secs(60);

fn small_doc(n: i64) -> Automerge {
    let mut doc = Automerge::new();
    let mut tx = doc.transaction();
    let _ = tx.put(ROOT, "n", n);
    let _ = tx.put(ROOT, "label", format!("document {n}"));
    tx.commit();
    doc
}

/// A realistic practice document (a few kB, a short history).
pub fn practice_doc(i: usize) -> anyhow::Result<Automerge> {
    let author = Author {
        name: "Bench".into(),
        organization: "bench".into(),
        role: Role::Admin,
    };
    let mut doc = Practice::new(
        &format!("Practice {i}: community welcome desks"),
        "Lyon",
        "FR",
        &author,
        1,
    )
    .create(&author, 1)?;
    for edit in [
        PracticeEdit::Text {
            field: TextField::Summary,
            translation: None,
            base: String::new(),
            new: "One-stop desks where newcomers find help with housing, language classes, \
                  schools and work, run by the city with community organizations."
                .into(),
        },
        PracticeEdit::Text {
            field: TextField::Context,
            translation: None,
            base: String::new(),
            new: "Arrivals doubled in three years; services were scattered across departments and \
                  newcomers did not know where to start. "
                .repeat(3),
        },
        PracticeEdit::Tag {
            field: TagField::Themes,
            key: "reception-services".into(),
            on: true,
        },
    ] {
        apply_edit(&mut doc, &edit, &author, 2)?;
    }
    Ok(doc)
}

/// Drives `conn` until `done` holds for it.
async fn until(conn: &mut Conn, done: impl Fn(&Conn) -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    while !done(conn) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("timed out");
        }
        conn.next(left).await?;
    }
    Ok(())
}

/// Creates documents with at most `in_flight` not yet acknowledged; returns their ids.
pub async fn push_docs(
    conn: &mut Conn,
    n: usize,
    in_flight: usize,
    make: impl Fn(usize) -> anyhow::Result<Automerge>,
) -> anyhow::Result<Vec<DocumentId>> {
    let mut ids = Vec::with_capacity(n);
    let mut pending: HashSet<DocumentId> = HashSet::new();
    // A slow server is given the time it needs; one that stops acknowledging is not.
    let mut progress = Instant::now();
    while ids.len() < n || !pending.is_empty() {
        while pending.len() < in_flight && ids.len() < n {
            let id = conn.create(make(ids.len())?).await?;
            ids.push(id);
            pending.insert(id);
        }
        if progress.elapsed() > WAIT {
            bail!(
                "no document acknowledged for {} s; {} of {n} were, {} wait",
                WAIT.as_secs(),
                ids.len() - pending.len(),
                pending.len()
            );
        }
        if let Event::Acked(id) | Event::Changed(id) = conn.next(WAIT).await? {
            if conn.in_sync(&id) && pending.remove(&id) {
                progress = Instant::now();
            }
        }
    }
    Ok(ids)
}

/// 100 clients on one document, one change at a time: time from the writer's frame
/// leaving it until every other client has received the change.
///
/// The readers share the benchmark's process and its two cores with the server. Were each
/// to apply a change as it arrives, the last reader's arrival time would include 98 other
/// readers' automerge work (as it would not on 99 separate devices). So a round goes: the
/// writer changes the document; each reader notes when a frame bringing a change it lacks
/// comes off its socket and reports it; when all have, the round's latency is taken, and
/// only then do the readers apply the change and answer the server; the next round starts
/// when every reader has applied this one (and a reader that applied anything but this
/// round's change fails the workload, so a stale frame cannot pass for a fast delivery).
pub async fn fanout(
    url: &str,
    clients: usize,
    changes: usize,
) -> anyhow::Result<BTreeMap<String, f64>> {
    let mut writer = Conn::connect(url, "fanout-writer", None).await?;
    let id = writer.create(small_doc(0)).await?;
    until(&mut writer, |c| c.in_sync(&id)).await?;

    let (delivered_tx, mut delivered_rx) = mpsc::unbounded_channel::<(usize, Instant)>();
    let (applied_tx, mut applied_rx) = mpsc::unbounded_channel::<(usize, i64, i64)>();
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<usize>();
    let (round_tx, _) = tokio::sync::watch::channel(0i64);
    let mut readers = Vec::new();
    for r in 1..clients {
        let url = url.to_owned();
        let delivered = delivered_tx.clone();
        let applied = applied_tx.clone();
        let ready = ready_tx.clone();
        let mut round = round_tx.subscribe();
        readers.push(tokio::spawn(async move {
            let mut conn = Conn::connect(&url, &format!("fanout-reader-{r}"), None).await?;
            conn.request(id).await?;
            until(&mut conn, |c| !c.heads(&id).is_empty()).await?;
            let _ = ready.send(r);
            loop {
                // Arrival is when the frame came off the socket (stamped by the
                // connection's reader task), not when this task got round to it.
                let Ok((frame, arrived)) = conn.recv_stamped().await else {
                    return Ok::<_, anyhow::Error>(());
                };
                if !conn.brings_news(&frame) {
                    conn.handle(frame).await?;
                    continue;
                }
                let _ = delivered.send((r, arrived));
                if round.changed().await.is_err() {
                    return Ok(());
                }
                let k = *round.borrow_and_update();
                conn.handle(frame).await?;
                let n = conn.docs[&id]
                    .doc
                    .get(ROOT, "n")
                    .ok()
                    .flatten()
                    .and_then(|(v, _)| v.as_i64())
                    .unwrap_or(0);
                let _ = applied.send((r, k, n));
            }
        }));
    }
    for _ in 1..clients {
        tokio::time::timeout(WAIT, ready_rx.recv())
            .await
            .context("readers did not all get the document")?;
    }
    let mut latencies = Vec::new();
    for k in 1..=changes as i64 {
        // The clock starts once the change is on the writer's socket: what the writer's
        // own automerge spent making it is the same whichever server it goes to.
        writer
            .change(id, |tx| {
                let _ = tx.put(ROOT, "n", k);
            })
            .await?;
        let started = Instant::now();
        let deadline = started + WAIT;
        let mut have: HashSet<usize> = HashSet::new();
        let mut last = started;
        while have.len() < clients - 1 {
            tokio::select! {
                seen = delivered_rx.recv() => {
                    let (r, arrived) = seen.context("readers stopped")?;
                    if !have.insert(r) {
                        bail!("reader {r} was sent changes twice in round {k}");
                    }
                    last = last.max(arrived);
                }
                event = writer.next(deadline.saturating_duration_since(Instant::now())) => { event?; }
            }
        }
        latencies.push((last - started).as_secs_f64() * 1000.0);
        round_tx.send(k).context("readers stopped")?;
        let mut done: HashSet<usize> = HashSet::new();
        while done.len() < clients - 1 {
            tokio::select! {
                seen = applied_rx.recv() => {
                    let (r, round, n) = seen.context("readers stopped")?;
                    if round != k || n != k {
                        bail!("reader {r} applied change {n} in round {k}");
                    }
                    done.insert(r);
                }
                event = writer.next(deadline.saturating_duration_since(Instant::now())) => { event?; }
            }
        }
    }
    for r in readers {
        r.abort();
    }
    writer.close().await;
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok(BTreeMap::from([
        ("fanout_p50_ms".to_owned(), pick(0.5)),
        ("fanout_p99_ms".to_owned(), pick(0.99)),
    ]))
}

pub struct Throughput {
    /// Changes that reached the observer, per second, until the last one arrived.
    pub changes_per_s: f64,
    /// The share of the changes written that reached the observer.
    pub delivered: f64,
    /// The server's CPU time per change the observer received, in µs (what the relaying
    /// cost the server, whatever bounded the rate).
    pub server_cpu_us: Option<f64>,
    /// The same for this process: the writers and the observer together.
    pub clients_cpu_us: Option<f64>,
    /// Changes the observer got per message that brought it any: about one for a server
    /// that relays each change at once, more for one that holds changes back and batches.
    pub changes_per_message: f64,
}

/// Writers changing documents as fast as they can for `secs`; an observer must receive
/// every one of those changes. Rate = changes the observer received / time until the last
/// of them arrived (so a server that queues instead of relaying is not flattered). A server
/// that loses changes, or is still behind a minute after the writers stopped, is measured
/// as far as it got, with the share of the changes it delivered.
pub async fn throughput(
    url: &str,
    server_pid: Option<u32>,
    writers: usize,
    docs: usize,
    secs: u64,
) -> anyhow::Result<Throughput> {
    let mut creator = Conn::connect(url, "tp-creator", None).await?;
    let ids = push_docs(&mut creator, docs, 32, |i| Ok(small_doc(i as i64))).await?;
    creator.close().await;
    let mut observer = Conn::connect(url, "tp-observer", None).await?;
    for id in &ids {
        observer.request(*id).await?;
    }
    until(&mut observer, |c| ids.iter().all(|id| c.in_sync(id))).await?;
    let count = |c: &Conn| c.changes_applied as usize;
    let before = count(&observer);

    // Every writer has every document before the clock starts.
    let ready = std::sync::Arc::new(tokio::sync::Barrier::new(writers + 1));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<anyhow::Result<usize>>();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let url = url.to_owned();
        let ids = ids.clone();
        let ready = ready.clone();
        let done = done_tx.clone();
        tasks.push(tokio::spawn(async move {
            let result = async {
                let mut conn = Conn::connect(&url, &format!("tp-writer-{w}"), None).await?;
                for id in &ids {
                    conn.request(*id).await?;
                }
                until(&mut conn, |c| ids.iter().all(|id| !c.heads(id).is_empty())).await?;
                ready.wait().await;
                let stop_at = Instant::now() + Duration::from_secs(secs);
                let mut k = 0usize;
                while Instant::now() < stop_at {
                    k += 1;
                    let id = ids[(k + w) % ids.len()];
                    conn.change(id, |tx| {
                        let _ = tx.put(ROOT, format!("w{w}"), k as i64);
                    })
                    .await?;
                    // Paced by the server: wait for its next frame (our ack, or another
                    // writer's change relayed), then take in whatever else has come. A
                    // writer never runs more than one answer ahead, so this measures
                    // sustained relaying, not how deep a server lets a queue grow.
                    let frame = tokio::time::timeout(WAIT, conn.recv())
                        .await
                        .context("the server stopped answering a writer")??;
                    conn.handle(frame).await?;
                    while let Some(frame) = conn.try_recv() {
                        conn.handle(frame).await?;
                    }
                }
                // Stay connected (answering) until the observer has everything.
                Ok::<_, anyhow::Error>((k, conn))
            }
            .await;
            match result {
                Ok((k, mut conn)) => {
                    let _ = done.send(Ok(k));
                    while let Ok(frame) = conn.recv().await {
                        if conn.handle(frame).await.is_err() {
                            break;
                        }
                    }
                }
                Err(e) => {
                    let _ = done.send(Err(e));
                }
            }
        }));
    }
    drop(done_tx);
    tokio::time::timeout(WAIT, ready.wait())
        .await
        .context("the writers did not all get the documents")?;
    let started = Instant::now();
    let cpu = || {
        (
            server_pid.and_then(cpu_secs_of),
            cpu_secs_of(std::process::id()),
        )
    };
    let cpu_at_start = cpu();
    let deadline = started + Duration::from_secs(secs) + WAIT;
    let mut written = 0;
    let mut finished = 0;
    let mut last_arrival = started;
    let mut messages_with_changes = 0u64;
    // Until the observer has every change, or nothing has come for 5 s after the writers
    // stopped (a server that loses changes: the report shows the share delivered).
    let result = loop {
        let received = count(&observer) - before;
        let quiet = finished == writers && last_arrival.elapsed() > Duration::from_secs(5);
        // A server still catching up when time runs out is measured as far as it got:
        // the rate up to its last delivery and the share delivered by then.
        let out_of_time = Instant::now() >= deadline;
        if finished == writers && out_of_time && received < written {
            eprintln!("      the observer had {received} of {written} changes when time ran out");
        }
        if finished == writers && (received >= written || quiet || out_of_time) {
            let secs = (last_arrival - started).as_secs_f64().max(1e-3);
            let cpu_at_end = cpu();
            let per_change = |start: Option<f64>, end: Option<f64>| {
                Some((end? - start?) * 1e6 / received.max(1) as f64)
            };
            break Ok(Throughput {
                server_cpu_us: per_change(cpu_at_start.0, cpu_at_end.0),
                clients_cpu_us: per_change(cpu_at_start.1, cpu_at_end.1),
                changes_per_s: received as f64 / secs,
                changes_per_message: received as f64 / messages_with_changes.max(1) as f64,
                delivered: if written == 0 {
                    1.0
                } else {
                    received as f64 / written as f64
                },
            });
        }
        if out_of_time {
            break Err(anyhow::anyhow!(
                "{} of {writers} writers finished in time",
                finished
            ));
        }
        tokio::select! {
            done = done_rx.recv(), if finished < writers => match done {
                Some(Ok(k)) => { written += k; finished += 1; }
                Some(Err(e)) => break Err(e.context("a writer failed")),
                None => break Err(anyhow::anyhow!("a writer stopped")),
            },
            frame = tokio::time::timeout(Duration::from_millis(200), observer.recv()) => {
                if let Ok(frame) = frame {
                    if let Event::Changed(_) = observer.handle(frame?).await? {
                        last_arrival = Instant::now();
                        messages_with_changes += 1;
                    }
                }
            }
        }
    };
    for t in tasks {
        t.abort();
    }
    observer.close().await;
    result
}

/// One client creates and syncs many small documents, a window at a time.
pub async fn create_many(url: &str, n: usize, in_flight: usize) -> anyhow::Result<f64> {
    let mut conn = Conn::connect(url, "creator", None).await?;
    let started = Instant::now();
    push_docs(&mut conn, n, in_flight, |i| Ok(small_doc(i as i64))).await?;
    let secs = started.elapsed().as_secs_f64();
    conn.close().await;
    Ok(secs)
}

/// Pushes practice documents and returns their ids (for the idle-memory and full-sync
/// workloads).
pub async fn populate(url: &str, n: usize) -> anyhow::Result<Vec<DocumentId>> {
    let mut conn = Conn::connect(url, "populator", None).await?;
    let ids = push_docs(&mut conn, n, 64, practice_doc).await?;
    conn.close().await;
    Ok(ids)
}

/// A full sync that takes longer than this is reported as unfinished, with how far it got.
const FULL_SYNC_LIMIT: Duration = Duration::from_secs(120);

/// A fresh client fetches every listed document, 64 in flight: (seconds, bytes). The
/// client applies the documents on worker threads (one per core, up to four), so that
/// the figure measures the server, not the client: loading each received document is
/// most of a fresh client's work, and on one thread it bounded the run.
pub async fn full_sync(url: &str, ids: &[DocumentId]) -> anyhow::Result<(f64, u64)> {
    let started = Instant::now();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let mut conn = Conn::connect(url, "fresh-client", None).await?;
    let done = conn
        .fetch_all(ids, 64, workers, started + FULL_SYNC_LIMIT)
        .await?;
    if done < ids.len() {
        bail!(
            "unfinished: {done} of {} documents in {} s",
            ids.len(),
            FULL_SYNC_LIMIT.as_secs()
        );
    }
    let secs = started.elapsed().as_secs_f64();
    let bytes = conn.bytes_in + conn.bytes_out;
    conn.close().await;
    Ok((secs, bytes))
}

/// A client that was in sync reconnects after one edit elsewhere: (bytes, round trips).
pub async fn reconnect(url: &str) -> anyhow::Result<(u64, u64)> {
    let storage = format!("bench-{}", DocumentId::random());
    let mut a = Conn::connect(url, "reconnecting-client", Some(&storage)).await?;
    let mut doc = small_doc(0);
    for k in 1..200 {
        let mut tx = doc.transaction();
        let _ = tx.put(ROOT, "n", k);
        tx.commit();
    }
    let id = a.create(doc).await?;
    until(&mut a, |c| c.in_sync(&id)).await?;
    let saved = a.docs[&id].sync.encode();
    let ours = a.docs[&id].doc.clone();
    a.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut b = Conn::connect(url, "other-editor", None).await?;
    b.request(id).await?;
    until(&mut b, |c| !c.heads(&id).is_empty()).await?;
    b.change(id, |tx| {
        let _ = tx.put(ROOT, "edited", "elsewhere");
    })
    .await?;
    until(&mut b, |c| c.in_sync(&id)).await?;
    b.close().await;

    let mut a = Conn::connect(url, "reconnecting-client", Some(&storage)).await?;
    let bytes0 = a.bytes_in + a.bytes_out;
    a.restore(id, ours, &saved)?;
    a.sync(id, false).await?;
    let mut round_trips = 0;
    let has_edit =
        |c: &Conn| c.docs[&id].doc.get(ROOT, "edited").ok().flatten().is_some() && c.in_sync(&id);
    while !has_edit(&a) {
        if let Event::Changed(_) | Event::Acked(_) = a.next(WAIT).await? {
            round_trips += 1;
        }
    }
    let bytes = a.bytes_in + a.bytes_out - bytes0;
    a.close().await;
    Ok((bytes, round_trips))
}
