#!/usr/bin/env python3
"""How much of a plugin call is fuel metering: the same plugin and batch in wasmtime (Python bindings, the
`plugins/.venv` that plugins/build.sh --check creates) with fuel on and off, median of 30 calls each.

    target/release/examples/plugin_bench plugins/insightiq.wasm --write-batch /tmp/batch.json --rounds 1
    plugins/.venv/bin/python benches/fuel_share.py plugins/insightiq.wasm /tmp/batch.json
"""
import statistics
import sys
import time

import wasmtime


def median_call(plugin, data, fuel):
    config = wasmtime.Config()
    config.consume_fuel = fuel
    engine = wasmtime.Engine(config)
    store = wasmtime.Store(engine)
    module = wasmtime.Module.from_file(engine, plugin)
    exports = wasmtime.Instance(store, module, []).exports(store)
    memory, times = exports["memory"], []
    for _ in range(30):
        if fuel:
            store.set_fuel(10**12)
        ptr = exports["hooklake_alloc"](store, len(data))
        memory.write(store, data, ptr)
        start = time.perf_counter()
        packed = exports["hooklake_transform"](store, ptr, len(data))
        times.append(time.perf_counter() - start)
        exports["hooklake_free"](store, packed >> 32, packed & 0xFFFFFFFF)
    return statistics.median(times)


def main():
    plugin, batch = sys.argv[1], sys.argv[2]
    data = open(batch, "rb").read()
    on, off = median_call(plugin, data, True), median_call(plugin, data, False)
    print(f"fuel on {on * 1e3:.1f} ms, off {off * 1e3:.1f} ms per batch: fuel is {(on - off) / on * 100:.0f} % of a call")


if __name__ == "__main__":
    main()
