//! Reading automerge's column metadata and counting the rows of its columns (see the
//! [parent module](super)); every read checked.

use super::{BoundsError, Budget, Result, INFLATE_PIECE};

const DEFLATE_BIT: u32 = 8;

/// A count with a bound.
pub(super) struct Tally {
    pub(super) what: &'static str,
    pub(super) used: u64,
    pub(super) max: u64,
}

impl Tally {
    pub(super) fn new(what: &'static str, max: u64) -> Self {
        Self { what, used: 0, max }
    }

    /// Fails when `more` on top of what is used would exceed the bound.
    pub(super) fn check(&self, more: u64) -> Result<()> {
        match self.used.checked_add(more) {
            Some(n) if n <= self.max => Ok(()),
            n => Err(BoundsError::OverBudget {
                what: self.what,
                at_least: n.unwrap_or(u64::MAX),
                max: self.max,
            }),
        }
    }

    pub(super) fn add(&mut self, more: u64) -> Result<()> {
        self.check(more)?;
        self.used += more;
        Ok(())
    }
}

/// A chunk's column metadata, checked: specs in automerge's order, lengths that add up.
pub(super) struct Columns<'a> {
    meta: &'a [u8],
    count: u64,
    pub(super) total: usize,
    pub(super) deflated: usize,
}

impl<'a> Columns<'a> {
    pub(super) fn read(r: &mut Reader<'a>) -> Result<Self> {
        let count = r.uleb("a column list")?;
        if count > r.remaining() as u64 / 2 {
            return Err(BoundsError::Truncated("a column list"));
        }
        let start = r.pos;
        let (mut total, mut deflated, mut previous) = (0usize, 0usize, 0u32);
        for _ in 0..count {
            let (spec, len) = column(r)?;
            total = total
                .checked_add(len)
                .ok_or(BoundsError::Truncated("a column"))?;
            if spec & DEFLATE_BIT != 0 {
                deflated += len;
            }
            if spec & !DEFLATE_BIT < previous {
                return Err(BoundsError::Malformed("columns out of order"));
            }
            previous = spec & !DEFLATE_BIT;
        }
        let meta = r.bytes.get(start..r.pos).unwrap_or_default();
        Ok(Self {
            meta,
            count,
            total,
            deflated,
        })
    }
}

fn column(r: &mut Reader<'_>) -> Result<(u32, usize)> {
    let spec = u32::try_from(r.uleb("a column spec")?)
        .map_err(|_| BoundsError::Malformed("a column spec exceeds 32 bits"))?;
    let len = usize::try_from(r.uleb("a column length")?)
        .map_err(|_| BoundsError::Truncated("a column"))?;
    Ok((spec, len))
}

const GROUP: u32 = 0;
const BOOLEAN: u32 = 4;
const STRING: u32 = 5;
const VALUE: u32 = 7;

/// Counts a section's rows (the most any column holds, columns inside a group aside) into
/// `rows`, and its groups' references (the sum of a group's counts, or the most rows a
/// column inside it holds if that is more) into `references`. Deflated columns are inflated
/// within the budget; value columns only counted.
pub(super) fn section(
    columns: &Columns<'_>,
    data: &[u8],
    budget: &mut Budget,
    rows: &mut Tally,
    references: &mut Tally,
) -> Result<()> {
    let mut meta = Reader::new(columns.meta);
    let (mut at, mut most) = (0usize, 0u64);
    // The group being read: its column id and references so far.
    let mut group: Option<(u32, u64)> = None;
    let mut inflated = Vec::new();
    for _ in 0..columns.count {
        let (spec, len) = column(&mut meta)?;
        let raw = at
            .checked_add(len)
            .and_then(|end| data.get(at..end))
            .ok_or(BoundsError::Truncated("a column"))?;
        at += len;
        let (id, kind) = (spec >> 4, spec & 7);
        let bytes = match (spec & DEFLATE_BIT != 0, kind) {
            (false, _) => raw,
            (true, VALUE) => {
                budget.inflate(raw, None, "a deflated column")?;
                continue;
            }
            (true, _) => {
                inflated.clear();
                inflated.shrink_to(INFLATE_PIECE);
                budget.inflate(raw, Some(&mut inflated), "a deflated column")?;
                &inflated[..]
            }
        };
        if let Some((group_id, counted)) = group {
            if group_id != id || kind == GROUP {
                references.add(counted)?;
                group = None;
            }
        }
        match (kind, &mut group) {
            (VALUE, _) => {}
            (GROUP, _) => {
                let (n, sum) = rle(bytes, false, rows, Some(references))?;
                most = most.max(n);
                group = Some((id, sum));
            }
            (_, Some((_, counted))) => {
                *counted = (*counted).max(count_rows(bytes, kind, references)?)
            }
            _ => most = most.max(count_rows(bytes, kind, rows)?),
        }
    }
    if let Some((_, counted)) = group {
        references.add(counted)?;
    }
    rows.add(most)
}

fn count_rows(bytes: &[u8], kind: u32, tally: &Tally) -> Result<u64> {
    if kind != BOOLEAN {
        return rle(bytes, kind == STRING, tally, None).map(|(rows, _)| rows);
    }
    // Booleans: run lengths, alternately false and true.
    let mut r = Reader::new(bytes);
    let mut rows = 0u64;
    while !r.is_empty() {
        rows = rows.saturating_add(r.uleb("a boolean column")?);
        tally.check(rows)?;
    }
    Ok(rows)
}

/// Counts the rows of a run-length encoded column: runs (a positive count, one value),
/// literals (a negative count, that many values) and null runs (zero, then a count). With
/// `sums`, the values are counts (a group column) and their sum is returned too.
fn rle(bytes: &[u8], strings: bool, rows: &Tally, sums: Option<&Tally>) -> Result<(u64, u64)> {
    let mut r = Reader::new(bytes);
    let (mut n, mut sum) = (0u64, 0u64);
    let mut value = |r: &mut Reader<'_>, times: u64| -> Result<()> {
        match sums {
            _ if strings => r.prefixed("a string column").map(|_| ()),
            None => r.skip_leb("a column"),
            Some(tally) => {
                let v = r.uleb("a group column")?;
                sum = sum.saturating_add(v.saturating_mul(times));
                tally.check(sum)
            }
        }
    };
    while !r.is_empty() {
        let header = r.sleb("a run header")?;
        let run = match header {
            0 => r.uleb("a null run")?,
            _ => header.unsigned_abs(),
        };
        n = n.saturating_add(run);
        rows.check(n)?;
        if header > 0 {
            value(&mut r, run)?;
        } else if header < 0 {
            for _ in 0..run {
                value(&mut r, 1)?;
            }
        }
    }
    Ok((n, sum))
}

/// Reads bytes front to back, every read checked.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(super) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(super) fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8]> {
        let taken = usize::try_from(n)
            .ok()
            .and_then(|n| self.bytes.get(self.pos..self.pos.checked_add(n)?))
            .ok_or(BoundsError::Truncated(what))?;
        self.pos += taken.len();
        Ok(taken)
    }

    /// A length-prefixed byte string.
    pub(super) fn prefixed(&mut self, what: &'static str) -> Result<&'a [u8]> {
        let n = self.uleb(what)?;
        self.take(n, what)
    }

    pub(super) fn byte(&mut self, what: &'static str) -> Result<u8> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or(BoundsError::Truncated(what))?;
        self.pos += 1;
        Ok(b)
    }

    pub(super) fn uleb(&mut self, what: &'static str) -> Result<u64> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.byte(what)?;
            if i == 9 && b > 1 {
                break;
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(BoundsError::Malformed("a LEB128 number exceeds 64 bits"))
    }

    pub(super) fn sleb(&mut self, what: &'static str) -> Result<i64> {
        let (mut value, mut shift) = (0i64, 0u32);
        while shift < 64 {
            let b = self.byte(what)?;
            value |= i64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Ok(value);
            }
        }
        Err(BoundsError::Malformed("a LEB128 number exceeds 64 bits"))
    }

    pub(super) fn skip_leb(&mut self, what: &'static str) -> Result<()> {
        for _ in 0..10 {
            if self.byte(what)? & 0x80 == 0 {
                return Ok(());
            }
        }
        Err(BoundsError::Malformed("a LEB128 number exceeds 64 bits"))
    }
}
