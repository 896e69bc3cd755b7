//! ibis-shared: what the ibis node and the ibis app have in common.
//!
//! - [`bounds`]: automerge's binary formats measured with bounded memory before they are loaded.
//! - [`document_id`]: automerge-repo document ids and URLs.
//! - [`i18n`]: interface strings in English, French and Spanish (app and node pages).
//! - [`search`]: search and facets in memory (the app's), meaning what the node's does.
//! - [`protocol`]: the automerge-repo wire protocol v1 (messages and their CBOR codec).
//! - [`model`]: practices, catalogues, the network directory and events as documents.
//! - [`sync`]: the sans-IO sync engine that speaks it, shared by node and app.

pub mod bounds;
mod cbor;
pub mod document_id;
#[doc(hidden)]
pub mod fuzzing;
pub mod i18n;
pub mod model;
pub mod presence;
pub mod protocol;
pub mod search;
pub mod sync;

pub use document_id::{AutomergeUrl, DocumentId, DocumentIdError};
