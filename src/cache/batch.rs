//! `Batch`: a fixed-capacity run of points, allocated once and recycled forever.

/// One point in a batch: where its name lies in the arena, and the point itself.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    pub(super) name_off: u32,
    pub(super) name_len: u32,
    pub(super) timestamp: i64,
    pub(super) value: f64,
}

use super::shard::name_hash;

/// Bytes one point takes in a batch, besides its name (used to size the pool).
pub(super) const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();

/// Batch id of a batch that belongs to no pool.
pub(super) const NO_POOL: u32 = u32::MAX;

/// Points bound for one shard: a name arena and fixed-size entries, both allocated once.
///
/// `push` never allocates: it refuses (returns false) when either the entries or the arena are
/// full. Consecutive points of the same metric share one copy of the name, which keeps the
/// arena small for pickle and statsd output (many points per name) and lets the writer skip
/// the hash lookup for them.
#[derive(Debug)]
pub struct Batch {
    /// Name bytes. Invariant: `names.len() <= name_bytes_max <= names.capacity()`.
    names: Vec<u8>,
    /// Points. Invariant: `entries.len() <= points_max <= entries.capacity()`; every entry's
    /// name lies inside `names[..names.len()]`.
    entries: Vec<Entry>,
    name_bytes_max: usize,
    points_max: usize,
    /// `name_hash` of the last entry's name (meaningless when empty): a repeated name is
    /// recognised by one integer compare before the byte compare.
    last_name_hash: u64,
    /// Position in the hand-off's pool (shard × batches per shard + index), or `NO_POOL`.
    id: u32,
}

impl Batch {
    /// An empty batch for `points_max` points and `name_bytes_max` bytes of names (both ≥ 1;
    /// `name_bytes_max` ≤ `u32::MAX`). This is the only allocation a batch ever makes.
    pub fn new(points_max: usize, name_bytes_max: usize) -> Self {
        assert!(points_max >= 1 && name_bytes_max >= 1, "a batch must hold at least one point and one byte");
        assert!(name_bytes_max <= u32::MAX as usize, "name offsets are u32");
        Self {
            names: Vec::with_capacity(name_bytes_max),
            entries: Vec::with_capacity(points_max),
            name_bytes_max,
            points_max,
            last_name_hash: 0,
            id: NO_POOL,
        }
    }

    pub(super) fn with_id(points_max: usize, name_bytes_max: usize, id: u32) -> Self {
        Self { id, ..Self::new(points_max, name_bytes_max) }
    }

    /// The pool position this batch was created at (`NO_POOL` if none).
    pub(super) fn id(&self) -> u32 {
        self.id
    }

    /// Appends one point; false (and nothing changes) when the batch has no room for it.
    #[inline]
    pub fn push(&mut self, name: &[u8], timestamp: i64, value: f64) -> bool {
        self.push_hashed(name, name_hash(name), timestamp, value)
    }

    /// `push` with `hash == name_hash(name)` already computed (the producer has it from routing).
    #[inline]
    pub(super) fn push_hashed(&mut self, name: &[u8], hash: u64, timestamp: i64, value: f64) -> bool {
        debug_assert_eq!(hash, name_hash(name));
        if self.entries.len() >= self.points_max {
            return false;
        }
        let (name_off, name_len) = match self.entries.last() {
            Some(last) if hash == self.last_name_hash && self.name_at(last) == name => (last.name_off, last.name_len),
            _ => {
                if name.len() > self.name_bytes_max - self.names.len() {
                    return false;
                }
                let name_off = self.names.len() as u32;
                self.names.extend_from_slice(name);
                self.last_name_hash = hash;
                (name_off, name.len() as u32)
            }
        };
        self.entries.push(Entry { name_off, name_len, timestamp, value });
        debug_assert!(self.names.len() <= self.name_bytes_max && self.names.capacity() >= self.name_bytes_max);
        debug_assert!(self.entries.capacity() >= self.points_max);
        true
    }

    /// True when `push(name, ..)` would succeed.
    #[inline]
    pub fn has_room_for(&self, name: &[u8]) -> bool {
        if self.entries.len() >= self.points_max {
            return false;
        }
        match self.entries.last() {
            Some(last) if self.last_name_hash == name_hash(name) && self.name_at(last) == name => true,
            _ => name.len() <= self.name_bytes_max - self.names.len(),
        }
    }

    /// True when no further point fits, whatever its name.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.points_max
    }

    /// Points in the batch.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the batch holds no point.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Points the batch can hold.
    pub fn points_max(&self) -> usize {
        self.points_max
    }

    /// Bytes of names the batch can hold.
    pub fn name_bytes_max(&self) -> usize {
        self.name_bytes_max
    }

    /// Forgets every point, keeping both allocations.
    pub fn clear(&mut self) {
        self.names.clear();
        self.entries.clear();
    }

    /// The points in the order they were pushed: `(name, timestamp, value)`.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], i64, f64)> + '_ {
        self.entries.iter().map(move |e| (self.name_at(e), e.timestamp, e.value))
    }

    /// The entries themselves, for the writer's absorb loop (`name_off` equal to the previous
    /// entry's means the same metric).
    pub(super) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    #[inline]
    pub(super) fn name_at(&self, entry: &Entry) -> &[u8] {
        let start = entry.name_off as usize;
        &self.names[start..start + entry.name_len as usize]
    }
}
