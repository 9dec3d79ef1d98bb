// Checks content_engagement.wasm the way hooklake's host drives a raw-ABI module (plugins/README.md), using only
// node's built-in WebAssembly API. Run ./build.sh first. Exits 1 on any failure.
//
//   node check.mjs [path/to/plugin.wasm]

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const file = process.argv[2] ?? fileURLToPath(new URL("./content_engagement.wasm", import.meta.url));
const failures = [];
const check = (ok, what) => {
  if (!ok) failures.push(what);
  return ok;
};

// --- load with nothing but hooklake.log (instantiation fails on any other import) --------------------------------

const logs = [];
let memory;
const decoder = new TextDecoder("utf-8", { fatal: true });
const imports = {
  hooklake: {
    log(level, ptr, len) {
      logs.push([level, decoder.decode(new Uint8Array(memory.buffer, ptr >>> 0, len))]);
    },
  },
};
const module = new WebAssembly.Module(readFileSync(file));
const foreign = WebAssembly.Module.imports(module).filter((i) => !(i.module === "hooklake" && i.name === "log"));
check(foreign.length === 0, `imports other than hooklake.log: ${JSON.stringify(foreign)}`);
const instance = new WebAssembly.Instance(module, imports);
const x = instance.exports;
memory = x.memory;

/** Reads and frees a returned document, as the host does: (ptr << 32) | len, then hooklake_free(ptr, len) once. */
function take(packed) {
  const p = BigInt.asUintN(64, packed);
  const ptr = Number(p >> 32n);
  const len = Number(p & 0xffffffffn);
  const text = decoder.decode(new Uint8Array(memory.buffer, ptr, len).slice()); // throws if not UTF-8
  x.hooklake_free(ptr, len);
  return text;
}

/** The host's transform call: alloc, write, transform (which frees the input), read + free the output. */
function transform(batch) {
  const bytes = new TextEncoder().encode(typeof batch === "string" ? batch : JSON.stringify(batch));
  const ptr = x.hooklake_alloc(bytes.length);
  new Uint8Array(memory.buffer, ptr, bytes.length).set(bytes);
  return take(x.hooklake_transform(ptr, bytes.length));
}

// --- abi_version and describe ----------------------------------------------------------------------------------

check(x.hooklake_abi_version() === 1, "hooklake_abi_version() is not 1");
const describe = JSON.parse(take(x.hooklake_describe()));
console.log("describe:", JSON.stringify(describe));
const columns = describe.tables?.content_engagement ?? [];
const types = Object.fromEntries(columns.map((c) => [c.name, c.type]));
check(
  JSON.stringify(types) ===
    JSON.stringify({ id: "string", platform: "string", like_count: "int64", comment_count: "int64", view_count: "int64", published_at: "timestamp" }),
  `content_engagement columns: ${JSON.stringify(columns)}`,
);
check(columns.find((c) => c.name === "id")?.nullable === false, "id is not declared nullable: false");
check(
  describe.routes?.length === 1 &&
    describe.routes[0].table === "content_engagement" &&
    JSON.stringify(describe.routes[0].events) === JSON.stringify(["CONTENTS.ADDED", "CONTENTS.UPDATED"]),
  `routes: ${JSON.stringify(describe.routes)}`,
);

// --- transform a batch of enriched events ----------------------------------------------------------------------

const account = "a1b2c3d4-0000-4000-8000-000000000001";
const content = (id, platform, engagement, published) => ({
  id,
  account: { id: account },
  work_platform: { id: "9bb8913b-ddd9-430b-a66a-d74d846e6c66", name: platform, logo_url: "https://x/y.png" },
  title: 'He said "hi"\n\tand left \\ 😀 — ünïcödé',
  format: "VIDEO",
  type: "REELS",
  url: "https://www.instagram.com/reel/C0abc/",
  published_at: published,
  engagement,
});
const batch = [
  {
    seq: 41,
    id: "674c0a1e5f0c2b0001a1b2c1",
    event: "CONTENTS.ADDED",
    name: "contents added",
    source: "insightiq",
    received_at: "2026-12-04T10:00:00.123456Z",
    data: { account_id: account, content_ids: ["c-1", "c-2"], last_updated_time: "2026-12-04T09:59:58.000000" },
    resources: [
      content("c-1", "Instagram", { like_count: 120, comment_count: 7, view_count: 1234567, share_count: null }, "2026-12-03T18:21:05"),
      content("c-2\"quoted\"", "YouTube", { like_count: null, view_count: 3.0 }, null),
    ],
    missing: ["c-3"],
  },
  {
    seq: 42,
    id: "674c0a1e5f0c2b0001a1b2c2",
    event: "CONTENTS.UPDATED",
    name: "contents updated",
    source: "insightiq",
    received_at: "2026-12-04T10:00:01.000000Z",
    data: { account_id: account, content_ids: ["c-9"] },
    skipped: "job event",
  },
  {
    seq: 43,
    id: "674c0a1e5f0c2b0001a1b2c3",
    event: "CONTENTS.UPDATED",
    name: "contents updated",
    source: "insightiq",
    received_at: "2026-12-04T10:00:02.000000Z",
    data: { account_id: account, content_ids: ["c-5"] },
    resources: [42],
    missing: [],
  },
];

// 2^53 + 1 is not a JS number: put it into the JSON text directly, to see int64 values pass through exactly.
const text = transform(JSON.stringify(batch).replace('"view_count":1234567', '"view_count":9007199254740993'));
let out;
try {
  out = JSON.parse(text);
} catch (e) {
  check(false, `transform output is not JSON (${e.message}): ${text.slice(0, 300)}`);
}
console.log("transform:", text);
if (out) {
  const results = out.results ?? [];
  check(results.length === batch.length, `${results.length} results for ${batch.length} events`);
  const rows = results[0]?.rows?.content_engagement ?? [];
  check(Object.keys(results[0]?.rows ?? {}).join() === "content_engagement", `event 1: ${JSON.stringify(results[0])}`);
  check(rows.length === 2, `event 1: ${rows.length} rows, want 2`);
  const kind = (v) => (v === null ? "null" : Number.isInteger(v) ? "int" : typeof v);
  for (const [i, row] of rows.entries()) {
    check(Object.keys(row).join() === "id,platform,like_count,comment_count,view_count,published_at", `row ${i} columns: ${Object.keys(row)}`);
    check(typeof row.id === "string", `row ${i}: id is not a string`);
    check(["string", "null"].includes(kind(row.platform)), `row ${i}: platform ${row.platform}`);
    check(["string", "null"].includes(kind(row.published_at)), `row ${i}: published_at ${row.published_at}`);
    for (const c of ["like_count", "comment_count", "view_count"]) {
      check(["int", "null"].includes(kind(row[c])), `row ${i}: ${c} is ${JSON.stringify(row[c])}, want an integer or null`);
    }
  }
  check(
    JSON.stringify(rows[0]) ===
      JSON.stringify({ id: "c-1", platform: "Instagram", like_count: 120, comment_count: 7, view_count: 9007199254740992, published_at: "2026-12-03T18:21:05" }),
    `row 0: ${JSON.stringify(rows[0])}`,
  );
  // JSON.parse rounds 2^53 + 1 to 2^53 above: check the exact text too.
  check(text.includes('"view_count":9007199254740993'), "view_count 9007199254740993 did not come through exactly");
  check(
    JSON.stringify(rows[1]) ===
      JSON.stringify({ id: 'c-2"quoted"', platform: "YouTube", like_count: null, comment_count: null, view_count: 3, published_at: null }),
    `row 1: ${JSON.stringify(rows[1])}`,
  );
  check(JSON.stringify(results[1]) === '{"rows":{}}', `skipped event: ${JSON.stringify(results[1])}`);
  check(
    results[2]?.error === "content_engagement resources[0]: the resource is a number (42), not an object",
    `bad resource: ${JSON.stringify(results[2])}`,
  );
}

// --- more edge cases: escaping, wrong types, whole-batch errors --------------------------------------------------

const one = (event) => JSON.parse(transform([event])).results?.[0];
const base = { seq: 1, id: "e", event: "CONTENTS.ADDED", received_at: "2026-12-04T10:00:00Z", data: {} };
const weird = "q\"b\\s/\u0001\u001f\n\r\t\u2028 😀";
check(
  one({ ...base, resources: [{ id: weird, work_platform: { name: weird } }] })?.rows?.content_engagement?.[0]?.platform === weird,
  "escaping does not round-trip",
);
// A lone surrogate (\ud800 escaped in the input) must not produce invalid UTF-8: take() decodes with fatal: true.
check(
  one({ ...base, resources: [{ id: "x", work_platform: { name: "a\ud800b" } }] })?.rows?.content_engagement?.[0]?.platform === "a\ud800b",
  "lone surrogate does not round-trip",
);
check(JSON.stringify(one({ ...base, resources: [] })) === '{"rows":{}}', "no resources should give no rows");
check(JSON.stringify(one({ ...base })) === '{"rows":{}}', "absent resources should give no rows");
check(JSON.stringify(one({ ...base, event: "ACCOUNTS.ADDED", resources: [{ id: "a" }] })) === '{"rows":{}}', "unrouted event should give no rows");
check(
  one({ ...base, resources: [{ id: "c", engagement: { like_count: "12" } }] })?.error ===
    'content_engagement resources[0] (id c): engagement.like_count is a string ("12"), not int64',
  "string count should be an error",
);
check(one({ ...base, resources: [{ id: "c", engagement: { like_count: 1.5 } }] })?.error?.includes("not int64"), "1.5 should be an error");
check(one({ ...base, resources: [{ title: "no id" }] })?.error?.includes("id is missing"), "missing id should be an error");
check(one({ ...base, resources: [{ id: "c", work_platform: "IG" }] })?.error?.includes("work_platform is a string"), "bad work_platform");
check(one({ ...base, resources: { id: "c" } })?.error?.includes("resources is an object, not a list"), "resources as an object");
check(one(7)?.error === "the event is a number (7), not an object", "event that is not an object");
check(JSON.parse(transform("{\"not\": \"a list\"}")).error?.includes("not a list"), "batch that is not a list");
check(JSON.parse(transform("[{\"seq\": 1,")).error?.startsWith("the batch is not JSON"), "batch that is not JSON");
check(JSON.stringify(JSON.parse(transform("[]"))) === '{"results":[]}', "empty batch");
check(JSON.stringify(JSON.parse(transform(""))).includes("error"), "empty input");

// --- memory stays bounded: 200 calls, every document freed --------------------------------------------------------

const big = Array.from({ length: 20 }, (_, i) => ({
  ...batch[0],
  seq: 100 + i,
  resources: Array.from({ length: 25 }, (_, j) => content(`c-${i}-${j}`, "TikTok", { like_count: j, comment_count: i, view_count: i * j }, "2026-12-01T00:00:00")),
}));
const bigText = JSON.stringify(big);
const sizes = [];
for (let call = 1; call <= 200; call++) {
  const results = JSON.parse(transform(bigText)).results;
  if (call === 1) check(results.length === 20 && results.every((r) => r.rows.content_engagement.length === 25), "big batch results");
  if (call % 20 === 0) sizes.push(memory.buffer.byteLength);
}
console.log(`memory over 200 calls of a ${bigText.length}-byte batch, every 20 calls (KiB):`, sizes.map((s) => s / 1024).join(" "));
// The GC and the allocator reuse memory: after the first 20 calls, the next 180 must not grow it at all.
check(sizes[sizes.length - 1] === sizes[0], `memory grew from ${sizes[0]} to ${sizes[sizes.length - 1]} bytes over calls 20..200`);

check(logs.length === 0, `unexpected log lines: ${JSON.stringify(logs)}`);

// --- abort goes through hooklake.log and traps (no env.abort) -----------------------------------------------------

{
  const aborted = [];
  let mem;
  const fresh = new WebAssembly.Instance(module, {
    hooklake: { log: (level, ptr, len) => aborted.push([level, decoder.decode(new Uint8Array(mem.buffer, ptr >>> 0, len))]) },
  });
  mem = fresh.exports.memory;
  let trapped = false;
  try {
    fresh.exports.hooklake_alloc(0x7fffffff); // over the allocator's limit: aborts
  } catch (e) {
    trapped = e instanceof WebAssembly.RuntimeError;
  }
  check(trapped, "an oversized hooklake_alloc did not trap");
  check(aborted.length === 1 && aborted[0][0] === 0 && /allocation too large/i.test(aborted[0][1]), `abort log: ${JSON.stringify(aborted)}`);
}

if (failures.length) {
  for (const f of failures) console.error("FAIL:", f);
  process.exit(1);
}
console.log("check.mjs: all checks passed");
