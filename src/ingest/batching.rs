//! When an ingest thread keeps up with its senders one datagram or one small segment at a time,
//! every one of them costs a wake-up (paid partly by the sender, whose send wakes the thread),
//! a system call and a whole loop turn: at 20 statsd lines per datagram, a flat-out sender got
//! 2.6 datagrams per turn and the ingest thread switched context 32,000 times a second.
//!
//! After such a small turn the thread pauses [`BATCH_PAUSE`] before it waits again. While it is
//! not waiting, the kernel does not wake it (io_uring with DEFER_TASKRUN wakes only a thread
//! waiting in the ring; epoll only a thread in `epoll_wait`): what arrives meanwhile waits in
//! the socket buffers, and the next turn takes it as one batch. A turn that was not small (a
//! backlog) never pauses, so a thread behind its senders catches up at full speed; the pause
//! is a fraction of a millisecond, which no point's delivery notices.

use std::time::Duration;

/// The pause after a small turn.
pub const BATCH_PAUSE: Duration = Duration::from_micros(50);
/// A turn is small with fewer reads than this...
const SMALL_TURN_READS: usize = 8;
/// ...and fewer bytes than this. The io_uring backend's UDP group has 32 buffers: a pause that
/// let more than 32 datagrams arrive makes a turn of 32, not small, so the next one does not
/// pause and the buffers never hold the thread back.
const SMALL_TURN_BYTES: usize = 16 * 1024;

/// What one loop turn read.
#[derive(Debug, Default, Clone, Copy)]
pub struct TurnSize {
    reads: usize,
    bytes: usize,
}

impl TurnSize {
    /// One read (a datagram, a TCP segment) of `bytes`.
    pub fn add(&mut self, bytes: usize) {
        self.reads += 1;
        self.bytes += bytes;
    }

    /// Whether the turn read something, but little: the next one should pause first.
    pub fn is_small(&self) -> bool {
        self.reads > 0 && self.reads < SMALL_TURN_READS && self.bytes < SMALL_TURN_BYTES
    }

    /// Pauses when this turn was small (see the module).
    pub fn pause_if_small(self) {
        if self.is_small() {
            std::thread::sleep(BATCH_PAUSE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(reads: &[usize]) -> TurnSize {
        let mut t = TurnSize::default();
        reads.iter().for_each(|&b| t.add(b));
        t
    }

    #[test]
    fn only_a_turn_with_few_reads_of_little_data_is_small() {
        assert!(!turn(&[]).is_small(), "an idle turn waits as usual");
        assert!(turn(&[800; 3]).is_small(), "three datagrams of 20 statsd lines");
        assert!(!turn(&[40; 8]).is_small(), "a backlog of datagrams");
        assert!(!turn(&[64 * 1024]).is_small(), "one full TCP buffer");
        assert!(!turn(&[8 * 1024, 8 * 1024]).is_small());
        assert!(turn(&[8 * 1024, 8 * 1024 - 1]).is_small());
    }
}
