//! Builds the browser client (`web-client/`, TypeScript bundled by npm) when its sources
//! change, and generates a table of its `dist/` files so the binary embeds them.
//! The table is `include_bytes!` of each file: nothing is read from disk at run time.

use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let web = manifest.join("..").join("web-client");
    let dist = web.join("dist");
    for watched in ["src", "static", "scripts", "package.json", "package-lock.json", "tsconfig.json"] {
        println!("cargo::rerun-if-changed={}", web.join(watched).display());
    }
    println!("cargo::rerun-if-env-changed=SKIP_WEB_CLIENT_BUILD");
    // `sqlx::migrate!` embeds the migrations at compile time: rebuild when one changes.
    println!("cargo::rerun-if-changed={}", manifest.join("..").join("migrations").display());

    if std::env::var_os("SKIP_WEB_CLIENT_BUILD").is_none() || !dist.join("index.html").exists() {
        build_web_client(&web);
    }

    let mut files = Vec::new();
    collect(&dist, &dist, &mut files);
    files.sort();
    let mut out = String::from("&[\n");
    for (rel, abs) in &files {
        let bytes = std::fs::read(abs).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", abs.display())));
        let mut h = DefaultHasher::new();
        bytes.hash(&mut h);
        let _ = writeln!(
            out,
            "    WebAsset {{ path: {rel:?}, mime: {mime:?}, etag: \"\\\"{etag:016x}\\\"\", body: include_bytes!({abs:?}) }},",
            mime = mime_of(rel),
            etag = h.finish(),
            abs = abs.display().to_string(),
        );
    }
    out.push(']');
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    std::fs::write(out_dir.join("web_assets.rs"), out)
        .unwrap_or_else(|e| fail(&format!("cannot write the asset table: {e}")));
}

fn build_web_client(web: &Path) {
    let npm = |args: &[&str]| {
        let status = Command::new("npm").args(args).current_dir(web).status().unwrap_or_else(|e| {
            fail(&format!("cannot run npm ({e}); install Node.js and npm (apt-get install nodejs npm)"))
        });
        if !status.success() {
            fail(&format!("`npm {}` failed in {}", args.join(" "), web.display()));
        }
    };
    // npm records what it installed in node_modules/.package-lock.json: reinstall when the
    // lock file is newer (a pull changed the dependencies) or nothing is installed.
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(&web.join("node_modules").join(".package-lock.json"));
    let wanted = modified(&web.join("package-lock.json"));
    if installed.is_none() || wanted > installed {
        npm(&["ci", "--no-audit", "--no-fund"]);
    }
    npm(&["run", "build", "--silent"]);
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e} (was the web client built?)", dir.display())));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            let abs = path.canonicalize().unwrap_or(path);
            files.push((rel, abs));
        }
    }
}

fn mime_of(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("labbeam build: {msg}");
    std::process::exit(1);
}
