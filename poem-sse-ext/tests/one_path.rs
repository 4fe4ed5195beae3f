//! Every public item of the crate has exactly one path: the crate's documentation, as rustdoc
//! writes it, holds one page per item and no module re-exports an item that has a page
//! elsewhere.
//!
//! It documents the crate into a target directory of its own (so that it never waits for the
//! build that runs the tests), which takes a minute the first time and seconds after.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

#[test]
fn every_public_item_has_exactly_one_path() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target"))
        .join("one-path-doc");
    let status = Command::new(env!("CARGO"))
        .args([
            "doc",
            "-p",
            "poem-sse-ext",
            "--all-features",
            "--no-deps",
            "--offline",
        ])
        .arg("--target-dir")
        .arg(&target)
        .env_remove("RUSTDOCFLAGS")
        .current_dir(manifest)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo doc failed");
    let root = target.join("doc/poem_sse_ext");

    let mut pages: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut reexports = Vec::new();
    walk(&root, "poem_sse_ext", &mut pages, &mut reexports);

    let all: Vec<&String> = pages.values().flatten().collect();
    assert!(
        all.iter().any(|p| *p == "poem_sse_ext::Hub")
            && all
                .iter()
                .any(|p| *p == "poem_sse_ext::http::StreamOptions"),
        "the documentation was read: {} items",
        pages.len()
    );
    let twice: Vec<String> = pages
        .iter()
        .filter(|(_, paths)| paths.len() > 1)
        .map(|(_, paths)| paths.join(", "))
        .collect();
    assert!(
        twice.is_empty(),
        "items at more than one path:\n{}",
        twice.join("\n")
    );
    assert!(
        reexports.is_empty(),
        "modules that re-export an item documented elsewhere (a second path): {reexports:?}"
    );
    let root_items = pages
        .values()
        .filter(|paths| paths.iter().any(|p| p.matches("::").count() == 1))
        .count();
    assert!(root_items <= 15, "{root_items} items at the crate root");
}

/// Collects each item page (`struct.Hub.html` in `poem_sse_ext/`: `Hub` at `poem_sse_ext::Hub`),
/// but not the redirects rustdoc leaves where a re-exported item is defined, and each module
/// page with a "Re-exports" section.
fn walk(
    dir: &Path,
    module: &str,
    pages: &mut BTreeMap<String, Vec<String>>,
    reexports: &mut Vec<String>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            walk(&path, &format!("{module}::{name}"), pages, reexports);
            continue;
        }
        if name == "index.html" {
            let html = std::fs::read_to_string(&path).unwrap_or_default();
            if html.contains("id=\"reexports\"") {
                reexports.push(module.to_owned());
            }
            continue;
        }
        let kinds = [
            "struct.",
            "enum.",
            "trait.",
            "fn.",
            "constant.",
            "type.",
            "macro.",
        ];
        let Some(kind) = kinds.iter().find(|kind| name.starts_with(*kind)) else {
            continue;
        };
        let Some(item) = name
            .strip_prefix(kind)
            .and_then(|rest| rest.strip_suffix(".html"))
        else {
            continue;
        };
        // rustdoc leaves a redirect at an item's private definition path: not a path of it.
        let html = std::fs::read_to_string(&path).unwrap_or_default();
        if html.contains("http-equiv=\"refresh\"") {
            continue;
        }
        // One item is one definition: its page links the source lines it is defined at, so an
        // item renamed in a re-export still counts as the same item.
        let key = source_link(&html).unwrap_or(item).to_owned();
        pages
            .entry(key)
            .or_default()
            .push(format!("{module}::{item}"));
    }
}

/// The source location an item page links to (`src/poem_sse_ext/hub/handle.rs.html#42-57`).
fn source_link(html: &str) -> Option<&str> {
    let start = html.find("src/poem_sse_ext/")?;
    let rest = &html[start..];
    let end = rest.find('"')?;
    Some(&rest[..end])
}
