//! The wasmtime host: loads a plugin file (a component or a core module, told apart by its header), refuses
//! any import but `log` (no WASI: no files, network, clock or randomness), checks its exports and ABI version,
//! and calls it under limits: memory (`StoreLimits`, a failed grow traps), CPU (fuel: deterministic, so a
//! rewrite after a crash maps exactly as the first attempt did) and output size.
//!
//! Both packagings carry the same JSON documents; everything after [`Instance::transform`] is one code path.
//! Compiled code is cached by wasmtime in `data_dir/plugin-cache` (keyed by the file's content and the engine's
//! settings), so a restart loads a plugin instead of compiling it again.

use std::path::Path;
use std::sync::Arc;

use wasmtime::component::{Component, HasSelf};
use wasmtime::{Caller, Engine, Extern, Linker, Module, Store, StoreLimits, StoreLimitsBuilder, Trap, TypedFunc};

use super::describe::Describe;

mod bindings {
    wasmtime::component::bindgen!({ path: "plugins/wit/plugin.wit", world: "plugin" });
}

/// The ABI version this host speaks (`hooklake_abi_version`).
pub const ABI_VERSION: i32 = 1;
/// Log lines a plugin may write per call; more are dropped (and counted in one warning).
pub const MAX_LOG_LINES: u32 = 100;
/// Core instances one plugin instance may create (a core module is one; a component may be dozens).
pub const MAX_CORE_INSTANCES: usize = 64;
/// Longest log line kept.
pub const MAX_LOG_BYTES: usize = 4096;

/// Per-plugin bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory, bytes.
    pub memory: usize,
    /// Fuel per call (about one unit per instruction).
    pub fuel: u64,
    /// Largest output document, bytes.
    pub max_output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { memory: 64 << 20, fuel: 2_000_000_000, max_output: 16 << 20 }
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The plugin trapped (includes a denied memory grow).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// It ran out of its CPU budget.
    #[error("plugin ran out of its CPU budget ({0} fuel) and was stopped")]
    OutOfFuel(u64),
    /// Its output was larger than allowed.
    #[error("plugin output is {size} bytes, over the {max}-byte limit")]
    OutputTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// It broke the ABI (pointer out of bounds, output not UTF-8).
    #[error("plugin broke the ABI: {0}")]
    Abi(String),
    /// It reported a whole-batch failure.
    #[error("plugin failed the batch: {0}")]
    Batch(String),
}

/// Why a plugin cannot be loaded: the message names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {path}: {reason}")]
pub struct LoadError {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// What a store holds.
pub struct State {
    limits: StoreLimits,
    plugin: Arc<str>,
    logs_left: u32,
}

impl bindings::PluginImports for State {
    fn log(&mut self, level: bindings::Level, message: String) {
        let level = match level {
            bindings::Level::Error => 0,
            bindings::Level::Warn => 1,
            bindings::Level::Info => 2,
            bindings::Level::Debug => 3,
            bindings::Level::Trace => 4,
        };
        self.log_line(level, &message);
    }
}

impl State {
    fn log_line(&mut self, level: i32, message: &str) {
        if self.logs_left == 0 {
            return;
        }
        self.logs_left -= 1;
        let message: String = message.chars().take(MAX_LOG_BYTES).collect();
        let plugin = &*self.plugin;
        match level {
            0 => tracing::error!(plugin, "{message}"),
            1 => tracing::warn!(plugin, "{message}"),
            2 => tracing::info!(plugin, "{message}"),
            3 => tracing::debug!(plugin, "{message}"),
            _ => tracing::trace!(plugin, "{message}"),
        }
        if self.logs_left == 0 {
            tracing::warn!(plugin, "plugin log limit reached ({MAX_LOG_LINES} lines per call); dropping the rest");
        }
    }
}

/// The engine every plugin shares.
///
/// # Errors
/// When wasmtime cannot be configured (the cache folder cannot be created).
pub fn engine(cache_dir: Option<&Path>) -> Result<Engine, String> {
    let mut config = wasmtime::Config::new();
    config.consume_fuel(true);
    config.wasm_component_model(true);
    if let Some(dir) = cache_dir {
        // wasmtime wants an absolute folder; a relative data_dir is relative to the config (already joined).
        let dir = std::path::absolute(dir).map_err(|e| format!("plugin cache in {}: {e}", dir.display()))?;
        let mut cache = wasmtime::CacheConfig::new();
        cache.with_directory(&dir);
        let cache = wasmtime::Cache::new(cache).map_err(|e| format!("plugin cache in {}: {e}", dir.display()))?;
        config.cache(Some(cache));
    }
    Engine::new(&config).map_err(|e| format!("cannot start the WebAssembly engine: {e}"))
}

enum Pre {
    Core(wasmtime::InstancePre<State>),
    Component(bindings::PluginPre<State>),
}

/// A loaded, checked plugin: compiled once, instantiated per worker.
pub struct Plugin {
    /// The file it came from.
    pub path: String,
    /// Its description.
    pub describe: Describe,
    /// Its bounds.
    pub limits: Limits,
    engine: Engine,
    pre: Pre,
    name: Arc<str>,
}

/// The raw ABI's exports, looked up once per instance.
struct CoreCalls {
    memory: wasmtime::Memory,
    alloc: TypedFunc<i32, i32>,
    free: TypedFunc<(i32, i32), ()>,
    describe: TypedFunc<(), i64>,
    transform: TypedFunc<(i32, i32), i64>,
}

enum Calls {
    Core(Box<CoreCalls>),
    Component(Box<bindings::Plugin>),
}

/// One instance of a plugin, in its own store. After a trap, throw it away and make a new one.
pub struct Instance {
    store: Store<State>,
    calls: Calls,
    limits: Limits,
}

fn is_component(bytes: &[u8]) -> bool {
    // The preamble: `\0asm`, then version 1 layer 0 for core modules, version 0x0d layer 1 for components.
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}

impl Plugin {
    /// Loads the plugin in `path` (`.wasm`, or `.wat` text), checks its imports, exports, ABI version and
    /// description.
    ///
    /// # Errors
    /// [`LoadError`] naming the file and the reason.
    pub fn load(engine: &Engine, path: &Path, limits: Limits) -> Result<Self, LoadError> {
        let shown = path.display().to_string();
        let fail = |reason: String| LoadError { path: shown.clone(), reason };
        let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
        let bytes = wat::parse_bytes(&bytes).map_err(|e| fail(format!("not WebAssembly: {e}")))?;
        let name: Arc<str> = Arc::from(path.file_stem().and_then(|s| s.to_str()).unwrap_or("plugin"));
        let pre = if is_component(&bytes) {
            let component =
                Component::new(engine, &bytes).map_err(|e| fail(format!("not a valid component: {e:#}")))?;
            for (import, _) in component.component_type().imports(engine) {
                if import != "log" {
                    return Err(fail(format!(
                        "imports `{import}`, which hooklake does not provide: plugins get no WASI (no files, network, clock or randomness); only `log` may be imported"
                    )));
                }
            }
            let mut linker = wasmtime::component::Linker::<State>::new(engine);
            bindings::Plugin::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
                .map_err(|e| fail(format!("linking: {e:#}")))?;
            let pre = linker.instantiate_pre(&component).map_err(|e| fail(format!("{e:#}")))?;
            Pre::Component(
                bindings::PluginPre::new(pre).map_err(|e| fail(format!("does not export the plugin world: {e:#}")))?,
            )
        } else {
            let module = Module::new(engine, &bytes).map_err(|e| fail(format!("not a valid module: {e:#}")))?;
            check_core_imports(&module).map_err(fail)?;
            check_core_exports(&module).map_err(fail)?;
            let mut linker = Linker::<State>::new(engine);
            linker
                .func_wrap("hooklake", "log", |mut caller: Caller<'_, State>, level: i32, ptr: i32, len: i32| {
                    let Some(Extern::Memory(memory)) = caller.get_export("memory") else { return };
                    let text = read(memory.data(&caller), ptr, len, MAX_LOG_BYTES)
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_else(|e| format!("(unreadable log line: {e})"));
                    caller.data_mut().log_line(level, &text);
                })
                .map_err(|e| fail(format!("linking: {e:#}")))?;
            Pre::Core(linker.instantiate_pre(&module).map_err(|e| fail(format!("{e:#}")))?)
        };
        let mut plugin = Self {
            path: shown.clone(),
            describe: Describe {
                name: String::new(),
                version: String::new(),
                routes: Vec::new(),
                tables: Default::default(),
            },
            limits,
            engine: engine.clone(),
            pre,
            name,
        };
        let mut instance = plugin.instance().map_err(|e| fail(e.to_string()))?;
        let text = instance.describe().map_err(|e| fail(format!("describe failed: {e}")))?;
        plugin.describe = Describe::parse(&text).map_err(fail)?;
        plugin.name = Arc::from(plugin.describe.name.as_str());
        Ok(plugin)
    }

    /// A fresh instance.
    ///
    /// # Errors
    /// When instantiation fails (a start function trapped, memory over the limit) or the ABI version differs.
    pub fn instance(&self) -> Result<Instance, CallError> {
        // A component may be many core instances (a componentize-py one is 38: CPython, libc, stubs); they share
        // the memory bound below.
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory)
            .instances(MAX_CORE_INSTANCES)
            .tables(4)
            .memories(1)
            .trap_on_grow_failure(true)
            .build();
        let mut store =
            Store::new(&self.engine, State { limits, plugin: Arc::clone(&self.name), logs_left: MAX_LOG_LINES });
        store.limiter(|s| &mut s.limits);
        store.set_fuel(self.limits.fuel).map_err(|e| CallError::Trap(e.to_string()))?;
        let calls = match &self.pre {
            Pre::Component(pre) => {
                Calls::Component(Box::new(pre.instantiate(&mut store).map_err(|e| trap(&e, self.limits.fuel))?))
            }
            Pre::Core(pre) => {
                let instance = pre.instantiate(&mut store).map_err(|e| trap(&e, self.limits.fuel))?;
                let abi = |e: wasmtime::Error| CallError::Abi(format!("{e:#}"));
                let version: TypedFunc<(), i32> =
                    instance.get_typed_func(&mut store, "hooklake_abi_version").map_err(abi)?;
                let v = version.call(&mut store, ()).map_err(|e| trap(&e, self.limits.fuel))?;
                if v != ABI_VERSION {
                    return Err(CallError::Abi(format!(
                        "it speaks ABI version {v}; this hooklake speaks version {ABI_VERSION}"
                    )));
                }
                Calls::Core(Box::new(CoreCalls {
                    memory: instance
                        .get_memory(&mut store, "memory")
                        .ok_or_else(|| CallError::Abi("no exported `memory`".into()))?,
                    alloc: instance.get_typed_func(&mut store, "hooklake_alloc").map_err(abi)?,
                    free: instance.get_typed_func(&mut store, "hooklake_free").map_err(abi)?,
                    describe: instance.get_typed_func(&mut store, "hooklake_describe").map_err(abi)?,
                    transform: instance.get_typed_func(&mut store, "hooklake_transform").map_err(abi)?,
                }))
            }
        };
        Ok(Instance { store, calls, limits: self.limits })
    }
}

impl Instance {
    fn refuel(&mut self) -> Result<(), CallError> {
        self.store.data_mut().logs_left = MAX_LOG_LINES;
        self.store.set_fuel(self.limits.fuel).map_err(|e| CallError::Trap(e.to_string()))
    }

    /// The plugin's describe document.
    ///
    /// # Errors
    /// [`CallError`].
    pub fn describe(&mut self) -> Result<String, CallError> {
        self.refuel()?;
        let fuel = self.limits.fuel;
        match &self.calls {
            Calls::Component(p) => p.call_describe(&mut self.store).map_err(|e| trap(&e, fuel)),
            Calls::Core(core) => {
                let describe = core.describe.clone();
                let packed = describe.call(&mut self.store, ()).map_err(|e| trap(&e, fuel))?;
                self.take_output(packed)
            }
        }
    }

    /// Maps one batch (a JSON array of enriched events) to the results document.
    ///
    /// # Errors
    /// [`CallError`]; [`CallError::Batch`] for a whole-batch failure the plugin reported.
    pub fn transform(&mut self, batch: &str) -> Result<String, CallError> {
        self.refuel()?;
        let fuel = self.limits.fuel;
        let text = match &self.calls {
            Calls::Component(p) => {
                p.call_transform(&mut self.store, batch).map_err(|e| trap(&e, fuel))?.map_err(CallError::Batch)?
            }
            Calls::Core(core) => {
                let (memory, alloc, transform) = (core.memory, core.alloc.clone(), core.transform.clone());
                let len = i32::try_from(batch.len()).map_err(|_| CallError::Abi("batch over 2 GiB".into()))?;
                let ptr = alloc.call(&mut self.store, len).map_err(|e| trap(&e, fuel))?;
                let start = usize::try_from(ptr)
                    .map_err(|_| CallError::Abi("hooklake_alloc returned a negative pointer".into()))?;
                memory
                    .write(&mut self.store, start, batch.as_bytes())
                    .map_err(|_| CallError::Abi("hooklake_alloc returned memory out of bounds".into()))?;
                // The plugin owns the input buffer from here on (the SDKs free it when the call ends).
                let packed = transform.call(&mut self.store, (ptr, len)).map_err(|e| trap(&e, fuel))?;
                self.take_output(packed)?
            }
        };
        if text.len() > self.limits.max_output {
            return Err(CallError::OutputTooLarge { size: text.len(), max: self.limits.max_output });
        }
        // A core module signals a whole-batch failure with `{"error": "…"}`.
        if text.starts_with("{\"error\"")
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(e) = v.get("error").and_then(serde_json::Value::as_str)
            && v.get("results").is_none()
        {
            return Err(CallError::Batch(e.to_owned()));
        }
        Ok(text)
    }

    /// Reads `(ptr << 32) | len` out of the module's memory and frees it.
    fn take_output(&mut self, packed: i64) -> Result<String, CallError> {
        let Calls::Core(core) = &self.calls else {
            return Err(CallError::Abi("not a core module".into()));
        };
        let (memory, free) = (core.memory, core.free.clone());
        let ptr = (packed >> 32) as i32;
        let len = (packed & 0xffff_ffff) as i32;
        let size = usize::try_from(len).unwrap_or(usize::MAX);
        if size > self.limits.max_output {
            return Err(CallError::OutputTooLarge { size, max: self.limits.max_output });
        }
        let bytes = read(memory.data(&self.store), ptr, len, self.limits.max_output).map_err(CallError::Abi)?.to_vec();
        free.call(&mut self.store, (ptr, len)).map_err(|e| trap(&e, self.limits.fuel))?;
        String::from_utf8(bytes).map_err(|_| CallError::Abi("output is not UTF-8".into()))
    }
}

/// The bytes at `ptr..ptr+len` of a memory, bounds-checked.
fn read(data: &[u8], ptr: i32, len: i32, max: usize) -> Result<&[u8], String> {
    let (Ok(start), Ok(len)) = (usize::try_from(ptr), usize::try_from(len)) else {
        return Err(format!("negative pointer or length ({ptr}, {len})"));
    };
    if len > max {
        return Err(format!("{len} bytes is over the {max}-byte limit"));
    }
    start
        .checked_add(len)
        .and_then(|end| data.get(start..end))
        .ok_or_else(|| format!("({ptr}, {len}) is out of bounds"))
}

fn trap(e: &wasmtime::Error, fuel: u64) -> CallError {
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallError::OutOfFuel(fuel),
        Some(t) => CallError::Trap(t.to_string()),
        None => CallError::Trap(format!("{e:#}")),
    }
}

fn check_core_imports(module: &Module) -> Result<(), String> {
    for import in module.imports() {
        let ok = import.module() == "hooklake"
            && import.name() == "log"
            && matches!(import.ty(), wasmtime::ExternType::Func(f)
                if f.params().len() == 3 && f.params().all(|p| matches!(p, wasmtime::ValType::I32)) && f.results().len() == 0);
        if !ok {
            return Err(format!(
                "imports `{}::{}`, which hooklake does not provide: plugins get no WASI (no files, network, clock or randomness); only `hooklake::log(level: i32, ptr: i32, len: i32)` may be imported",
                import.module(),
                import.name()
            ));
        }
    }
    Ok(())
}

fn check_core_exports(module: &Module) -> Result<(), String> {
    use wasmtime::ValType::{I32, I64};
    let want: [(&str, &[wasmtime::ValType], &[wasmtime::ValType]); 5] = [
        ("hooklake_abi_version", &[], &[I32]),
        ("hooklake_alloc", &[I32], &[I32]),
        ("hooklake_free", &[I32, I32], &[]),
        ("hooklake_describe", &[], &[I64]),
        ("hooklake_transform", &[I32, I32], &[I64]),
    ];
    if !module.exports().any(|e| e.name() == "memory" && matches!(e.ty(), wasmtime::ExternType::Memory(_))) {
        return Err("does not export `memory` (the raw ABI needs it)".into());
    }
    for (name, params, results) in want {
        let Some(export) = module.exports().find(|e| e.name() == name) else {
            return Err(format!("does not export `{name}`, which the raw ABI needs (spec: plugins.md)"));
        };
        let wasmtime::ExternType::Func(f) = export.ty() else { return Err(format!("`{name}` is not a function")) };
        let same = |a: &mut dyn Iterator<Item = wasmtime::ValType>, b: &[wasmtime::ValType]| {
            let a: Vec<_> = a.collect();
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| wasmtime::ValType::eq(x, y))
        };
        if !same(&mut f.params(), params) || !same(&mut f.results(), results) {
            return Err(format!("`{name}` has the wrong signature (spec: plugins.md)"));
        }
    }
    Ok(())
}
