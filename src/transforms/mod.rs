//! Transforms: stages between a source and the sinks. `verify` and `dedup` are admission stages (they run
//! while the sender waits); later kinds run from the journal.

pub mod dedup;
pub mod verify;
