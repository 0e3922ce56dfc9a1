//! Files appear whole or not at all: written to a temporary file in the target folder, then
//! renamed over the final name.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Creates `dir` (and parents) if needed, with an error that names it.
pub fn ensure_folder(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::io("create the output folder", dir, e)
            .with_hint("Choose a writable folder with --out DIR")
    })
}

/// A temporary file next to where `final_path` will be, removed if dropped unpersisted.
pub fn temp_beside(final_path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = parent_of(final_path);
    ensure_folder(dir)?;
    output_file_in(dir).map_err(|e| {
        Error::io("write to", dir, e).with_hint("Choose a writable folder with --out DIR")
    })
}

/// A temporary file in `dir` that becomes an output: created with mode 0666 less the umask,
/// as any other program's output (tempfile's own default is 0600, whatever the umask).
pub fn output_file_in(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(".tagpilot-")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
}

/// Moves a finished temporary file to its final name.
pub fn persist(temp: tempfile::NamedTempFile, final_path: &Path) -> Result<()> {
    temp.persist(final_path)
        .map(|_| ())
        .map_err(|e| Error::io("write", final_path, e.error))
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut temp = temp_beside(path)?;
    temp.write_all(bytes)
        .map_err(|e| Error::io("write", path, e))?;
    persist(temp, path)
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A path as messages show it.
pub fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Refuses an output folder that exists as something other than a folder.
pub fn check_out_dir(out: &Path) -> Result<()> {
    if out.exists() && !out.is_dir() {
        return Err(Error::input(format!(
            "output folder {} exists and is not a folder",
            out.display()
        ))
        .with_hint("Choose another with --out DIR"));
    }
    Ok(())
}
