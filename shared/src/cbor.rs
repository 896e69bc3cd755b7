//! Reading CBOR maps keyed by text, as automerge-repo and cbor-x write them: definite or
//! indefinite length, entries whose key is not text skipped.

use minicbor::data::Type;
use minicbor::Decoder;

/// Calls `entry` with each text key of the map at the decoder's position, the decoder at
/// that key's value (which `entry` must read or skip). `not_a_map` is the error when the
/// next item is something else.
pub(crate) fn for_each_entry<'b, E>(
    d: &mut Decoder<'b>,
    not_a_map: impl FnOnce() -> E,
    mut entry: impl FnMut(&'b str, &mut Decoder<'b>) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<minicbor::decode::Error>,
{
    let mut remaining = match d.datatype()? {
        Type::Map | Type::MapIndef => d.map()?,
        _ => return Err(not_a_map()),
    };
    loop {
        match remaining {
            Some(0) => return Ok(()),
            Some(ref mut n) => *n -= 1,
            None => {
                if d.datatype()? == Type::Break {
                    d.skip()?;
                    return Ok(());
                }
            }
        }
        if d.datatype()? != Type::String {
            // Not a key either side writes; skip key and value.
            d.skip()?;
            d.skip()?;
            continue;
        }
        let key = d.str()?;
        entry(key, d)?;
    }
}
