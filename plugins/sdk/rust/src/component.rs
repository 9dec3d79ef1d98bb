//! The canonical-ABI exports of the WIT world (`wit/plugin.wit`), called by the exports
//! [`hooklake_plugin!`](crate::hooklake_plugin) generates with the `component` feature. The core module they make
//! is wrapped into a component with `wasm-tools component embed wit/plugin.wit … && wasm-tools component new …`.
//!
//! Lowered signatures (canonical ABI, 32-bit memory):
//! - `describe: func() -> string` is `describe() -> i32`: a pointer to a return area holding (ptr, len) of the
//!   string; `cabi_post_describe(area)` frees the string once the host has lifted it.
//! - `transform: func(batch: string) -> result<string, string>` is `transform(ptr, len) -> i32`: the batch string
//!   was allocated by the host with `cabi_realloc` and now belongs to the callee (which frees it); the return area
//!   holds the discriminant (byte 0: 0 = ok, 1 = err) and the string's (ptr, len) at bytes 4 and 8.
//!   `cabi_post_transform(area)` frees that string.
//! - `cabi_realloc(old_ptr, old_len, align, new_len) -> ptr`: the host's allocator in this memory.

use std::alloc::{self, Layout};

use crate::abi::{leak, take};
use crate::{describe_document, transform_result, Plugin};

/// The return area: 12 bytes, 4-aligned. One suffices: the host lifts the result and calls the post-return
/// function before it calls into the module again (instances are not shared between threads).
#[repr(C, align(4))]
struct ReturnArea([u8; 12]);

static mut RETURN_AREA: ReturnArea = ReturnArea([0; 12]);

fn return_area() -> *mut u8 {
    // SAFETY: only the address is taken here; accesses go through `write_i32`/`read_i32` below, one call at a time.
    unsafe { std::ptr::addr_of_mut!(RETURN_AREA) as *mut u8 }
}

/// # Safety
/// `area` is the return area; `offset + 4 <= 12`.
unsafe fn write_i32(area: *mut u8, offset: usize, value: i32) {
    std::ptr::write_unaligned(area.add(offset) as *mut i32, value);
}

/// # Safety
/// As [`write_i32`].
unsafe fn read_i32(area: *const u8, offset: usize) -> i32 {
    std::ptr::read_unaligned(area.add(offset) as *const i32)
}

/// `cabi_realloc`: allocates (`old_ptr == 0`), grows/shrinks, or returns a dangling aligned pointer for size 0.
/// Traps (unreachable) on an invalid layout or when memory runs out, as the canonical ABI expects.
///
/// # Safety
/// A non-zero `old_ptr` must be a block from this function with exactly `old_len` bytes and alignment `align`.
pub unsafe fn realloc(old_ptr: i32, old_len: i32, align: i32, new_len: i32) -> i32 {
    let align = align as u32 as usize;
    let new_len = new_len as u32 as usize;
    let old_len = old_len as u32 as usize;
    let layout = match Layout::from_size_align(new_len, align.max(1)) {
        Ok(layout) => layout,
        Err(_) => std::process::abort(),
    };
    let ptr = if new_len == 0 {
        if old_ptr != 0 && old_len != 0 {
            alloc::dealloc(
                old_ptr as u32 as usize as *mut u8,
                Layout::from_size_align_unchecked(old_len, layout.align()),
            );
        }
        layout.align() as *mut u8 // dangling but aligned and non-null: valid for a zero-sized block
    } else if old_ptr == 0 || old_len == 0 {
        alloc::alloc(layout)
    } else {
        let old = Layout::from_size_align_unchecked(old_len, layout.align());
        alloc::realloc(old_ptr as u32 as usize as *mut u8, old, new_len)
    };
    if ptr.is_null() {
        std::process::abort();
    }
    ptr as usize as u32 as i32
}

/// `describe`.
pub fn describe<P: Plugin>() -> i32 {
    let (ptr, len) = leak(describe_document::<P>());
    let area = return_area();
    // SAFETY: offsets 0 and 4 are inside the 12-byte area.
    unsafe {
        write_i32(area, 0, ptr);
        write_i32(area, 4, len);
    }
    area as usize as u32 as i32
}

/// `cabi_post_describe`: frees the string `describe` returned.
///
/// # Safety
/// `area` must be the pointer `describe` returned, its string not freed yet.
pub unsafe fn post_string(area: i32) {
    let area = area as u32 as usize as *const u8;
    drop(take(read_i32(area, 0), read_i32(area, 4)));
}

/// `transform`: takes over and frees the batch string, returns the result in the return area.
///
/// # Safety
/// `(ptr, len)` must be a block from [`realloc`] with alignment 1 and exactly `len` bytes, given up by the caller.
pub unsafe fn transform<P: Plugin>(ptr: i32, len: i32) -> i32 {
    let input = take(ptr, len);
    let result = transform_result::<P>(&input);
    drop(input);
    let (discriminant, bytes) = match result {
        Ok(document) => (0, document),
        Err(message) => (1, message.into_bytes()),
    };
    let (ptr, len) = leak(bytes);
    let area = return_area();
    // The discriminant is a u8 at offset 0; writing it as an i32 also zeroes the padding.
    write_i32(area, 0, discriminant);
    write_i32(area, 4, ptr);
    write_i32(area, 8, len);
    area as usize as u32 as i32
}

/// `cabi_post_transform`: frees the string `transform` returned (ok or err).
///
/// # Safety
/// `area` must be the pointer `transform` returned, its string not freed yet.
pub unsafe fn post_result(area: i32) {
    let area = area as u32 as usize as *const u8;
    drop(take(read_i32(area, 4), read_i32(area, 8)));
}
