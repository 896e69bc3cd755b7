//! The worker pool behind [`Conn::fetch_all`]: a fresh client's documents fetched with
//! their messages applied on worker threads, each document always on the same worker.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use anyhow::{bail, Context};
use ibis_shared::protocol::{decode, Message};
use ibis_shared::DocumentId;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message as Ws;

use super::{Conn, DocState};

impl Conn {
    /// Fetches every listed document that has no content yet, at most `in_flight` of them
    /// requested and not yet applied at a time, and applies what the server sends on
    /// `workers` threads, so that this client keeps up with a fast server (loading a
    /// received document is most of a fresh client's work). The protocol is what
    /// [`Conn::request`] and [`Conn::handle`] would do: this task keeps the socket, sends
    /// the requests and the workers' replies and counts bytes and frames; each document
    /// belongs to one worker, so its messages are applied in the order they came.
    ///
    /// Returns how many of the listed documents have content: all of them, unless
    /// `deadline` passed first. The documents are back in [`Conn::docs`] either way.
    pub async fn fetch_all(
        &mut self,
        ids: &[DocumentId],
        in_flight: usize,
        workers: usize,
        deadline: Instant,
    ) -> anyhow::Result<usize> {
        let n = workers.max(1);
        let mut fetch = Fetch::default();
        let mut shards: Vec<HashMap<DocumentId, DocState>> =
            (0..n).map(|_| HashMap::new()).collect();
        for (id, state) in self.docs.drain() {
            if !state.doc.get_heads().is_empty() {
                fetch.has_content.insert(id);
            }
            fetch.known.insert(id);
            shards[worker_of(&id, n)].insert(id, state);
        }
        let (reply_tx, mut replies) = mpsc::unbounded_channel();
        let mut jobs = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        let mut outcome = Ok(0);
        for (i, docs) in shards.into_iter().enumerate() {
            let (job_tx, job_rx) = std::sync::mpsc::channel();
            let reply_tx = reply_tx.clone();
            match std::thread::Builder::new()
                .name(format!("fetch-{i}"))
                .spawn(move || fetch_worker(docs, job_rx, reply_tx))
            {
                Ok(thread) => {
                    jobs.push(job_tx);
                    threads.push(thread);
                }
                Err(e) => {
                    outcome = Err(anyhow::Error::new(e).context("starting a fetch worker"));
                    break;
                }
            }
        }
        drop(reply_tx);
        if outcome.is_ok() {
            outcome = self
                .fetch_loop(&mut fetch, &jobs, &mut replies, ids, in_flight, deadline)
                .await;
        }
        // The workers end once their queues are closed and worked off. After a success,
        // what they still have to say goes out (a last acknowledgement, say), as it would
        // have from `handle`; after a failure, nobody listens and they stop at once.
        drop(jobs);
        if outcome.is_ok() {
            while let Some(reply) = replies.recv().await {
                if let Err(e) = self.file_reply(reply, &mut fetch).await {
                    outcome = Err(e);
                    break;
                }
            }
        }
        drop(replies);
        let joined = tokio::task::spawn_blocking(move || {
            threads.into_iter().map(|t| t.join()).collect::<Vec<_>>()
        })
        .await
        .context("joining the fetch workers")?;
        let mut panicked = false;
        for docs in joined {
            match docs {
                Ok(docs) => self.docs.extend(docs),
                Err(_) => panicked = true,
            }
        }
        if let Some(state) = fetch.lost.and_then(|id| self.docs.get_mut(&id)) {
            state.unavailable = true;
        }
        let done = outcome?;
        if panicked {
            bail!("a fetch worker panicked");
        }
        if done == ids.len() {
            if let Some(id) = ids.iter().find(|id| self.heads(id).is_empty()) {
                bail!("document {id} has no content after the fetch");
            }
        }
        Ok(done)
    }

    /// [`Conn::fetch_all`]'s work while its workers run.
    async fn fetch_loop(
        &mut self,
        fetch: &mut Fetch,
        jobs: &[std::sync::mpsc::Sender<Job>],
        replies: &mut mpsc::UnboundedReceiver<anyhow::Result<Reply>>,
        ids: &[DocumentId],
        in_flight: usize,
        deadline: Instant,
    ) -> anyhow::Result<usize> {
        let give = |id: DocumentId, job: Job| {
            jobs[worker_of(&id, jobs.len())]
                .send(job)
                .map_err(|_| anyhow::anyhow!("a fetch worker stopped"))
        };
        let mut next = 0;
        let timeout = tokio::time::sleep_until(deadline.into());
        tokio::pin!(timeout);
        loop {
            while fetch.pending.len() < in_flight && next < ids.len() {
                let id = ids[next];
                next += 1;
                if fetch.has_content.contains(&id) || !fetch.pending.insert(id) {
                    continue;
                }
                if fetch.known.insert(id) {
                    // New here: the request is made on this task, so that it goes out
                    // without waiting for the worker's queue; the worker gets the state
                    // before any answer (its queue keeps the order).
                    let mut state = DocState::empty();
                    let data = state.outgoing();
                    give(id, Job::Adopt(id, Box::new(state)))?;
                    if let Some(data) = data {
                        self.send_sync(id, data, true).await?;
                    }
                } else {
                    give(id, Job::Request(id))?;
                }
            }
            if next == ids.len() && fetch.pending.is_empty() {
                return Ok(ids.len());
            }
            let done = next - fetch.pending.len();
            if Instant::now() >= deadline {
                return Ok(done);
            }
            tokio::select! {
                biased;
                reply = replies.recv() => {
                    let reply = reply.context("the fetch workers stopped")?;
                    self.file_reply(reply, fetch).await?;
                }
                frame = self.frames.recv() => {
                    let frame = match frame {
                        Some(Ok((frame, _))) => frame,
                        Some(Err(e)) => bail!("WebSocket error: {e}"),
                        None => bail!("the connection ended"),
                    };
                    let Ws::Binary(bytes) = frame else {
                        continue;
                    };
                    self.bytes_in += bytes.len() as u64;
                    self.frames_in += 1;
                    match decode(&bytes, &self.limits).context("a frame from the server")? {
                        Message::Sync {
                            document_id, data, ..
                        }
                        | Message::Request {
                            document_id, data, ..
                        } => {
                            fetch.known.insert(document_id);
                            give(document_id, Job::Sync(document_id, data))?;
                        }
                        Message::DocUnavailable { document_id, .. } => {
                            fetch.lost = Some(document_id);
                            bail!("the server lost document {document_id}");
                        }
                        Message::Error { message, .. } => {
                            bail!("the server reported an error: {message}")
                        }
                        _ => {}
                    }
                }
                () = &mut timeout => return Ok(done),
            }
        }
    }

    /// Files one worker's reply: counts its changes, sends its sync message on, and marks
    /// a document that got content.
    async fn file_reply(
        &mut self,
        reply: anyhow::Result<Reply>,
        fetch: &mut Fetch,
    ) -> anyhow::Result<()> {
        let reply = reply?;
        self.changes_applied += reply.applied;
        if let Some(data) = reply.data {
            self.send_sync(reply.id, data, reply.request).await?;
        }
        if reply.changed {
            fetch.has_content.insert(reply.id);
            fetch.pending.remove(&reply.id);
        }
        Ok(())
    }
}

/// What [`Conn::fetch_all`]'s task knows while its workers hold the documents.
#[derive(Default)]
struct Fetch {
    /// Documents with content.
    has_content: HashSet<DocumentId>,
    /// Documents a worker holds.
    known: HashSet<DocumentId>,
    /// Requested, and not applied yet.
    pending: HashSet<DocumentId>,
    /// The document the server said it does not have.
    lost: Option<DocumentId>,
}

/// Work for one of [`Conn::fetch_all`]'s workers.
enum Job {
    /// A document requested from the main task: the worker holds it from now on.
    Adopt(DocumentId, Box<DocState>),
    /// Make a request for a document the worker holds.
    Request(DocumentId),
    /// A sync message's payload, to apply and answer.
    Sync(DocumentId, Vec<u8>),
}

/// What a worker did with one job.
struct Reply {
    id: DocumentId,
    /// The document's heads changed.
    changed: bool,
    /// Changes applied.
    applied: u64,
    /// The encoded sync message to send, if there is anything to say.
    data: Option<Vec<u8>>,
    /// `data` goes out as a `request` message (else a `sync` message).
    request: bool,
}

/// Which of `n` workers holds a document (always the same one).
fn worker_of(id: &DocumentId, n: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    id.hash(&mut hasher);
    (hasher.finish() % n.max(1) as u64) as usize
}

/// One of [`Conn::fetch_all`]'s workers: applies its documents' messages until its queue
/// closes (or nobody listens any more), then hands the documents back.
fn fetch_worker(
    mut docs: HashMap<DocumentId, DocState>,
    jobs: std::sync::mpsc::Receiver<Job>,
    replies: mpsc::UnboundedSender<anyhow::Result<Reply>>,
) -> HashMap<DocumentId, DocState> {
    for job in jobs {
        let reply = match job {
            Job::Adopt(id, state) => {
                docs.insert(id, *state);
                continue;
            }
            Job::Request(id) => {
                let state = docs.entry(id).or_insert_with(DocState::empty);
                Ok(Reply {
                    id,
                    changed: false,
                    applied: 0,
                    data: state.outgoing(),
                    request: true,
                })
            }
            Job::Sync(id, data) => {
                let state = docs.entry(id).or_insert_with(DocState::empty);
                // A panic in automerge on what a server sent is an error of that document,
                // not the end of the run.
                catch_unwind(AssertUnwindSafe(|| {
                    let (changed, applied) = state.receive(&data)?;
                    Ok(Reply {
                        id,
                        changed,
                        applied,
                        data: state.outgoing(),
                        request: false,
                    })
                }))
                .unwrap_or_else(|_| Err(anyhow::anyhow!("automerge panicked")))
                .with_context(|| format!("document {id}"))
            }
        };
        if replies.send(reply).is_err() {
            break;
        }
    }
    docs
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::sync::{self, SyncDoc};
    use automerge::transaction::Transactable;
    use automerge::Automerge;

    #[test]
    fn a_document_always_goes_to_the_same_worker() {
        for _ in 0..100 {
            let id = DocumentId::random();
            let w = worker_of(&id, 3);
            assert!(w < 3);
            assert_eq!(worker_of(&id, 3), w);
            assert_eq!(worker_of(&id, 1), 0);
        }
    }

    #[test]
    fn a_worker_applies_answers_and_hands_its_documents_back() {
        let mut served = Automerge::new();
        let mut tx = served.transaction();
        tx.put(automerge::ROOT, "title", "a practice").unwrap();
        tx.commit();
        let id = DocumentId::random();
        let (jobs, queue) = std::sync::mpsc::channel();
        let (reply_tx, mut replies) = mpsc::unbounded_channel();
        let worker = std::thread::spawn(move || fetch_worker(HashMap::new(), queue, reply_tx));

        let mut client = DocState::empty();
        let request = client.outgoing().expect("a request");
        jobs.send(Job::Adopt(id, Box::new(client))).unwrap();
        let mut server = sync::State::new();
        served
            .receive_sync_message(&mut server, sync::Message::decode(&request).unwrap())
            .unwrap();
        let answer = served.generate_sync_message(&mut server).unwrap().encode();
        jobs.send(Job::Sync(id, answer)).unwrap();
        let reply = replies.blocking_recv().unwrap().unwrap();
        assert_eq!(reply.id, id);
        assert!(reply.changed);
        assert_eq!(reply.applied, 1);
        assert!(!reply.request);

        // Garbage from a server is an error of that document, and the worker goes on.
        jobs.send(Job::Sync(id, vec![1, 2, 3])).unwrap();
        let error = replies.blocking_recv().unwrap().err().unwrap();
        assert!(format!("{error:#}").contains(&id.to_string()));
        jobs.send(Job::Request(id)).unwrap();
        assert!(replies.blocking_recv().unwrap().unwrap().request);

        drop(jobs);
        let docs = worker.join().unwrap();
        assert_eq!(docs[&id].doc.get_heads(), served.get_heads());
        assert!(replies.blocking_recv().is_none());
    }
}
