//! Positioned I/O helpers and the write options carbon exposes (`WHISPER_*` flags).
//!
//! Every read and write names its offset (`pread`/`pwrite`), so one open descriptor can serve
//! any number of operations without seeking, and only the bytes an operation needs are touched.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// How a new file's data area is allocated (carbon's WHISPER_SPARSE_CREATE and
/// WHISPER_FALLOCATE_CREATE; zero-fill when neither is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    /// Write zeros over the whole data area (whisper's default).
    #[default]
    Zeroed,
    /// Extend the file without writing: a sparse file, fast to create, may fragment later.
    Sparse,
    /// Reserve the blocks with fallocate(2); zero-fill where the file system cannot.
    Fallocate,
}

/// Per-write behaviour (carbon's WHISPER_LOCK_WRITES, WHISPER_AUTOFLUSH, WHISPER_FADVISE_RANDOM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOptions {
    /// Take flock(LOCK_EX) for the duration of every write operation.
    pub lock_writes: bool,
    /// fsync after every write operation.
    pub autoflush: bool,
    /// Advise the kernel that access is random (no read-ahead) when a file is opened for writing.
    pub fadvise_random: bool,
}

/// Reads into `buf` at `offset` until it is full or the file ends; returns the bytes read.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads exactly `buf.len()` bytes at `offset`; a file that ends early is an UnexpectedEof error.
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    file.read_exact_at(buf, offset)
}

/// Writes all of `buf` at `offset` (retrying short writes).
pub(crate) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    file.write_all_at(buf, offset)
}

/// An exclusive flock held until dropped, or nothing when locking is off.
#[derive(Debug)]
pub(crate) struct WriteLock<'f> {
    file: Option<&'f File>,
}

impl<'f> WriteLock<'f> {
    pub(crate) fn acquire(file: &'f File, enabled: bool) -> io::Result<Self> {
        if !enabled {
            return Ok(WriteLock { file: None });
        }
        rustix::fs::flock(file, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(WriteLock { file: Some(file) })
    }
}

impl Drop for WriteLock<'_> {
    fn drop(&mut self) {
        if let Some(file) = self.file {
            // Closing the descriptor would release the lock too; an unlock failure leaves nothing
            // to undo, so it is ignored.
            let _ = rustix::fs::flock(file, rustix::fs::FlockOperation::Unlock);
        }
    }
}

/// Applies the post-write part of the options (fsync when autoflush is on).
pub(crate) fn finish_write(file: &File, opts: &WriteOptions) -> io::Result<()> {
    if opts.autoflush {
        file.sync_all()?;
    }
    Ok(())
}

pub(crate) fn advise_random(file: &File, opts: &WriteOptions) -> io::Result<()> {
    if opts.fadvise_random {
        rustix::fs::fadvise(file, 0, 0, rustix::fs::Advice::Random)?;
    }
    Ok(())
}

/// Allocates `len` bytes of data at `offset` as `allocation` says.
pub(crate) fn allocate(file: &File, offset: u64, len: u64, allocation: Allocation) -> io::Result<()> {
    match allocation {
        Allocation::Sparse => file.set_len(offset + len),
        Allocation::Fallocate => match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), offset, len) {
            Ok(()) => Ok(()),
            // As glibc's posix_fallocate does on file systems without fallocate: write zeros.
            Err(rustix::io::Errno::OPNOTSUPP) => write_zeros(file, offset, len),
            Err(e) => Err(e.into()),
        },
        Allocation::Zeroed => write_zeros(file, offset, len),
    }
}

fn write_zeros(file: &File, offset: u64, len: u64) -> io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    let zeros = [0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(CHUNK as u64) as usize;
        write_all_at(file, &zeros[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}
