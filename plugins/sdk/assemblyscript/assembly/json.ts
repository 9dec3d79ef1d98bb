// A minimal JSON reader and writer for hooklake plugins (AssemblyScript has no built-in JSON).
//
// Reading: `parseJson(text)` gives a `JsonValue` tree, or null with the reason in `jsonError()`
// (AssemblyScript has no exceptions). Numbers keep their source text, so int64 values and large ids come
// through exactly; `asF64()` / `isInt64()` / `asI64()` convert them when asked.
// Writing: `JsonWriter` appends pieces to an array and joins them once; `quote(s)` is one escaped JSON string.

export const enum JsonKind {
  Null = 0,
  Bool = 1,
  Number = 2,
  String = 3,
  Array = 4,
  Object = 5,
}

// Scalars share these (read-only) empty lists, which keeps a parsed document small.
const NO_VALUES: JsonValue[] = [];
const NO_KEYS: string[] = [];

/** One JSON value. `kind` says which of the fields is meaningful. */
export class JsonValue {
  /** Bool: the value. */
  bool: bool = false;
  /** Number: the source text (`12`, `-3.5e2`); String: the decoded text. */
  text: string = "";
  /** Array: the items (empty for other kinds). */
  items: JsonValue[];
  /** Object: keys and values, in document order (a repeated key: the first wins in `get`). */
  keys: string[];
  values: JsonValue[];

  constructor(public kind: JsonKind = JsonKind.Null) {
    this.items = kind == JsonKind.Array ? [] : NO_VALUES;
    this.keys = kind == JsonKind.Object ? [] : NO_KEYS;
    this.values = kind == JsonKind.Object ? [] : NO_VALUES;
  }

  static null(): JsonValue {
    return new JsonValue(JsonKind.Null);
  }

  isNull(): bool { return this.kind == JsonKind.Null; }
  isBool(): bool { return this.kind == JsonKind.Bool; }
  isNumber(): bool { return this.kind == JsonKind.Number; }
  isString(): bool { return this.kind == JsonKind.String; }
  isArray(): bool { return this.kind == JsonKind.Array; }
  isObject(): bool { return this.kind == JsonKind.Object; }

  /** An object's member, or null when absent or when this is not an object. */
  get(key: string): JsonValue | null {
    if (this.kind != JsonKind.Object) return null;
    const keys = this.keys;
    for (let i = 0; i < keys.length; i++) {
      if (keys[i] == key) return this.values[i];
    }
    return null;
  }

  /** The value at a dotted path (`work_platform.name`): null when a step is absent, null or not an object. */
  at(path: string): JsonValue | null {
    const steps = path.split(".");
    let value: JsonValue | null = this;
    for (let i = 0; i < steps.length; i++) {
      if (value == null) return null;
      value = value.get(steps[i]);
    }
    return value;
  }

  asF64(): f64 {
    return this.kind == JsonKind.Number ? parseFloat(this.text) : NaN;
  }

  /** Whether this is a number with an integral value that fits an i64 (`12`, `-4`, `3.0`, `1e3`). */
  isInt64(): bool {
    if (this.kind != JsonKind.Number) return false;
    if (isPlainInteger(this.text)) {
      // Up to 18 digits always fits; 19 digits fit up to 9223372036854775807.
      const digits = this.text.startsWith("-") ? this.text.length - 1 : this.text.length;
      if (digits < 19) return true;
      if (digits > 19) return false;
      return parseFloat(this.text) < 9.2233720368547e18 && parseFloat(this.text) > -9.2233720368547e18;
    }
    const x = parseFloat(this.text);
    return isFinite(x) && Math.floor(x) == x && Math.abs(x) < 9.2233720368547e18;
  }

  /** The i64 value of a number for which `isInt64()` holds (exact for plain integers). */
  asI64(): i64 {
    if (isPlainInteger(this.text)) return I64.parseInt(this.text, 10);
    return <i64>parseFloat(this.text);
  }

  /** How error messages name a value: `null`, `a bool (true)`, `a number (42)`, `a string ("x")`, `a list`, `an object`. */
  describe(): string {
    switch (this.kind) {
      case JsonKind.Null: return "null";
      case JsonKind.Bool: return this.bool ? "a bool (true)" : "a bool (false)";
      case JsonKind.Number: return "a number (" + this.text + ")";
      case JsonKind.String: {
        const s = this.text.length > 40 ? this.text.substring(0, 40) + "…" : this.text;
        return "a string (" + quote(s) + ")";
      }
      case JsonKind.Array: return "a list";
      default: return "an object";
    }
  }

  /** This value as JSON text. */
  toJson(): string {
    const w = new JsonWriter();
    w.value(this);
    return w.toString();
  }
}

function isPlainInteger(text: string): bool {
  let i = text.startsWith("-") ? 1 : 0;
  if (i >= text.length) return false;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

let lastError: string = "";

/** Why the last `parseJson` returned null. */
export function jsonError(): string {
  return lastError;
}

/** Parses a whole JSON document; null (see `jsonError()`) when it is not valid JSON. */
export function parseJson(text: string): JsonValue | null {
  const p = new Parser(text);
  let value = p.value(0);
  if (value != null) {
    p.space();
    if (p.pos < text.length) {
      p.fail("unexpected text after the JSON value");
      value = null;
    }
  }
  lastError = p.error;
  return value;
}

const MAX_DEPTH = 256;

class Parser {
  pos: i32 = 0;
  error: string = "";

  constructor(public text: string) {}

  /** Records the first error (the callers then return null). */
  fail(message: string): void {
    if (this.error.length == 0) this.error = message + " at offset " + this.pos.toString();
  }

  space(): void {
    const text = this.text;
    while (this.pos < text.length) {
      const c = text.charCodeAt(this.pos);
      if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) break;
      this.pos++;
    }
  }

  value(depth: i32): JsonValue | null {
    if (depth > MAX_DEPTH) { this.fail("nested too deeply"); return null; }
    this.space();
    if (this.pos >= this.text.length) { this.fail("unexpected end of JSON"); return null; }
    const c = this.text.charCodeAt(this.pos);
    if (c == 0x7b /* { */) return this.object(depth);
    if (c == 0x5b /* [ */) return this.array(depth);
    if (c == 0x22 /* " */) {
      const s = this.string();
      if (s == null) return null;
      const v = new JsonValue(JsonKind.String);
      v.text = s;
      return v;
    }
    if (c == 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) return this.number();
    if (this.literal("true")) { const v = new JsonValue(JsonKind.Bool); v.bool = true; return v; }
    if (this.literal("false")) return new JsonValue(JsonKind.Bool);
    if (this.literal("null")) return JsonValue.null();
    this.fail("unexpected character " + quote(String.fromCharCode(c)));
    return null;
  }

  literal(word: string): bool {
    if (this.text.substr(this.pos, word.length) != word) return false;
    this.pos += word.length;
    return true;
  }

  object(depth: i32): JsonValue | null {
    const v = new JsonValue(JsonKind.Object);
    this.pos++; // {
    this.space();
    if (this.peek() == 0x7d /* } */) { this.pos++; return v; }
    while (true) {
      this.space();
      if (this.peek() != 0x22) { this.fail("expected a string key"); return null; }
      const key = this.string();
      if (key == null) return null;
      this.space();
      if (this.peek() != 0x3a /* : */) { this.fail("expected ':'"); return null; }
      this.pos++;
      const item = this.value(depth + 1);
      if (item == null) return null;
      v.keys.push(key);
      v.values.push(item);
      this.space();
      const c = this.peek();
      this.pos++;
      if (c == 0x2c /* , */) continue;
      if (c == 0x7d /* } */) return v;
      this.pos--;
      this.fail("expected ',' or '}'");
      return null;
    }
  }

  array(depth: i32): JsonValue | null {
    const v = new JsonValue(JsonKind.Array);
    this.pos++; // [
    this.space();
    if (this.peek() == 0x5d /* ] */) { this.pos++; return v; }
    while (true) {
      const item = this.value(depth + 1);
      if (item == null) return null;
      v.items.push(item);
      this.space();
      const c = this.peek();
      this.pos++;
      if (c == 0x2c /* , */) continue;
      if (c == 0x5d /* ] */) return v;
      this.pos--;
      this.fail("expected ',' or ']'");
      return null;
    }
  }

  /** The next code unit, or -1 at the end. */
  peek(): i32 {
    return this.pos < this.text.length ? this.text.charCodeAt(this.pos) : -1;
  }

  number(): JsonValue | null {
    const text = this.text;
    const start = this.pos;
    if (this.peek() == 0x2d) this.pos++;
    if (this.peek() == 0x30) {
      this.pos++;
    } else if (this.digits() == 0) {
      this.fail("bad number");
      return null;
    }
    if (this.peek() == 0x2e /* . */) {
      this.pos++;
      if (this.digits() == 0) { this.fail("bad number"); return null; }
    }
    const e = this.peek();
    if (e == 0x65 || e == 0x45 /* e E */) {
      this.pos++;
      const sign = this.peek();
      if (sign == 0x2b || sign == 0x2d) this.pos++;
      if (this.digits() == 0) { this.fail("bad number"); return null; }
    }
    const v = new JsonValue(JsonKind.Number);
    v.text = text.substring(start, this.pos);
    return v;
  }

  digits(): i32 {
    const start = this.pos;
    while (true) {
      const c = this.peek();
      if (c < 0x30 || c > 0x39) break;
      this.pos++;
    }
    return this.pos - start;
  }

  /** A string starting at the opening quote; unescaped. */
  string(): string | null {
    const text = this.text;
    this.pos++; // "
    let parts: string[] | null = null; // only when there are escapes
    let run = this.pos;
    while (this.pos < text.length) {
      const c = text.charCodeAt(this.pos);
      if (c == 0x22) {
        const tail = text.substring(run, this.pos);
        this.pos++;
        if (parts == null) return tail;
        parts.push(tail);
        return parts.join("");
      }
      if (c < 0x20) { this.fail("control character in a string"); return null; }
      if (c != 0x5c /* \ */) {
        this.pos++;
        continue;
      }
      if (parts == null) parts = [];
      parts.push(text.substring(run, this.pos));
      this.pos++;
      const e = this.peek();
      this.pos++;
      if (e == 0x22) parts.push("\"");
      else if (e == 0x5c) parts.push("\\");
      else if (e == 0x2f) parts.push("/");
      else if (e == 0x62) parts.push("\b");
      else if (e == 0x66) parts.push("\f");
      else if (e == 0x6e) parts.push("\n");
      else if (e == 0x72) parts.push("\r");
      else if (e == 0x74) parts.push("\t");
      else if (e == 0x75 /* u */) {
        if (this.pos + 4 > text.length) { this.fail("bad \\u escape"); return null; }
        let code = 0;
        for (let k = 0; k < 4; k++) {
          const h = hexValue(text.charCodeAt(this.pos + k));
          if (h < 0) { this.fail("bad \\u escape"); return null; }
          code = (code << 4) | h;
        }
        this.pos += 4;
        // Surrogate pairs arrive as two escapes; each is one UTF-16 unit, which is what a string holds.
        parts.push(String.fromCharCode(code));
      } else {
        this.pos--;
        this.fail("bad escape");
        return null;
      }
      run = this.pos;
    }
    this.fail("unterminated string");
    return null;
  }
}

function hexValue(c: i32): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

const HEX = "0123456789abcdef";

/** `s` as a JSON string literal: quotes, `\"`, `\\`, control characters and lone surrogates escaped. */
export function quote(s: string): string {
  let parts: string[] | null = null;
  let run = 0;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    let escape: string | null = null;
    if (c == 0x22) escape = "\\\"";
    else if (c == 0x5c) escape = "\\\\";
    else if (c == 0x0a) escape = "\\n";
    else if (c == 0x0d) escape = "\\r";
    else if (c == 0x09) escape = "\\t";
    else if (c < 0x20) escape = unicodeEscape(c);
    else if (c >= 0xd800 && c <= 0xdbff) {
      // A high surrogate is fine followed by a low one (a valid pair, UTF-8 encodable); alone it is escaped,
      // since lone surrogates cannot be written as UTF-8.
      const next = i + 1 < n ? s.charCodeAt(i + 1) : 0;
      if (next >= 0xdc00 && next <= 0xdfff) { i++; continue; }
      escape = unicodeEscape(c);
    } else if (c >= 0xdc00 && c <= 0xdfff) escape = unicodeEscape(c);
    if (escape == null) continue;
    if (parts == null) parts = ["\""];
    parts.push(s.substring(run, i));
    parts.push(escape);
    run = i + 1;
  }
  if (parts == null) return "\"" + s + "\"";
  parts.push(s.substring(run, n));
  parts.push("\"");
  return parts.join("");
}

function unicodeEscape(c: i32): string {
  return "\\u" + HEX.charAt((c >> 12) & 15) + HEX.charAt((c >> 8) & 15) + HEX.charAt((c >> 4) & 15) + HEX.charAt(c & 15);
}

/**
 * Builds a JSON document piece by piece. It does not check structure: callers write `{`, keys, `,` in order.
 * `key(k)` writes the comma when needed, `item()` the comma between array items.
 */
export class JsonWriter {
  private parts: string[] = [];
  /** Whether the innermost open object/array already has a member (so the next needs a comma). */
  private nonEmpty: bool[] = [];

  raw(text: string): JsonWriter { this.parts.push(text); return this; }

  beginObject(): JsonWriter { this.parts.push("{"); this.nonEmpty.push(false); return this; }
  endObject(): JsonWriter { this.parts.push("}"); this.nonEmpty.pop(); return this; }
  beginArray(): JsonWriter { this.parts.push("["); this.nonEmpty.push(false); return this; }
  endArray(): JsonWriter { this.parts.push("]"); this.nonEmpty.pop(); return this; }

  /** Starts an object member: `,"k":` (the comma only after the first). */
  key(k: string): JsonWriter {
    this.comma();
    this.parts.push(quote(k));
    this.parts.push(":");
    return this;
  }

  /** Starts an array item (writes the comma between items). */
  item(): JsonWriter { this.comma(); return this; }

  string(s: string): JsonWriter { this.parts.push(quote(s)); return this; }
  nullValue(): JsonWriter { this.parts.push("null"); return this; }
  boolean(b: bool): JsonWriter { this.parts.push(b ? "true" : "false"); return this; }
  int(n: i64): JsonWriter { this.parts.push(n.toString()); return this; }

  /** Any parsed value, re-serialized (numbers as their source text). */
  value(v: JsonValue): JsonWriter {
    switch (v.kind) {
      case JsonKind.Null: this.parts.push("null"); break;
      case JsonKind.Bool: this.parts.push(v.bool ? "true" : "false"); break;
      case JsonKind.Number: this.parts.push(v.text); break;
      case JsonKind.String: this.parts.push(quote(v.text)); break;
      case JsonKind.Array: {
        this.beginArray();
        for (let i = 0; i < v.items.length; i++) { this.item(); this.value(v.items[i]); }
        this.endArray();
        break;
      }
      default: {
        this.beginObject();
        for (let i = 0; i < v.keys.length; i++) { this.key(v.keys[i]); this.value(v.values[i]); }
        this.endObject();
      }
    }
    return this;
  }

  toString(): string { return this.parts.join(""); }

  private comma(): void {
    const depth = this.nonEmpty.length;
    if (depth == 0) return;
    if (this.nonEmpty[depth - 1]) this.parts.push(",");
    else this.nonEmpty[depth - 1] = true;
  }
}
