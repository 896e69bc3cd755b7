//! Inspecting automerge's binary formats with bounded memory and CPU, before anything is
//! inflated or applied.
//!
//! automerge trusts the sizes and counts its formats claim. A compressed change chunk is
//! inflated with no limit (a 1 MB chunk of deflated zeros becomes 1 GiB), so are a saved
//! document's deflated columns; a run-length encoded column of a few bytes can claim millions
//! of operations, or millions of predecessors for one operation, which automerge then
//! iterates and stores; a Bloom filter's `num_probes` is a `Vec::with_capacity` and a loop
//! per hash when the next message is generated (and with entries but no bits, a division
//! by zero); hash lists and change lists claim any count.
//!
//! This module reads the same bytes first, with its own small parser, and refuses what is
//! over the [`Bounds`]:
//! - [`check_envelope`]: a sync message's envelope (its hash lists, `have`s and their Bloom
//!   filters, the change list's size), in O(length) time and no allocation;
//! - [`measure_sync_message`] and [`measure_chunks`]: the chunks behind the changes (a sync
//!   message's, or bytes for `Automerge::load`): their types (bundles are refused), their
//!   inflated size in all, at most `min(max_inflated_bytes, max(min_inflation_allowance,
//!   max_inflation_ratio × input length))`, inflated in pieces and stopped as soon as that is exceeded, and the rows their
//!   columns hold: operations, changes, and op references (predecessors, successors,
//!   dependencies). Rows are counted from the run headers of every column, the largest
//!   count of a section being its rows, so no column can claim more than the bound either.
//!
//! Memory: a compressed change, or a deflated column of a document that is not a value
//! column, is inflated into a buffer no larger than the budget left; value columns are only
//! counted, through a fixed buffer. Checksums are not verified (automerge does that); what
//! passes here may still be refused by automerge, and anything automerge accepts that real
//! peers never send (a chunk split between two entries of a sync message's change list,
//! columns out of order, a deflated column in a change) is refused here.

use flate2::{Decompress, FlushDecompress, Status};

mod columns;
#[doc(hidden)]
pub mod hostile;
use columns::{section, Columns, Reader, Tally};

/// How much one sync message, or one stored document, may make automerge spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Most bytes the changes of one sync message (or one stored document) may inflate to,
    /// in all. Default 32 MiB.
    pub max_inflated_bytes: usize,
    /// Most the inflated size of the input may be, as a multiple of the input's length.
    /// Default 64.
    pub max_inflation_ratio: usize,
    /// What any input may inflate to whatever its length (default 1 MiB): small saved
    /// documents of very repetitive text legitimately inflate more than the ratio allows.
    pub min_inflation_allowance: usize,
    /// Most operations in the changes of one sync message / one document; also the most op
    /// references (predecessors, successors, dependencies). Default 2_000_000.
    pub max_ops: u64,
    /// Most change chunks in one sync message, and most changes in all (a document chunk's
    /// changes count one each). Default 100_000.
    pub max_changes: usize,
    /// Most hashes in `heads`, `need`, one `have`'s `last_sync`, or a change's dependencies.
    /// Default 10_000.
    pub max_hashes: usize,
    /// Most `have` entries. Default 64.
    pub max_haves: usize,
    /// Most Bloom filter probes (automerge writes 7). Default 64.
    pub max_bloom_probes: u32,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_inflated_bytes: 32 * 1024 * 1024,
            max_inflation_ratio: 64,
            min_inflation_allowance: 1024 * 1024,
            max_ops: 2_000_000,
            max_changes: 100_000,
            max_hashes: 10_000,
            max_haves: 64,
            max_bloom_probes: 64,
        }
    }
}

/// What a sync message's envelope says, read without touching its changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// 1 for message type 0x42, 2 for 0x43.
    pub version: u8,
    /// Hashes in `heads`.
    pub heads: usize,
    /// Hashes in `need`.
    pub need: usize,
    /// `have` entries.
    pub haves: usize,
    /// Entries in the change list: one change chunk each in v1 messages; in v2 a single
    /// entry holding a saved document or several chunks back to back.
    pub change_chunks: usize,
    /// Bytes in the change list's entries, in all.
    pub change_bytes: usize,
    /// The flag bits of the trailing flags section (automerge's `MessageFlags`), when there is
    /// one (peers that support v2 messages send it).
    pub flags: Option<u8>,
    /// Where the change list's entries are in the message.
    changes: std::ops::Range<usize>,
}

/// What the changes (or a stored document's chunks) come to once inflated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measured {
    /// Chunks read.
    pub chunks: usize,
    /// Their size once inflated, headers included.
    pub inflated_bytes: usize,
    /// Operations: rows of change chunks' op columns and of document chunks' op columns.
    pub ops: u64,
    /// Changes: one per change chunk, plus the rows of document chunks' change columns.
    pub changes: u64,
    /// Op references: the predecessors (changes), successors and dependencies (documents)
    /// that group columns claim.
    pub references: u64,
}

/// Why bytes are refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BoundsError {
    #[error("the input ends inside {0}")]
    Truncated(&'static str),
    #[error("malformed input: {0}")]
    Malformed(&'static str),
    #[error("not a sync message: its first byte is {0:#04x}, not 0x42 or 0x43")]
    NotSyncMessage(u8),
    #[error("{what} claims {count} entries, more than the {max} allowed")]
    TooMany {
        what: &'static str,
        count: u64,
        max: u64,
    },
    #[error("a Bloom filter asks for {probes} probes per hash, more than the {max} allowed")]
    BloomProbes { probes: u32, max: u32 },
    #[error("chunk type {0} is refused: only documents (0), changes (1) and compressed changes (2) are read, bundles (3) never are")]
    ChunkType(u8),
    #[error("{what} inflates the input to more than {limit} bytes ({ratio} times its {input} bytes, at most {max}); stopped after {inflated}")]
    Inflation {
        what: &'static str,
        limit: usize,
        ratio: usize,
        input: usize,
        max: usize,
        /// Bytes counted (inflated, or read uncompressed) when it stopped.
        inflated: usize,
    },
    #[error("the changes hold more than {max} {what} (at least {at_least})")]
    OverBudget {
        what: &'static str,
        at_least: u64,
        max: u64,
    },
    #[error("a deflate stream in {0} is corrupt or truncated")]
    Deflate(&'static str),
}

type Result<T> = std::result::Result<T, BoundsError>;

const HASH: usize = 32;
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// The piece size deflate streams are inflated in.
const INFLATE_PIECE: usize = 8 * 1024;

/// Checks a sync message's envelope (message type 0x42 or 0x43, heads, need, haves with their
/// Bloom filters, the change list, optional trailing flags) without reading the changes
/// themselves. O(length), with no allocation proportional to claimed counts. Bytes after the
/// flags are ignored, as automerge ignores them.
pub fn check_envelope(message: &[u8], bounds: &Bounds) -> Result<Envelope> {
    let mut r = Reader::new(message);
    let version = match r.byte("a sync message")? {
        0x42 => 1,
        0x43 => 2,
        other => return Err(BoundsError::NotSyncMessage(other)),
    };
    let heads = hashes(&mut r, "heads", bounds.max_hashes)?;
    let need = hashes(&mut r, "need", bounds.max_hashes)?;
    let haves = count(&mut r, "the have list", bounds.max_haves)?;
    for _ in 0..haves {
        hashes(&mut r, "a have's last_sync", bounds.max_hashes)?;
        bloom(r.prefixed("a Bloom filter")?, bounds)?;
    }
    let change_chunks = count(&mut r, "the change list", bounds.max_changes)?;
    let start = r.pos;
    let mut change_bytes = 0usize;
    for _ in 0..change_chunks {
        change_bytes = change_bytes.saturating_add(r.prefixed("the change list")?.len());
    }
    let changes = start..r.pos;
    let flags = match r.is_empty() {
        true => None,
        false => Some(
            r.prefixed("the flags")?
                .iter()
                .filter(|b| *b & 0x80 != 0)
                .fold(0, |all, b| all | (b & 0x7f)),
        ),
    };
    Ok(Envelope {
        version,
        heads,
        need,
        haves,
        change_chunks,
        change_bytes,
        flags,
        changes,
    })
}

/// Measures a sync message's changes: each chunk's type, inflated size and rows, with memory
/// bounded by the budget, stopping as soon as it is exceeded. Implies [`check_envelope`].
/// Each entry of the change list must hold whole chunks.
pub fn measure_sync_message(message: &[u8], bounds: &Bounds) -> Result<Measured> {
    let envelope = check_envelope(message, bounds)?;
    let mut meter = Meter::new(message.len(), bounds);
    let mut r = Reader::new(message.get(envelope.changes).unwrap_or_default());
    for _ in 0..envelope.change_chunks {
        meter.chunks(r.prefixed("the change list")?)?;
    }
    Ok(meter.measured())
}

/// The same for bytes meant for `Automerge::load` / `load_incremental`: chunks back to back,
/// such as a saved document followed by change chunks.
pub fn measure_chunks(bytes: &[u8], bounds: &Bounds) -> Result<Measured> {
    let mut meter = Meter::new(bytes.len(), bounds);
    meter.chunks(bytes)?;
    Ok(meter.measured())
}

fn count(r: &mut Reader<'_>, what: &'static str, max: usize) -> Result<usize> {
    let count = r.uleb(what)?;
    match usize::try_from(count) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(BoundsError::TooMany {
            what,
            count,
            max: max as u64,
        }),
    }
}

fn hashes(r: &mut Reader<'_>, what: &'static str, max: usize) -> Result<usize> {
    let n = count(r, what, max)?;
    r.take(n.saturating_mul(HASH) as u64, what)?;
    Ok(n)
}

fn bloom(bytes: &[u8], bounds: &Bounds) -> Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let mut r = Reader::new(bytes);
    let mut field = || -> Result<u32> {
        u32::try_from(r.uleb("a Bloom filter")?)
            .map_err(|_| BoundsError::Malformed("a Bloom filter's parameter exceeds 32 bits"))
    };
    let (entries, bits_per_entry, probes) = (field()?, field()?, field()?);
    if probes > bounds.max_bloom_probes {
        return Err(BoundsError::BloomProbes {
            probes,
            max: bounds.max_bloom_probes,
        });
    }
    let bytes = (u64::from(entries) * u64::from(bits_per_entry)).div_ceil(8);
    if entries > 0 && bytes == 0 {
        return Err(BoundsError::Malformed(
            "a Bloom filter has entries but no bits",
        ));
    }
    if bytes >= 1 << 28 {
        return Err(BoundsError::Malformed("a Bloom filter is 256 MiB or more"));
    }
    r.take(bytes, "a Bloom filter").map(|_| ())
}

/// Bytes counted against the inflation budget.
struct Budget {
    used: usize,
    limit: usize,
    input: usize,
    bounds: Bounds,
}

impl Budget {
    fn add(&mut self, n: usize, what: &'static str) -> Result<()> {
        self.used = self.used.saturating_add(n);
        if self.used <= self.limit {
            return Ok(());
        }
        Err(BoundsError::Inflation {
            what,
            limit: self.limit,
            ratio: self.bounds.max_inflation_ratio,
            input: self.input,
            max: self.bounds.max_inflated_bytes,
            inflated: self.used,
        })
    }

    /// Inflates a raw deflate stream in pieces, counting each; keeps the bytes in `keep`.
    fn inflate(
        &mut self,
        deflated: &[u8],
        mut keep: Option<&mut Vec<u8>>,
        what: &'static str,
    ) -> Result<()> {
        let mut inflater = Decompress::new(false);
        let mut piece = [0u8; INFLATE_PIECE];
        loop {
            let (read, written) = (inflater.total_in(), inflater.total_out());
            let rest = usize::try_from(read)
                .ok()
                .and_then(|at| deflated.get(at..))
                .unwrap_or_default();
            let status = inflater
                .decompress(rest, &mut piece, FlushDecompress::None)
                .map_err(|_| BoundsError::Deflate(what))?;
            let produced =
                usize::try_from(inflater.total_out().saturating_sub(written)).unwrap_or(usize::MAX);
            let out = piece.get(..produced).ok_or(BoundsError::Deflate(what))?;
            self.add(produced, what)?;
            if let Some(keep) = keep.as_deref_mut() {
                let need = keep.len().saturating_add(produced);
                if keep.capacity() < need {
                    // Grow by doubling, but never past what the budget has left.
                    let left = self.limit.saturating_sub(self.used);
                    let cap =
                        (keep.capacity().saturating_mul(2)).clamp(need, need.saturating_add(left));
                    keep.reserve_exact(cap - keep.len());
                }
                keep.extend_from_slice(out);
            }
            match status {
                Status::StreamEnd => return Ok(()),
                _ if produced == 0 && inflater.total_in() == read => {
                    return Err(BoundsError::Deflate(what))
                }
                _ => {}
            }
        }
    }
}

/// Measures chunks against the bounds, over one input.
struct Meter {
    budget: Budget,
    ops: Tally,
    changes: Tally,
    references: Tally,
    chunks: usize,
    max_chunks: usize,
    max_hashes: usize,
}

impl Meter {
    fn new(input: usize, bounds: &Bounds) -> Self {
        let limit = bounds.max_inflated_bytes.min(
            bounds
                .max_inflation_ratio
                .saturating_mul(input)
                .max(bounds.min_inflation_allowance),
        );
        Self {
            budget: Budget {
                used: 0,
                limit,
                input,
                bounds: *bounds,
            },
            ops: Tally::new("operations", bounds.max_ops),
            changes: Tally::new("changes", bounds.max_changes as u64),
            references: Tally::new("op references", bounds.max_ops),
            chunks: 0,
            max_chunks: bounds.max_changes,
            max_hashes: bounds.max_hashes,
        }
    }

    fn measured(&self) -> Measured {
        Measured {
            chunks: self.chunks,
            inflated_bytes: self.budget.used,
            ops: self.ops.used,
            changes: self.changes.used,
            references: self.references.used,
        }
    }

    fn chunks(&mut self, bytes: &[u8]) -> Result<()> {
        let mut r = Reader::new(bytes);
        while !r.is_empty() {
            let start = r.pos;
            if r.take(4, "a chunk header")? != MAGIC {
                return Err(BoundsError::Malformed(
                    "a chunk lacks automerge's magic bytes",
                ));
            }
            r.take(4, "a chunk header")?;
            let chunk_type = r.byte("a chunk header")?;
            if chunk_type > 2 {
                return Err(BoundsError::ChunkType(chunk_type));
            }
            let len = r.uleb("a chunk header")?;
            let header = r.pos - start;
            let data = r.take(len, "a chunk")?;
            self.chunks += 1;
            if self.chunks > self.max_chunks {
                return Err(BoundsError::TooMany {
                    what: "the chunk list",
                    count: self.chunks as u64,
                    max: self.max_chunks as u64,
                });
            }
            match chunk_type {
                0 => self.document(header, data)?,
                1 => {
                    self.budget
                        .add(header + data.len(), "an uncompressed chunk")?;
                    self.change(data)?;
                }
                _ => {
                    self.budget.add(header, "a compressed change")?;
                    let mut body = Vec::new();
                    self.budget
                        .inflate(data, Some(&mut body), "a compressed change")?;
                    self.change(&body)?;
                }
            }
        }
        Ok(())
    }

    /// A change chunk's body: the fields up to its columns, its columns, extra bytes.
    fn change(&mut self, body: &[u8]) -> Result<()> {
        let mut r = Reader::new(body);
        hashes(&mut r, "a change's dependencies", self.max_hashes)?;
        r.prefixed("a change's actor")?;
        r.uleb("a change's seq")?;
        r.uleb("a change's start op")?;
        r.skip_leb("a change's time")?;
        r.prefixed("a change's message")?;
        let actors = r.uleb("a change's actors")?;
        if actors > r.remaining() as u64 {
            return Err(BoundsError::Truncated("a change's actors"));
        }
        for _ in 0..actors {
            r.prefixed("a change's actors")?;
        }
        let columns = Columns::read(&mut r)?;
        if columns.deflated > 0 {
            return Err(BoundsError::Malformed("a change has a deflated column"));
        }
        let data = r.take(columns.total as u64, "a change's columns")?;
        self.changes.add(1)?;
        section(
            &columns,
            data,
            &mut self.budget,
            &mut self.ops,
            &mut self.references,
        )
    }

    /// A document chunk: actors, heads, change and op column metadata, their data, head
    /// indices.
    fn document(&mut self, header: usize, data: &[u8]) -> Result<()> {
        let mut r = Reader::new(data);
        let actors = r.uleb("a document's actors")?;
        if actors > r.remaining() as u64 {
            return Err(BoundsError::Truncated("a document's actors"));
        }
        for _ in 0..actors {
            r.prefixed("a document's actors")?;
        }
        hashes(&mut r, "a document's heads", self.max_hashes)?;
        let change_columns = Columns::read(&mut r)?;
        let op_columns = Columns::read(&mut r)?;
        let change_data = r.take(change_columns.total as u64, "a document's change columns")?;
        let op_data = r.take(op_columns.total as u64, "a document's op columns")?;
        let plain = (header + data.len())
            .saturating_sub(change_columns.deflated)
            .saturating_sub(op_columns.deflated);
        self.budget.add(plain, "a document")?;
        section(
            &change_columns,
            change_data,
            &mut self.budget,
            &mut self.changes,
            &mut self.references,
        )?;
        section(
            &op_columns,
            op_data,
            &mut self.budget,
            &mut self.ops,
            &mut self.references,
        )
    }
}

#[cfg(test)]
mod tests;
