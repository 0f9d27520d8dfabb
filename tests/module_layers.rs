//! The library's top-level modules form layers: no two import each other, directly or through
//! others. A cycle makes every module in it a unit that can only be read, tested and changed
//! whole (the data model once imported the flush and replication machinery for a status
//! policy, and the codec and the error type imported each other); this test keeps them out.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Every `crate::name` a file's code (not its comments, not its unit tests) refers to.
fn references(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let mut out = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn collect(dir: &Path, top: Option<&str>, graph: &mut BTreeMap<String, BTreeSet<String>>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if top.is_none() && name == "bin" {
                continue;
            }
            collect(&path, Some(top.unwrap_or(&name)), graph);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let module = top.unwrap_or(&name).to_string();
            if module == "lib" {
                continue;
            }
            let refs = references(&fs::read_to_string(&path).unwrap());
            graph.entry(module).or_default().extend(refs);
        }
    }
}

#[test]
fn top_level_modules_import_each_other_in_one_direction_only() {
    let mut graph = BTreeMap::new();
    collect(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), None, &mut graph);
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for (module, refs) in graph.iter_mut() {
        refs.retain(|r| r != module && modules.contains(r));
    }
    assert!(graph.len() > 20, "modules found: {graph:?}");
    // Peel off modules that import nothing left; whatever remains sits on a cycle.
    let mut left = graph.clone();
    loop {
        let leaves: Vec<String> = left
            .iter()
            .filter(|(_, refs)| refs.iter().all(|r| !left.contains_key(r)))
            .map(|(m, _)| m.clone())
            .collect();
        if leaves.is_empty() {
            break;
        }
        for leaf in leaves {
            left.remove(&leaf);
        }
    }
    let cycles: Vec<String> = left
        .iter()
        .map(|(m, refs)| {
            let inside: Vec<&String> = refs.iter().filter(|r| left.contains_key(*r)).collect();
            format!("{m} -> {inside:?}")
        })
        .collect();
    assert!(
        cycles.is_empty(),
        "modules on an import cycle, or importing one:\n{}",
        cycles.join("\n")
    );
}
