//! Carrying out the engine's output in the browser: one job after another, each job's
//! writes in one IndexedDB transaction (awaited until durable), then its frames, then its
//! loads (many documents per read transaction); and the engine's clock.

use std::cell::RefCell;
use std::rc::Rc;

use futures::channel::mpsc;
use futures::StreamExt;
use ibis_shared::sync::{Input, StoreOp};
use leptos::prelude::*;

use super::{now_ms, Job, Replica};

/// Carries out jobs one after another: writes (until durable), then frames, then loads.
pub(super) async fn run_jobs(replica: Rc<Replica>, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.next().await {
        // Group commit: take whatever else is queued into the same transaction.
        let mut jobs = vec![first];
        while let Ok(more) = rx.try_recv() {
            jobs.push(more);
        }
        let count = jobs.len();
        let writes: Vec<StoreOp> = jobs
            .iter_mut()
            .flat_map(|j| std::mem::take(&mut j.writes))
            .collect();
        let summaries = std::mem::take(&mut *replica.summaries_to_store.borrow_mut());
        if let Err(e) = replica.db.apply(&writes, &summaries).await {
            // Nothing of these jobs is durable: their frames must not go out.
            replica
                .signals
                .notice
                .set(Some(format!("could not save changes in this browser: {e}")));
            replica
                .queued
                .set(replica.queued.get().saturating_sub(count));
            continue;
        }
        for job in jobs {
            if let Some(socket) = replica.socket.borrow().as_ref() {
                for (conn, frame) in &job.sends {
                    if socket.conn() == Some(*conn) {
                        socket.send(frame);
                    }
                }
                for conn in &job.closes {
                    if socket.conn() == Some(*conn) {
                        socket.close();
                    }
                }
            }
            for batch in job.loads.chunks(LOAD_BATCH) {
                let results = match replica.db.load_many(batch).await {
                    Ok(results) => results,
                    Err(e) => vec![Err(e); batch.len()],
                };
                {
                    let mut engine = replica.engine.borrow_mut();
                    for (document, result) in batch.iter().zip(results) {
                        let result = result.map_err(|e| e.to_string());
                        engine.handle(
                            now_ms(),
                            Input::Loaded {
                                document: *document,
                                result,
                            },
                        );
                    }
                }
                replica.pump();
            }
        }
        replica
            .queued
            .set(replica.queued.get().saturating_sub(count));
        if replica.queued.get() == 0
            && !replica.signals.settled.get_untracked()
            && !replica.summaries.borrow().is_empty()
        {
            // Everything this browser had stored and the catalogue lists is open.
            mark_once("ibis:replica-settled");
            replica.signals.revision.update(|r| *r += 1);
            replica.signals.settled.set(true);
        }
    }
}

/// Documents read from IndexedDB in one transaction.
const LOAD_BATCH: usize = 256;

/// Marks a named point in the page's performance timeline, the first time only (read by
/// the browser benchmark; visible in the browser's developer tools).
pub fn mark_once(name: &'static str) {
    thread_local! {
        static MARKED: RefCell<Vec<&'static str>> = const { RefCell::new(Vec::new()) };
    }
    let first = MARKED.with(|m| {
        let mut marked = m.borrow_mut();
        let first = !marked.contains(&name);
        marked.push(name);
        first
    });
    if first {
        if let Some(performance) = web_sys::window().and_then(|w| w.performance()) {
            let _ = performance.mark(name);
        }
    }
}

pub(super) fn start_ticks(replica: Rc<Replica>) {
    leptos::task::spawn_local(async move {
        loop {
            sleep(1_000).await;
            replica.engine.borrow_mut().handle(now_ms(), Input::Tick);
            replica.pump();
        }
    });
}

/// Wakes the engine at its next deadline (a message to the node that waits for the node's
/// answer goes without it then), unless a wake-up is already pending.
pub(super) fn schedule_wake(replica: &Replica) {
    let Some(at) = replica.engine.borrow().next_deadline() else {
        return;
    };
    if replica.wake_scheduled.replace(true) {
        return;
    }
    let wait = at.saturating_sub(now_ms()).clamp(1, 1_000) as i32;
    leptos::task::spawn_local(async move {
        sleep(wait).await;
        if let Some(replica) = super::replica() {
            replica.wake_scheduled.set(false);
            replica.engine.borrow_mut().handle(now_ms(), Input::Wake);
            replica.pump();
        }
    });
}

/// Waits `ms` milliseconds.
pub async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}
