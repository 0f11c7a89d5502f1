//! The layer rule of the README's *Architecture* section, checked against the code: every
//! `crate::<module>` a file under `src/` names (in `use` lines and in paths, test code
//! included) must belong to a layer listed above the file's own layer in that table. A new
//! upward import, or a module missing from the table, fails this test with the file and line.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Layer number by top-level module name, read from the README's table: each row is
/// `| <n> | `module` `module` ... | what it owns |`.
fn layers_from_readme() -> HashMap<String, usize> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Architecture")
        .nth(1)
        .expect("the README has an Architecture section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut layers = HashMap::new();
    for row in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Some(Ok(layer)) = cells.get(1).map(|c| c.parse::<usize>()) else {
            continue;
        };
        for module in cells[2].split('`').skip(1).step_by(2) {
            let name = module
                .trim_end_matches('/')
                .trim_end_matches(".rs")
                .to_string();
            assert!(
                layers.insert(name.clone(), layer).is_none(),
                "{name} is listed twice in the Architecture table"
            );
        }
    }
    assert!(layers.len() > 10, "the Architecture table was not found");
    layers
}

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

/// The top-level module a file under `src/` belongs to (`src/diagnosis/token/mod.rs` →
/// `diagnosis`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap();
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// Every `crate::name` on a line outside comments, with `use crate::{a, b::c}` lists
/// expanded to their first segments.
fn crate_references(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `some_crate::...`
        }
        if let Some(list) = rest.strip_prefix('{') {
            let end = list.find('}').unwrap_or(list.len());
            let mut depth = 0;
            let mut item = String::new();
            for c in list[..end].chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            found.push(first_segment(&item));
        } else {
            found.push(first_segment(rest));
        }
    }
    found.retain(|name| !name.is_empty());
    found
}

fn first_segment(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn no_module_imports_from_a_layer_below_it() {
    let layers = layers_from_readme();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" || module == "main" {
            continue; // the module list and the CLI wiring may name everything
        }
        let Some(&own) = layers.get(&module) else {
            wrong.push(format!(
                "{}: module `{module}` is not in the README's Architecture table",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") {
                continue;
            }
            for target in crate_references(line) {
                if target == module {
                    continue;
                }
                match layers.get(&target) {
                    Some(&layer) if layer < own => {}
                    Some(&layer) => wrong.push(format!(
                        "{}:{}: `{module}` (layer {own}) imports `{target}` (layer {layer})",
                        file.display(),
                        n + 1
                    )),
                    None => wrong.push(format!(
                        "{}:{}: `{target}` is not in the README's Architecture table",
                        file.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layer table:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_reference_reader_sees_lists_and_paths() {
    assert_eq!(
        crate_references("use crate::{ids::ProjectId, store::{Store, StoreError}};"),
        vec!["ids", "store"]
    );
    assert_eq!(
        crate_references("    let x = crate::report::render(a); // crate::worker"),
        vec!["report"]
    );
    assert!(crate_references("use other_crate::thing;").is_empty());
}
