//! hooklake receives webhooks and lands full records in a Parquet lake. One binary, one TOML file.
//!
//! # How an event travels
//!
//! ```text
//! POST ─▶ webhook source ─▶ verify (IP, signature) ─▶ dedup ─▶ journal (atomic append, group commit) ─▶ 200
//!           413/415/408/400        403/401             200 (duplicate: nothing stored)
//! ```
//!
//! - [`sources::webhook`] reads the request under strict bounds and maps every outcome to one status.
//! - [`admission`] runs the admission stages ([`transforms::verify`], [`transforms::dedup`]) as pure checks.
//! - [`journal`] stores the raw body and its dedup key in one fsynced transaction; only then the 200.
//!   Processing stages (enrich, map, sinks) read from the journal at their own pace, each from its own
//!   checkpoint; they land with later work.
//! - [`config`] turns `config.toml` into a validated [`config::Config`], reporting every error with
//!   `file:line:col`; [`topology`] checks the graph and builds the pipeline.
//!
//! # Example
//!
//! ```
//! use std::path::Path;
//! use hooklake::config::{Config, Env};
//!
//! let toml = r#"
//! [sources.insightiq]
//! type = "webhook"
//! listen = "127.0.0.1:0"
//!
//! [transforms.verify]
//! type = "verify"
//! inputs = ["insightiq"]
//! secrets = ["${SECRET:-example}"]
//!
//! [transforms.dedup]
//! type = "dedup"
//! inputs = ["verify"]
//! "#;
//! let config = Config::parse(Path::new("config.toml"), toml, &Env::empty()).expect("valid");
//! assert_eq!(config.transforms.len(), 2);
//!
//! let err = Config::parse(Path::new("config.toml"), "[sources.x]\ntype = \"webhok\"\n", &Env::empty())
//!     .expect_err("unknown type");
//! assert_eq!(
//!     err.to_string(),
//!     "config.toml:2:8: sources.x: unknown source type `webhok`; did you mean `webhook`? (known: webhook)"
//! );
//! ```

pub mod admission;
pub mod clock;
pub mod config;
pub mod dead_letters;
pub mod demo;
pub mod envelope;
#[doc(hidden)]
pub mod fuzzing;
pub mod insightiq;
pub mod journal;
pub mod metrics;
pub mod parallel;
pub mod progress;
pub mod secret;
pub mod shutdown;
pub mod simulator;
pub mod sinks;
pub mod sources;
pub mod status;
pub mod topology;
pub mod transforms;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;

pub use topology::{BuildError, Pipeline};

/// Builds `config` and runs it until `shutdown` resolves, then drains and returns.
///
/// # Errors
/// [`BuildError`] when the pipeline cannot start.
pub async fn run(config: &config::Config, shutdown: impl Future<Output = ()>) -> Result<(), BuildError> {
    let pipeline = topology::build(config, Arc::new(clock::SystemClock)).await?;
    pipeline.run(shutdown).await;
    Ok(())
}
