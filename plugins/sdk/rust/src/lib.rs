//! Write hooklake mapping plugins in Rust.
//!
//! A plugin turns enriched events into rows of the tables it declares (`spec/plugins.md`). With this crate a
//! plugin is a type implementing [`Plugin`] plus one line, `hooklake_plugin!(MyPlugin);`, which generates the raw
//! core-module ABI exports the host calls. Build it for `wasm32-unknown-unknown` as a `cdylib`; it imports nothing.
//!
//! ```
//! use hooklake_plugin::{col, Describe, Event, EventResult, Plugin, Type};
//! use hooklake_plugin::serde_json::{Map, Value};
//!
//! pub struct Example;
//!
//! impl Plugin for Example {
//!     fn describe() -> Describe {
//!         Describe::new("example", "0.1.0")
//!             .route(&["ACCOUNTS.*"], "accounts")
//!             .table("accounts", vec![col("id", Type::String), col("status", Type::String)])
//!     }
//!
//!     fn transform(events: Vec<Value>) -> Result<Vec<EventResult>, String> {
//!         Ok(events.iter().map(|doc| {
//!             let event = match Event::new(doc) { Ok(e) => e, Err(e) => return EventResult::error(e) };
//!             let mut result = EventResult::empty();
//!             for r in event.resources().unwrap_or(&[]) {
//!                 let mut row = Map::new();
//!                 row.insert("id".into(), r.get("id").cloned().unwrap_or(Value::Null));
//!                 row.insert("status".into(), r.get("status").cloned().unwrap_or(Value::Null));
//!                 result.push("accounts", row);
//!             }
//!             result
//!         }).collect())
//!     }
//! }
//!
//! hooklake_plugin::hooklake_plugin!(Example);
//! ```
//!
//! The glue owns all the `unsafe` (raw pointers into linear memory); plugin code needs none. Panics abort (a trap):
//! the host then retries the batch's other events one by one, so return errors instead where you can.

pub mod conform;
pub mod describe;
pub mod event;

#[doc(hidden)]
pub mod abi;

#[cfg(feature = "component")]
#[doc(hidden)]
pub mod component;

pub use serde_json;

pub use crate::conform::{conform, conform_object, describe_value};
pub use crate::describe::{col, pattern_matches, Column, Describe, Route, Table, Type, HOST_COLUMNS};
pub use crate::event::{Event, EventResult, Row};

use serde_json::{json, Value};

/// A mapping plugin.
pub trait Plugin {
    /// The describe document: name, version, routes, tables. Called once at load.
    fn describe() -> Describe;

    /// Maps a batch of enriched events to one result per event, in the same order. `Err` fails the whole batch;
    /// an event that cannot be mapped should be an [`EventResult::Error`] instead.
    ///
    /// # Errors
    /// When the whole batch cannot be handled.
    fn transform(events: Vec<Value>) -> Result<Vec<EventResult>, String>;
}

/// The describe document as the host receives it: `{"error": …}` when [`Describe::check`] finds a problem.
pub fn describe_document<P: Plugin>() -> Vec<u8> {
    let describe = P::describe();
    let doc = match describe.check() {
        Ok(()) => describe.to_json(),
        Err(e) => json!({ "error": e }),
    };
    to_bytes(&doc)
}

/// The transform output for a batch document `input` (a JSON array of enriched events): `{"results": [...]}`, or
/// `{"error": …}` when the batch is not a JSON array, the plugin fails it, or returns the wrong number of results.
pub fn transform_document<P: Plugin>(input: &[u8]) -> Vec<u8> {
    match transform_result::<P>(input) {
        Ok(document) => document,
        Err(e) => to_bytes(&json!({ "error": e })),
    }
}

/// As [`transform_document`], with a whole-batch failure as `Err(message)` (the WIT world's `result`).
///
/// # Errors
/// When the batch is not a JSON array, the plugin fails it, or returns the wrong number of results.
pub fn transform_result<P: Plugin>(input: &[u8]) -> Result<Vec<u8>, String> {
    let results = transform_value::<P>(input)?;
    Ok(to_bytes(&json!({ "results": results })))
}

/// Serialises a document (straight into bytes: faster than `to_string`). A `Value` always serialises; the
/// fallback is only there to avoid a panic path.
fn to_bytes(doc: &Value) -> Vec<u8> {
    serde_json::to_vec(doc).unwrap_or_else(|_| br#"{"error": "cannot serialise the output"}"#.to_vec())
}

fn transform_value<P: Plugin>(input: &[u8]) -> Result<Vec<Value>, String> {
    let batch: Value = serde_json::from_slice(input).map_err(|e| format!("the batch is not valid JSON: {e}"))?;
    let events = match batch {
        Value::Array(events) => events,
        other => return Err(format!("the batch is {}, not a JSON array", describe_value(&other))),
    };
    let count = events.len();
    let results = P::transform(events)?;
    if results.len() != count {
        return Err(format!("the plugin returned {} results for {count} events", results.len()));
    }
    Ok(results.into_iter().map(EventResult::into_json).collect())
}

/// Generates the raw core-module ABI exports (`spec/plugins.md`) for a [`Plugin`] type:
/// `hooklake_abi_version`, `hooklake_alloc`, `hooklake_free`, `hooklake_describe`, `hooklake_transform`
/// (`memory` is exported by the compiler). With the `component` feature it generates the canonical-ABI exports
/// of the WIT world instead (`describe`, `transform`, `cabi_realloc`, `cabi_post_*`), for `wasm-tools component new`.
///
/// The exports exist only when compiling for wasm32, so the plugin crate still builds and tests natively. Each
/// carries `#[allow(unsafe_code)]` (`#[no_mangle]` counts as unsafe code), so the plugin crate itself can
/// `#![deny(unsafe_code)]`.
#[cfg(not(feature = "component"))]
#[macro_export]
macro_rules! hooklake_plugin {
    ($plugin:ty) => {
        /// ABI version 1.
        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        #[allow(unsafe_code)]
        pub extern "C" fn hooklake_abi_version() -> i32 {
            $crate::abi::ABI_VERSION
        }

        /// Allocates `len` bytes for the host to write the batch into (0 for a negative `len`; traps when memory
        /// runs out). The host gives the block to `hooklake_transform`, or back to `hooklake_free`.
        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        #[allow(unsafe_code)]
        pub extern "C" fn hooklake_alloc(len: i32) -> i32 {
            $crate::abi::alloc(len)
        }

        /// Frees a document this module handed out (`hooklake_describe`, `hooklake_transform`).
        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        #[allow(unsafe_code)]
        pub extern "C" fn hooklake_free(ptr: i32, len: i32) {
            // SAFETY: the host passes back exactly a (ptr, len) this module returned, once.
            unsafe { $crate::abi::free(ptr, len) }
        }

        /// The describe document, as `(ptr << 32) | len`.
        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        #[allow(unsafe_code)]
        pub extern "C" fn hooklake_describe() -> i64 {
            $crate::abi::describe::<$plugin>()
        }

        /// Maps the batch at (ptr, len) (from `hooklake_alloc`; this call takes it over and frees it); returns the
        /// results document as `(ptr << 32) | len`.
        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        #[allow(unsafe_code)]
        pub extern "C" fn hooklake_transform(ptr: i32, len: i32) -> i64 {
            // SAFETY: the host passes a buffer it got from `hooklake_alloc(len)` and filled, and does not use it again.
            unsafe { $crate::abi::transform::<$plugin>(ptr, len) }
        }
    };
}

/// See the non-component variant: this one generates the canonical-ABI exports of the WIT world.
#[cfg(feature = "component")]
#[macro_export]
macro_rules! hooklake_plugin {
    ($plugin:ty) => {
        /// Canonical ABI allocator: the host allocates the batch string (and any other memory it lowers) here.
        #[cfg(target_arch = "wasm32")]
        #[no_mangle]
        #[allow(unsafe_code)]
        pub extern "C" fn cabi_realloc(old_ptr: i32, old_len: i32, align: i32, new_len: i32) -> i32 {
            // SAFETY: the host follows the canonical ABI: old_ptr/old_len/align describe a block from this function.
            unsafe { $crate::component::realloc(old_ptr, old_len, align, new_len) }
        }

        /// `describe: func() -> string`: returns a pointer to (ptr, len).
        #[cfg(target_arch = "wasm32")]
        #[export_name = "describe"]
        #[allow(unsafe_code)]
        pub extern "C" fn hooklake_component_describe() -> i32 {
            $crate::component::describe::<$plugin>()
        }

        /// Frees what `describe` returned.
        #[cfg(target_arch = "wasm32")]
        #[export_name = "cabi_post_describe"]
        #[allow(unsafe_code)]
        pub extern "C" fn hooklake_component_post_describe(ret: i32) {
            // SAFETY: `ret` is the return area `describe` handed out.
            unsafe { $crate::component::post_string(ret) }
        }

        /// `transform: func(batch: string) -> result<string, string>`: takes over the batch string, returns a
        /// pointer to (discriminant, ptr, len).
        #[cfg(target_arch = "wasm32")]
        #[export_name = "transform"]
        #[allow(unsafe_code)]
        pub extern "C" fn hooklake_component_transform(ptr: i32, len: i32) -> i32 {
            // SAFETY: the host lowered the batch into a block from `cabi_realloc` and hands it over.
            unsafe { $crate::component::transform::<$plugin>(ptr, len) }
        }

        /// Frees what `transform` returned.
        #[cfg(target_arch = "wasm32")]
        #[export_name = "cabi_post_transform"]
        #[allow(unsafe_code)]
        pub extern "C" fn hooklake_component_post_transform(ret: i32) {
            // SAFETY: `ret` is the return area `transform` handed out.
            unsafe { $crate::component::post_result(ret) }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;

    impl Plugin for Echo {
        fn describe() -> Describe {
            Describe::new("echo", "1").route(&["A.*"], "t").table("t", vec![col("id", Type::String)])
        }

        fn transform(events: Vec<Value>) -> Result<Vec<EventResult>, String> {
            if events.iter().any(|e| e == "fail") {
                return Err("asked to fail".into());
            }
            if events.iter().any(|e| e == "short") {
                return Ok(Vec::new());
            }
            Ok(events.iter().map(|_| EventResult::empty()).collect())
        }
    }

    fn doc(bytes: Vec<u8>) -> Value {
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn documents_follow_the_contract() {
        assert_eq!(doc(describe_document::<Echo>())["name"], "echo");
        assert_eq!(doc(transform_document::<Echo>(b"[{}, {}]")), json!({"results": [{"rows": {}}, {"rows": {}}]}));
        assert_eq!(doc(transform_document::<Echo>(b"[]")), json!({"results": []}));
        assert_eq!(doc(transform_document::<Echo>(b"[\"fail\"]")), json!({"error": "asked to fail"}));
        assert!(doc(transform_document::<Echo>(b"[\"short\"]"))["error"].as_str().unwrap().contains("0 results for 1"));
        assert!(doc(transform_document::<Echo>(b"{}"))["error"].as_str().unwrap().contains("not a JSON array"));
        assert!(doc(transform_document::<Echo>(b"[1,"))["error"].as_str().unwrap().contains("not valid JSON"));
    }
}
