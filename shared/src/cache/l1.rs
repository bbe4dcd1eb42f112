//! L1: the in-process cache of ready-to-send response bytes.
//!
//! - Reads take one dashmap shard read lock and never write a shared cache line except an entry's
//!   own last-access tick, and only when it changed.
//! - Writes (fills, removals, evictions, invalidations) take one mutex that guards the eviction
//!   slots and the per-user index; the dashmap is only mutated under it, so the three stay
//!   consistent. Fills follow a miss of a slower layer, so the mutex is not on the hot path.
//! - Eviction is sampled LRU: over budget (entries or bytes), `eviction_samples` random entries (all of them in a cache that small) are
//!   looked at and the least recently used one goes (an expired one goes first). Ticks come from a
//!   counter bumped on each insert, so "used after the last N inserts" is what keeps an entry.
//! - Invalidation by user goes through a secondary index user -> keys, so it touches only that
//!   user's entries. A fill that raced with an invalidation (loaded before, stored after) is refused
//!   by its [`FillTicket`].

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use bytes::Bytes;
use dashmap::DashMap;
use rand::Rng;
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use super::{config::L1Config, keys::CacheType};

/// Fixed cost charged per entry on top of its key, value and ETag (map slot, metadata, Arcs).
const ENTRY_OVERHEAD_BYTES: usize = 160;
/// Past this many remembered invalidations, they are folded into one global floor.
const MAX_REMEMBERED_INVALIDATIONS: usize = 4096;

/// The L1 key of a value: its type, its user (for user-scoped values) and its logical key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    ty: CacheType,
    user: Option<Uuid>,
    key: Box<str>,
}

impl CacheKey {
    pub fn new(ty: CacheType, user: Option<Uuid>, key: impl Into<Box<str>>) -> Self {
        Self {
            ty,
            user,
            key: key.into(),
        }
    }

    pub fn ty(&self) -> CacheType {
        self.ty
    }

    pub fn user(&self) -> Option<Uuid> {
        self.user
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

/// A cached value: response bytes and, when known, their ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedValue {
    pub bytes: Bytes,
    pub etag: Option<Arc<str>>,
}

impl CachedValue {
    pub fn new(bytes: Bytes, etag: Option<Arc<str>>) -> Self {
        Self { bytes, etag }
    }
}

/// Why the whole L1 was dropped (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushReason {
    /// The invalidation subscription dropped or reconnected: events may have been missed.
    SubscriptionLost,
    /// An operator asked for it.
    Admin,
    /// Anything else (tests, configuration changes).
    Other,
}

impl FlushReason {
    pub const ALL: [FlushReason; 3] = [
        FlushReason::SubscriptionLost,
        FlushReason::Admin,
        FlushReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FlushReason::SubscriptionLost => "subscription_lost",
            FlushReason::Admin => "admin",
            FlushReason::Other => "other",
        }
    }
}

/// Taken before a load starts; a fill with a ticket older than an invalidation of its key or user
/// is refused, so a value loaded before a change is never stored after the change's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillTicket(u64);

/// Counters of the L1, updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct L1Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub inserts: AtomicU64,
    /// Fills refused: too large for L1, or raced with an invalidation.
    pub rejected: AtomicU64,
    pub evictions: AtomicU64,
    pub expirations: AtomicU64,
    /// Invalidation requests (by key or by user) applied.
    pub invalidations: AtomicU64,
    /// Entries those requests dropped.
    pub invalidated_entries: AtomicU64,
    /// Full flushes, indexed like [`FlushReason::ALL`].
    pub flushes: [AtomicU64; 3],
    pub entries: AtomicU64,
    pub bytes: AtomicU64,
}

/// A point-in-time copy of [`L1Stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct L1StatsSnapshot {
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub rejected: u64,
    pub evictions: u64,
    pub expirations: u64,
    pub invalidations: u64,
    pub invalidated_entries: u64,
    pub flushes_subscription_lost: u64,
    pub flushes_admin: u64,
    pub flushes_other: u64,
    pub entries: u64,
    pub bytes: u64,
}

impl L1Stats {
    pub fn snapshot(&self) -> L1StatsSnapshot {
        let flush = |r: FlushReason| self.flushes[r as usize].load(Relaxed);
        L1StatsSnapshot {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            inserts: self.inserts.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            expirations: self.expirations.load(Relaxed),
            invalidations: self.invalidations.load(Relaxed),
            invalidated_entries: self.invalidated_entries.load(Relaxed),
            flushes_subscription_lost: flush(FlushReason::SubscriptionLost),
            flushes_admin: flush(FlushReason::Admin),
            flushes_other: flush(FlushReason::Other),
            entries: self.entries.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
        }
    }
}

/// Bookkeeping of one entry, shared by the map and the eviction slots.
#[derive(Debug)]
struct Meta {
    key: Arc<CacheKey>,
    last_access: AtomicU64,
    /// Position in `Index::slots`; only changed under the index mutex.
    slot: AtomicUsize,
    size: usize,
    expires_at: Instant,
}

#[derive(Debug)]
struct Entry {
    value: CachedValue,
    meta: Arc<Meta>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scope {
    /// One type of one user's values.
    User(Uuid, CacheType),
    Key(Arc<CacheKey>),
}

#[derive(Debug, Default)]
struct Index {
    /// Every live entry once, for O(1) random sampling.
    slots: Vec<Arc<Meta>>,
    by_user: HashMap<(Uuid, CacheType), HashSet<Arc<CacheKey>>>,
    /// Sequence number of the last invalidation of a user or key.
    invalidated_at: HashMap<Scope, u64>,
    /// Tickets older than this are refused whatever their scope (set by flushes).
    floor: u64,
}

/// The in-process cache. Disabled (stores nothing) when `max_entries` is 0.
#[derive(Debug)]
pub struct L1 {
    config: L1Config,
    map: DashMap<Arc<CacheKey>, Entry>,
    index: Mutex<Index>,
    /// Invalidation sequence; bumped under the index mutex.
    seq: AtomicU64,
    /// Access clock for LRU; bumped by each insert.
    tick: AtomicU64,
    stats: L1Stats,
}

impl L1 {
    pub fn new(config: L1Config) -> Self {
        Self {
            config,
            map: DashMap::new(),
            index: Mutex::new(Index::default()),
            seq: AtomicU64::new(0),
            tick: AtomicU64::new(0),
            stats: L1Stats::default(),
        }
    }

    pub fn config(&self) -> &L1Config {
        &self.config
    }

    pub fn is_enabled(&self) -> bool {
        self.config.max_entries > 0
    }

    pub fn stats(&self) -> &L1Stats {
        &self.stats
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes charged to the budget right now.
    pub fn bytes(&self) -> u64 {
        self.stats.bytes.load(Relaxed)
    }

    /// The value under `key` if present and not expired.
    pub fn get(&self, key: &CacheKey) -> Option<CachedValue> {
        let found = self.lookup(key);
        let counter = if found.is_some() {
            &self.stats.hits
        } else {
            &self.stats.misses
        };
        counter.fetch_add(1, Relaxed);
        found
    }

    /// [`L1::get`] without counting a hit or miss (a second look within one request).
    pub fn peek(&self, key: &CacheKey) -> Option<CachedValue> {
        self.lookup(key)
    }

    fn lookup(&self, key: &CacheKey) -> Option<CachedValue> {
        if !self.is_enabled() {
            return None;
        }
        let expired = match self.map.get(key) {
            Some(entry) if entry.meta.expires_at > Instant::now() => {
                let tick = self.tick.load(Relaxed);
                if entry.meta.last_access.load(Relaxed) != tick {
                    entry.meta.last_access.store(tick, Relaxed);
                }
                return Some(entry.value.clone());
            }
            Some(entry) => Some(entry.meta.clone()),
            None => None,
        };
        if let Some(meta) = expired {
            let mut index = self.lock();
            if self.remove_locked(&mut index, &meta.key, Some(&meta)) {
                self.stats.expirations.fetch_add(1, Relaxed);
            }
        }
        None
    }

    /// Take before loading a value that will be stored with [`L1::insert`].
    pub fn ticket(&self) -> FillTicket {
        FillTicket(self.seq.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Stores a value for at most `ttl` (capped by `max_ttl`). Returns whether it was stored: not
    /// when L1 is disabled, the value is too large, or its key or user was invalidated (or L1
    /// flushed) after `ticket` was taken.
    pub fn insert(
        &self,
        key: CacheKey,
        value: CachedValue,
        ttl: Duration,
        ticket: FillTicket,
    ) -> bool {
        if !self.is_enabled() {
            return false;
        }
        let ttl = ttl.min(self.config.max_ttl);
        let size = value.bytes.len()
            + value.etag.as_ref().map_or(0, |e| e.len())
            + key.key.len()
            + ENTRY_OVERHEAD_BYTES;
        if ttl.is_zero() || size > self.config.max_entry_bytes || size > self.config.max_bytes {
            self.stats.rejected.fetch_add(1, Relaxed);
            return false;
        }
        let key = Arc::new(key);
        let mut index = self.lock();
        if self.is_stale(&index, &key, ticket) {
            self.stats.rejected.fetch_add(1, Relaxed);
            return false;
        }
        let tick = self.tick.fetch_add(1, Relaxed) + 1;
        let meta = Arc::new(Meta {
            key: key.clone(),
            last_access: AtomicU64::new(tick),
            slot: AtomicUsize::new(index.slots.len()),
            size,
            expires_at: Instant::now() + ttl,
        });
        index.slots.push(meta.clone());
        if let Some(user) = key.user {
            index
                .by_user
                .entry((user, key.ty))
                .or_default()
                .insert(key.clone());
        }
        let replaced = self.map.insert(
            key,
            Entry {
                value,
                meta: meta.clone(),
            },
        );
        if let Some(old) = replaced {
            unlink(&mut index, &old.meta);
            self.stats.bytes.fetch_sub(old.meta.size as u64, Relaxed);
            self.stats.entries.fetch_sub(1, Relaxed);
        }
        self.stats.bytes.fetch_add(size as u64, Relaxed);
        self.stats.entries.fetch_add(1, Relaxed);
        self.stats.inserts.fetch_add(1, Relaxed);
        while self.stats.entries.load(Relaxed) > self.config.max_entries as u64
            || self.stats.bytes.load(Relaxed) > self.config.max_bytes as u64
        {
            if !self.evict_one(&mut index, &meta) {
                break;
            }
        }
        true
    }

    /// Drops one key. Returns whether an entry was there.
    pub fn invalidate_key(&self, key: &CacheKey) -> bool {
        let mut index = self.lock();
        let seq = self.next_seq();
        index
            .invalidated_at
            .insert(Scope::Key(Arc::new(key.clone())), seq);
        self.prune(&mut index, seq);
        let removed = self.remove_locked(&mut index, key, None);
        self.stats.invalidations.fetch_add(1, Relaxed);
        if removed {
            self.stats.invalidated_entries.fetch_add(1, Relaxed);
        }
        removed
    }

    /// Drops every entry of a user of the given types. Returns how many there were.
    pub fn invalidate_user(&self, user: Uuid, types: &[CacheType]) -> usize {
        let mut index = self.lock();
        let seq = self.next_seq();
        for &ty in types {
            index.invalidated_at.insert(Scope::User(user, ty), seq);
        }
        self.prune(&mut index, seq);
        let keys: Vec<Arc<CacheKey>> = types
            .iter()
            .filter_map(|&ty| index.by_user.remove(&(user, ty)))
            .flatten()
            .collect();
        let mut removed = 0;
        for key in keys {
            if let Some((_, entry)) = self.map.remove(&key) {
                unlink(&mut index, &entry.meta);
                self.stats.bytes.fetch_sub(entry.meta.size as u64, Relaxed);
                self.stats.entries.fetch_sub(1, Relaxed);
                removed += 1;
            }
        }
        self.stats.invalidations.fetch_add(1, Relaxed);
        self.stats
            .invalidated_entries
            .fetch_add(removed as u64, Relaxed);
        removed
    }

    /// Drops everything, and refuses fills whose loads started before.
    pub fn flush_all(&self, reason: FlushReason) {
        let mut index = self.lock();
        let seq = self.next_seq();
        index.floor = seq;
        index.invalidated_at.clear();
        index.slots.clear();
        index.by_user.clear();
        self.map.clear();
        self.stats.entries.store(0, Relaxed);
        self.stats.bytes.store(0, Relaxed);
        self.stats.flushes[reason as usize].fetch_add(1, Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // The index holds no invariant a panic elsewhere could break halfway (each mutation
        // completes under the lock), so a poisoned lock is still usable.
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called with the index mutex held.
    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, std::sync::atomic::Ordering::Release) + 1
    }

    /// Keeps the invalidation memory bounded: past the limit, everything older becomes the floor
    /// (fills in flight are then refused, which costs only a later miss).
    fn prune(&self, index: &mut Index, seq: u64) {
        if index.invalidated_at.len() > MAX_REMEMBERED_INVALIDATIONS {
            index.invalidated_at.clear();
            index.floor = seq;
        }
    }

    fn is_stale(&self, index: &Index, key: &Arc<CacheKey>, FillTicket(t): FillTicket) -> bool {
        if index.floor > t {
            return true;
        }
        let after = |scope: Scope| index.invalidated_at.get(&scope).is_some_and(|&s| s > t);
        key.user.is_some_and(|u| after(Scope::User(u, key.ty))) || after(Scope::Key(key.clone()))
    }

    /// Removes `key` (only if its entry is `expected`, when given). Index mutex held.
    fn remove_locked(
        &self,
        index: &mut Index,
        key: &CacheKey,
        expected: Option<&Arc<Meta>>,
    ) -> bool {
        let removed = self
            .map
            .remove_if(key, |_, e| expected.is_none_or(|m| Arc::ptr_eq(&e.meta, m)));
        let Some((key, entry)) = removed else {
            return false;
        };
        unlink(index, &entry.meta);
        if let Some(user) = key.user
            && let Some(keys) = index.by_user.get_mut(&(user, key.ty))
        {
            keys.remove(&key);
            if keys.is_empty() {
                index.by_user.remove(&(user, key.ty));
            }
        }
        self.stats.bytes.fetch_sub(entry.meta.size as u64, Relaxed);
        self.stats.entries.fetch_sub(1, Relaxed);
        true
    }

    /// Evicts the least recently used of a few sampled entries, never `keep` (the entry being
    /// inserted) unless nothing else is left. Returns false when there is nothing to evict.
    fn evict_one(&self, index: &mut Index, keep: &Arc<Meta>) -> bool {
        let len = index.slots.len();
        if len <= 1 {
            return false;
        }
        let now = Instant::now();
        let mut rng = rand::rng();
        let mut victim: Option<Arc<Meta>> = None;
        let mut victim_rank = u64::MAX;
        // Random slots; a cache no larger than the sample looks at every entry, so it evicts
        // exactly rather than by luck.
        let samples = self.config.eviction_samples.max(1);
        let exhaustive = len <= samples;
        for n in 0..if exhaustive { len } else { samples } {
            let slot = if exhaustive {
                n
            } else {
                rng.random_range(0..len)
            };
            let candidate = &index.slots[slot];
            if Arc::ptr_eq(candidate, keep) {
                continue;
            }
            let rank = if candidate.expires_at <= now {
                0
            } else {
                candidate.last_access.load(Relaxed)
            };
            if rank < victim_rank {
                victim_rank = rank;
                victim = Some(candidate.clone());
            }
        }
        let victim = match victim {
            Some(v) => v,
            // Every sample hit `keep`: take any other entry.
            None => {
                let i = usize::from(Arc::ptr_eq(&index.slots[0], keep));
                index.slots[i].clone()
            }
        };
        let removed = self.remove_locked(index, &victim.key, Some(&victim));
        if removed {
            if victim_rank == 0 {
                self.stats.expirations.fetch_add(1, Relaxed);
            } else {
                self.stats.evictions.fetch_add(1, Relaxed);
            }
        }
        removed
    }
}

/// Takes an entry out of the eviction slots (swap-remove, fixing the moved entry's position).
fn unlink(index: &mut Index, meta: &Arc<Meta>) {
    let i = meta.slot.load(Relaxed);
    if i >= index.slots.len() || !Arc::ptr_eq(&index.slots[i], meta) {
        return;
    }
    index.slots.swap_remove(i);
    if let Some(moved) = index.slots.get(i) {
        moved.slot.store(i, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_entries: usize, max_bytes: usize) -> L1Config {
        L1Config {
            max_entries,
            max_bytes,
            max_entry_bytes: max_bytes,
            max_ttl: Duration::from_secs(300),
            eviction_samples: 8,
        }
    }

    fn key(user: Option<Uuid>, k: &str) -> CacheKey {
        CacheKey::new(CacheType::UserBookmarks, user, k)
    }

    fn value(len: usize) -> CachedValue {
        CachedValue::new(Bytes::from(vec![7u8; len]), Some("\"e\"".into()))
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn bounded_by_entries() {
        let l1 = L1::new(config(10, usize::MAX / 2));
        for i in 0..100 {
            assert!(l1.insert(key(None, &i.to_string()), value(10), MIN, l1.ticket()));
            assert!(l1.len() <= 10);
        }
        let s = l1.stats().snapshot();
        assert_eq!(s.entries, 10);
        assert_eq!(s.evictions, 90);
        assert_eq!(l1.len(), 10);
    }

    #[test]
    fn bounded_by_bytes() {
        let per_entry = 1000 + ENTRY_OVERHEAD_BYTES + 3 + 2;
        let l1 = L1::new(config(1_000_000, per_entry * 5));
        for i in 10..60 {
            l1.insert(key(None, &i.to_string()), value(1000), MIN, l1.ticket());
            assert!(l1.bytes() <= (per_entry * 5) as u64);
        }
        assert_eq!(l1.len(), 5);
        assert_eq!(l1.bytes(), (per_entry * 5) as u64);
    }

    #[test]
    fn too_large_values_are_not_kept() {
        let mut c = config(100, 1_000_000);
        c.max_entry_bytes = 500;
        let l1 = L1::new(c);
        assert!(!l1.insert(key(None, "big"), value(1000), MIN, l1.ticket()));
        assert!(l1.get(&key(None, "big")).is_none());
        assert_eq!(l1.stats().snapshot().rejected, 1);
    }

    #[test]
    fn replacing_a_key_keeps_the_accounting() {
        let l1 = L1::new(config(10, 1_000_000));
        l1.insert(key(None, "a"), value(100), MIN, l1.ticket());
        l1.insert(key(None, "a"), value(200), MIN, l1.ticket());
        assert_eq!(l1.len(), 1);
        let expected = 200 + 3 + 1 + ENTRY_OVERHEAD_BYTES;
        assert_eq!(l1.bytes(), expected as u64);
        assert_eq!(l1.get(&key(None, "a")).map(|v| v.bytes.len()), Some(200));
    }

    #[test]
    fn hot_entries_survive_eviction() {
        let l1 = L1::new(config(100, usize::MAX / 2));
        let hot: Vec<CacheKey> = (0..10).map(|i| key(None, &format!("hot{i}"))).collect();
        for k in &hot {
            l1.insert(k.clone(), value(10), MIN, l1.ticket());
        }
        for i in 0..2000 {
            for k in &hot {
                assert!(l1.get(k).is_some(), "hot entry {} evicted at {i}", k.key());
            }
            l1.insert(key(None, &format!("cold{i}")), value(10), MIN, l1.ticket());
        }
        assert_eq!(l1.len(), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_by_their_ttl() {
        let l1 = L1::new(config(10, 1_000_000));
        l1.insert(
            key(None, "short"),
            value(1),
            Duration::from_secs(10),
            l1.ticket(),
        );
        l1.insert(
            key(None, "long"),
            value(1),
            Duration::from_secs(100),
            l1.ticket(),
        );
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(l1.get(&key(None, "short")).is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(l1.get(&key(None, "short")).is_none());
        assert!(l1.get(&key(None, "long")).is_some());
        assert_eq!(l1.len(), 1);
        assert_eq!(l1.stats().snapshot().expirations, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_is_capped_by_max_ttl() {
        let l1 = L1::new(config(10, 1_000_000));
        l1.insert(
            key(None, "k"),
            value(1),
            Duration::from_secs(3600),
            l1.ticket(),
        );
        tokio::time::advance(Duration::from_secs(301)).await;
        assert!(l1.get(&key(None, "k")).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_evicted_first() {
        let l1 = L1::new(config(2, 1_000_000));
        l1.insert(
            key(None, "old"),
            value(1),
            Duration::from_secs(1),
            l1.ticket(),
        );
        l1.insert(key(None, "kept"), value(1), MIN, l1.ticket());
        tokio::time::advance(Duration::from_secs(2)).await;
        // "old" is more recently used but expired.
        l1.insert(key(None, "new"), value(1), MIN, l1.ticket());
        assert!(l1.get(&key(None, "kept")).is_some());
        assert!(l1.get(&key(None, "new")).is_some());
    }

    #[test]
    fn invalidate_user_drops_only_that_user() {
        let l1 = L1::new(config(100, 1_000_000));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for i in 0..5 {
            l1.insert(key(Some(a), &i.to_string()), value(1), MIN, l1.ticket());
            l1.insert(key(Some(b), &i.to_string()), value(1), MIN, l1.ticket());
        }
        l1.insert(key(None, "shared"), value(1), MIN, l1.ticket());
        assert_eq!(l1.invalidate_user(a, &CacheType::PER_USER), 5);
        assert_eq!(l1.len(), 6);
        assert!(l1.get(&key(Some(a), "0")).is_none());
        assert!(l1.get(&key(Some(b), "0")).is_some());
        assert!(l1.get(&key(None, "shared")).is_some());
        assert_eq!(l1.invalidate_user(a, &CacheType::PER_USER), 0);
        let s = l1.stats().snapshot();
        assert_eq!((s.invalidations, s.invalidated_entries), (2, 5));
    }

    #[test]
    fn invalidating_some_types_of_a_user_keeps_the_others() {
        let l1 = L1::new(config(100, 1_000_000));
        let u = Uuid::new_v4();
        let analysis = CacheKey::new(CacheType::Analysis, Some(u), "a");
        l1.insert(key(Some(u), "page"), value(1), MIN, l1.ticket());
        l1.insert(analysis.clone(), value(1), MIN, l1.ticket());
        let ticket = l1.ticket();
        assert_eq!(l1.invalidate_user(u, &[CacheType::UserBookmarks]), 1);
        assert!(l1.get(&key(Some(u), "page")).is_none());
        assert!(l1.get(&analysis).is_some());
        // A fill that raced the invalidation is refused for that type only.
        assert!(!l1.insert(key(Some(u), "page"), value(1), MIN, ticket));
        let other = CacheKey::new(CacheType::Analysis, Some(u), "b");
        assert!(l1.insert(other, value(1), MIN, ticket));
    }

    #[test]
    fn a_fill_that_raced_an_invalidation_is_refused() {
        let l1 = L1::new(config(100, 1_000_000));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let ticket = l1.ticket();
        l1.invalidate_user(a, &CacheType::PER_USER);
        assert!(!l1.insert(key(Some(a), "k"), value(1), MIN, ticket));
        assert!(l1.insert(key(Some(b), "k"), value(1), MIN, ticket));
        assert!(l1.insert(key(Some(a), "k"), value(1), MIN, l1.ticket()));

        let ticket = l1.ticket();
        l1.invalidate_key(&key(None, "x"));
        assert!(!l1.insert(key(None, "x"), value(1), MIN, ticket));
        assert!(l1.insert(key(None, "y"), value(1), MIN, ticket));

        let ticket = l1.ticket();
        l1.flush_all(FlushReason::Other);
        assert!(!l1.insert(key(None, "z"), value(1), MIN, ticket));
    }

    #[test]
    fn flush_all_drops_everything_and_counts_the_reason() {
        let l1 = L1::new(config(100, 1_000_000));
        let u = Uuid::new_v4();
        l1.insert(key(Some(u), "a"), value(1), MIN, l1.ticket());
        l1.insert(key(None, "b"), value(1), MIN, l1.ticket());
        l1.flush_all(FlushReason::SubscriptionLost);
        assert!(l1.is_empty());
        let s = l1.stats().snapshot();
        assert_eq!((s.entries, s.bytes, s.flushes_subscription_lost), (0, 0, 1));
        assert!(l1.insert(key(Some(u), "a"), value(1), MIN, l1.ticket()));
        assert_eq!(l1.invalidate_user(u, &CacheType::PER_USER), 1);
    }

    #[test]
    fn disabled_stores_nothing() {
        let l1 = L1::new(L1Config::disabled());
        assert!(!l1.insert(key(None, "a"), value(1), MIN, l1.ticket()));
        assert!(l1.get(&key(None, "a")).is_none());
    }

    #[test]
    fn invariants_hold_under_concurrent_use() {
        let l1 = Arc::new(L1::new(config(50, 20_000)));
        let users: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        std::thread::scope(|s| {
            for t in 0..4 {
                let l1 = l1.clone();
                let users = users.clone();
                s.spawn(move || {
                    for i in 0..3000usize {
                        let u = users[(i + t) % users.len()];
                        let k = key(Some(u), &(i % 97).to_string());
                        match i % 7 {
                            0 => {
                                l1.invalidate_user(u, &CacheType::PER_USER);
                            }
                            1 | 2 => {
                                l1.get(&k);
                            }
                            _ => {
                                l1.insert(k, value(i % 300), MIN, l1.ticket());
                            }
                        }
                    }
                });
            }
        });
        let index = l1.lock();
        assert_eq!(index.slots.len(), l1.map.len());
        assert!(l1.map.len() <= 50);
        let bytes: usize = index.slots.iter().map(|m| m.size).sum();
        assert_eq!(bytes as u64, l1.bytes());
        assert!(l1.bytes() <= 20_000);
        for (i, m) in index.slots.iter().enumerate() {
            assert_eq!(m.slot.load(Relaxed), i);
        }
        let indexed: usize = index.by_user.values().map(|s| s.len()).sum();
        assert_eq!(indexed, l1.map.len());
    }
}
