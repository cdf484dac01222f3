//! A bounded, sharded table with CLOCK eviction — the memory discipline of the crate.
//!
//! Each shard is a `HashMap` plus a queue holding every key exactly once (keys enter
//! at the back when inserted and leave at the front only when removed, so the
//! invariant "one queue slot per live entry" holds without tombstones). A clock hand
//! at the front of the queue:
//! - on every operation advances [`TICK`] slots: expired entries are removed,
//!   others lose their "referenced" bit and go to the back — so idle entries are
//!   found within one turn of the hand without a timer;
//! - when the shard is full, removes the first entry that is expired or was not
//!   referenced since the hand last passed (second chance), giving up on second
//!   chances after [`MAX_SECOND_CHANCES`] so an insert does bounded work.
//!
//! The caps are global (atomic counters shared by the shards: live entries, and
//! the sum of the entries' weights), so the whole capacity is usable however keys
//! spread; an insert that finds the table full evicts in its own shard. Concurrent
//! inserts may overshoot a cap by at most one entry per inserting thread, until
//! the next insert. Locks are per shard and held only for constant-time work.

use crate::ids::{Key, KeyBuild};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Queue slots the hand advances per operation (each is a lookup of a random,
/// likely uncached entry, so the hand moves slowly: idle entries are a memory
/// matter only, and memory is capped regardless).
pub(crate) const TICK: usize = 1;
/// Referenced entries skipped before an insert evicts regardless.
pub(crate) const MAX_SECOND_CHANCES: usize = 8;
/// Most shards a table has.
pub(crate) const MAX_SHARDS: usize = 64;

/// An entry of a table: carries the CLOCK "referenced" bit.
pub(crate) trait Entry {
    fn referenced(&mut self) -> &mut bool;
    /// Units the entry holds that count against a shard-wide budget
    /// ([`Shard::weight`]); removal subtracts them.
    fn weight(&self) -> usize {
        0
    }
}

/// Per-shard counters (summed by `stats()`; no shared atomics on the hot path).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub(crate) evicted_idle: u64,
    pub(crate) evicted_capacity: u64,
    pub(crate) started: u64,
    pub(crate) forgotten: u64,
    pub(crate) linked_execution: u64,
    pub(crate) linked_result: u64,
}

/// Why an entry left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Removal {
    Expired,
    Capacity,
}

/// The caps and current totals shared by the shards of a table.
#[derive(Debug)]
pub(crate) struct Limits {
    live: AtomicUsize,
    weight: AtomicUsize,
    cap: usize,
    weight_cap: usize,
}

pub(crate) struct Shard<V> {
    pub(crate) map: HashMap<Key, V, KeyBuild>,
    pub(crate) queue: VecDeque<Key>,
    limits: Arc<Limits>,
    /// Sum of this shard's entries' [`Entry::weight`]; callers that change an
    /// entry's weight in place report it with [`Shard::add_weight`] /
    /// [`Shard::sub_weight`].
    pub(crate) weight: usize,
    pub(crate) counters: Counters,
}

impl<V: Entry> Shard<V> {
    fn new(limits: Arc<Limits>) -> Self {
        Self {
            map: HashMap::default(),
            queue: VecDeque::new(),
            limits,
            weight: 0,
            counters: Counters::default(),
        }
    }

    pub(crate) fn add_weight(&mut self, n: usize) {
        self.weight += n;
        self.limits.weight.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub_weight(&mut self, n: usize) {
        let n = n.min(self.weight);
        self.weight -= n;
        self.limits.weight.fetch_sub(n, Ordering::Relaxed);
    }

    /// Whether the table's total weight is above its cap.
    pub(crate) fn over_weight(&self) -> bool {
        self.limits.weight.load(Ordering::Relaxed) > self.limits.weight_cap
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The entry, marked referenced.
    pub(crate) fn get_mut(&mut self, key: &Key) -> Option<&mut V> {
        let v = self.map.get_mut(key)?;
        *v.referenced() = true;
        Some(v)
    }

    /// Inserts an entry for a key that is not present, evicting one first when
    /// the shard is full.
    pub(crate) fn insert(
        &mut self,
        key: Key,
        value: V,
        expired: impl Fn(&V) -> bool,
        mut removed: impl FnMut(&V, Removal),
    ) -> &mut V {
        while self.limits.live.load(Ordering::Relaxed) >= self.limits.cap {
            if !self.evict_one(&expired, &mut removed) {
                break;
            }
        }
        self.queue.push_back(key);
        self.limits.live.fetch_add(1, Ordering::Relaxed);
        self.add_weight(value.weight());
        self.map.entry(key).insert_entry(value).into_mut()
    }

    /// Advances the hand `steps` slots.
    pub(crate) fn tick(
        &mut self,
        steps: usize,
        expired: impl Fn(&V) -> bool,
        mut removed: impl FnMut(&V, Removal),
    ) {
        for _ in 0..steps.min(self.queue.len()) {
            let Some(key) = self.queue.pop_front() else {
                return;
            };
            let Some(v) = self.map.get_mut(&key) else {
                continue;
            };
            if expired(v) {
                self.remove(&key, Removal::Expired, &mut removed);
            } else {
                *v.referenced() = false;
                self.queue.push_back(key);
            }
        }
    }

    /// Removes one entry (expired, else not recently referenced); false when empty.
    pub(crate) fn evict_one(
        &mut self,
        expired: impl Fn(&V) -> bool,
        mut removed: impl FnMut(&V, Removal),
    ) -> bool {
        let mut chances = 0;
        while let Some(key) = self.queue.pop_front() {
            let Some(v) = self.map.get_mut(&key) else {
                continue;
            };
            if expired(v) {
                self.remove(&key, Removal::Expired, &mut removed);
                return true;
            }
            if *v.referenced() && chances < MAX_SECOND_CHANCES {
                chances += 1;
                *v.referenced() = false;
                self.queue.push_back(key);
                continue;
            }
            self.remove(&key, Removal::Capacity, &mut removed);
            return true;
        }
        false
    }

    /// Removes every expired entry (a full turn of the hand).
    pub(crate) fn sweep(&mut self, expired: impl Fn(&V) -> bool, removed: impl FnMut(&V, Removal)) {
        let n = self.queue.len();
        self.tick(n, expired, removed);
    }

    fn remove(&mut self, key: &Key, why: Removal, removed: &mut impl FnMut(&V, Removal)) {
        if let Some(v) = self.map.remove(key) {
            self.limits.live.fetch_sub(1, Ordering::Relaxed);
            self.sub_weight(v.weight());
            removed(&v, why);
            match why {
                Removal::Expired => self.counters.evicted_idle += 1,
                Removal::Capacity => self.counters.evicted_capacity += 1,
            }
        }
    }

    /// Heap bytes of the map and queue themselves (not of what entries own).
    pub(crate) fn table_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(Key, V)>() + 1;
        // hashbrown: one control byte per bucket plus a group's worth of padding.
        let buckets = buckets_for(self.map.capacity());
        buckets * slot + 16 + self.queue.capacity() * std::mem::size_of::<Key>()
    }
}

/// hashbrown's bucket count for a given reported capacity (7/8 load factor;
/// below 8 buckets, capacity is buckets - 1).
fn buckets_for(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    }
}

/// Keeps each shard's lock on its own cache lines.
#[repr(align(128))]
struct Padded<T>(T);

/// A set of shards; a key's shard comes from its second word (the map hashes the
/// first).
pub(crate) struct Table<V> {
    shards: Box<[Padded<Mutex<Shard<V>>>]>,
    mask: u64,
}

impl<V: Entry> Table<V> {
    /// A table holding at most `cap` entries whose weights sum to at most
    /// `weight_cap`.
    pub(crate) fn new(cap: usize, weight_cap: usize) -> Self {
        let cap = cap.max(1);
        let n = MAX_SHARDS.min(prev_power_of_two(cap));
        let limits = Arc::new(Limits {
            live: AtomicUsize::new(0),
            weight: AtomicUsize::new(0),
            cap,
            weight_cap,
        });
        let shards = (0..n)
            .map(|_| Padded(Mutex::new(Shard::new(Arc::clone(&limits)))))
            .collect();
        Self {
            shards,
            mask: n as u64 - 1,
        }
    }

    pub(crate) fn lock(&self, key: &Key) -> MutexGuard<'_, Shard<V>> {
        let i = usize::try_from(key.1 & self.mask).unwrap_or(0);
        lock(&self.shards[i].0)
    }

    /// Shard `i` (modulo the shard count) if its lock is free.
    pub(crate) fn try_lock_at(&self, i: u64) -> Option<MutexGuard<'_, Shard<V>>> {
        let i = usize::try_from(i & self.mask).unwrap_or(0);
        match self.shards[i].0.try_lock() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    pub(crate) fn for_each_shard(&self, mut f: impl FnMut(&mut Shard<V>)) {
        for s in &self.shards {
            f(&mut lock(&s.0));
        }
    }

    #[cfg(test)]
    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn prev_power_of_two(n: usize) -> usize {
    if n.is_power_of_two() {
        n
    } else {
        n.next_power_of_two() / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct E {
        at: u64,
        r: bool,
    }

    impl Entry for E {
        fn referenced(&mut self) -> &mut bool {
            &mut self.r
        }
    }

    fn k(i: u64) -> Key {
        Key(i, 0)
    }

    fn shard(cap: usize) -> Shard<E> {
        Shard::new(Arc::new(Limits {
            live: AtomicUsize::new(0),
            weight: AtomicUsize::new(0),
            cap,
            weight_cap: usize::MAX,
        }))
    }

    #[test]
    fn capacity_evicts_unreferenced_first() {
        let mut s = shard(3);
        let never = |_: &E| false;
        for i in 0..3 {
            s.insert(k(i), E { at: i, r: false }, never, |_, _| {});
        }
        assert!(s.get_mut(&k(0)).is_some());
        s.insert(k(3), E { at: 3, r: false }, never, |_, _| {});
        assert_eq!(s.len(), 3);
        assert!(
            s.map.contains_key(&k(0)),
            "referenced entry got a second chance"
        );
        assert!(!s.map.contains_key(&k(1)));
        assert_eq!(s.counters.evicted_capacity, 1);
        assert_eq!(s.queue.len(), s.map.len());
    }

    #[test]
    fn tick_removes_expired_entries() {
        let mut s = shard(100);
        for i in 0..10 {
            s.insert(k(i), E { at: i, r: false }, |_| false, |_, _| {});
        }
        let mut gone = 0;
        for _ in 0..5 {
            s.tick(
                TICK,
                |e| e.at < 4,
                |_, why| {
                    assert_eq!(why, Removal::Expired);
                    gone += 1;
                },
            );
        }
        assert_eq!(gone, 4);
        assert_eq!(s.len(), 6);
        assert_eq!(s.queue.len(), 6);
        s.sweep(|e| e.at < 8, |_, _| {});
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn second_chances_are_bounded() {
        let mut s = shard(20);
        for i in 0..20 {
            s.insert(k(i), E { at: i, r: false }, |_| false, |_, _| {});
            s.get_mut(&k(i));
        }
        s.insert(k(99), E { at: 99, r: false }, |_| false, |_, _| {});
        assert_eq!(s.len(), 20);
        assert!(!s.map.contains_key(&k(MAX_SECOND_CHANCES as u64)));
    }

    #[test]
    fn the_cap_is_global() {
        let t: Table<E> = Table::new(100_000, 0);
        assert_eq!(t.shard_count(), 64);
        let t: Table<E> = Table::new(10, 0);
        assert_eq!(t.shard_count(), 8);
        // Keys all in one shard can still use the whole capacity.
        for i in 0..10 {
            t.lock(&Key(i, 0))
                .insert(Key(i, 0), E { at: i, r: false }, |_| false, |_, _| {});
        }
        let mut lens = Vec::new();
        t.for_each_shard(|s| lens.push(s.len()));
        assert_eq!(lens[0], 10);
        t.lock(&Key(99, 1))
            .insert(Key(99, 1), E { at: 99, r: false }, |_| false, |_, _| {});
        let mut total = 0;
        t.for_each_shard(|s| total += s.len());
        assert_eq!(
            total, 11,
            "an empty shard cannot evict: one over, until the next insert"
        );
        t.lock(&Key(100, 0))
            .insert(Key(100, 0), E { at: 100, r: false }, |_| false, |_, _| {});
        let mut total = 0;
        t.for_each_shard(|s| total += s.len());
        assert_eq!(total, 10);
    }
}
