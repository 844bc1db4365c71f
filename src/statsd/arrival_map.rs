//! The map an ingest thread aggregates into: a key's entry is found with one probe of one
//! table, the key held inline in it, and the map still knows the order keys arrived in.
//!
//! An `IndexMap` keeps that order too, but a lookup goes through its index table to a second
//! array of entries: two dependent loads where this map has one. On a flat-out statsd sender the
//! lookups were about a quarter of the ingest thread's time, most of it waiting on those loads.
//! The order is only needed at a flush (etsy lists new keys in the order they arrived), so it is
//! kept as a rank in each entry and sorted on when the flush thread reads the map.

use hashbrown::{DefaultHashBuilder, HashMap};

use super::partial::Key;

/// `Key → V`, remembering the order keys were first inserted.
#[derive(Debug)]
pub(crate) struct ArrivalMap<V> {
    map: HashMap<Key, Ranked<V>, DefaultHashBuilder>,
    /// The rank the next new key gets.
    next_rank: u64,
}

#[derive(Debug)]
struct Ranked<V> {
    rank: u64,
    value: V,
}

impl<V> Default for ArrivalMap<V> {
    fn default() -> Self {
        ArrivalMap { map: HashMap::default(), next_rank: 0 }
    }
}

impl<V> ArrivalMap<V> {
    /// The value of `key`.
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.map.get_mut(key).map(|r| &mut r.value)
    }

    /// Whether `key` is held.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// The value of `key`.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.map.get(key).map(|r| &r.value)
    }

    /// Adds `key`, which the map does not hold, as the last arrived.
    pub(crate) fn insert_new(&mut self, key: &str, value: V) {
        let rank = self.next_rank;
        self.next_rank += 1;
        let old = self.map.insert(key.into(), Ranked { rank, value });
        debug_assert!(old.is_none(), "{key} was already held");
    }

    /// Keys held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is held.
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Empties the map, keeping its capacity.
    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.next_rank = 0;
    }

    /// Every entry, in arrival order.
    pub(crate) fn in_order_mut(&mut self) -> Vec<(&Key, &mut V)> {
        let mut entries: Vec<(&Key, &mut Ranked<V>)> = self.map.iter_mut().collect();
        entries.sort_unstable_by_key(|(_, r)| r.rank);
        entries.into_iter().map(|(k, r)| (k, &mut r.value)).collect()
    }

    /// Empties the map, giving every entry in no particular order; keeps the capacity.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (Key, V)> + '_ {
        self.next_rank = 0;
        self.map.drain().map(|(k, r)| (k, r.value))
    }

    /// Empties the map, giving every entry in arrival order; keeps the capacity.
    pub(crate) fn drain_in_order(&mut self) -> Vec<(Key, V)> {
        let mut entries: Vec<(Key, Ranked<V>)> = self.map.drain().collect();
        self.next_rank = 0;
        entries.sort_unstable_by_key(|(_, r)| r.rank);
        entries.into_iter().map(|(k, r)| (k, r.value)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_out_in_arrival_order_whatever_the_hash_order() {
        let mut m = ArrivalMap::default();
        let keys: Vec<String> = (0..500).map(|i| format!("key.{}", (i * 7919) % 1000)).collect();
        for (i, k) in keys.iter().enumerate() {
            m.insert_new(k, i);
        }
        *m.get_mut("key.0").unwrap() += 1000;
        assert_eq!((m.len(), m.get("key.0"), m.get("nope")), (500, Some(&1000), None));
        let order: Vec<String> = m.in_order_mut().into_iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(order, keys);
        let mut copy = ArrivalMap::default();
        keys.iter().for_each(|k| copy.insert_new(k, ()));
        let mut unordered: Vec<String> = copy.drain().map(|(k, ())| k.to_string()).collect();
        let mut want = keys.clone();
        unordered.sort();
        want.sort();
        assert_eq!(unordered, want, "drain gives every entry once");
        assert!(copy.is_empty());
        let drained = m.drain_in_order();
        assert!(m.is_empty());
        assert_eq!(drained.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>(), keys);
        assert_eq!(drained[0].1, 1000);
        m.insert_new("late", 1);
        m.insert_new("early", 2);
        m.clear();
        m.insert_new("b", 1);
        m.insert_new("a", 2);
        let order: Vec<&str> = m.in_order_mut().into_iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(order, ["b", "a"], "ranks restart after a clear");
    }
}
