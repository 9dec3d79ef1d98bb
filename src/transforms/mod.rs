//! Transforms: stages between a source and the sinks. `verify` and `dedup` are admission stages (they run
//! while the sender waits); `enrich` runs from the journal.

pub mod dedup;
pub mod enrich;
pub mod verify;
