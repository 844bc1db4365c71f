//! The connections of one io_uring ingest thread, in slots that keep a generation.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;

use super::ops::{OpKind, UserData};
use crate::ingest::decode::Decoder;

/// One TCP connection.
#[derive(Debug)]
pub(super) struct Conn {
    /// Closed (dropped) only once no op names the connection: `recv` is None.
    pub fd: OwnedFd,
    pub decoder: Decoder,
    /// The recv op in flight on this connection (`RecvMulti`, or `RecvOnce` in the drain).
    pub recv: Option<OpKind>,
    /// Buffers received but not decoded yet, in arrival order, as (buffer id, length): filled
    /// only while the sink is paused (and behind an earlier held buffer), at most the size of
    /// the TCP buffer group across all connections.
    pub held: VecDeque<(u16, u32)>,
    /// The peer's end of stream (or a receive error) was read: no more receives; the
    /// connection closes once `held` is decoded and `recv` is None.
    pub ended: bool,
    /// The multishot recv ended while the stream goes on: arm it again when flow control and
    /// the buffer group allow. While this is set, the connection is in the loop's re-arm list.
    pub rearm: bool,
}

impl Conn {
    pub fn new(fd: OwnedFd, decoder: Decoder) -> Conn {
        Conn { fd, decoder, recv: None, held: VecDeque::new(), ended: false, rearm: false }
    }

    /// Nothing left to do but close: the stream ended, nothing held, no op in flight.
    pub fn is_done(&self) -> bool {
        self.ended && self.recv.is_none() && self.held.is_empty()
    }
}

#[derive(Debug)]
struct Slot {
    /// Bumped each time the slot is freed, so that `user_data` naming an earlier connection in
    /// this slot is told apart.
    generation: u32,
    conn: Option<Conn>,
}

/// Connections by index; index `i` is `user_data` slot `FIRST_CONN + i`.
#[derive(Debug, Default)]
pub(super) struct Conns {
    slots: Vec<Slot>,
    /// Indexes of the free slots.
    free: Vec<usize>,
}

impl Conns {
    /// Stores `conn`; returns its index.
    pub fn insert(&mut self, conn: Conn) -> usize {
        match self.free.pop() {
            Some(idx) => {
                debug_assert!(self.slots[idx].conn.is_none());
                self.slots[idx].conn = Some(conn);
                idx
            }
            None => {
                self.slots.push(Slot { generation: 0, conn: Some(conn) });
                self.slots.len() - 1
            }
        }
    }

    pub fn get_mut(&mut self, idx: usize) -> Option<&mut Conn> {
        self.slots.get_mut(idx)?.conn.as_mut()
    }

    /// The connection an op's `user_data` names, if it is still the one in that slot.
    pub fn get_op_mut(&mut self, idx: usize, op: UserData) -> Option<&mut Conn> {
        let slot = self.slots.get_mut(idx)?;
        let current = slot.generation & UserData::GENERATION_MASK;
        if current == op.generation {
            slot.conn.as_mut()
        } else {
            None
        }
    }

    pub fn generation(&self, idx: usize) -> u32 {
        self.slots[idx].generation
    }

    /// Frees slot `idx` and returns its connection, which must have no op in flight.
    pub fn remove(&mut self, idx: usize) -> Conn {
        let slot = &mut self.slots[idx];
        let conn = slot.conn.take().expect("removing a free connection slot");
        assert!(conn.recv.is_none(), "connection slot {idx} freed with an op in flight");
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(idx);
        conn
    }

    /// Indexes of the open connections.
    pub fn open(&self) -> Vec<usize> {
        self.slots.iter().enumerate().filter(|(_, s)| s.conn.is_some()).map(|(i, _)| i).collect()
    }

    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::decode::{DecoderKind, Limits};

    fn conn() -> Conn {
        let fd = OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        Conn::new(fd, Decoder::new(DecoderKind::Lines, &Limits::default()))
    }

    #[test]
    fn a_reused_slot_does_not_answer_for_its_previous_connection() {
        let mut conns = Conns::default();
        let idx = conns.insert(conn());
        let old = UserData::new(OpKind::RecvMulti, idx as u32, conns.generation(idx));
        assert!(conns.get_op_mut(idx, old).is_some());
        conns.remove(idx);
        assert!(conns.get_op_mut(idx, old).is_none(), "the slot is free");
        assert_eq!(conns.insert(conn()), idx, "the free slot is reused");
        assert!(conns.get_op_mut(idx, old).is_none(), "a completion of the closed connection is not the new one's");
        let new = UserData::new(OpKind::RecvMulti, idx as u32, conns.generation(idx));
        assert!(conns.get_op_mut(idx, new).is_some());
        assert_eq!(conns.len(), 1);
    }
}
