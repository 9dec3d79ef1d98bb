//! Sinks: where rows leave hooklake. Each kind is a module and one line in the registry in `crate::config`.

pub mod parquet;
