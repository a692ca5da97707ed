//! Writes that are never seen half-done: write a temporary file in the same
//! folder, flush it to disk, then rename it over the target.
//!
//! Temporary files are named `.tmp-<pid>@<host>@<random><ext>` and created
//! with mode 0666 less the umask (as any file a program creates; tempfile's
//! default, 0600, would hide results from the other users of shared
//! storage). A writer killed before its rename leaves its temporary file;
//! [`remove_leftovers`] removes those of dead writers (only files named so,
//! only in the folder it is given).
use crate::util::error::InputError;
use crate::util::proc;
use anyhow::{Context, Result};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const PREFIX: &str = ".tmp-";

fn builder<'a>(prefix: &'a str, suffix: &'a str) -> tempfile::Builder<'a, 'a> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix)
        .suffix(suffix)
        .permissions(std::fs::Permissions::from_mode(0o666));
    b
}

/// `.tmp-<pid>@<host>@`: names a temporary file's writer.
fn prefix() -> String {
    format!("{PREFIX}{}@{}@", std::process::id(), proc::hostname())
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Atomically replaces `path` with `bytes`.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent(path);
    let mut tmp = builder(&prefix(), ".tmp")
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
    let dir = parent(path);
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("tmp");
    let tmp = builder(&prefix(), &format!(".{ext}"))
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

/// Whose temporary file a name is: `Some((pid, host))` for
/// `.tmp-<pid>@<host>@...`, `Some((0, ""))` for the `.tmp-XXXXXX.ext` names
/// of earlier versions, `None` for anything else.
fn writer_of(name: &str) -> Option<(u32, &str)> {
    let rest = name.strip_prefix(PREFIX)?;
    if let Some((pid, tail)) = rest.split_once('@') {
        let (host, _) = tail.split_once('@')?;
        return Some((pid.parse().ok()?, host));
    }
    // tempfile's default: six random letters or digits, then the extension.
    let (rand, ext) = rest.split_once('.')?;
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    (rand.len() == 6 && plain(rand) && plain(ext)).then_some((0, ""))
}

/// Removes the temporary files in `dir` (not below it) left by writers that
/// died before their rename; returns their names. With `any_writer` (a run
/// directory whose lease the caller holds: only the holder writes there)
/// every such file goes; otherwise only those of dead processes of this
/// host, since another worker may be writing its own right now.
pub fn remove_leftovers(dir: &Path, any_writer: bool) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let host = proc::hostname();
    let mut removed = Vec::new();
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((pid, h)) = writer_of(&name) else {
            continue;
        };
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let dead = pid != 0 && h == host && proc::alive(pid, None).is_err();
        if (any_writer || dead) && std::fs::remove_file(e.path()).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// Refuses to replace a file its owner made read-only (a rename would
/// replace it all the same): the mode says "do not touch".
pub fn refuse_read_only(path: &Path, what: &str) -> Result<()> {
    let Ok(m) = std::fs::metadata(path) else {
        return Ok(());
    };
    if m.permissions().readonly() {
        anyhow::bail!(InputError::new(
            path,
            None,
            format!(
                "read-only (mode {:o}): `{what}` does not replace it; make it writable (chmod u+w) to let it",
                m.permissions().mode() & 0o7777
            )
        ));
    }
    Ok(())
}

/// Checks, before hours of work, that `path` can be written atomically:
/// not a folder, its folder exists and takes new files.
pub fn check_target(path: &Path, flag: &str) -> Result<()> {
    if path.is_dir() {
        anyhow::bail!(InputError::new(
            path,
            None,
            format!("{flag} names a folder; give the path of the file to write")
        ));
    }
    let dir = parent(path);
    if !dir.is_dir() {
        anyhow::bail!(InputError::new(
            dir,
            None,
            format!("no such folder (the folder of {flag})")
        ));
    }
    builder(&prefix(), ".probe")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| InputError::new(dir, None, format!("cannot write here: {e}")).into())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn files_get_the_umask_mode_not_0600() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.json");
        super::write(&p, b"x").unwrap();
        // SAFETY: umask only reads and sets this process's mask.
        let mask = unsafe {
            let m = libc::umask(0o022);
            libc::umask(m);
            m
        };
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !(mask as u32), "umask {mask:o}");
    }

    #[test]
    fn leftovers_of_dead_writers_go_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let host = proc::hostname();
        let me = std::process::id();
        let names = [
            format!(".tmp-4194305@{host}@abcdef.safetensors"), // dead writer here
            format!(".tmp-{me}@{host}@abcdef.tmp"),            // a live one (this process)
            ".tmp-4194305@elsewhere@abcdef.tmp".to_string(),   // another host's
            ".tmp-Ab12Cd.json".to_string(),                    // an earlier version's
            ".tmp-notes".to_string(),                          // not ours
            "record.json".to_string(),
        ];
        for n in &names {
            std::fs::write(d.path().join(n), b"x").unwrap();
        }
        let mut gone = remove_leftovers(d.path(), false);
        assert_eq!(gone, [names[0].clone()]);
        gone = remove_leftovers(d.path(), true);
        gone.sort();
        let mut want = vec![names[1].clone(), names[2].clone(), names[3].clone()];
        want.sort();
        assert_eq!(gone, want);
        assert!(d.path().join(".tmp-notes").exists() && d.path().join("record.json").exists());
    }

    #[test]
    fn targets_are_checked_before_the_work() {
        let d = tempfile::tempdir().unwrap();
        let e = check_target(d.path(), "--to").unwrap_err().to_string();
        assert!(e.contains("names a folder"), "{e}");
        let e = check_target(&d.path().join("no/such/x.pack"), "--to")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such folder"), "{e}");
        check_target(&d.path().join("x.pack"), "--to").unwrap();
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
