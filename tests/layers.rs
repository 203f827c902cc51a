//! The layering check: dependencies point down (docs/ARCHITECTURE.md, "Layers").
//!
//! Every `crate::`, `super::` and `self::` path in `src/` outside `#[cfg(test)]` items — in
//! `use` lines, inline in code and types, and inside macro invocations — is resolved to the
//! module it names (through `pub use` re-exports, to the file that defines it). The check then
//! fails when
//! 1. a module refers to a module of a higher layer ([`LAYERS`]), or to one that its own layer
//!    keeps apart from it ([`APART`]);
//! 2. the top-level modules refer to each other in a loop;
//! 3. the files of one folder refer to each other in a loop. A folder's `mod.rs` is its face:
//!    it declares and re-exports the others, and they may use the types it defines (the
//!    way child modules extend their parent's types), so references into it are not counted;
//! 4. files of different folders refer to each other in a loop (`store/copy.rs` and
//!    `store/embedded/export.rs`, say), counted the same way.
//!
//! `main.rs` and `src/bin/` are outside the library and above every layer. Run it alone with
//! `cargo nextest run --test layers`; `self_test_*` plant an upward reference, a reference
//! between modules kept apart, a folder loop and file loops (in one folder and across two) in
//! a copy of the tree and see the check fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// The layers, bottom to top. A module may refer to its own layer and the ones below.
const LAYERS: &[&[&str]] = &[
    &["limits", "config", "util"],
    &["shard", "offload"],
    &["http", "store", "blob", "crypto", "auth", "proto", "metrics", "pubsub"],
    &["gateway", "node"],
    &["retention", "push", "cleanup", "admin"],
    &["api"],
    &["server"],
];

/// Pairs in one layer where the first must not refer to the second.
const APART: &[(&str, &str)] = &[
    ("http", "store"),
    ("store", "http"),
    ("http", "blob"),
    ("store", "blob"),
    ("gateway", "node"),
];

/// A module path inside the crate, e.g. `["api", "devices"]`.
type ModPath = Vec<String>;

/// One parsed source file.
struct SourceFile {
    /// Where it is, relative to `src/`.
    rel: PathBuf,
    /// Its module.
    module: ModPath,
    /// `use` bindings: the name a `use` introduces → the absolute path it stands for.
    bindings: BTreeMap<String, ModPath>,
    /// Every crate path it refers to (absolute), with the line it is on.
    refs: Vec<(ModPath, usize)>,
}

/// The module a file under `src/` defines (`api/mod.rs` → `api`, `api/keys.rs` → `api::keys`).
fn module_of(rel: &Path) -> ModPath {
    let mut parts: ModPath = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// Whether an item is compiled only in tests: `#[cfg(test)]` or `#[cfg(all(test, ...))]`.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        let syn::Meta::List(list) = &a.meta else {
            return false;
        };
        let tokens = list.tokens.to_string();
        list.path.is_ident("cfg") && (tokens == "test" || (tokens.starts_with("all") && tokens.contains("test")))
    })
}

/// Walks one file, collecting paths; skips test-only items.
struct Collector<'a> {
    module: &'a [String],
    /// Inline (non-test) modules we are inside.
    nested: ModPath,
    refs: Vec<(ModPath, usize)>,
    bindings: BTreeMap<String, ModPath>,
}

impl Collector<'_> {
    fn here(&self) -> ModPath {
        let mut m = self.module.to_vec();
        m.extend(self.nested.iter().cloned());
        m
    }

    /// Resolves a path given as segments; `None` unless it starts at `crate`, `super` or `self`.
    fn resolve(&self, segments: &[String]) -> Option<ModPath> {
        let first = segments.first()?;
        let mut base = match first.as_str() {
            "crate" => Vec::new(),
            "self" | "super" => self.here(),
            _ => return None,
        };
        let mut rest = &segments[1..];
        if first == "super" {
            base.pop();
        }
        while rest.first().is_some_and(|s| s == "super") {
            base.pop();
            rest = &rest[1..];
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    fn record(&mut self, segments: &[String], line: usize) {
        if let Some(path) = self.resolve(segments) {
            self.refs.push((path, line));
        }
    }

    /// Expands a `use` tree into the paths it names and the names it binds.
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree, line: usize) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree, line);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let name = n.ident.to_string();
                let mut full = prefix.clone();
                if name != "self" {
                    full.push(name.clone());
                }
                self.bind(
                    prefix.last().cloned().filter(|_| name == "self").unwrap_or(name),
                    &full,
                    line,
                );
            }
            syn::UseTree::Rename(r) => {
                let mut full = prefix.clone();
                full.push(r.ident.to_string());
                self.bind(r.rename.to_string(), &full, line);
            }
            syn::UseTree::Glob(_) => self.record(prefix, line),
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.use_tree(prefix, item, line);
                }
            }
        }
    }

    fn bind(&mut self, name: String, full: &[String], line: usize) {
        if let Some(path) = self.resolve(full) {
            if self.nested.is_empty() {
                self.bindings.insert(name, path.clone());
            }
            self.refs.push((path, line));
        }
    }

    /// Paths written inside a macro invocation (`crate :: a :: b` in its tokens).
    fn macro_tokens(&mut self, tokens: proc_macro2::TokenStream) {
        let mut run: Vec<String> = Vec::new();
        let mut line = 0;
        let mut last_was_sep = false;
        for tree in tokens {
            match tree {
                proc_macro2::TokenTree::Group(g) => {
                    self.flush_run(&mut run, line);
                    self.macro_tokens(g.stream());
                }
                proc_macro2::TokenTree::Ident(i) => {
                    let text = i.to_string();
                    if run.is_empty() || last_was_sep {
                        if run.is_empty() && !matches!(text.as_str(), "crate" | "super" | "self") {
                            continue;
                        }
                        line = i.span().start().line;
                        run.push(text);
                        last_was_sep = false;
                    } else {
                        self.flush_run(&mut run, line);
                        if matches!(text.as_str(), "crate" | "super" | "self") {
                            run.push(text);
                        }
                    }
                }
                proc_macro2::TokenTree::Punct(p) if p.as_char() == ':' => last_was_sep = !run.is_empty(),
                _ => {
                    self.flush_run(&mut run, line);
                    last_was_sep = false;
                }
            }
        }
        self.flush_run(&mut run, line);
    }

    fn flush_run(&mut self, run: &mut Vec<String>, line: usize) {
        if run.len() > 1 {
            let segments = std::mem::take(run);
            self.record(&segments, line);
        }
        run.clear();
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match item {
            syn::Item::Use(i) => &i.attrs,
            syn::Item::Mod(i) => &i.attrs,
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Trait(i) => &i.attrs,
            syn::Item::Type(i) => &i.attrs,
            syn::Item::Macro(i) => &i.attrs,
            _ => &[],
        };
        if is_test_only(attrs) {
            return;
        }
        match item {
            syn::Item::Use(u) => {
                let line = u.use_token.span.start().line;
                self.use_tree(&mut Vec::new(), &u.tree, line);
            }
            syn::Item::Mod(m) if m.content.is_some() => {
                self.nested.push(m.ident.to_string());
                syn::visit::visit_item_mod(self, m);
                self.nested.pop();
            }
            _ => syn::visit::visit_item(self, item),
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let test_only = match item {
            syn::ImplItem::Fn(f) => is_test_only(&f.attrs),
            syn::ImplItem::Const(c) => is_test_only(&c.attrs),
            _ => false,
        };
        if !test_only {
            syn::visit::visit_impl_item(self, item);
        }
    }

    fn visit_stmt(&mut self, stmt: &'ast syn::Stmt) {
        if let syn::Stmt::Local(l) = stmt {
            if is_test_only(&l.attrs) {
                return;
            }
        }
        syn::visit::visit_stmt(self, stmt);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        let line = path.segments.first().map_or(0, |s| s.ident.span().start().line);
        self.record(&segments, line);
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.macro_tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

/// Parses every library file under `root` (a `src/` folder).
fn parse_tree(root: &Path) -> Result<Vec<SourceFile>, String> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            let rel = path.strip_prefix(root).map_err(|e| e.to_string())?.to_path_buf();
            if rel == Path::new("main.rs") || rel.starts_with("bin") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(parse_file(&path, rel)?);
            }
        }
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(files)
}

fn parse_file(path: &Path, rel: PathBuf) -> Result<SourceFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let syntax = syn::parse_file(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let module = module_of(&rel);
    let mut collector = Collector {
        module: &module,
        nested: Vec::new(),
        refs: Vec::new(),
        bindings: BTreeMap::new(),
    };
    collector.visit_file(&syntax);
    let (refs, bindings) = (collector.refs, collector.bindings);
    Ok(SourceFile {
        rel,
        module,
        bindings,
        refs,
    })
}

/// The crate as modules: which file defines each module, and what each file binds.
struct Crate<'a> {
    files: &'a [SourceFile],
    by_module: BTreeMap<ModPath, usize>,
}

impl<'a> Crate<'a> {
    fn new(files: &'a [SourceFile]) -> Self {
        let by_module = files.iter().enumerate().map(|(i, f)| (f.module.clone(), i)).collect();
        Self { files, by_module }
    }

    /// The file an absolute path lands in: the longest prefix that is a file's module,
    /// followed through that file's `use` bindings (re-exports) when the next segment is one.
    fn file_of(&self, path: &[String], depth: usize) -> Option<usize> {
        let (len, &file) = (0..=path.len())
            .rev()
            .find_map(|n| self.by_module.get(&path[..n]).map(|f| (n, f)))?;
        let Some(next) = path.get(len) else {
            return Some(file);
        };
        match self.files[file].bindings.get(next) {
            Some(target) if depth < 8 && target.as_slice() != &path[..=len] => {
                let mut resolved = target.clone();
                resolved.extend(path[len + 1..].iter().cloned());
                self.file_of(&resolved, depth + 1).or(Some(file))
            }
            _ => Some(file),
        }
    }
}

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&top))
}

/// Everything wrong with the tree, one line each.
fn violations(files: &[SourceFile]) -> Vec<String> {
    let krate = Crate::new(files);
    let mut problems = Vec::new();
    let mut tops: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut folders: BTreeMap<ModPath, BTreeMap<usize, BTreeSet<usize>>> = BTreeMap::new();
    let mut across: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        let Some(from) = file.module.first() else {
            continue;
        };
        for (path, line) in &file.refs {
            let Some(target) = krate.file_of(path, 0) else {
                continue;
            };
            let Some(to) = files[target].module.first() else {
                continue;
            };
            if to != from {
                if let Some(problem) = layer_problem(from, to) {
                    problems.push(format!(
                        "{}:{line}: {} ({problem})",
                        file.rel.display(),
                        path.join("::")
                    ));
                }
                tops.entry(from.clone()).or_default().insert(to.clone());
            }
            let folder = |f: &SourceFile| f.rel.parent().map(Path::to_path_buf);
            let into_root = files[target].rel.file_name().is_some_and(|n| n == "mod.rs");
            if target != i && !into_root && folder(file) == folder(&files[target]) {
                let key = file.rel.parent().map(module_of).unwrap_or_default();
                folders.entry(key).or_default().entry(i).or_default().insert(target);
            }
            if target != i && !into_root {
                across.entry(i).or_default().insert(target);
            }
        }
    }
    for cycle in cycles(&tops) {
        problems.push(format!("modules refer to each other in a loop: {}", cycle.join(" → ")));
    }
    problems.extend(loops_across_folders(files, &across));
    for (folder, edges) in &folders {
        let named: BTreeMap<String, BTreeSet<String>> = edges
            .iter()
            .map(|(from, tos)| {
                let name = |f: &usize| files[*f].rel.display().to_string();
                (name(from), tos.iter().map(name).collect())
            })
            .collect();
        for cycle in cycles(&named) {
            problems.push(format!(
                "files of {}/ refer to each other in a loop: {}",
                folder.join("/"),
                cycle.join(" → ")
            ));
        }
    }
    problems
}

/// The loops of `edges` (file → files it refers to) that pass through more than one folder.
fn loops_across_folders(files: &[SourceFile], edges: &BTreeMap<usize, BTreeSet<usize>>) -> Vec<String> {
    let name = |f: &usize| files[*f].rel.display().to_string();
    let named: BTreeMap<String, BTreeSet<String>> = edges
        .iter()
        .map(|(from, tos)| (name(from), tos.iter().map(name).collect()))
        .collect();
    cycles(&named)
        .into_iter()
        .filter(|cycle| {
            let folders: BTreeSet<_> = cycle
                .iter()
                .map(|f| Path::new(f).parent().map(Path::to_path_buf))
                .collect();
            folders.len() > 1
        })
        .map(|cycle| {
            format!(
                "files of different folders refer to each other in a loop: {}",
                cycle.join(" → ")
            )
        })
        .collect()
}

fn layer_problem(from: &str, to: &str) -> Option<String> {
    let (Some(a), Some(b)) = (layer_of(from), layer_of(to)) else {
        return Some(format!("`{from}` or `{to}` is in no layer: add it to LAYERS"));
    };
    if b > a {
        return Some(format!("`{from}` (layer {a}) refers to `{to}` (layer {b}), above it"));
    }
    if APART.contains(&(from, to)) {
        return Some(format!("`{from}` must not refer to `{to}`"));
    }
    None
}

/// One representative loop per strongly connected group of `graph` (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    for start in graph.keys() {
        if done.contains(start) {
            continue;
        }
        if let Some(mut path) = path_back(graph, start) {
            done.extend(path.iter().cloned());
            path.push(start.clone());
            found.push(path);
        }
        done.insert(start.clone());
    }
    found
}

/// A path from `start` back to itself, if there is one (breadth first, so it is short).
fn path_back(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut parent: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.to_string()]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                let mut path = vec![node.clone()];
                let mut at = node.clone();
                while let Some(p) = parent.get(&at) {
                    path.push(p.clone());
                    at = p.clone();
                }
                path.reverse();
                return Some(path);
            }
            if !parent.contains_key(next) && next != start {
                parent.insert(next.clone(), node.clone());
                queue.push_back(next.clone());
            }
        }
    }
    None
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Goal: the real tree keeps its layers. Method: parse src/, resolve every path, list every
/// violation (the message names the file, line and rule).
#[test]
fn dependencies_point_down() -> Result<(), String> {
    let files = parse_tree(&src_dir())?;
    assert!(files.len() > 50, "only {} files found under src/", files.len());
    let problems = violations(&files);
    assert!(
        problems.is_empty(),
        "{} layering problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        let dest = to.join(path.file_name().unwrap_or_default());
        if path.is_dir() {
            copy_tree(&path, &dest)?;
        } else {
            std::fs::copy(&path, &dest)?;
        }
    }
    Ok(())
}

/// Goal: the check sees an upward reference in a `use` line, inline in code and inside a
/// macro, and ignores one under `#[cfg(test)]`. Method: plant each in store/mod.rs (layer 2)
/// naming api (layer 5).
#[test]
fn self_test_upward_references_fail() -> Result<(), String> {
    for plant in [
        "use crate::api::routes::Route;\n",
        "pub fn planted() -> usize { crate::api::routes::UNMATCHED_LABEL }\n",
        "pub fn planted() -> bool { matches!(None::<u8>, Some(crate::api::routes::UNMATCHED_LABEL)) }\n",
    ] {
        let problems = planted(&[("store/mod.rs", plant)])?;
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("store/mod.rs") && p.contains("`store` (layer 2) refers to `api`")),
            "{plant}: {problems:?}"
        );
    }
    let hidden = planted(&[(
        "store/mod.rs",
        "#[cfg(test)]\nmod planted { use crate::api::routes::Route; }\n",
    )])?;
    assert!(
        hidden.is_empty(),
        "a test-only reference is not a violation: {hidden:?}"
    );
    Ok(())
}

/// Goal: the check sees a loop between folders and a loop between files of one folder.
/// Method: plant a reference from `limits` to `util` and back (one layer, so only the loop
/// is wrong), then a reference back and forth between two files of api/.
#[test]
fn self_test_loops_fail() -> Result<(), String> {
    let folder_loop = planted(&[
        ("limits.rs", "pub use crate::util::time::now_secs as planted_now;\n"),
        ("util/time.rs", "pub const PLANT: usize = crate::limits::SHARDS_MAX;\n"),
    ])?;
    assert!(
        folder_loop
            .iter()
            .any(|p| p.contains("modules refer to each other in a loop")),
        "{folder_loop:?}"
    );
    let file_loop = planted(&[
        ("api/routes.rs", "pub const PLANT: &str = super::openapi::PLANTED;\n"),
        (
            "api/openapi.rs",
            "pub const PLANTED: &str = \"x\";\npub const BACK: usize = super::routes::UNMATCHED_LABEL;\n",
        ),
    ])?;
    assert!(
        file_loop
            .iter()
            .any(|p| p.contains("files of api/ refer to each other in a loop")),
        "{file_loop:?}"
    );
    Ok(())
}

/// Goal: the check sees a loop between files of two folders of one module. Method: plant a
/// reference from `store/message_ids.rs` to `store/embedded/layout.rs` and back.
#[test]
fn self_test_loops_across_folders_fail() -> Result<(), String> {
    let problems = planted(&[
        (
            "store/message_ids.rs",
            "pub const PLANT: usize = crate::store::embedded::layout::KEYSPACES.len();\n",
        ),
        (
            "store/embedded/layout.rs",
            "pub const BACK: usize = crate::store::message_ids::PLANTED;\n",
        ),
        ("store/message_ids.rs", "pub const PLANTED: usize = 1;\n"),
    ])?;
    assert!(
        problems.iter().any(
            |p| p.contains("files of different folders refer to each other in a loop")
                && p.contains("store/message_ids.rs")
                && p.contains("store/embedded/layout.rs")
        ),
        "{problems:?}"
    );
    Ok(())
}

/// Goal: each pair of one layer that `APART` keeps apart is refused in the direction it
/// names. Method: for every pair, plant a reference from the first to the second.
#[test]
fn self_test_apart_rules_fail() -> Result<(), String> {
    let plants: &[(&str, &str)] = &[
        ("http/mod.rs", "pub type Planted = crate::store::StoreError;\n"),
        ("store/message_ids.rs", "pub type Planted = crate::http::Response;\n"),
        ("http/mod.rs", "pub type PlantedBlob = crate::blob::Blobs;\n"),
        ("store/message_ids.rs", "pub type PlantedBlob = crate::blob::Blobs;\n"),
        ("gateway/mod.rs", "pub type Planted = crate::node::App;\n"),
    ];
    for (&(from, to), (file, plant)) in APART.iter().zip(plants) {
        let problems = planted(&[(file, plant)])?;
        let expected = format!("`{from}` must not refer to `{to}`");
        assert!(
            problems.iter().any(|p| p.contains(&expected)),
            "{expected}: {problems:?}"
        );
    }
    assert_eq!(APART.len(), plants.len(), "a plant for every APART rule");
    Ok(())
}

/// Copies src/ into a temp dir, appends each plant to its file and runs the check there.
fn planted(plants: &[(&str, &str)]) -> Result<Vec<String>, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    copy_tree(&src_dir(), tmp.path()).map_err(|e| e.to_string())?;
    for (file, plant) in plants {
        append(&tmp.path().join(file), plant)?;
    }
    Ok(violations(&parse_tree(tmp.path())?))
}

fn append(file: &Path, plant: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    std::fs::write(file, format!("{text}\n{plant}")).map_err(|e| e.to_string())
}
