//! The op table: every operation the kernel holds for one ring, keyed by its `user_data`.
//!
//! `user_data` packs what the completion is about: the op's kind (top byte), the slot it works
//! for (low 32 bits: a listener, the UDP socket or a connection) and that slot's generation
//! (24 bits in between). A connection slot's generation changes each time the slot is freed, so
//! a completion that names an older generation is recognised as belonging to a connection that
//! is gone, and ignored (after its buffer, if any, is returned).
//!
//! Lifecycle of an op: [`OpTable::start`] when its SQE is pushed, [`OpTable::complete`] for
//! each CQE; a CQE without `IORING_CQE_F_MORE` is its last, and ends it. A connection slot is
//! freed only once its receive has ended (a cancel aimed at it may still be in flight: it
//! carries no memory and names the old generation). At shutdown the table must be empty:
//! nothing the kernel may still write into or read from is left behind.

use hashbrown::HashSet;

/// What an op does; the top byte of its `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub(super) enum OpKind {
    /// Multishot accept on a listener.
    Accept = 1,
    /// Multishot recv on a TCP connection, into the TCP buffer group.
    RecvMulti = 2,
    /// One recv with MSG_DONTWAIT (the shutdown drain), on a connection or the UDP socket.
    RecvOnce = 3,
    /// Multishot recvmsg on the UDP socket, into the UDP buffer group.
    RecvMsgMulti = 4,
    /// AsyncCancel of the op of the same slot and generation.
    Cancel = 5,
}

impl OpKind {
    const ALL: [OpKind; 5] =
        [OpKind::Accept, OpKind::RecvMulti, OpKind::RecvOnce, OpKind::RecvMsgMulti, OpKind::Cancel];
}

/// The identity of one op, as carried by `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct UserData {
    pub kind: OpKind,
    /// The listener, UDP socket or connection slot the op works for.
    pub slot: u32,
    /// The slot's generation when the op started; only the low `GENERATION_BITS` are kept.
    pub generation: u32,
}

impl UserData {
    /// Bits of generation kept in `user_data`; a slot reused 2^24 times wraps, which is harmless
    /// because a slot is never reused while an op names it.
    pub const GENERATION_BITS: u32 = 24;
    pub const GENERATION_MASK: u32 = (1 << Self::GENERATION_BITS) - 1;

    pub fn new(kind: OpKind, slot: u32, generation: u32) -> UserData {
        UserData { kind, slot, generation: generation & Self::GENERATION_MASK }
    }

    pub fn encode(self) -> u64 {
        (self.kind as u64) << 56 | u64::from(self.generation & Self::GENERATION_MASK) << 32 | u64::from(self.slot)
    }

    /// None for a value no op of ours carries (an unknown kind).
    pub fn decode(raw: u64) -> Option<UserData> {
        let kind = OpKind::ALL.into_iter().find(|k| *k as u64 == raw >> 56)?;
        let generation = (raw >> 32) as u32 & Self::GENERATION_MASK;
        Some(UserData { kind, slot: raw as u32, generation })
    }

    /// The cancel op aimed at this op.
    pub fn cancel(self) -> UserData {
        UserData { kind: OpKind::Cancel, ..self }
    }
}

/// Every op in flight on one ring.
#[derive(Debug, Default)]
pub(super) struct OpTable {
    /// Invariant: holds the `user_data` of exactly the ops pushed and not yet completed by a CQE
    /// without `IORING_CQE_F_MORE`. At most one op per `user_data` (per kind, slot, generation).
    in_flight: HashSet<u64>,
}

impl OpTable {
    pub fn with_capacity(n: usize) -> OpTable {
        OpTable { in_flight: HashSet::with_capacity(n) }
    }

    /// Records an op about to be pushed; returns its `user_data`. Starting an op that is
    /// already in flight is a broken invariant (two ops could not be told apart).
    pub fn start(&mut self, op: UserData) -> u64 {
        let raw = op.encode();
        assert!(self.in_flight.insert(raw), "op {op:?} started while in flight");
        raw
    }

    /// The op a CQE completes, ended unless `more`; None if no such op is in flight.
    pub fn complete(&mut self, raw: u64, more: bool) -> Option<UserData> {
        let op = UserData::decode(raw)?;
        let known = if more { self.in_flight.contains(&raw) } else { self.in_flight.remove(&raw) };
        known.then_some(op)
    }

    pub fn contains(&self, op: UserData) -> bool {
        self.in_flight.contains(&op.encode())
    }

    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips_every_kind_slot_and_generation() {
        for kind in OpKind::ALL {
            for slot in [0, 1, 2, 3, 4096, u32::MAX] {
                for generation in [0, 1, 77, UserData::GENERATION_MASK] {
                    let op = UserData::new(kind, slot, generation);
                    assert_eq!(UserData::decode(op.encode()), Some(op));
                }
            }
        }
        // The generation wraps into its 24 bits; the slot and kind stay apart from it.
        let wrapped = UserData::new(OpKind::RecvMulti, 9, UserData::GENERATION_MASK + 3);
        assert_eq!(wrapped.generation, 2);
        assert_eq!(UserData::decode(wrapped.encode()).map(|o| (o.kind, o.slot)), Some((OpKind::RecvMulti, 9)));
        assert_ne!(UserData::new(OpKind::RecvMulti, 9, 1).encode(), UserData::new(OpKind::RecvMulti, 9, 2).encode());
        assert_ne!(UserData::new(OpKind::RecvMulti, 9, 1).encode(), UserData::new(OpKind::RecvOnce, 9, 1).encode());
        assert_eq!(UserData::new(OpKind::Accept, 1, 0).cancel().kind, OpKind::Cancel);
    }

    #[test]
    fn foreign_user_data_is_not_ours() {
        assert_eq!(UserData::decode(0), None, "kind 0 is none of ours");
        assert_eq!(UserData::decode(0xff << 56), None);
        assert_eq!(UserData::decode(6 << 56), None, "one past the last kind");
    }

    #[test]
    fn the_table_ends_an_op_on_its_last_completion_only() {
        let mut table = OpTable::default();
        let op = UserData::new(OpKind::RecvMulti, 5, 3);
        let raw = table.start(op);
        assert_eq!(table.complete(raw, true), Some(op), "a multishot completion with more to come");
        assert!(table.contains(op));
        assert_eq!(table.complete(raw, false), Some(op), "the last completion");
        assert!(table.is_empty());
        assert_eq!(table.complete(raw, false), None, "a completion for an op no longer in flight");
        let stale = UserData::new(OpKind::RecvMulti, 5, 2);
        table.start(op);
        assert_eq!(table.complete(stale.encode(), false), None, "an older generation of the slot");
        assert_eq!(table.len(), 1);
    }

    #[test]
    #[should_panic(expected = "started while in flight")]
    fn starting_an_op_twice_is_a_broken_invariant() {
        let mut table = OpTable::default();
        table.start(UserData::new(OpKind::Accept, 0, 0));
        table.start(UserData::new(OpKind::Accept, 0, 0));
    }
}
