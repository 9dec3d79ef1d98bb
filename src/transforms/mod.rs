//! Transforms: stages between a source and the sinks. `verify` and `dedup` are admission stages (they run
//! while the sender waits); `enrich` runs from the journal; `wasm` runs inside the sinks that read it.

pub mod dedup;
pub mod enrich;
pub mod verify;
pub mod wasm;
