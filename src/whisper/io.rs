//! Positioned I/O helpers, file mappings, and the write options carbon exposes (`WHISPER_*`
//! flags).
//!
//! Every read and write names its offset (`pread`/`pwrite`, or a copy at that offset of a
//! mapping), so one open descriptor can serve any number of operations without seeking, and only
//! the bytes an operation needs are touched.
//!
//! # Mapped files
//!
//! A small `pwrite` costs a system call (0.3 to 0.5 µs on our virtual machines), which is most
//! of a one-point update. A handle opened with [`WriteOptions::mmap`] therefore maps the whole
//! file shared and copies points in and out of the mapping: the same page cache, so every other
//! reader and writer (whisper.py, graphite-web, our own `pread`s) sees the same bytes, and
//! `fsync` writes the pages back as it would after `pwrite`.
//!
//! The price of a mapping is that a fault the kernel cannot serve is a SIGBUS, which kills the
//! process with its cache, where `pwrite` would have returned an error. A fault happens for a
//! write into a page whose blocks are not allocated yet when the disk is full (a hole of a sparse
//! file, or any page of a copy-on-write file system), and for any access past the end of a file
//! that another process truncated. So a file is mapped only when all of these hold, and
//! otherwise the handle falls back to `pread`/`pwrite` with the same results:
//! - the file system overwrites allocated blocks in place: ext2/3/4 or tmpfs (not btrfs, XFS with
//!   reflinked extents, ZFS, overlayfs, network file systems);
//! - the file has no holes (`SEEK_HOLE` finds none before its end), so every page's blocks exist;
//! - fewer than [`mapping_budget`] files are mapped in the process (each mapping is a VMA, and
//!   running out of `vm.max_map_count` would fail the allocator's own mappings).
//!
//! Truncation in place is not something whisper's tools do (whisper-resize writes a new file and
//! renames it over the old one, which leaves the mapped inode intact); a handle checks the
//! file's length each time its metadata is refreshed and drops the mapping if the file shrank.
//! Operators whose other tools truncate whisper files in place keep `WRITER_MMAP` off (the
//! default).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

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
    /// Map files opened for writing into memory where that is safe (see the module's
    /// documentation), saving a system call per read and write (WRITER_MMAP).
    pub mmap: bool,
}

/// ext2, ext3 and ext4 share this `statfs` magic.
const EXT_SUPER_MAGIC: u64 = 0xEF53;
const TMPFS_MAGIC: u64 = 0x0102_1994;

/// Files mapped now, process-wide.
static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// How many files the process maps at most: a quarter of `vm.max_map_count` (65530 by
/// default), leaving the rest to the allocator, thread stacks and libraries.
pub fn mapping_budget() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        let max = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(65_530);
        max / 4
    })
}

/// Whether `file` lives on a file system that overwrites allocated blocks in place (ext2/3/4,
/// tmpfs), where a write into an allocated page never needs new space.
pub(crate) fn overwrites_in_place(file: &File) -> bool {
    rustix::fs::fstatfs(file).is_ok_and(|fs| matches!(fs.f_type as u64, EXT_SUPER_MAGIC | TMPFS_MAGIC))
}

/// A shared, writable mapping of a whole file, accessed only by copies at checked offsets.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value (unmapped once, in Drop); it is only
// reached through `&self`/`&mut self` methods that copy bytes, so moving it to another thread
// is no different from moving a `Vec<u8>`. It is deliberately not `Sync`.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps `file` (open for reading and writing, `len` bytes long) when it is safe to (see the
    /// module documentation); `None` when it is not, or when mapping fails for any reason.
    pub(crate) fn map_if_safe(file: &File, len: u64) -> Option<Mapping> {
        let len = usize::try_from(len).ok().filter(|&l| l > 0)?;
        if !overwrites_in_place(file) {
            return None;
        }
        // SEEK_HOLE answers the end of the file when there is no hole before it.
        let first_hole = rustix::fs::seek(file, rustix::fs::SeekFrom::Hole(0)).ok()?;
        if first_hole < len as u64 {
            return None;
        }
        if MAPPED.fetch_add(1, Ordering::Relaxed) >= mapping_budget() {
            MAPPED.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let prot = rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE;
        // SAFETY: a fresh mapping at an address the kernel picks aliases no Rust object; `len`
        // is the file's non-zero length; `file` is open read-write (else mmap fails with EACCES).
        let mapped =
            unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, rustix::mm::MapFlags::SHARED, file, 0) };
        match mapped.ok().and_then(|p| NonNull::new(p.cast::<u8>())) {
            Some(ptr) => Some(Mapping { ptr, len }),
            None => {
                MAPPED.fetch_sub(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// The file length the mapping covers.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn range(&self, offset: u64, n: usize) -> io::Result<usize> {
        usize::try_from(offset)
            .ok()
            .filter(|&o| o.checked_add(n).is_some_and(|end| end <= self.len))
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "access beyond the mapped file"))
    }

    /// Copies `buf.len()` bytes at `offset` out of the file; an error if they lie past its end.
    pub(crate) fn read(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let at = self.range(offset, buf.len())?;
        // SAFETY: `range` checked that `at..at + buf.len()` lies inside the mapping, which lives
        // as long as `self`. The bytes may be changed concurrently by another process writing
        // the file; they are copied as raw bytes (no reference into the mapping is formed), and
        // any bit pattern is a valid `u8`.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(at), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copies `buf` into the file at `offset`; an error if it would reach past the file's end.
    pub(crate) fn write(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let at = self.range(offset, buf.len())?;
        // SAFETY: as in `read`; `buf` is ordinary memory and cannot overlap the mapping, which
        // no Rust reference ever points into. The pages' blocks are allocated on a file system
        // that overwrites in place (checked when mapping), so the write cannot fault.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), self.ptr.as_ptr().add(at), buf.len()) };
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned and nothing refers into the mapping
        // once its owner is dropped. Dirty pages stay in the page cache and are written back as
        // after `pwrite`.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
        MAPPED.fetch_sub(1, Ordering::Relaxed);
    }
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
