//! A ring-mapped provided-buffer group (IORING_REGISTER_PBUF_RING, kernel 5.19): `n_bufs`
//! buffers of `buf_size` bytes that multishot receives fill, the kernel picking a free one per
//! completion.
//!
//! Why a mapped ring rather than IORING_OP_PROVIDE_BUFFERS: giving a buffer back is two plain
//! stores (the entry, then the tail with release ordering) instead of an SQE whose own
//! completion must be reaped and tracked; it is what multishot receive was designed with.
//!
//! Ownership: a buffer is either the kernel's (in the ring, free to be filled) or ours (named
//! by a CQE's `IORING_CQE_F_BUFFER` and not given back yet). [`BufRing::claim`] and
//! [`BufRing::recycle`] move it between the two and assert that each buffer is claimed once per
//! fill and given back exactly once. The memory (entries and data) is allocated once, never
//! moved or resized, and freed only after the ring is unregistered with no op in flight, or
//! leaked when that cannot be shown ([`BufRing::leak`]).

use std::alloc::{self, Layout};
use std::io;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::IoUring;

/// One entry of the ring: `struct io_uring_buf`.
#[repr(C)]
struct RingEntry {
    addr: u64,
    len: u32,
    bid: u16,
    /// In entry 0, the ring's tail (`struct io_uring_buf_ring`); unused in the others.
    resv: u16,
}

const _: () = assert!(std::mem::size_of::<RingEntry>() == 16);
/// Where the tail lives: the `resv` field of entry 0.
const TAIL_OFFSET: usize = 14;
const PAGE_BYTES: usize = 4096;

/// One registered buffer group.
#[derive(Debug)]
pub(super) struct BufRing {
    bgid: u16,
    /// `n_bufs` entries, page aligned as the kernel requires; entry 0's `resv` is the tail.
    entries: NonNull<RingEntry>,
    entries_layout: Layout,
    /// `n_bufs` buffers of `buf_size` bytes, back to back.
    data: NonNull<u8>,
    data_layout: Layout,
    buf_size: usize,
    n_bufs: u16,
    /// Entries published so far (wrapping); the kernel's copy is the tail in entry 0.
    tail: u16,
    /// Invariant: `ours[bid]` exactly while buffer `bid` is out of the ring (claimed, not
    /// recycled); `n_ours` counts them.
    ours: Vec<bool>,
    n_ours: usize,
    registered: bool,
    /// Set when the kernel may still use the memory: Drop then leaks it instead of freeing it.
    leak: bool,
}

impl BufRing {
    /// Allocates `n_bufs` (a power of two, at most 32768) buffers of `buf_size` bytes, registers
    /// them as group `bgid` of `ring` and hands every buffer to the kernel.
    pub fn new(ring: &IoUring, bgid: u16, n_bufs: u16, buf_size: usize) -> io::Result<BufRing> {
        assert!(n_bufs.is_power_of_two() && n_bufs <= 1 << 15 && buf_size > 0 && buf_size <= u32::MAX as usize);
        let invalid = |_| io::Error::from(io::ErrorKind::InvalidInput);
        let entries_layout =
            Layout::from_size_align((usize::from(n_bufs) * 16).max(PAGE_BYTES), PAGE_BYTES).map_err(invalid)?;
        let data_layout = Layout::from_size_align(usize::from(n_bufs) * buf_size, PAGE_BYTES).map_err(invalid)?;
        // SAFETY: both layouts have a non-zero size (at least a page, and n_bufs * buf_size > 0).
        let (entries, data) = unsafe { (alloc::alloc_zeroed(entries_layout), alloc::alloc(data_layout)) };
        let (Some(entries), Some(data)) = (NonNull::new(entries.cast::<RingEntry>()), NonNull::new(data)) else {
            alloc::handle_alloc_error(entries_layout);
        };
        let mut bufs = BufRing {
            bgid,
            entries,
            entries_layout,
            data,
            data_layout,
            buf_size,
            n_bufs,
            tail: 0,
            ours: vec![true; usize::from(n_bufs)],
            n_ours: usize::from(n_bufs),
            registered: false,
            leak: false,
        };
        // SAFETY: `entries` points at `n_bufs` zeroed, page-aligned entries that stay allocated
        // and unmoved until Drop, which frees them only after `unregister` (or leaks them).
        unsafe { ring.submitter().register_buf_ring_with_flags(entries.as_ptr() as u64, n_bufs, bgid, 0)? };
        bufs.registered = true;
        for bid in 0..n_bufs {
            bufs.recycle(bid);
        }
        Ok(bufs)
    }

    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// Buffers out of the ring (claimed and not recycled yet).
    pub fn n_ours(&self) -> usize {
        self.n_ours
    }

    /// Whether the kernel has at least one buffer to fill (as far as the completions reaped
    /// so far tell).
    pub fn kernel_has_buffers(&self) -> bool {
        self.n_ours < usize::from(self.n_bufs)
    }

    /// Takes ownership of the buffer a CQE names (`IORING_CQE_F_BUFFER` in its flags), if any.
    pub fn claim(&mut self, cqe_flags: u32) -> Option<u16> {
        let bid = io_uring::cqueue::buffer_select(cqe_flags)?;
        let slot = self.ours.get_mut(usize::from(bid)).expect("the kernel named a buffer id beyond the group");
        assert!(!*slot, "buffer {bid} of group {} delivered twice", self.bgid);
        *slot = true;
        self.n_ours += 1;
        Some(bid)
    }

    /// The first `len` bytes of buffer `bid`, which must be ours.
    pub fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        assert!(self.ours[usize::from(bid)], "buffer {bid} read while the kernel owns it");
        let len = len.min(self.buf_size);
        // SAFETY: `bid < n_bufs` (indexing `ours` checked it), so the range lies inside the data
        // allocation. The buffer is ours: it left the ring with the CQE that claimed it and the
        // kernel writes it again only after `recycle`, which needs `&mut self` and so cannot
        // happen while this borrow lives.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr().add(usize::from(bid) * self.buf_size), len) }
    }

    /// Gives buffer `bid` back to the kernel. Each buffer is given back exactly once per claim.
    pub fn recycle(&mut self, bid: u16) {
        let slot = &mut self.ours[usize::from(bid)];
        assert!(*slot, "buffer {bid} of group {} given back twice", self.bgid);
        *slot = false;
        self.n_ours -= 1;
        let idx = usize::from(self.tail & (self.n_bufs - 1));
        let addr = self.data.as_ptr() as u64 + (usize::from(bid) * self.buf_size) as u64;
        // SAFETY: idx < n_bufs, inside the entries allocation. The kernel reads entries between
        // its head and the published tail only; this one is past the tail (the ring holds
        // n_bufs entries and at most n_bufs - 1 other buffers are in it), so nobody reads it
        // while it is written. The fields are written one by one so that entry 0's `resv`, the
        // tail, is not touched.
        unsafe {
            let entry = self.entries.as_ptr().add(idx);
            ptr::addr_of_mut!((*entry).addr).write(addr);
            ptr::addr_of_mut!((*entry).len).write(self.buf_size as u32);
            ptr::addr_of_mut!((*entry).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        self.shared_tail().store(self.tail, Ordering::Release);
    }

    fn shared_tail(&self) -> &AtomicU16 {
        // SAFETY: the tail is 2 bytes at offset 14 of the page-aligned entries allocation, so
        // in bounds and aligned for u16; it lives as long as `self`; the kernel only reads it
        // (with acquire ordering) and we only store it through this atomic.
        unsafe { AtomicU16::from_ptr(self.entries.as_ptr().cast::<u8>().add(TAIL_OFFSET).cast::<u16>()) }
    }

    /// Unregisters the group; the caller has shown that no op that may pick from it is in
    /// flight.
    pub fn unregister(&mut self, ring: &IoUring) {
        if self.registered {
            self.registered = ring.submitter().unregister_buf_ring(self.bgid).is_err();
        }
    }

    /// Leaves the memory allocated for good: the kernel may still use it (ops in flight).
    pub fn leak(&mut self) {
        self.leak = true;
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.leak {
            return;
        }
        // SAFETY: both blocks were allocated in `new` with these layouts and are freed once.
        // Not leaking means the owner showed that no op that may pick a buffer is in flight;
        // a ring that is still registered (its ring was dropped first) is torn down by the
        // kernel without reading the entries again.
        unsafe {
            alloc::dealloc(self.entries.as_ptr().cast(), self.entries_layout);
            alloc::dealloc(self.data.as_ptr(), self.data_layout);
        }
    }
}
