//! The documents match the code and stand alone: every HTTP route is in the README's table,
//! every HTTP error code and Socket.IO ack code is explained in `docs/`, every stable test
//! hook of `docs/TEST-HOOKS.md` exists in the web client, and no file of the repository
//! sends its reader to a document that is not in it. (The configuration keys are checked
//! by `config.rs`'s unit tests, which can list them from the code.)
//!
//! These read the source tree only; nothing is started.
// Test code: a failed expectation stops the test loudly (the workspace denies these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every file under `dir` (a path from the repository root) whose name ends with `ext`,
/// outside build outputs and installed packages.
fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![root().join(dir)];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !["target", "node_modules", "dist", "results", ".git"].contains(&name.as_str()) {
                    todo.push(path);
                }
            } else if name.ends_with(ext) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn shown(path: &Path) -> String {
    path.strip_prefix(root()).unwrap_or(path).display().to_string()
}

/// The text with every run of whitespace made one space, so that calls spread over
/// several lines read as one.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The string literal `text` starts with (`"…"`, without escapes).
fn leading_literal(text: &str) -> Option<&str> {
    text.strip_prefix('"')?.split_once('"').map(|(literal, _)| literal)
}

/// The string literals that directly follow `before` in `text`.
fn literals_after<'a>(text: &'a str, before: &str) -> Vec<&'a str> {
    text.match_indices(before).filter_map(|(at, _)| leading_literal(&text[at + before.len()..])).collect()
}

/// `(path, line)` of every HTTP route the server registers: `.route("…")` in the JSON API
/// (nested under `/api`) and in the server's own router. The admin portal's pages are
/// described in the README's prose instead.
fn http_routes() -> Vec<(String, String)> {
    let mut routes = Vec::new();
    for (file, prefix) in [("appliance/src/api/mod.rs", "/api"), ("appliance/src/server.rs", "")] {
        for path in literals_after(&read(file), ".route(") {
            routes.push((format!("{prefix}{path}"), file.to_string()));
        }
    }
    routes
}

#[test]
fn every_http_route_is_in_the_readme() {
    let readme = read("README.md");
    let table = readme.split("## HTTP API").nth(1).expect("README.md has a section \"## HTTP API\"");
    let table = table.split("\n## ").next().unwrap_or_default();
    let routes = http_routes();
    assert!(routes.len() >= 10, "the routes were not found in the source: {routes:?}");
    let missing: Vec<String> = routes
        .iter()
        .filter(|(path, _)| !table.contains(&format!("| `{path}` |")))
        .map(|(path, file)| format!("README.md, \"HTTP API\": no row for `{path}` (registered in {file})"))
        .collect();
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
}

/// Codes of HTTP error answers: the string that follows a status in the source
/// (`ApiError::new(StatusCode::FORBIDDEN, "forbidden", …)`, `(StatusCode::…, "busy")`).
fn http_error_codes() -> Vec<(String, String)> {
    let mut codes = Vec::new();
    for file in files("appliance/src", ".rs") {
        let text = flat(&std::fs::read_to_string(&file).unwrap());
        for (at, _) in text.match_indices("StatusCode::") {
            let rest = &text[at + "StatusCode::".len()..];
            let Some((status, after)) = rest.split_once(',') else { continue };
            if !status.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                continue;
            }
            if let Some(code) = leading_literal(after.trim_start())
                && !code.is_empty()
                && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            {
                codes.push((code.to_string(), shown(&file)));
            }
        }
    }
    codes.sort();
    codes.dedup();
    codes
}

#[test]
fn every_http_error_code_is_explained_in_docs_http() {
    let doc = read("docs/HTTP.md");
    let codes = http_error_codes();
    assert!(codes.iter().any(|(c, _)| c == "invalid_credentials"), "the codes were not found in the source: {codes:?}");
    let missing: Vec<String> = codes
        .iter()
        .filter(|(code, _)| !doc.contains(&format!("| `{code}` |")))
        .map(|(code, file)| format!("docs/HTTP.md, \"Errors\": no row for `{code}` (answered in {file})"))
        .collect();
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
}

#[test]
fn every_socket_ack_code_is_explained_in_docs_protocol() {
    // `SignalError::code`, wherever the signaling module keeps it.
    let sources: Vec<String> =
        files("appliance/src", ".rs").iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    let code_fn = sources
        .iter()
        .flat_map(|text| text.split("fn code(&self)").skip(1))
        .map(|after| after.split("\n    }\n").next().unwrap_or_default())
        .find(|body| body.contains("SignalError::"))
        .expect("SignalError::code in appliance/src");
    let codes = literals_after(code_fn, "=> ");
    assert!(codes.len() >= 10, "the codes were not found in SignalError::code: {codes:?}");
    let doc = read("docs/PROTOCOL.md");
    let missing: Vec<String> = codes
        .iter()
        .filter(|code| !doc.contains(&format!("| `{code}` |")))
        .map(|code| format!("docs/PROTOCOL.md, \"Error codes (acks)\": no row for `{code}` (SignalError::code)"))
        .collect();
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
}

#[test]
fn every_stable_test_hook_exists_in_the_web_client() {
    let doc = read("docs/TEST-HOOKS.md");
    let hooks: Vec<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(hook, _)| hook))
        .filter(|h| *h != "data-testid")
        .collect();
    assert!(hooks.len() >= 10, "docs/TEST-HOOKS.md lists no hooks: {hooks:?}");
    let source: String = files("web-client/src", ".ts").iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    let missing: Vec<String> = hooks
        .iter()
        .filter(|hook| {
            !source.contains(&format!("'data-testid': '{hook}'")) && !source.contains(&format!("testId: '{hook}'"))
        })
        .map(|hook| format!("docs/TEST-HOOKS.md lists `{hook}`, which no element of web-client/src carries"))
        .collect();
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
}

/// Names of documents that live outside this repository (the project's first design notes
/// and working documents); spelled in parts so that this file does not name them itself.
fn outside_documents() -> Vec<String> {
    let mut names: Vec<String> = ["DESIGN", "STACK", "STYLE"].iter().map(|n| format!("{n}.md")).collect();
    names.push(["..", "/shared/"].concat());
    names.push(["shared", " STACK"].concat());
    names.push(["the", " brief"].concat());
    names
}

#[test]
fn no_file_cites_a_document_outside_the_repository() {
    let names = outside_documents();
    let mut citations = Vec::new();
    for dir in [
        "appliance",
        "web-client",
        "tests",
        "bench",
        "docs",
        "packaging",
        "systemd",
        "migrations",
        "portal-templates",
        ".ci",
    ] {
        for file in files(dir, "") {
            let Ok(text) = std::fs::read_to_string(&file) else { continue }; // not text
            for (n, line) in text.lines().enumerate() {
                for name in names.iter().filter(|name| line.contains(name.as_str())) {
                    citations.push(format!(
                        "{}:{}: cites {name}: write what it says into docs/ instead",
                        shown(&file),
                        n + 1
                    ));
                }
            }
        }
    }
    for file in ["README.md", "ARCHITECTURE.md", "Cargo.toml"] {
        for (n, line) in read(file).lines().enumerate() {
            for name in names.iter().filter(|name| line.contains(name.as_str())) {
                citations.push(format!("{file}:{}: cites {name}: write what it says into docs/ instead", n + 1));
            }
        }
    }
    assert!(citations.is_empty(), "\n{}", citations.join("\n"));
}

/// A measured quantity: a number with a unit of time, size or rate, or a ratio, that reads
/// as a measurement — approximate (`~`, `≈`, `about`), with decimals, or a percentage or
/// factor. Settings and sizes fixed by code (`1 KiB`, `16 KiB`) are not figures.
fn figure_in(text: &str) -> Option<String> {
    const UNITS: [&str; 13] = ["ms", "µs", "us", "ns", "KiB", "MiB", "GiB", "KB", "MB", "GB", "Mbit", "%", "×"];
    let chars: Vec<char> = text.chars().collect();
    for start in 0..chars.len() {
        if !chars[start].is_ascii_digit()
            || (start > 0 && (chars[start - 1].is_alphanumeric() || chars[start - 1] == '.'))
        {
            continue;
        }
        let mut end = start;
        while end < chars.len() && (chars[end].is_ascii_digit() || chars[end] == '.' || chars[end] == ',') {
            end += 1;
        }
        let number: String = chars[start..end].iter().collect::<String>().trim_end_matches(['.', ',']).to_string();
        let before: String = chars[..start].iter().collect::<String>();
        let before = before.trim_end();
        let approximate = before.ends_with('~') || before.ends_with('≈') || before.ends_with("about");
        let rest: String = chars[end..].iter().collect();
        let rest = rest.trim_start_matches(' ');
        for unit in UNITS {
            if let Some(after) = rest.strip_prefix(unit)
                && !after.starts_with(|c: char| c.is_alphanumeric())
                && (approximate || number.contains('.') || unit == "%" || unit == "×")
            {
                return Some(format!("{number} {unit}"));
            }
        }
    }
    None
}

#[test]
fn code_that_cites_a_benchmark_names_it_and_leaves_the_figures_to_its_readme() {
    assert_eq!(figure_in("held back ~40 ms each"), Some("40 ms".into()));
    assert_eq!(figure_in("41.2 -> 38.5 KiB"), Some("38.5 KiB".into()));
    assert_eq!(figure_in("of the ~50 KiB a connection cost"), Some("50 KiB".into()));
    assert_eq!(figure_in("saves 12 % of the CPU"), Some("12 %".into()));
    assert_eq!(figure_in("1 KiB instead of 4 KiB; RFC 8489, 2 cores, fan-out 1"), None);
    let mut problems = Vec::new();
    for (dir, ext) in [("appliance/src", ".rs"), ("web-client/src", ".ts")] {
        for file in files(dir, ext) {
            let text = std::fs::read_to_string(&file).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (n, line) in lines.iter().enumerate() {
                let Some(at) = line.find("bench/") else { continue };
                let name: String =
                    line[at + "bench/".len()..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '-').collect();
                if !root().join("bench").join(&name).join("README.md").is_file() {
                    problems.push(format!("{}:{}: cites bench/{name}, which has no README", shown(&file), n + 1));
                }
                // The comment around the citation: this line and the comment lines above it.
                let comment = lines[..=n]
                    .iter()
                    .rev()
                    .take_while(|l| {
                        let l = l.trim_start();
                        l.starts_with("//") || l.starts_with('*') || l.starts_with("/*")
                    })
                    .take(6);
                for (k, l) in comment.enumerate() {
                    if let Some(figure) = figure_in(l) {
                        problems.push(format!(
                            "{}:{}: a comment citing bench/{name} gives a figure ({figure}): say why in words and put the figure in bench/{name}/README.md",
                            shown(&file),
                            n + 1 - k
                        ));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
