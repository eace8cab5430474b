//! Every error type in src/ says its message in its doc comment (displaydoc), so the doc and
//! the text a user sees cannot drift apart: no `#[error("...")]` attribute is left to disagree
//! with its doc, and every `thiserror::Error` derive also derives `displaydoc::Display`.

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

#[test]
fn error_types_take_their_message_from_the_doc_comment() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 50,
        "found only {} files under src/",
        files.len()
    );
    let mut derives = 0;
    let mut wrong = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            let at = format!("{}:{}", file.strip_prefix(&src).unwrap().display(), n + 1);
            if line.starts_with("#[error(") {
                wrong.push(format!("{at}: #[error] beside a doc comment: {line}"));
            }
            if line.starts_with("#[derive(") && line.contains("thiserror::Error") {
                derives += 1;
                if !line.contains("displaydoc::Display") {
                    wrong.push(format!(
                        "{at}: thiserror::Error without displaydoc::Display"
                    ));
                }
            }
        }
    }
    assert!(derives >= 20, "only {derives} error derives found");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
