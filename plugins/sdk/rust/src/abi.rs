//! The raw core-module ABI (`spec/plugins.md`), called by the exports [`hooklake_plugin!`](crate::hooklake_plugin)
//! generates. This is the only place with `unsafe`: it turns (ptr, len) pairs in linear memory into owned buffers.
//!
//! Memory protocol, all buffers being plain byte blocks (`Box<[u8]>`, size `len`, alignment 1):
//! - input: the host calls `hooklake_alloc(len)`, writes the batch there, and calls `hooklake_transform(ptr, len)`.
//!   The transform call **takes the buffer over and frees it** (as the canonical ABI does with arguments): the host
//!   must not free it or use it again.
//! - output: `hooklake_describe` and `hooklake_transform` return `(ptr << 32) | len` of a UTF-8 JSON document the
//!   module allocated; the host copies it out, then calls `hooklake_free(ptr, len)` once.
//!
//! Pointers are wasm32 addresses carried in `i32` (reinterpreted as `u32`).

use crate::{describe_document, transform_document, Plugin};

/// The ABI version `hooklake_abi_version` returns.
pub const ABI_VERSION: i32 = 1;

/// `hooklake_alloc`: a block of `len` bytes (zeroed), or 0 when `len` is negative; traps (abort) when memory runs
/// out. A zero-length block is a non-null dangling pointer, which `free` and `transform` accept.
pub fn alloc(len: i32) -> i32 {
    if len < 0 {
        return 0;
    }
    let block: Box<[u8]> = vec![0u8; len as usize].into_boxed_slice();
    // Ownership goes to the host until it hands the block back to `transform` or `free`.
    Box::into_raw(block) as *mut u8 as usize as u32 as i32
}

/// `hooklake_free`: frees a block from [`alloc`] or a returned document.
///
/// # Safety
/// `(ptr, len)` must be a block this module handed out with exactly this length, not freed yet.
pub unsafe fn free(ptr: i32, len: i32) {
    drop(take(ptr, len));
}

/// `hooklake_describe`.
pub fn describe<P: Plugin>() -> i64 {
    hand_over(describe_document::<P>())
}

/// `hooklake_transform`: reads the batch, frees it, returns the results document.
///
/// # Safety
/// `(ptr, len)` must be a block from [`alloc`] of exactly `len` bytes, which the caller gives up.
pub unsafe fn transform<P: Plugin>(ptr: i32, len: i32) -> i64 {
    let input = take(ptr, len);
    let output = transform_document::<P>(&input);
    drop(input);
    hand_over(output)
}

/// Re-owns a block handed out earlier. A null pointer or negative length gives an empty block (nothing to free).
///
/// # Safety
/// As [`free`].
pub(crate) unsafe fn take(ptr: i32, len: i32) -> Box<[u8]> {
    if ptr == 0 || len < 0 {
        return Box::new([]);
    }
    let data = ptr as u32 as usize as *mut u8;
    // SAFETY: the caller guarantees `data` came from `Box::into_raw` of a `Box<[u8]>` of `len` bytes, so the
    // rebuilt box has the same pointer, length and layout (size len, align 1) as the one leaked.
    Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, len as usize))
}

/// Leaks `document` to the host as `(ptr << 32) | len`.
pub(crate) fn hand_over(document: Vec<u8>) -> i64 {
    let (ptr, len) = leak(document);
    (((ptr as u32 as u64) << 32) | len as u32 as u64) as i64
}

/// Leaks `bytes` as a block of exactly its length, returning (ptr, len) as wasm32 values.
pub(crate) fn leak(bytes: Vec<u8>) -> (i32, i32) {
    // `into_boxed_slice` drops spare capacity, so the block is exactly `len` bytes, as `take` will rebuild it.
    let block = bytes.into_boxed_slice();
    let len = block.len() as u32 as i32;
    let ptr = Box::into_raw(block) as *mut u8 as usize as u32 as i32;
    (ptr, len)
}
