//! The folders of src/ stand in layers, as README's "How it works" draws them: no two folders
//! import each other, even through others, and each imports only folders the drawing lists
//! below it. Read from the code's own `crate::` paths (comments left out), so a new import
//! that cuts across the layers fails here, naming the files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Folder -> folder -> one file:line that makes the import.
type Imports = BTreeMap<String, BTreeMap<String, String>>;

/// Which top-level folders of src/ each folder (or top-level file, by its stem) imports.
fn imports(src: &Path) -> Imports {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let unit = |p: &Path| -> String {
        let rel = p.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        first.trim_end_matches(".rs").to_string()
    };
    let units: BTreeSet<String> = files.iter().map(|p| unit(p)).collect();
    let mut graph = Imports::new();
    for file in &files {
        let from = unit(file);
        if from == "main" || from == "lib" || from == "cli" {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for (at, _) in code.match_indices("crate::") {
                let name: String = code[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name != from && units.contains(&name) {
                    let rel = file.strip_prefix(src).unwrap().display();
                    graph
                        .entry(from.clone())
                        .or_default()
                        .entry(name)
                        .or_insert_with(|| format!("src/{rel}:{}", n + 1));
                }
            }
        }
        graph.entry(from).or_default();
    }
    graph
}

/// A cycle through `start`, if there is one, as the folders in order.
fn cycle_from(graph: &Imports, start: &str) -> Option<Vec<String>> {
    fn visit(
        g: &Imports,
        at: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in g.get(at).map(|m| m.keys()).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if visit(g, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    let mut seen = BTreeSet::new();
    visit(graph, start, start, &mut path, &mut seen).then_some(path)
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_two_folders_of_src_import_each_other() {
    let graph = imports(&src());
    assert!(graph.len() >= 14, "found only {:?}", graph.keys());
    assert!(
        graph["sim"].contains_key("scenario"),
        "the reader misses imports: {graph:?}"
    );
    for folder in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, folder) {
            let edges: Vec<String> = cycle
                .iter()
                .zip(cycle.iter().cycle().skip(1))
                .map(|(a, b)| format!("{a} -> {b} ({})", graph[a][b]))
                .collect();
            panic!("a cycle between folders: {}", edges.join(", "));
        }
    }
}

#[test]
fn each_folder_imports_only_what_the_readme_draws_below_it() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## How it works")
        .nth(1)
        .expect("README has a \"How it works\" section");
    let drawing = section.split("```").nth(1).expect("its drawing");
    // "  name/   ..." or "  name.rs   ...": the layers from the top down.
    let order: Vec<String> = drawing
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .map(|w| {
            w.trim_end_matches([',', '/'])
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    let graph = imports(&src());
    for folder in graph.keys() {
        assert!(
            order.contains(folder),
            "README's drawing does not list {folder}: {order:?}"
        );
    }
    for (from, to) in &graph {
        let at = order.iter().position(|n| n == from).unwrap();
        for (name, file) in to {
            let below = order.iter().position(|n| n == name).unwrap();
            assert!(
                below > at,
                "{from} imports {name} ({file}), which README's drawing lists above it: {order:?}"
            );
        }
    }
}
