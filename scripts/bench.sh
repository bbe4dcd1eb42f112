#!/usr/bin/env bash
# Benchmarks, printed and saved to target/bench-report.txt:
#   - embedding throughput and latency on ../shared/bench-corpus (worker/benches/embed.rs)
#   - job pickup latency, enqueue -> start, on an idle worker (tests/benches/pickup.rs)
#   - the read path under HTTP load with wrk: L1/L2 hits vs a bare handler, search misses,
#     invalidation latency, hit rates of a mixed workload (tests/benches/read_path.rs)
#   - the job queue under load: fairness between two users, politeness per host, Redis memory
#     (tests/benches/fair_load.rs)
#   - a 10,000-link import under production politeness: staging time, api memory, crawl
#     throughput, another user's saves meanwhile (tests/benches/import_load.rs)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .env ] && set -a && . ./.env && set +a
export FUZE_MODEL_DIR=${FUZE_MODEL_DIR:-$PWD/models/all-MiniLM-L6-v2}
export FUZE_BENCH_CORPUS_DIR=${FUZE_BENCH_CORPUS_DIR:-$PWD/../shared/bench-corpus}
scripts/setup.sh
if ! command -v wrk >/dev/null; then
  echo "installing wrk (HTTP load generator)"
  apt-get install -y -q wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk >/dev/null; }
fi
cargo build --release --bins
mkdir -p target
{
  echo "# Fuze benchmarks $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(nproc) cores"
  cargo bench -p fuze-worker --bench embed 2>/dev/null
  cargo bench -p fuze-tests --bench pickup 2>/dev/null
  cargo bench -p fuze-tests --bench read_path 2>/dev/null
  cargo bench -p fuze-tests --bench fair_load 2>/dev/null
  cargo bench -p fuze-tests --bench import_load 2>/dev/null
} | tee target/bench-report.txt
