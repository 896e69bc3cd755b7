//! Hostile inputs, for the tests that show they are refused (here, in the engine, and
//! against a running node). Not part of the API.

use flate2::{Compress, Compression, FlushCompress};

pub const MIB: usize = 1024 * 1024;

/// Appends `n` as unsigned LEB128.
pub fn leb(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A raw deflate stream of `mib` MiB of zeros, about 1 KiB per MiB: one MiB compressed and
/// flushed to a byte boundary, repeated (its back references only reach zeros), then a final
/// empty block.
pub fn zeros(mib: usize) -> Vec<u8> {
    let mut compress = Compress::new(Compression::best(), false);
    let mut block = Vec::with_capacity(8 * 1024);
    compress
        .compress_vec(&vec![0; MIB], &mut block, FlushCompress::Sync)
        .expect("deflating zeros into memory");
    let mut stream = block.repeat(mib);
    stream.extend([0x03, 0x00]);
    stream
}

/// A chunk: magic bytes, checksum, type, length, data.
pub fn chunk(chunk_type: u8, checksum: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x85, 0x6f, 0x4a, 0x83];
    out.extend(checksum);
    out.push(chunk_type);
    leb(&mut out, data.len() as u64);
    out.extend(data);
    out
}

/// A v1 sync message with no hashes or haves, carrying `changes`.
pub fn sync_message(changes: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![0x42, 0, 0, 0];
    leb(&mut out, changes.len() as u64);
    for change in changes {
        leb(&mut out, change.len() as u64);
        out.extend(change);
    }
    out
}

/// A sync message whose one change is a compressed change chunk of `mib` MiB of zeros
/// (about `mib` KiB on the wire): what a 1 MiB frame inflating to 1 GiB looks like.
pub fn compressed_zeros_message(mib: usize) -> Vec<u8> {
    sync_message(&[chunk(2, [0; 4], &zeros(mib))])
}
