//! Reading the files a user names (the ledger, exclusions, the configuration, rule files): only regular
//! files, and only up to a size limit. A FIFO, a device, a folder or a file over the limit is refused
//! before anything is read, so a wrong path (`/dev/zero`, a symlink to it) ends at once with a clear
//! message instead of reading forever.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

const MIB: u64 = 1 << 20;
/// The largest ledger read: a municipality's ledger is a few MiB at most (a few hundred thousand rows).
pub const LEDGER_LIMIT: u64 = 32 * MIB;
/// The largest `--exclude` file read.
pub const EXCLUSIONS_LIMIT: u64 = 32 * MIB;
/// The largest configuration file read.
pub const CONFIG_LIMIT: u64 = 4 * MIB;
/// The largest fingerprint rule file read (the whole shipped library is well under 1 MiB).
pub const RULE_FILE_LIMIT: u64 = 16 * MIB;

/// The bytes of the regular file at `path` (a symlink is followed), refused with an error that says why
/// when it is anything else or holds more than `limit` bytes. Opening never blocks (a FIFO without a
/// writer is refused, not waited on) and at most `limit` bytes are ever read.
pub fn read_bounded(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let (file, len) = open_bounded(path, limit)?;
    // The file may grow while it is read (or report no size, as /proc files do): read one byte past the
    // limit at most, to tell.
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_big(limit));
    }
    Ok(bytes)
}

/// Whether [`read_bounded`] would accept the file at `path`, found without reading it.
pub fn check_bounded(path: &Path, limit: u64) -> io::Result<()> {
    open_bounded(path, limit).map(|_| ())
}

/// The file at `path` opened for reading, with its size, when it is a regular file within `limit`.
fn open_bounded(path: &Path, limit: u64) -> io::Result<(File, u64)> {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. It changes nothing for
    // the regular files that are read.
    let file = File::options().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    let other = |what: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, format!("not a regular file: {what}")));
    if kind.is_dir() {
        return other("a folder");
    } else if kind.is_fifo() {
        return other("a FIFO (named pipe)");
    } else if kind.is_char_device() {
        return other("a character device");
    } else if kind.is_block_device() {
        return other("a block device");
    } else if kind.is_socket() {
        return other("a socket");
    } else if !kind.is_file() {
        return other("not a file");
    }
    if meta.len() > limit {
        return Err(too_big(limit));
    }
    Ok((file, meta.len()))
}

fn too_big(limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("larger than {}, the limit for this kind of file", show_size(limit)),
    )
}

/// [`read_bounded`] for a text file: the bytes must be UTF-8.
pub fn read_bounded_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read_bounded(path, limit)?).map_err(|e| {
        io::Error::new(io::ErrorKind::InvalidData, format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()))
    })
}

fn show_size(bytes: u64) -> String {
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_under_the_limit_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(read_bounded(&path, 3).unwrap(), b"abc");
        assert_eq!(read_bounded_text(&path, 10).unwrap(), "abc");
        let e = read_bounded(&path, 2).unwrap_err();
        assert_eq!(e.to_string(), "larger than 2 bytes, the limit for this kind of file");
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert_eq!(read_bounded_text(&path, 10).unwrap_err().to_string(), "not UTF-8 text (byte 0)");
    }

    #[test]
    fn anything_but_a_regular_file_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let refused = |p: &Path| read_bounded(p, LEDGER_LIMIT).unwrap_err().to_string();
        assert_eq!(refused(Path::new("/dev/zero")), "not a regular file: a character device");
        assert_eq!(refused(dir.path()), "not a regular file: a folder");
        let link = dir.path().join("zero.toml");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert_eq!(refused(&link), "not a regular file: a character device");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(refused(&fifo), "not a regular file: a FIFO (named pipe)", "refused without waiting for a writer");
        assert_eq!(refused(&dir.path().join("missing")), "No such file or directory (os error 2)");
    }
}
