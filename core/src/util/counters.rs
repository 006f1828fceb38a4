//! Fixed-size counter tables for the exit path: counts by key (a trapped system register, an
//! MMIO register group) kept in a table whose size is set at build time. A key is found by
//! open addressing from its hash; nothing is allocated and nothing is compared but the keys
//! themselves; a key that finds the table full is counted in [`CountTable::other`].
//!
//! Invariants: at most `N` keys are kept; every [`CountTable::add`] counts exactly once, in
//! its key's slot or in `other`.

/// A key a [`CountTable`] can hold.
pub trait CountKey: Copy + Eq {
    /// Where its search starts (any value; taken modulo the table size).
    fn slot_hash(&self) -> usize;
}

/// Counts by key, at most `N` keys.
#[derive(Debug, Clone)]
pub struct CountTable<K, const N: usize> {
    slots: [Option<(K, u64)>; N],
    len: usize,
    /// Counts of keys that found the table full.
    pub other: u64,
}

impl<K: CountKey, const N: usize> Default for CountTable<K, N> {
    fn default() -> Self {
        CountTable {
            slots: [None; N],
            len: 0,
            other: 0,
        }
    }
}

impl<K: CountKey, const N: usize> CountTable<K, N> {
    /// Counts one `key`.
    pub fn add(&mut self, key: K) {
        self.add_n(key, 1);
    }

    /// Counts `key` `n` times.
    pub fn add_n(&mut self, key: K, n: u64) {
        let start = key.slot_hash() % N;
        for k in 0..N {
            let slot = &mut self.slots[(start + k) % N];
            match slot {
                Some((have, c)) if *have == key => {
                    *c += n;
                    return;
                }
                Some(_) => {}
                None => {
                    *slot = Some((key, n));
                    self.len += 1;
                    return;
                }
            }
        }
        self.other += n;
    }

    /// The count of `key` (0 if it was never counted or did not fit).
    pub fn get(&self, key: K) -> u64 {
        let start = key.slot_hash() % N;
        for k in 0..N {
            match self.slots[(start + k) % N] {
                Some((have, c)) if have == key => return c,
                Some(_) => {}
                None => return 0,
            }
        }
        0
    }

    /// Keys kept.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no key was counted in the table.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The keys and their counts, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (K, u64)> + '_ {
        self.slots.iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct K(u32);
    impl CountKey for K {
        fn slot_hash(&self) -> usize {
            // Everything collides: the probing must still keep keys apart.
            self.0 as usize % 2
        }
    }

    #[test]
    fn every_add_is_counted_once_in_its_slot_or_in_other() {
        let mut t = CountTable::<K, 4>::default();
        for k in 0..6 {
            t.add(K(k));
        }
        t.add(K(1));
        t.add_n(K(2), 5);
        assert_eq!(t.len(), 4);
        assert_eq!(t.get(K(1)), 2);
        assert_eq!(t.get(K(2)), 6);
        assert_eq!(t.get(K(4)), 0, "did not fit");
        assert_eq!(t.other, 2);
        let total: u64 = t.iter().map(|(_, c)| c).sum();
        assert_eq!(total + t.other, 6 + 1 + 5);
    }
}
