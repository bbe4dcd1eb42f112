//! The read-path cache: L1 (in process) -> L2 (Redis) -> L3 (the caller's loader, the database).
//!
//! - [`keys`]: cache types, Redis key names, per-user generation counters
//! - [`config`]: TTLs per type and layer bounds
//! - [`l1`]: in-process dashmap cache with byte/entry bounds, TTLs and sampled-LRU eviction
//! - [`l2`]: Redis layer with compression; its errors are misses, never failures
//! - [`flight`]: single flight for concurrent misses of one key
//! - [`dedup`]: short-window deduplication of repeated submissions
//!
//! [`LayeredCache`] composes them. Invalidation is O(1) in Redis: user-scoped values live under
//! keys that carry the user's generation of their type, and [`LayeredCache::invalidate_user`]
//! bumps the generations of the types a change affects with `INCR`. A writer commits, then calls
//! `invalidate_user`, then publishes an event; every other process calls
//! [`LayeredCache::apply_event`], which drops the user's L1 entries of those types and their
//! cached generations. A lost subscription must be answered with [`LayeredCache::flush_all`].

pub mod config;
pub mod dedup;
pub mod flight;
pub mod keys;
pub mod l1;
pub mod l2;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

pub use bytes::Bytes;
use dashmap::DashMap;
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

pub use self::{
    config::{CacheConfig, L1Config, L2Config},
    dedup::{DedupConfig, DedupKey, RequestDedup},
    flight::SingleFlight,
    keys::{CacheKeys, CacheType, hash_parts},
    l1::{CacheKey, CachedValue, FlushReason, L1},
    l2::L2,
};

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    L1,
    L2,
    /// Loaded from the source (by this caller or by a concurrent one it waited for).
    L3,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::L1 => "l1",
            Layer::L2 => "l2",
            Layer::L3 => "l3",
        }
    }
}

/// An invalidation to apply locally (received from another process, or made here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// These types of values derived from this user's data changed.
    User(Uuid, &'static [CacheType]),
    /// One value changed.
    Key(CacheKey),
    /// Drop everything.
    All(FlushReason),
}

/// Counters per cache type.
#[derive(Debug, Default)]
pub struct TypeStats {
    pub requests: AtomicU64,
    pub l1_hits: AtomicU64,
    pub l2_hits: AtomicU64,
    /// Loads run by this process.
    pub loads: AtomicU64,
    /// Misses served by a concurrent load of the same key.
    pub shared_loads: AtomicU64,
    pub load_errors: AtomicU64,
    /// Total time spent in loads, in microseconds.
    pub load_micros: AtomicU64,
}

/// A point-in-time copy of [`TypeStats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TypeStatsSnapshot {
    pub cache_type: &'static str,
    pub requests: u64,
    pub l1_hits: u64,
    pub l2_hits: u64,
    pub loads: u64,
    pub shared_loads: u64,
    pub load_errors: u64,
    pub load_micros: u64,
}

/// Everything counted by a [`LayeredCache`], for `/admin/cache/stats` and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CacheStatsSnapshot {
    pub l1: l1::L1StatsSnapshot,
    pub l2: l2::L2StatsSnapshot,
    pub types: Vec<TypeStatsSnapshot>,
    /// Invalidations applied here (made here or received).
    pub invalidations: u64,
    /// Generation bumps that could not reach Redis.
    pub generation_bump_failures: u64,
}

impl CacheStatsSnapshot {
    /// The counters of one type.
    pub fn of(&self, ty: CacheType) -> &TypeStatsSnapshot {
        &self.types[ty.index()]
    }
}

#[derive(Debug, Clone, Copy)]
struct KnownGeneration {
    generation: u64,
    read_at: Instant,
}

/// L1 -> L2 -> loader, with single flight, per-user generations and invalidation.
#[derive(Debug)]
pub struct LayeredCache {
    config: CacheConfig,
    keys: CacheKeys,
    l1: L1,
    l2: L2,
    flight: SingleFlight<String, (CachedValue, Layer)>,
    /// Generations per user and type read from Redis, trusted for `generation_ttl`.
    generations: DashMap<(Uuid, CacheType), KnownGeneration>,
    /// Bumped before any generation is forgotten, so a read that raced it is not remembered.
    generation_epoch: AtomicU64,
    types: [TypeStats; 6],
    invalidations: AtomicU64,
    generation_bump_failures: AtomicU64,
}

impl LayeredCache {
    /// A cache over `l2`; L1 and TTLs come from `config` (`config.l2` is the one `l2` was built
    /// with).
    pub fn new(config: CacheConfig, l2: L2) -> Self {
        Self {
            keys: CacheKeys::new(config.prefix.clone()),
            l1: L1::new(config.l1.clone()),
            l2,
            config,
            flight: SingleFlight::new(),
            generations: DashMap::new(),
            generation_epoch: AtomicU64::new(0),
            types: Default::default(),
            invalidations: AtomicU64::new(0),
            generation_bump_failures: AtomicU64::new(0),
        }
    }

    /// A cache on a lazy Redis connection to `url` (fails only on an invalid URL; needs a Tokio
    /// runtime).
    pub fn connect_lazy(url: &str, config: CacheConfig) -> redis::RedisResult<Self> {
        let l2 = L2::connect_lazy(url, config.l2.clone())?;
        Ok(Self::new(config, l2))
    }

    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    pub fn keys(&self) -> &CacheKeys {
        &self.keys
    }

    pub fn l1(&self) -> &L1 {
        &self.l1
    }

    pub fn l2(&self) -> &L2 {
        &self.l2
    }

    /// The bytes under (`ty`, `user`, `key`), from the fastest layer that has them, else from
    /// `loader` (run once per key in this process however many callers miss together), stored in
    /// L2 then L1 on the way back. User-scoped types need the user.
    pub async fn get_or_load<E>(
        &self,
        ty: CacheType,
        user: Option<Uuid>,
        key: &str,
        loader: impl Future<Output = Result<Bytes, E>>,
    ) -> Result<(Bytes, Layer), E> {
        let (value, layer) = self.get_or_load_value(ty, user, key, loader).await?;
        Ok((value.bytes, layer))
    }

    /// [`LayeredCache::get_or_load`], with the value's ETag.
    pub async fn get_or_load_value<E>(
        &self,
        ty: CacheType,
        user: Option<Uuid>,
        key: &str,
        loader: impl Future<Output = Result<Bytes, E>>,
    ) -> Result<(CachedValue, Layer), E> {
        debug_assert!(
            user.is_some() || !ty.is_user_scoped(),
            "{ty} values need a user"
        );
        let stats = &self.types[ty.index()];
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let l1_key = CacheKey::new(ty, user, key);
        if let Some(value) = self.l1.get(&l1_key) {
            stats.l1_hits.fetch_add(1, Ordering::Relaxed);
            return Ok((value, Layer::L1));
        }
        let ticket = self.l1.ticket();
        let l2_key = self.l2_key(ty, user, key).await;
        if let Some(l2_key) = &l2_key
            && let Some(value) = self.read_l2(&l1_key, l2_key, ticket).await
        {
            stats.l2_hits.fetch_add(1, Ordering::Relaxed);
            return Ok((value, Layer::L2));
        }
        // Without a known generation the Redis key is unknown: share the flight by the local key.
        let flight_key = l2_key
            .clone()
            .unwrap_or_else(|| format!("{}:local:{ty}:{user:?}:{key}", self.keys.prefix()));
        let result = self
            .flight
            .run(flight_key, || async {
                // A flight that finished just before this one started has filled the layers.
                if let Some(value) = self.l1.peek(&l1_key) {
                    return Ok((value, Layer::L1));
                }
                if !self.l1.is_enabled()
                    && let Some(l2_key) = &l2_key
                    && let Some(value) = self.read_l2(&l1_key, l2_key, ticket).await
                {
                    return Ok((value, Layer::L2));
                }
                let started = Instant::now();
                stats.loads.fetch_add(1, Ordering::Relaxed);
                let loaded = loader.await;
                stats
                    .load_micros
                    .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                let bytes = loaded.inspect_err(|_| {
                    stats.load_errors.fetch_add(1, Ordering::Relaxed);
                })?;
                let etag = etag_of(&bytes);
                let value = CachedValue::new(bytes, Some(etag));
                if let Some(l2_key) = &l2_key {
                    self.l2.set(l2_key, &value.bytes, self.config.ttl(ty)).await;
                }
                self.l1.insert(
                    l1_key.clone(),
                    value.clone(),
                    self.config.l1_ttl(ty),
                    ticket,
                );
                Ok((value, Layer::L3))
            })
            .await;
        let ((value, layer), shared) = result?;
        if shared {
            stats.shared_loads.fetch_add(1, Ordering::Relaxed);
        }
        Ok((value, layer))
    }

    /// The value if L1 or L2 has it; never loads.
    pub async fn get(
        &self,
        ty: CacheType,
        user: Option<Uuid>,
        key: &str,
    ) -> Option<(CachedValue, Layer)> {
        let l1_key = CacheKey::new(ty, user, key);
        if let Some(value) = self.l1.get(&l1_key) {
            return Some((value, Layer::L1));
        }
        let ticket = self.l1.ticket();
        let l2_key = self.l2_key(ty, user, key).await?;
        let value = self.read_l2(&l1_key, &l2_key, ticket).await?;
        Some((value, Layer::L2))
    }

    /// Stores a value in L2 and L1 (write-through, e.g. by a warming job).
    pub async fn put(&self, ty: CacheType, user: Option<Uuid>, key: &str, bytes: Bytes) {
        let ticket = self.l1.ticket();
        if let Some(l2_key) = self.l2_key(ty, user, key).await {
            self.l2.set(&l2_key, &bytes, self.config.ttl(ty)).await;
        }
        let etag = etag_of(&bytes);
        self.l1.insert(
            CacheKey::new(ty, user, key),
            CachedValue::new(bytes, Some(etag)),
            self.config.l1_ttl(ty),
            ticket,
        );
    }

    /// Loads a value ahead of demand into L2 (a warming job). The user's generation is read from
    /// Redis *before* loading, never from memory: a write that lands meanwhile bumps it, so the
    /// warmed value is unreachable rather than stale. Returns false when Redis could not tell the
    /// generation (nothing is loaded then).
    pub async fn warm<E>(
        &self,
        ty: CacheType,
        user: Option<Uuid>,
        key: &str,
        loader: impl Future<Output = Result<Bytes, E>>,
    ) -> Result<bool, E> {
        let l2_key = match user {
            None => self.keys.shared(ty, key),
            Some(user) => match self.l2.get_counter(&self.keys.generation(user, ty)).await {
                Some(generation) => self.keys.derived(ty, user, generation, key),
                None => return Ok(false),
            },
        };
        let bytes = loader.await?;
        self.l2.set(&l2_key, &bytes, self.config.ttl(ty)).await;
        Ok(true)
    }

    /// Drops one value here and in Redis (other processes still need an event for their L1).
    pub async fn invalidate_key(&self, ty: CacheType, user: Option<Uuid>, key: &str) {
        self.apply_event(&Invalidation::Key(CacheKey::new(ty, user, key)));
        if let Some(l2_key) = self.l2_key(ty, user, key).await {
            self.l2.delete(&[&l2_key]).await;
        }
    }

    /// Makes every value of `types` of `user` unreachable: bumps the user's generation of each
    /// type in Redis (O(1) each) and drops the user's L1 entries of those types here. Call after
    /// the change is committed, then publish an event for the other processes. Returns the new
    /// generations, or `None` if Redis could not be reached for one of them (the old L2 values
    /// then live until their TTL; counted).
    pub async fn invalidate_user(
        &self,
        user: Uuid,
        types: &'static [CacheType],
    ) -> Option<Vec<u64>> {
        self.apply_event(&Invalidation::User(user, types));
        let epoch = self.generation_epoch();
        let mut generations = Some(Vec::with_capacity(types.len()));
        for &ty in types {
            let bumped = self
                .l2
                .incr_counter(&self.keys.generation(user, ty), self.generation_key_ttl())
                .await;
            match bumped {
                Some(generation) => {
                    self.remember_generation(user, ty, generation, epoch);
                    if let Some(all) = &mut generations {
                        all.push(generation);
                    }
                }
                None => {
                    self.generation_bump_failures
                        .fetch_add(1, Ordering::Relaxed);
                    generations = None;
                }
            }
        }
        generations
    }

    /// Applies an invalidation to this process (L1 and remembered generations).
    pub fn apply_event(&self, event: &Invalidation) {
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        match event {
            Invalidation::User(user, types) => {
                self.forget_generations(Some((*user, types)));
                self.l1.invalidate_user(*user, types);
            }
            Invalidation::Key(key) => {
                self.l1.invalidate_key(key);
            }
            Invalidation::All(reason) => self.flush_all(*reason),
        }
    }

    /// Drops all of L1 and every remembered generation (e.g. the event subscription dropped).
    pub fn flush_all(&self, reason: FlushReason) {
        self.forget_generations(None);
        self.l1.flush_all(reason);
    }

    /// The current generation of one type of a user's values: remembered, or read from Redis.
    /// `None` if Redis cannot tell (the caller then skips L2).
    pub async fn generation(&self, user: Uuid, ty: CacheType) -> Option<u64> {
        let known = self.generations.get(&(user, ty)).map(|g| *g);
        if let Some(known) = known
            && known.read_at.elapsed() < self.config.generation_ttl
        {
            return Some(known.generation);
        }
        let epoch = self.generation_epoch();
        let generation = self.l2.get_counter(&self.keys.generation(user, ty)).await?;
        self.remember_generation(user, ty, generation, epoch);
        Some(generation)
    }

    /// Counters of every layer and type.
    pub fn stats(&self) -> CacheStatsSnapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStatsSnapshot {
            l1: self.l1.stats().snapshot(),
            l2: self.l2.stats().snapshot(),
            types: CacheType::ALL
                .iter()
                .map(|&ty| {
                    let s = &self.types[ty.index()];
                    TypeStatsSnapshot {
                        cache_type: ty.as_str(),
                        requests: load(&s.requests),
                        l1_hits: load(&s.l1_hits),
                        l2_hits: load(&s.l2_hits),
                        loads: load(&s.loads),
                        shared_loads: load(&s.shared_loads),
                        load_errors: load(&s.load_errors),
                        load_micros: load(&s.load_micros),
                    }
                })
                .collect(),
            invalidations: load(&self.invalidations),
            generation_bump_failures: load(&self.generation_bump_failures),
        }
    }

    /// The Redis key of a value; `None` when the user's generation is unknown (Redis down).
    async fn l2_key(&self, ty: CacheType, user: Option<Uuid>, key: &str) -> Option<String> {
        match user {
            None => Some(self.keys.shared(ty, key)),
            Some(user) => {
                let generation = self.generation(user, ty).await?;
                Some(self.keys.derived(ty, user, generation, key))
            }
        }
    }

    async fn read_l2(
        &self,
        l1_key: &CacheKey,
        l2_key: &str,
        ticket: l1::FillTicket,
    ) -> Option<CachedValue> {
        let found = self.l2.get(l2_key).await?;
        let etag = etag_of(&found.bytes);
        let value = CachedValue::new(found.bytes, Some(etag));
        // Never outlive the Redis copy.
        let ttl = found.ttl.map_or(self.config.l1_ttl(l1_key.ty()), |left| {
            left.min(self.config.l1_ttl(l1_key.ty()))
        });
        self.l1.insert(l1_key.clone(), value.clone(), ttl, ticket);
        Some(value)
    }

    fn generation_epoch(&self) -> u64 {
        self.generation_epoch.load(Ordering::SeqCst)
    }

    /// Remembers a generation unless a forget happened since `epoch` was read. The check runs
    /// under the entry's shard lock, and forgetting bumps the epoch before taking that lock, so a
    /// racing forget either is seen here or removes what was stored.
    fn remember_generation(&self, user: Uuid, ty: CacheType, generation: u64, epoch: u64) {
        let entry = self.generations.entry((user, ty));
        if self.generation_epoch() != epoch {
            return;
        }
        entry.insert(KnownGeneration {
            generation,
            read_at: Instant::now(),
        });
    }

    /// Forgets the remembered generations of some types of a user, or all of them (`None`).
    fn forget_generations(&self, which: Option<(Uuid, &[CacheType])>) {
        self.generation_epoch.fetch_add(1, Ordering::SeqCst);
        match which {
            Some((user, types)) => {
                for &ty in types {
                    self.generations.remove(&(user, ty));
                }
            }
            None => self.generations.clear(),
        }
    }

    /// Generation counters outlive every key derived from them, so a counter that expires and
    /// restarts at 0 can never make an old derived key reachable again.
    fn generation_key_ttl(&self) -> Duration {
        let longest = self.config.ttls.iter().max().copied().unwrap_or_default();
        longest * 2 + Duration::from_secs(3600)
    }
}

/// A strong ETag from the content, the same in every process.
pub fn etag_of(bytes: &[u8]) -> Arc<str> {
    let digest = hash_parts(&[bytes]);
    format!("\"{}\"", &digest[..32]).into()
}
