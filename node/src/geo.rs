//! Geography shipped with the node, nothing fetched at run time: where cities are
//! ([`gazetteer`], for practices imported or created without coordinates) and the world
//! the `/map` page draws ([`world_map`]). Both are made by `cargo xtask geodata`.

pub mod gazetteer;
pub mod world_map;
