// hooklake plugin SDK for AssemblyScript: the raw core-module ABI (plugins/README.md, "The raw ABI").
//
// A plugin registers two functions and re-exports the ABI from its entry file:
//
//   import { plugin } from "<path>/sdk/assemblyscript/assembly/hooklake";
//   export { hooklake_abi_version, hooklake_alloc, hooklake_free, hooklake_describe, hooklake_transform }
//     from "<path>/sdk/assemblyscript/assembly/hooklake";
//   plugin(describe, transform);   // describe(): string, transform(batchJson: string): string
//
// Memory protocol (all blocks are unmanaged `heap.alloc` memory, so the GC never moves or frees them):
// - input: the host calls `hooklake_alloc(len)`, writes the batch there and calls `hooklake_transform(ptr, len)`,
//   which decodes it into a string and frees the block (the host must not free it).
// - output: `hooklake_describe` / `hooklake_transform` encode the document as UTF-8 into a fresh block and
//   return `(ptr << 32) | len`; the block stays alive until the host calls `hooklake_free(ptr, len)` once.
// Everything else is ordinary garbage-collected AssemblyScript (`--runtime incremental`).

export * from "./json";

/** The ABI version `hooklake_abi_version` returns. */
export const ABI_VERSION: i32 = 1;

/** Log levels for `log` (the host tags lines with the plugin name; at most 100 lines per call). */
export const enum Level {
  Error = 0,
  Warn = 1,
  Info = 2,
  Debug = 3,
  Trace = 4,
}

// The only import a plugin may have.
@external("hooklake", "log")
declare function hostLog(level: i32, ptr: usize, len: i32): void;

/** Sends one line to the host's log. */
export function log(level: Level, message: string): void {
  const bytes = String.UTF8.encode(message);
  hostLog(<i32>level, changetype<usize>(bytes), bytes.byteLength);
}

// ---------------------------------------------------------------------------------------------------------------
// Registration

function unregisteredDescribe(): string {
  return "{\"error\":\"the plugin did not call plugin(describe, transform)\"}";
}

function unregisteredTransform(batch: string): string {
  return "{\"error\":\"the plugin did not call plugin(describe, transform)\"}";
}

let describeFn: () => string = unregisteredDescribe;
let transformFn: (batch: string) => string = unregisteredTransform;

/**
 * Registers the plugin's two functions (call it once, at the top level of the entry file).
 * - `describe()` returns the describe document (JSON text).
 * - `transform(batchJson)` gets the batch (a JSON array of enriched events) and returns
 *   `{"results": [...]}` (one result per event) or `{"error": "…"}` for a whole-batch failure.
 */
export function plugin(describe: () => string, transform: (batch: string) => string): void {
  describeFn = describe;
  transformFn = transform;
}

// ---------------------------------------------------------------------------------------------------------------
// The ABI exports (re-export them from the entry file)

export function hooklake_abi_version(): i32 {
  return ABI_VERSION;
}

/** A block of `len` bytes for the host to write the batch into; 0 when `len` is negative. */
export function hooklake_alloc(len: i32): usize {
  if (len < 0) return 0;
  return heap.alloc(<usize>len);
}

/** Frees a returned document (or an unused block from `hooklake_alloc`). */
export function hooklake_free(ptr: usize, len: i32): void {
  if (ptr != 0) heap.free(ptr);
}

export function hooklake_describe(): i64 {
  return handOver(describeFn());
}

/** Takes over the batch block (frees it), runs the plugin's transform, returns the results document. */
export function hooklake_transform(ptr: usize, len: i32): i64 {
  let batch = "";
  if (ptr != 0 && len > 0) batch = String.UTF8.decodeUnsafe(ptr, <usize>len);
  if (ptr != 0) heap.free(ptr);
  const packed = handOver(transformFn(batch));
  // The call's garbage (the batch text, the parsed tree) is all unreachable now: collect it before the next call,
  // so memory stays at about one call's worth.
  __collect();
  return packed;
}

/** Encodes `document` as UTF-8 into a new unmanaged block and packs `(ptr << 32) | len`. */
function handOver(document: string): i64 {
  const len = String.UTF8.byteLength(document);
  const ptr = heap.alloc(<usize>len);
  String.UTF8.encodeUnsafe(changetype<usize>(document), document.length, ptr);
  return (<i64>(<u32>ptr) << 32) | <i64>(<u32>len);
}

// ---------------------------------------------------------------------------------------------------------------
// abort: build with `--use abort=<path>/hooklake/hooklakeAbort` so a failed assertion, an out-of-bounds access
// or running out of memory logs its reason through `hooklake.log` and traps, instead of importing `env.abort`.

let aborting = false;

export function hooklakeAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  if (!aborting) {
    aborting = true; // logging allocates: if that fails too, just trap
    const what = message != null ? message : "abort";
    const where = fileName != null ? fileName : "?";
    log(Level.Error, what + " at " + where + ":" + line.toString() + ":" + column.toString());
  }
  unreachable();
}
