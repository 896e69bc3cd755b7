//! The browser's durable storage: IndexedDB.
//!
//! Three object stores, with out-of-line keys:
//! - `chunks`: `[document id, seq]` → a snapshot (seq 0) or an incremental chunk;
//! - `sync_states`: `[document id, peer storage id]` → an encoded sync state;
//! - `meta`: string → string (this browser's peer id, storage id, unsynced changes…);
//! - `summaries`: document id → a practice's list record and the heads it was made at
//!   (JSON). Derived data: the list renders from it at start without loading thousands of
//!   documents, and a summary that does not match its document's heads is remade.
//!
//! A batch of writes is one `readwrite` transaction; its future resolves when the
//! transaction has completed (is durable), which is what the engine's ordering rule needs.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use futures::channel::oneshot;
use ibis_shared::protocol::StorageId;
use ibis_shared::sync::{StoreOp, StoredDocument};
use ibis_shared::DocumentId;
use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    IdbDatabase, IdbKeyRange, IdbObjectStore, IdbRequest, IdbTransaction, IdbTransactionMode,
};

const DB_NAME: &str = "ibis";
/// 2 added `summaries`.
const DB_VERSION: u32 = 2;
const CHUNKS: &str = "chunks";
const SYNC_STATES: &str = "sync_states";
const META: &str = "meta";
const SUMMARIES: &str = "summaries";
/// A stored summary larger than this is ignored (and remade from its document).
const MAX_SUMMARY: usize = 1 << 20;
/// Larger than any seq we write.
const MAX_SEQ: f64 = 9.0e15;

#[derive(Debug, Clone, thiserror::Error)]
pub enum IdbError {
    #[error("IndexedDB is not available in this browser")]
    Unavailable,
    #[error("IndexedDB: {0}")]
    Js(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
}

impl From<JsValue> for IdbError {
    fn from(v: JsValue) -> Self {
        let text = v
            .dyn_ref::<web_sys::DomException>()
            .map(|e| format!("{}: {}", e.name(), e.message()))
            .or_else(|| v.as_string())
            .unwrap_or_else(|| format!("{v:?}"));
        IdbError::Js(text)
    }
}

/// Resolves when the request succeeds (with its result) or fails.
///
/// The handlers are attached at once, not when the future is first polled: a caller may
/// issue many requests in one transaction and await them afterwards, in any order, without
/// missing an event that fired in between.
fn request(req: &IdbRequest) -> impl std::future::Future<Output = Result<JsValue, IdbError>> {
    let (tx, rx) = oneshot::channel::<Result<JsValue, IdbError>>();
    let tx = Rc::new(RefCell::new(Some(tx)));
    let ok = {
        let tx = tx.clone();
        let req = req.clone();
        Closure::<dyn FnMut()>::new(move || {
            if let Some(tx) = tx.borrow_mut().take() {
                let _ = tx.send(req.result().map_err(IdbError::from));
            }
        })
    };
    let err = {
        let tx = tx.clone();
        let req = req.clone();
        Closure::<dyn FnMut()>::new(move || {
            if let Some(tx) = tx.borrow_mut().take() {
                let error = req
                    .error()
                    .ok()
                    .flatten()
                    .map(|e| format!("{}: {}", e.name(), e.message()))
                    .unwrap_or_else(|| "request failed".into());
                let _ = tx.send(Err(IdbError::Js(error)));
            }
        })
    };
    req.set_onsuccess(Some(ok.as_ref().unchecked_ref()));
    req.set_onerror(Some(err.as_ref().unchecked_ref()));
    let req = req.clone();
    async move {
        let result = rx
            .await
            .unwrap_or(Err(IdbError::Js("request dropped".into())));
        req.set_onsuccess(None);
        req.set_onerror(None);
        drop((ok, err));
        result
    }
}

/// Resolves when the transaction completes (its writes are durable) or fails.
async fn completion(txn: &IdbTransaction) -> Result<(), IdbError> {
    let (tx, rx) = oneshot::channel::<Result<(), IdbError>>();
    let tx = Rc::new(RefCell::new(Some(tx)));
    let complete = {
        let tx = tx.clone();
        Closure::<dyn FnMut()>::new(move || {
            if let Some(tx) = tx.borrow_mut().take() {
                let _ = tx.send(Ok(()));
            }
        })
    };
    let failed = {
        let tx = tx.clone();
        let txn = txn.clone();
        Closure::<dyn FnMut()>::new(move || {
            if let Some(tx) = tx.borrow_mut().take() {
                let error = txn
                    .error()
                    .map(|e| format!("{}: {}", e.name(), e.message()))
                    .unwrap_or_else(|| "transaction aborted".into());
                let _ = tx.send(Err(IdbError::Js(error)));
            }
        })
    };
    txn.set_oncomplete(Some(complete.as_ref().unchecked_ref()));
    txn.set_onerror(Some(failed.as_ref().unchecked_ref()));
    txn.set_onabort(Some(failed.as_ref().unchecked_ref()));
    let result = rx
        .await
        .unwrap_or(Err(IdbError::Js("transaction dropped".into())));
    drop((complete, failed));
    result
}

fn key(a: &str, b: JsValue) -> JsValue {
    Array::of2(&JsValue::from_str(a), &b).into()
}

fn range_of(document: &str) -> Result<JsValue, IdbError> {
    Ok(IdbKeyRange::bound(
        &key(document, JsValue::from_f64(-1.0)),
        &key(document, JsValue::from_f64(MAX_SEQ)),
    )?
    .into())
}

fn bytes(value: &JsValue) -> Result<Vec<u8>, IdbError> {
    value
        .dyn_ref::<Uint8Array>()
        .map(Uint8Array::to_vec)
        .ok_or_else(|| IdbError::Corrupt("a stored value is not bytes".into()))
}

/// This browser's IndexedDB database.
#[derive(Clone)]
pub struct Db {
    db: IdbDatabase,
    /// The next chunk seq per document (known once it was loaded or written). (A map type
    /// the replica has already: each new one adds its own code to the app.)
    next_seq: Rc<RefCell<BTreeMap<DocumentId, u32>>>,
}

impl Db {
    pub async fn open() -> Result<Self, IdbError> {
        let factory = web_sys::window()
            .and_then(|w| w.indexed_db().ok().flatten())
            .ok_or(IdbError::Unavailable)?;
        let open = factory.open_with_u32(DB_NAME, DB_VERSION)?;
        let upgrade = {
            let open = open.clone();
            Closure::<dyn FnMut()>::new(move || {
                if let Ok(result) = open.result() {
                    if let Ok(db) = result.dyn_into::<IdbDatabase>() {
                        let names = db.object_store_names();
                        for store in [CHUNKS, SYNC_STATES, META, SUMMARIES] {
                            if !names.contains(store) {
                                let _ = db.create_object_store(store);
                            }
                        }
                    }
                }
            })
        };
        open.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
        let result = request(&open).await;
        open.set_onupgradeneeded(None);
        drop(upgrade);
        let db = result?
            .dyn_into::<IdbDatabase>()
            .map_err(|_| IdbError::Js("open did not return a database".into()))?;
        Ok(Self {
            db,
            next_seq: Rc::default(),
        })
    }

    fn transaction(
        &self,
        stores: &[&str],
        mode: IdbTransactionMode,
    ) -> Result<IdbTransaction, IdbError> {
        let names = Array::new();
        for s in stores {
            names.push(&JsValue::from_str(s));
        }
        Ok(self
            .db
            .transaction_with_str_sequence_and_mode(&names, mode)?)
    }

    fn store(txn: &IdbTransaction, name: &str) -> Result<IdbObjectStore, IdbError> {
        Ok(txn.object_store(name)?)
    }

    /// Every document with stored chunks.
    pub async fn document_ids(&self) -> Result<Vec<DocumentId>, IdbError> {
        let txn = self.transaction(&[CHUNKS], IdbTransactionMode::Readonly)?;
        let keys = request(&Self::store(&txn, CHUNKS)?.get_all_keys()?).await?;
        let mut ids = Vec::new();
        for key in Array::from(&keys).iter() {
            let doc = Array::from(&key).get(0).as_string().unwrap_or_default();
            match DocumentId::parse(&doc) {
                Ok(id) if ids.last() != Some(&id) => ids.push(id),
                Ok(_) => {}
                Err(_) => return Err(IdbError::Corrupt(format!("chunk key `{doc}`"))),
            }
        }
        ids.dedup();
        Ok(ids)
    }

    /// Documents' chunks and saved sync states, in one read transaction: every request is issued before any is
    /// awaited, so the browser pipelines them (one round trip per document would make a
    /// catalogue of thousands take seconds to open). One result per id, in order.
    pub async fn load_many(
        &self,
        ids: &[DocumentId],
    ) -> Result<Vec<Result<Option<StoredDocument>, IdbError>>, IdbError> {
        let txn = self.transaction(&[CHUNKS, SYNC_STATES], IdbTransactionMode::Readonly)?;
        let chunks_store = Self::store(&txn, CHUNKS)?;
        let states_store = Self::store(&txn, SYNC_STATES)?;
        let mut pending = Vec::with_capacity(ids.len());
        for id in ids {
            let doc = id.to_string();
            let range = range_of(&doc)?;
            let peers = range_of_peers(&doc)?;
            pending.push((
                request(&chunks_store.get_all_keys_with_key(&range)?),
                request(&chunks_store.get_all_with_key(&range)?),
                request(&states_store.get_all_keys_with_key(&peers)?),
                request(&states_store.get_all_with_key(&peers)?),
            ));
        }
        let mut out = Vec::with_capacity(ids.len());
        for (id, (keys, values, state_keys, state_values)) in ids.iter().zip(pending) {
            let (keys, values, state_keys, state_values) = (
                keys.await?,
                values.await?,
                state_keys.await?,
                state_values.await?,
            );
            out.push(self.stored_document(id, &keys, &values, &state_keys, &state_values));
        }
        Ok(out)
    }

    fn stored_document(
        &self,
        id: &DocumentId,
        keys: &JsValue,
        values: &JsValue,
        state_keys: &JsValue,
        state_values: &JsValue,
    ) -> Result<Option<StoredDocument>, IdbError> {
        let mut chunks = Vec::new();
        for value in Array::from(values).iter() {
            chunks.push(bytes(&value)?);
        }
        if chunks.is_empty() {
            return Ok(None);
        }
        let max_seq = Array::from(keys)
            .iter()
            .filter_map(|k| Array::from(&k).get(1).as_f64())
            .fold(0.0, f64::max);
        self.next_seq.borrow_mut().insert(*id, max_seq as u32 + 1);
        let mut sync_states = Vec::new();
        for (k, v) in Array::from(state_keys)
            .iter()
            .zip(Array::from(state_values).iter())
        {
            let peer = Array::from(&k).get(1).as_string().unwrap_or_default();
            sync_states.push((StorageId::new(peer), bytes(&v)?));
        }
        Ok(Some(StoredDocument {
            chunks,
            sync_states,
        }))
    }

    /// Every stored practice summary (id, JSON); unreadable entries are left out.
    pub async fn summaries(&self) -> Result<Vec<(DocumentId, String)>, IdbError> {
        let txn = self.transaction(&[SUMMARIES], IdbTransactionMode::Readonly)?;
        let store = Self::store(&txn, SUMMARIES)?;
        let keys = request(&store.get_all_keys()?);
        let values = request(&store.get_all()?);
        let (keys, values) = (keys.await?, values.await?);
        Ok(Array::from(&keys)
            .iter()
            .zip(Array::from(&values).iter())
            .filter_map(|(k, v)| {
                let id = DocumentId::parse(&k.as_string()?).ok()?;
                let json = v.as_string().filter(|j| j.len() <= MAX_SUMMARY)?;
                Some((id, json))
            })
            .collect())
    }

    /// Applies writes (and summaries) in one transaction and resolves once it is durable.
    pub async fn apply(
        &self,
        ops: &[StoreOp],
        summaries: &[(DocumentId, String)],
    ) -> Result<(), IdbError> {
        if ops.is_empty() && summaries.is_empty() {
            return Ok(());
        }
        let txn = self.transaction(
            &[CHUNKS, SYNC_STATES, SUMMARIES],
            IdbTransactionMode::Readwrite,
        )?;
        let chunks = Self::store(&txn, CHUNKS)?;
        let states = Self::store(&txn, SYNC_STATES)?;
        let summary_store = Self::store(&txn, SUMMARIES)?;
        for (document, json) in summaries {
            summary_store.put_with_key(
                &JsValue::from_str(json),
                &JsValue::from_str(&document.to_string()),
            )?;
        }
        for op in ops {
            match op {
                StoreOp::AppendChanges { document, chunk } => {
                    let seq = {
                        let mut next = self.next_seq.borrow_mut();
                        let seq = next.entry(*document).or_insert(1);
                        let this = *seq;
                        *seq += 1;
                        f64::from(this)
                    };
                    chunks.put_with_key(
                        &Uint8Array::from(chunk.as_slice()),
                        &key(&document.to_string(), JsValue::from_f64(seq)),
                    )?;
                }
                StoreOp::ReplaceWithSnapshot { document, snapshot } => {
                    let doc = document.to_string();
                    chunks.delete(&range_of(&doc)?)?;
                    chunks.put_with_key(
                        &Uint8Array::from(snapshot.as_slice()),
                        &key(&doc, JsValue::from_f64(0.0)),
                    )?;
                    self.next_seq.borrow_mut().insert(*document, 1);
                }
                StoreOp::SaveSyncState {
                    document,
                    peer,
                    state,
                } => {
                    states.put_with_key(
                        &Uint8Array::from(state.as_slice()),
                        &key(&document.to_string(), JsValue::from_str(peer.as_str())),
                    )?;
                }
                StoreOp::Erase { document } => {
                    let doc = document.to_string();
                    chunks.delete(&range_of(&doc)?)?;
                    states.delete(&range_of_peers(&doc)?)?;
                    summary_store.delete(&JsValue::from_str(&doc))?;
                    self.next_seq.borrow_mut().remove(document);
                }
            }
        }
        completion(&txn).await
    }

    pub async fn meta(&self, name: &str) -> Result<Option<String>, IdbError> {
        let txn = self.transaction(&[META], IdbTransactionMode::Readonly)?;
        let value = request(&Self::store(&txn, META)?.get(&JsValue::from_str(name))?).await?;
        Ok(value.as_string())
    }

    pub async fn set_meta(&self, name: &str, value: &str) -> Result<(), IdbError> {
        let txn = self.transaction(&[META], IdbTransactionMode::Readwrite)?;
        Self::store(&txn, META)?
            .put_with_key(&JsValue::from_str(value), &JsValue::from_str(name))?;
        completion(&txn).await
    }
}

fn range_of_peers(document: &str) -> Result<JsValue, IdbError> {
    Ok(IdbKeyRange::bound(
        &key(document, JsValue::from_str("")),
        &key(document, JsValue::from_str("\u{ffff}")),
    )?
    .into())
}
