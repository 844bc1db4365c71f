//! Every synchronisation primitive the cache uses, in one place, so that loom can replace them.
//!
//! Normal builds use `std`'s atomics and crossbeam's `ArrayQueue` (Vyukov's bounded MPMC array
//! queue, as crossbeam implements it). Under `--cfg carbyne_loom` the atomics are loom's, and the bounded
//! queue is a `loom::sync::Mutex<VecDeque>` with the same API and the same capacity rule: loom
//! cannot see inside `ArrayQueue` (crossbeam does not instrument it for loom), so the loom model
//! checks *our* protocol on top of any correct bounded queue (hand-off, recycling, accounting),
//! while `ArrayQueue`'s own correctness is crossbeam's, checked by their tests.
//!
//! `Arc` stays `std::sync::Arc` in both builds: loom does not need its own `Arc`, and keeping
//! `std`'s means the public API does not change under `--cfg carbyne_loom`.

pub(crate) use crossbeam_utils::CachePadded;

#[cfg(carbyne_loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(not(carbyne_loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A bounded multi-producer multi-consumer FIFO: `push` fails (giving the value back) when full.
#[derive(Debug)]
pub(crate) struct BoundedQueue<T> {
    #[cfg(not(carbyne_loom))]
    inner: crossbeam_queue::ArrayQueue<T>,
    #[cfg(carbyne_loom)]
    inner: loom::sync::Mutex<std::collections::VecDeque<T>>,
    #[cfg(carbyne_loom)]
    capacity: usize,
}

#[cfg(not(carbyne_loom))]
impl<T> BoundedQueue<T> {
    /// A queue holding at most `capacity` (≥ 1) values; allocates its slots once, here.
    pub(crate) fn new(capacity: usize) -> Self {
        Self { inner: crossbeam_queue::ArrayQueue::new(capacity) }
    }

    pub(crate) fn push(&self, value: T) -> Result<(), T> {
        self.inner.push(value)
    }

    pub(crate) fn pop(&self) -> Option<T> {
        self.inner.pop()
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }
}

#[cfg(carbyne_loom)]
impl<T> BoundedQueue<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        assert!(capacity >= 1, "a bounded queue needs room for one value");
        Self { inner: loom::sync::Mutex::new(std::collections::VecDeque::with_capacity(capacity)), capacity }
    }

    pub(crate) fn push(&self, value: T) -> Result<(), T> {
        let mut queue = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if queue.len() >= self.capacity {
            return Err(value);
        }
        queue.push_back(value);
        Ok(())
    }

    pub(crate) fn pop(&self) -> Option<T> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop_front()
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}
