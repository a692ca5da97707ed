//! Typed errors of the harness. Every error reaches the user as one line;
//! any error means "the input or the environment is wrong" (exit code 2),
//! while a result out of its band is not an error but a verdict (exit 1).
use std::path::{Path, PathBuf};

/// Bad input: a file, the field or sample in it, and what was expected.
#[derive(Debug, thiserror::Error)]
#[error("{}: {}{msg}", file.display(), field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct InputError {
    pub file: PathBuf,
    pub field: Option<String>,
    pub msg: String,
}

impl InputError {
    pub fn new(file: &Path, field: Option<&str>, msg: impl Into<String>) -> Self {
        InputError {
            file: file.to_path_buf(),
            field: field.map(str::to_string),
            msg: msg.into(),
        }
    }
}

/// An error chain on one line, outermost context first.
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

/// An input error about `file` as a whole (no field), as an `anyhow::Error`.
pub fn input_err(file: &Path, msg: impl Into<String>) -> anyhow::Error {
    InputError::new(file, None, msg).into()
}

/// Shorthand for `Err(InputError)` on a field.
pub fn field_err<T>(file: &Path, field: &str, msg: impl Into<String>) -> anyhow::Result<T> {
    Err(InputError::new(file, Some(field), msg).into())
}

/// Parses TOML into `T`, turning serde's multi-line diagnostics into one
/// line: `file:line:col: message`.
pub fn parse_toml<T: serde::de::DeserializeOwned>(file: &Path, text: &str) -> anyhow::Result<T> {
    toml::from_str(text).map_err(|e| {
        let (line, col) = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
                (line, col)
            })
            .unwrap_or((0, 0));
        let msg = e.message().replace('\n', " ");
        anyhow::Error::new(InputError::new(
            &PathBuf::from(format!("{}:{line}:{col}", file.display())),
            None,
            msg.trim().to_string(),
        ))
    })
}

/// Reads a text file, naming it in the error.
pub fn read_text(file: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(file)
        .map_err(|e| InputError::new(file, None, format!("cannot read: {e}")).into())
}
