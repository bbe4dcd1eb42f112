//! Synthetic clustered embeddings for the vector search bench and recall test.
//!
//! Not a module of the library: `tests/benches/vector_search.rs` and `tests/tests/search_recall.rs`
//! include it with `#[path]`. Everything is deterministic (a seeded SplitMix64), so a run can be
//! repeated. Rows are written with binary COPY; the HNSW index from the migration is dropped before
//! seeding and rebuilt afterwards (building it once is far faster than inserting into it).

#![allow(dead_code)]

use std::time::{Duration, Instant};

use fuze_shared::{config::EmbedderConfig, embedding::EmbeddingSpace};
use sqlx::{PgPool, Postgres, pool::PoolConnection};
use uuid::Uuid;

pub const DIM: usize = 384;
/// Per-dimension noise around a centroid: noise norm ~0.6, so a point has cosine ~0.86 to its
/// centroid and ~0 to the other centroids.
pub const SIGMA: f32 = 0.03;

/// SplitMix64: small, fast, good enough for synthetic data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Standard normal pair (Box-Muller).
    pub fn gauss2(&mut self) -> (f32, f32) {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        ((r * t.cos()) as f32, (r * t.sin()) as f32)
    }

    pub fn uuid(&mut self) -> Uuid {
        let hi = self.next_u64() as u128;
        let lo = self.next_u64() as u128;
        uuid::Builder::from_random_bytes(((hi << 64) | lo).to_be_bytes()).into_uuid()
    }
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// A random unit vector.
pub fn random_unit(rng: &mut Rng) -> Vec<f32> {
    near(rng, &[0.0; DIM], 1.0)
}

/// `center` plus gaussian noise of `sigma` per dimension, normalised.
pub fn near(rng: &mut Rng, center: &[f32], sigma: f32) -> Vec<f32> {
    let mut v = Vec::with_capacity(DIM);
    for pair in center.chunks(2) {
        let (a, b) = rng.gauss2();
        v.push(pair[0] + sigma * a);
        if pair.len() > 1 {
            v.push(pair[1] + sigma * b);
        }
    }
    normalize(&mut v);
    v
}

/// `users` sizes summing to `total`: one user with `large` rows, the rest Zipf (1/rank).
pub fn skewed_sizes(users: usize, total: usize, large: usize) -> Vec<usize> {
    let n = users - 1;
    let rest = (total - large) as f64;
    let h: f64 = (1..=n).map(|i| 1.0 / i as f64).sum();
    let mut sizes = vec![large];
    sizes.extend((1..=n).map(|i| ((rest / h) / i as f64).round().max(1.0) as usize));
    let sum: usize = sizes.iter().sum();
    // Rounding drift goes to the second-largest user.
    sizes[1] = (sizes[1] as i64 + total as i64 - sum as i64) as usize;
    sizes
}

pub struct User {
    pub id: Uuid,
    pub rows: usize,
    /// Indexes into `Corpus::centroids`: this user's topics.
    pub topics: Vec<usize>,
}

pub struct Corpus {
    /// The space the rows were written in (the configured model's, as the api's).
    pub space: EmbeddingSpace,
    pub centroids: Vec<Vec<f32>>,
    pub users: Vec<User>,
    pub seed_time: Duration,
    pub index_time: Duration,
}

impl Corpus {
    /// The user whose row count is closest to `rows`.
    pub fn user_near(&self, rows: usize) -> &User {
        self.users
            .iter()
            .min_by_key(|u| u.rows.abs_diff(rows))
            .expect("users")
    }

    /// `n` query vectors for `user`, each with whether it is on one of the user's topics: four in
    /// five are near one of the user's topics, one in five near any centroid (a query about
    /// something the user has few or no bookmarks on: its exact top 10 are then nearly
    /// equidistant, which approximate search cannot rank).
    pub fn queries(&self, user: &User, n: usize, seed: u64) -> Vec<(Vec<f32>, bool)> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|_| {
                let c = if rng.below(5) == 0 {
                    rng.below(self.centroids.len())
                } else {
                    user.topics[rng.below(user.topics.len())]
                };
                (
                    near(&mut rng, &self.centroids[c], SIGMA),
                    user.topics.contains(&c),
                )
            })
            .collect()
    }
}

/// The embedding space of the configured model (`FUZE_MODEL_DIR`) with the default passage
/// scheme: the one an api started with the same settings searches.
pub async fn seeded_space(pool: &PgPool) -> EmbeddingSpace {
    let cfg = EmbedderConfig {
        model_dir: fuze_tests::env::model_dir(),
        ..EmbedderConfig::default()
    };
    EmbeddingSpace::current(pool, &cfg)
        .await
        .expect("embedding space")
}

/// A connection without the pool's statement timeout and with room to build the index in memory.
pub async fn admin_conn(pool: &PgPool) -> PoolConnection<Postgres> {
    let mut conn = pool.acquire().await.expect("connection");
    sqlx::raw_sql(
        "SET statement_timeout = 0; SET maintenance_work_mem = '1GB'; \
         SET max_parallel_maintenance_workers = 1",
    )
    .execute(&mut *conn)
    .await
    .expect("session settings");
    conn
}

/// Users and `saved_content` rows with clustered embeddings, then the HNSW index, then
/// `VACUUM ANALYZE`. Each user draws its rows from `topics_per_user` of `centroids` random
/// centroids.
pub async fn seed(
    pool: &PgPool,
    sizes: &[usize],
    centroids: usize,
    topics_per_user: usize,
    seed: u64,
) -> Corpus {
    let mut rng = Rng::new(seed);
    let centroids: Vec<Vec<f32>> = (0..centroids).map(|_| random_unit(&mut rng)).collect();
    seed_around(pool, sizes, centroids, topics_per_user, rng, None).await
}

/// [`seed`] around given unit-length centroids (e.g. embeddings of real texts). With
/// `topic_texts` (one per centroid), each row gets a title (the first words of its topic's text)
/// and a body (its topic's text and two others), for keyword search.
pub async fn seed_around(
    pool: &PgPool,
    sizes: &[usize],
    centroids: Vec<Vec<f32>>,
    topics_per_user: usize,
    mut rng: Rng,
    topic_texts: Option<&[String]>,
) -> Corpus {
    let users: Vec<User> = sizes
        .iter()
        .map(|&rows| User {
            id: rng.uuid(),
            rows,
            topics: (0..topics_per_user)
                .map(|_| rng.below(centroids.len()))
                .collect(),
        })
        .collect();

    let space = seeded_space(pool).await;
    let mut conn = admin_conn(pool).await;
    let started = Instant::now();
    sqlx::raw_sql("DROP INDEX IF EXISTS saved_content_embedding_hnsw")
        .execute(&mut *conn)
        .await
        .expect("drop hnsw index");
    let ids: Vec<Uuid> = users.iter().map(|u| u.id).collect();
    sqlx::query(
        "INSERT INTO users (id, email, token_hash) \
         SELECT u, u::text || '@bench.test', uuid_send(u) FROM unnest($1::uuid[]) u",
    )
    .bind(&ids)
    .execute(&mut *conn)
    .await
    .expect("insert users");

    // Rows of all users interleaved (as if saved over time), so one user's rows are spread over
    // the heap like in a real table.
    let mut owner: Vec<usize> = users
        .iter()
        .enumerate()
        .flat_map(|(i, u)| std::iter::repeat_n(i, u.rows))
        .collect();
    for i in (1..owner.len()).rev() {
        owner.swap(i, rng.below(i + 1));
    }

    let mut copy = conn
        .copy_in_raw(
            "COPY saved_content \
             (id, user_id, url, url_hash, status, embedding, embedding_model, title, text) \
             FROM STDIN (FORMAT binary)",
        )
        .await
        .expect("start copy");
    let mut buf: Vec<u8> = Vec::with_capacity(4 << 20);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
    for &u in &owner {
        let user = &users[u];
        let topic = user.topics[rng.below(user.topics.len())];
        let v = near(&mut rng, &centroids[topic], SIGMA);
        let id = rng.uuid();
        let url = format!("https://example.test/{id}");
        buf.extend_from_slice(&9i16.to_be_bytes());
        for field in [id.as_bytes().as_slice(), user.id.as_bytes().as_slice()] {
            buf.extend_from_slice(&(field.len() as i32).to_be_bytes());
            buf.extend_from_slice(field);
        }
        buf.extend_from_slice(&(url.len() as i32).to_be_bytes());
        buf.extend_from_slice(url.as_bytes());
        buf.extend_from_slice(&16i32.to_be_bytes()); // url_hash: any unique bytes do
        buf.extend_from_slice(id.as_bytes());
        buf.extend_from_slice(&5i32.to_be_bytes());
        buf.extend_from_slice(b"ready");
        // pgvector binary format: int16 dim, int16 unused, dim float4.
        buf.extend_from_slice(&((4 + 4 * DIM) as i32).to_be_bytes());
        buf.extend_from_slice(&(DIM as i16).to_be_bytes());
        buf.extend_from_slice(&0i16.to_be_bytes());
        for x in &v {
            buf.extend_from_slice(&x.to_be_bytes());
        }
        buf.extend_from_slice(&(space.name.len() as i32).to_be_bytes());
        buf.extend_from_slice(space.name.as_bytes());
        match topic_texts {
            Some(texts) => {
                let title: Vec<&str> = texts[topic].split_whitespace().take(6).collect();
                let body = format!(
                    "{} {} {}",
                    texts[topic],
                    texts[rng.below(texts.len())],
                    texts[rng.below(texts.len())]
                );
                for field in [title.join(" "), body] {
                    buf.extend_from_slice(&(field.len() as i32).to_be_bytes());
                    buf.extend_from_slice(field.as_bytes());
                }
            }
            None => {
                for _ in 0..2 {
                    buf.extend_from_slice(&(-1i32).to_be_bytes());
                }
            }
        }
        if buf.len() >= 4 << 20 {
            copy.send(std::mem::take(&mut buf))
                .await
                .expect("copy send");
            buf.reserve(4 << 20);
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    copy.send(buf).await.expect("copy send");
    copy.finish().await.expect("copy finish");
    // Each row is one passage long: its passage is its vector.
    sqlx::query(
        "INSERT INTO bookmark_passages \
           (bookmark_id, ordinal, user_id, space_id, start_char, end_char, embedding) \
         SELECT id, 0, user_id, $1, 0, 0, embedding FROM saved_content \
         WHERE user_id = ANY($2) AND embedding IS NOT NULL",
    )
    .bind(space.id)
    .bind(&ids)
    .execute(&mut *conn)
    .await
    .expect("seed passages");
    let seed_time = started.elapsed();

    let started = Instant::now();
    // Same definition as the migration (m = 16, ef_construction = 64 by default).
    sqlx::raw_sql(
        "CREATE INDEX saved_content_embedding_hnsw ON saved_content \
         USING hnsw (embedding vector_cosine_ops)",
    )
    .execute(&mut *conn)
    .await
    .expect("build hnsw index");
    let index_time = started.elapsed();
    // One statement per call: a multi-statement string runs as one implicit transaction.
    for table in ["saved_content", "bookmark_passages", "users"] {
        sqlx::raw_sql(&format!("VACUUM ANALYZE {table}"))
            .execute(&mut *conn)
            .await
            .expect("vacuum analyze");
    }

    Corpus {
        space,
        centroids,
        users,
        seed_time,
        index_time,
    }
}

/// The exact top `k` (ids in distance order): every row of the user, distance computed for each,
/// sorted. The MATERIALIZED CTE has no ORDER BY, so no vector index can be used for it.
pub const EXACT_SQL: &str = "WITH mine AS MATERIALIZED ( \
       SELECT id, embedding <=> $2 AS d FROM saved_content \
       WHERE user_id = $1 AND embedding IS NOT NULL) \
     SELECT id, d::float4 FROM mine ORDER BY d LIMIT $3";

pub async fn exact(pool: &PgPool, user: Uuid, query: &[f32], k: i64) -> Vec<Uuid> {
    sqlx::query_scalar::<_, Uuid>(&EXACT_SQL.replace("SELECT id, d::float4", "SELECT id"))
        .bind(user)
        .bind(pgvector::Vector::from(query.to_vec()))
        .bind(k)
        .fetch_all(pool)
        .await
        .expect("exact query")
}

/// Share of `exact` found in `got`.
pub fn recall(got: &[Uuid], exact: &[Uuid]) -> f64 {
    if exact.is_empty() {
        return 1.0;
    }
    let hit = exact.iter().filter(|id| got.contains(id)).count();
    hit as f64 / exact.len() as f64
}

/// Drop the test database (it is large); best effort.
pub async fn drop_database(database_url: &str, pool: PgPool) {
    pool.close().await;
    let (server, name) = database_url
        .rsplit_once('/')
        .expect("database url has a name");
    if let Ok(admin) = PgPool::connect(&format!("{server}/postgres")).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&admin)
            .await;
        admin.close().await;
    }
}
