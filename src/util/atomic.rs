//! Writes that are never seen half-done: write a temporary file in the same
//! folder, flush it to disk, then rename it over the target.
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Atomically replaces `path` with `bytes`.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("{}: cannot create a temporary file", dir.display()))?;
    tmp.write_all(bytes)
        .with_context(|| format!("{}: write failed", path.display()))?;
    tmp.as_file().sync_all().ok();
    tmp.persist(path)
        .with_context(|| format!("{}: rename failed", path.display()))?;
    Ok(())
}

/// Atomically writes with a writer callback that gets a temporary path
/// carrying the target's extension (libtorch picks formats by extension).
pub fn write_with(path: &Path, f: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("tmp");
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .suffix(&format!(".{ext}"))
        .tempfile_in(dir)
        .with_context(|| format!("{}: cannot create a temporary file", dir.display()))?;
    let tmp_path = tmp.into_temp_path();
    f(&tmp_path)?;
    std::fs::File::open(&tmp_path)
        .and_then(|f| f.sync_all())
        .ok();
    tmp_path
        .persist(path)
        .with_context(|| format!("{}: rename failed", path.display()))?;
    Ok(())
}

/// JSON, pretty-printed, atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    write(path, s.as_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_whole_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.json");
        super::write(&p, b"one").unwrap();
        super::write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }
}
