//! `--help` of every command, compared with the snapshots in `tests/snapshots/help/`. Commands are found by
//! walking the "Commands:" lists of the help texts themselves, so a new command without a snapshot fails here.
//! After a deliberate change: `UPDATE_SNAPSHOTS=1 cargo test --test help`, then review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn help(path: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hooklake"))
        .args(path)
        .arg("--help")
        // Help wraps at the terminal width: fix it so snapshots do not depend on who runs the test.
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(out.status.success(), "hooklake {path:?} --help failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The subcommands a help text lists (none for a leaf command).
fn subcommands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("Commands:") {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with("  ") {
                break;
            }
            // Entries sit two spaces in; continuation lines of a long description sit deeper.
            if let Some(name) = line.strip_prefix("  ").and_then(|l| l.split_whitespace().next())
                && !line.starts_with("   ")
                && name != "help"
            {
                out.push(name.to_owned());
            }
        }
    }
    out
}

fn snapshot_path(path: &[String]) -> PathBuf {
    let name = if path.is_empty() { "hooklake".to_owned() } else { format!("hooklake-{}", path.join("-")) };
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/help").join(format!("{name}.txt"))
}

#[test]
fn every_command_has_help_matching_its_snapshot() {
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    let mut seen = Vec::new();
    let mut mismatched = Vec::new();
    while let Some(path) = todo.pop() {
        let text = help(&path);
        for sub in subcommands(&text) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
        let file = snapshot_path(&path);
        if update {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &text).unwrap();
        } else {
            match std::fs::read_to_string(&file) {
                Ok(want) if want == text => {}
                Ok(want) => mismatched.push(format!("{}:\n--- snapshot\n{want}\n--- now\n{text}", file.display())),
                Err(_) => mismatched.push(format!("{} is missing; the help is:\n{text}", file.display())),
            }
        }
        seen.push(path.join(" "));
    }
    // The commands the CLI contract (spec/config.md) names must all be there.
    for must in [
        "run",
        "validate",
        "demo",
        "simulate",
        "webhooks list",
        "webhooks create",
        "webhooks get",
        "webhooks update",
        "webhooks delete",
        "webhooks send",
        "webhooks ensure",
        "dead-letters list",
        "dead-letters show",
        "dead-letters replay",
        "dead-letters purge",
        "status",
        "plugin describe",
        "plugin test",
        "journal stats",
        "journal dump",
    ] {
        assert!(seen.iter().any(|s| s == must), "no `hooklake {must}` (found: {seen:?})");
    }
    assert!(
        mismatched.is_empty(),
        "{} help texts differ (UPDATE_SNAPSHOTS=1 to accept):\n{}",
        mismatched.len(),
        mismatched.join("\n")
    );
}
