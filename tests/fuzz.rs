//! Time-bounded fuzzing in CI, through the same harnesses as the `cargo fuzz` targets in `fuzz/`
//! (`hooklake::fuzzing`): a small mutation fuzzer (bit flips, inserted tokens, splices, truncations) grows
//! inputs from realistic seeds for `HOOKLAKE_FUZZ_SECS` seconds per target (default 20). A panic is a failure;
//! the input is written to `target/fuzz-failures/` so it can join `fuzz/regressions/<target>/`, which every run
//! replays first. `HOOKLAKE_FUZZ_SEED` repeats a run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap()
    }
}

/// Tokens that steer inputs into the parsers' interesting corners.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b":",
    b",",
    b"null",
    b"true",
    b"1e999",
    b"-0",
    b"\"id\":",
    b"\"event\":",
    b"\"data\":{",
    b"\"account_id\":",
    b"=",
    b"[[",
    b"]]",
    b"${",
    b"${SET}",
    b"${X:-",
    b"$$",
    b"\n",
    b"\r\n",
    b"#",
    b"'''",
    b"\"\"\"",
    b"type = \"webhook\"",
    b"inputs = [",
    b"\xff",
    b"\xc3\x28",
    b"webhook-signatures: ",
    b"x-forwarded-for: ",
    b"\0",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..=rng.below(4) {
        match rng.below(7) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let at = rng.below(input.len() + 1);
                let token = TOKENS[rng.below(TOKENS.len())];
                input.splice(at..at, token.iter().copied());
            }
            2 if !input.is_empty() => {
                let a = rng.below(input.len());
                let b = (a + rng.below(16)).min(input.len());
                input.drain(a..b);
            }
            3 if !input.is_empty() => {
                let a = rng.below(input.len());
                let b = (a + rng.below(32)).min(input.len());
                let chunk = input[a..b].to_vec();
                let at = rng.below(input.len() + 1);
                input.splice(at..at, chunk);
            }
            4 => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                let at = rng.below(input.len() + 1);
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            5 => input.truncate(rng.below(input.len() + 1)),
            _ => {
                let at = rng.below(input.len() + 1);
                input.insert(at, u8::try_from(rng.below(256)).unwrap());
            }
        }
    }
    input.truncate(64 * 1024);
}

fn regressions(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions").join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|d| d.map(|f| f.unwrap().path()).map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// Replays the regressions, then fuzzes `harness` from `seeds` until the time is up. Returns inputs tried.
fn fuzz(target: &str, seeds: Vec<Vec<u8>>, harness: impl Fn(&[u8])) -> u64 {
    for (path, input) in regressions(target) {
        if std::panic::catch_unwind(AssertUnwindSafe(|| harness(&input))).is_err() {
            panic!("regression {} fails again", path.display());
        }
    }
    let secs = std::env::var("HOOKLAKE_FUZZ_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let seed = std::env::var("HOOKLAKE_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    let mut rng = Rng(seed);
    let mut corpus = seeds;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tried = 0u64;
    // Panics are caught and reported with their input, not printed for every attempt.
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    while Instant::now() < deadline {
        let mut input = corpus[rng.below(corpus.len())].clone();
        mutate(&mut rng, &mut input, &corpus);
        tried += 1;
        if std::panic::catch_unwind(AssertUnwindSafe(|| harness(&input))).is_err() {
            std::panic::set_hook(quiet);
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures");
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{target}-{seed}-{tried}.bin"));
            std::fs::write(&file, &input).unwrap();
            // Run it once more with the normal hook so the panic message shows.
            harness(&input);
            panic!("{target}: input {} failed (HOOKLAKE_FUZZ_SEED={seed})", file.display());
        }
        // Keep some mutants as new starting points (a cheap stand-in for coverage feedback).
        if tried.is_multiple_of(64) && corpus.len() < 4096 {
            corpus.push(input);
        }
    }
    std::panic::set_hook(quiet);
    eprintln!("{target}: {tried} inputs in {secs} s (HOOKLAKE_FUZZ_SEED={seed}), no failure");
    tried
}

#[test]
fn the_request_path_never_panics_and_admits_only_correctly_signed_envelopes() {
    let admission = hooklake::fuzzing::admission();
    let mut seeds = Vec::new();
    for n in 0..40 {
        let event = hooklake::simulator::events::event(7, n).to_string();
        for mode in [0u8, 1, 2] {
            let mut input = vec![mode];
            input
                .extend_from_slice(b"content-type: application/json\nuser-agent: insightiq\nx-forwarded-for: 10.0.0.1");
            if mode == 2 {
                let sig = hooklake::simulator::sender::sign(hooklake::fuzzing::KEY, event.as_bytes());
                input.extend_from_slice(format!("\nwebhook-signatures: 00ff,{sig}").as_bytes());
            }
            input.push(0);
            input.extend_from_slice(event.as_bytes());
            seeds.push(input);
        }
    }
    let tried = fuzz("request", seeds, |data| hooklake::fuzzing::request(&admission, data));
    assert!(tried > 1000, "the harness is too slow to fuzz: {tried} inputs");
}

#[test]
fn the_config_parser_never_panics_and_every_error_points_into_the_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = vec![std::fs::read(root.join("config.toml")).unwrap()];
    for file in ["plugins/README.md", "README.md"] {
        // The TOML blocks of the docs are realistic configs too.
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for block in text.split("```toml").skip(1) {
            seeds.push(block.split("```").next().unwrap().as_bytes().to_vec());
        }
    }
    let tried = fuzz("config", seeds, hooklake::fuzzing::config);
    assert!(tried > 1000, "the harness is too slow to fuzz: {tried} inputs");
}
