#!/usr/bin/env bash
# Builds content_engagement.wasm (a raw-ABI core module, plugins/README.md) from assembly/index.ts.
# Idempotent: installs the pinned compiler (npm ci) only when node_modules is missing or older than the lock file.
# Fails when the module imports anything but hooklake.log or lacks an ABI export.
set -euo pipefail
cd "$(dirname "$0")"

OUT=content_engagement.wasm
SDK=../../sdk/assemblyscript/assembly

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# --runtime incremental: the GC frees the per-call garbage (parsed JSON, strings); documents handed to the host
#   live in unmanaged heap blocks until hooklake_free.
# --use abort=…: aborts (failed assertions, bounds checks, out of memory) log through hooklake.log and trap,
#   instead of importing env.abort, which the host refuses.
./node_modules/.bin/asc assembly/index.ts \
  --outFile "$OUT.tmp" \
  -O3 \
  --runtime incremental \
  --use "abort=$SDK/hooklake/hooklakeAbort"
mv "$OUT.tmp" "$OUT"

node --input-type=module - "$OUT" <<'JS'
import { readFileSync } from "node:fs";
const file = process.argv[2];
const bytes = readFileSync(file);
const module = new WebAssembly.Module(bytes);
const imports = WebAssembly.Module.imports(module);
const exports = WebAssembly.Module.exports(module);
console.log(`${file}: ${bytes.length} bytes`);
console.log(`imports: ${imports.map((i) => `${i.module}.${i.name} (${i.kind})`).join(", ") || "(none)"}`);
console.log(`exports: ${exports.map((e) => `${e.name} (${e.kind})`).join(", ")}`);
const bad = imports.filter((i) => !(i.module === "hooklake" && i.name === "log" && i.kind === "function"));
const want = ["memory", "hooklake_abi_version", "hooklake_alloc", "hooklake_free", "hooklake_describe", "hooklake_transform"];
const missing = want.filter((name) => !exports.some((e) => e.name === name));
if (bad.length) console.error(`FAIL: imports the host refuses: ${bad.map((i) => `${i.module}.${i.name}`).join(", ")}`);
if (missing.length) console.error(`FAIL: missing exports: ${missing.join(", ")}`);
process.exit(bad.length || missing.length ? 1 : 0);
JS
