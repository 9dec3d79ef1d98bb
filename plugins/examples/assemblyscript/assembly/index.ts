// Example hooklake plugin in AssemblyScript: content engagement counters.
//
// CONTENTS.ADDED / CONTENTS.UPDATED events → table `content_engagement`, one row per resource (the content record
// the enrich stage fetched). An event that was not enriched (`skipped`) or has no resources gives no rows; a
// resource that is not an object, or a field of the wrong JSON type, makes that event's result an error.

import { plugin, parseJson, jsonError, JsonValue, JsonWriter } from "../../../sdk/assemblyscript/assembly/hooklake";
export {
  hooklake_abi_version,
  hooklake_alloc,
  hooklake_free,
  hooklake_describe,
  hooklake_transform,
} from "../../../sdk/assemblyscript/assembly/hooklake";

const TABLE = "content_engagement";
const EVENTS = ["CONTENTS.ADDED", "CONTENTS.UPDATED"];
const COUNTERS = ["like_count", "comment_count", "view_count"]; // engagement.* → int64 columns

function describe(): string {
  return (
    '{"name":"content_engagement","version":"0.1.0",' +
    '"routes":[{"events":["CONTENTS.ADDED","CONTENTS.UPDATED"],"table":"content_engagement"}],' +
    '"tables":{"content_engagement":[' +
    '{"name":"id","type":"string","nullable":false},' +
    '{"name":"platform","type":"string"},' +
    '{"name":"like_count","type":"int64"},' +
    '{"name":"comment_count","type":"int64"},' +
    '{"name":"view_count","type":"int64"},' +
    '{"name":"published_at","type":"timestamp"}]}}'
  );
}

function transform(batchJson: string): string {
  const batch = parseJson(batchJson);
  if (batch == null) return errorDocument("the batch is not JSON: " + jsonError());
  if (!batch.isArray()) return errorDocument("the batch is " + batch.describe() + ", not a list");
  const out = new JsonWriter();
  out.beginObject().key("results").beginArray();
  for (let i = 0; i < batch.items.length; i++) {
    out.item();
    mapEvent(out, batch.items[i]);
  }
  out.endArray().endObject();
  return out.toString();
}

plugin(describe, transform);

/** Writes one event's result: `{"rows":{…}}` or `{"error":"…"}`. */
function mapEvent(out: JsonWriter, event: JsonValue): void {
  if (!event.isObject()) return writeError(out, "the event is " + event.describe() + ", not an object");
  const skipped = event.get("skipped");
  const type = event.get("event");
  const resources = event.get("resources");
  const ours = type != null && type.isString() && EVENTS.includes(type.text);
  if ((skipped != null && !skipped.isNull()) || !ours || resources == null || resources.isNull()) {
    return writeEmpty(out);
  }
  if (!resources.isArray()) return writeError(out, "resources is " + resources.describe() + ", not a list");
  if (resources.items.length == 0) return writeEmpty(out);

  // Rows go into their own writer, so an error in a later resource leaves nothing half-written in `out`.
  const rows = new JsonWriter();
  rows.beginArray();
  for (let i = 0; i < resources.items.length; i++) {
    const resource = resources.items[i];
    const problem = writeRow(rows, resource);
    if (problem.length > 0) {
      const id = resource.get("id");
      const named = id != null && id.isString() ? " (id " + id.text + ")" : "";
      return writeError(out, TABLE + " resources[" + i.toString() + "]" + named + ": " + problem);
    }
  }
  rows.endArray();
  out.beginObject().key("rows").beginObject().key(TABLE).raw(rows.toString()).endObject().endObject();
}

/** Writes one row for `resource`; returns what is wrong with it ("" when nothing is). */
function writeRow(rows: JsonWriter, resource: JsonValue): string {
  if (!resource.isObject()) return "the resource is " + resource.describe() + ", not an object";

  const id = resource.get("id");
  if (id == null || !id.isString()) return "id is " + (id == null ? "missing" : id.describe()) + ", not a string";

  const platform = stringAt(resource, "work_platform.name");
  if (platform.problem.length > 0) return platform.problem;
  const published = stringAt(resource, "published_at");
  if (published.problem.length > 0) return published.problem;

  const engagement = resource.get("engagement");
  if (engagement != null && !engagement.isNull() && !engagement.isObject()) {
    return "engagement is " + engagement.describe() + ", not an object";
  }

  rows.item().beginObject();
  rows.key("id").string(id.text);
  rows.key("platform");
  writeOptional(rows, platform.value);
  for (let i = 0; i < COUNTERS.length; i++) {
    const name = COUNTERS[i];
    const v = engagement != null ? engagement.get(name) : null;
    if (v == null || v.isNull()) {
      rows.key(name).nullValue();
    } else if (v.isInt64()) {
      rows.key(name).int(v.asI64());
    } else {
      return "engagement." + name + " is " + v.describe() + ", not int64";
    }
  }
  rows.key("published_at");
  writeOptional(rows, published.value);
  rows.endObject();
  return "";
}

class Lookup {
  value: string | null = null;
  problem: string = "";
}

/** A string at a dotted path: null when a step is absent or null; a problem when a step or the value has another type. */
function stringAt(resource: JsonValue, path: string): Lookup {
  const found = new Lookup();
  const steps = path.split(".");
  let v: JsonValue = resource;
  for (let i = 0; i < steps.length; i++) {
    if (!v.isObject()) {
      found.problem = steps.slice(0, i).join(".") + " is " + v.describe() + ", not an object";
      return found;
    }
    const next = v.get(steps[i]);
    if (next == null || next.isNull()) return found;
    v = next;
  }
  if (!v.isString()) found.problem = path + " is " + v.describe() + ", not a string";
  else found.value = v.text;
  return found;
}

function writeOptional(w: JsonWriter, s: string | null): void {
  if (s == null) w.nullValue();
  else w.string(s);
}

function writeEmpty(out: JsonWriter): void {
  out.raw('{"rows":{}}');
}

function writeError(out: JsonWriter, message: string): void {
  out.beginObject().key("error").string(message).endObject();
}

function errorDocument(message: string): string {
  const w = new JsonWriter();
  w.beginObject().key("error").string(message).endObject();
  return w.toString();
}
