//! The floor plan holds: no import circle between the files of `gateway/`, and no source file
//! over 700 lines.
//!
//! The import graph is read from the sources as text: every `crate::a::b` and `super::x` path
//! (also inside `use …::{…}` groups) and every `child::x` path a `mod.rs` uses for its own
//! submodules becomes an arrow from the file that names it to the file that defines the module
//! it reaches. Comments and the unit-test modules at the end of a file (`#[cfg(test)] mod
//! tests`) are left out: tests may look at anything. A circle is reported with its files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn gateway_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway")
}

/// Every `.rs` file below `dir` (unit-test files included; they are skipped as import sources
/// later).
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `gateway/a/b.rs` and `gateway/a/b/mod.rs` are `[a, b]`.
fn module_of(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(gateway_dir()).unwrap();
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// A unit-test file (`tests.rs`, `*_tests.rs`, anything under a `*_tests/` or `tests/` folder).
fn is_test_file(file: &Path) -> bool {
    file.strip_prefix(gateway_dir()).unwrap().iter().any(|p| {
        let p = p.to_string_lossy();
        let stem = p.trim_end_matches(".rs");
        stem == "tests" || stem.ends_with("_tests")
    })
}

/// The file's code without comments and without its trailing unit-test module.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths that follow `prefix` (`crate::`, `super::`, `name::`) in `code`, with `{…}`
/// groups expanded: `crate::{a::B, c::{d, e}}` gives `a::B`, `c::d` and `c::e`.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(found) = code[from..].find(prefix) {
        let at = from + found;
        from = at + prefix.len();
        // Only a path that starts here: not the tail of `foo_crate::` or `a::crate::`.
        let before = at.checked_sub(1).map(|i| bytes[i]);
        if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
            continue;
        }
        parse_tree(&code[from..], Vec::new(), &mut out);
    }
    out
}

/// Parses one use-tree at the start of `text` (a path, possibly ending in a `{…}` group).
fn parse_tree(text: &str, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut i = 0;
    let bytes = text.as_bytes();
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'{' {
            i += 1;
            loop {
                while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
                    i += 1;
                }
                if i >= bytes.len() || bytes[i] == b'}' {
                    return i + 1;
                }
                i += parse_tree(&text[i..], prefix.clone(), out);
            }
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        if start == i {
            out.push(prefix);
            return i.max(1);
        }
        prefix.push(text[start..i].to_string());
        if text[i..].starts_with("::") {
            i += 2;
        } else {
            out.push(prefix);
            return i;
        }
    }
}

/// The file that defines the longest prefix of `path` that is a module, if any.
fn resolve<'m>(
    path: &[String],
    modules: &'m BTreeMap<Vec<String>, PathBuf>,
) -> Option<&'m PathBuf> {
    (1..=path.len())
        .rev()
        .find_map(|n| modules.get(&path[..n].to_vec()))
}

fn import_graph() -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut files = Vec::new();
    sources(&gateway_dir(), &mut files);
    files.retain(|f| !f.ends_with("main.rs"));
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .filter(|f| !is_test_file(f))
        .map(|f| (module_of(f), f.clone()))
        .collect();
    let mut graph: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for file in files.iter().filter(|f| !is_test_file(f)) {
        let module = module_of(file);
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let is_folder_module = file.ends_with("mod.rs") || file.ends_with("lib.rs");
        let mut targets: Vec<Vec<String>> = paths_after(&code, "crate::");
        // `super::` from a.rs is a's parent; from a/mod.rs it is a's parent as well.
        let parent: Vec<String> = module[..module.len().saturating_sub(1)].to_vec();
        for path in paths_after(&code, "super::") {
            targets.push(parent.iter().cloned().chain(path).collect());
        }
        // A folder module names its own submodules by their bare names.
        if is_folder_module {
            for (child, _) in modules.range(module.clone()..) {
                if child.len() == module.len() + 1 && child.starts_with(&module) {
                    let name = format!("{}::", child.last().unwrap());
                    for path in paths_after(&code, &name) {
                        targets.push(child.iter().cloned().chain(path).collect());
                    }
                }
            }
        }
        let edges = graph.entry(file.clone()).or_default();
        // A folder module is one room: its own files may use what its `mod.rs` defines
        // (the crate root only declares modules, so arrows into it say nothing either).
        let own_face = modules.get(&parent);
        for target in targets {
            if let Some(to) = resolve(&target, &modules) {
                if to != file && Some(to) != own_face && !to.ends_with("lib.rs") {
                    edges.insert(to.clone());
                }
            }
        }
    }
    graph
}

/// Strongly connected components with more than one file (Tarjan).
fn circles(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct State<'g> {
        graph: &'g BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'g PathBuf, usize>,
        low: BTreeMap<&'g PathBuf, usize>,
        stack: Vec<&'g PathBuf>,
        on_stack: BTreeSet<&'g PathBuf>,
        found: Vec<Vec<PathBuf>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g PathBuf) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.found
}

#[test]
fn no_import_circle_between_the_files_of_the_gateway() {
    let graph = import_graph();
    let root = &gateway_dir();
    let found: Vec<String> = circles(&graph)
        .iter()
        .map(|files| {
            let names: Vec<String> = files
                .iter()
                .map(|f| f.strip_prefix(root).unwrap().display().to_string())
                .collect();
            let arrows: Vec<String> = files
                .iter()
                .flat_map(|from| {
                    graph[from]
                        .iter()
                        .filter(|to| files.contains(to))
                        .map(move |to| {
                            format!(
                                "{} -> {}",
                                from.strip_prefix(root).unwrap().display(),
                                to.strip_prefix(root).unwrap().display()
                            )
                        })
                })
                .collect();
            format!("[{}]\n    {}", names.join(", "), arrows.join("\n    "))
        })
        .collect();
    assert!(
        found.is_empty(),
        "import circles in gateway/:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_reader_sees_arrows_the_gateway_is_known_to_have() {
    // The control: the graph is not empty by accident (a parser that read nothing would pass
    // the test above). These arrows are the pipeline's own.
    let graph = import_graph();
    let root = gateway_dir();
    let has = |from: &str, to: &str| graph[&root.join(from)].contains(&root.join(to));
    assert!(has("pipeline/mod.rs", "exchange.rs"));
    assert!(has("pipeline/mod.rs", "pipeline/admission.rs"));
    assert!(has("pipeline/forward.rs", "upstream.rs"));
    assert!(has("audit/writer.rs", "exchange.rs"));
    assert!(has("upstream.rs", "policy/decide.rs"));
    assert!(!has("audit/mod.rs", "pipeline/mod.rs"));
    // And a circle is found when there is one.
    let mut with_circle = graph.clone();
    with_circle
        .get_mut(&root.join("exchange.rs"))
        .unwrap()
        .insert(root.join("pipeline/mod.rs"));
    assert!(!circles(&with_circle).is_empty());
}

#[test]
fn no_source_file_of_the_gateway_is_over_700_lines() {
    let mut files = Vec::new();
    sources(&gateway_dir(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (lines > 700).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these by concern: {}",
        long.join(", ")
    );
}
