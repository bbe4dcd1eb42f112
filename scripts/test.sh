#!/usr/bin/env bash
# Runs the whole suite against the real services set up by scripts/setup.sh.
# Each test creates its own database and Redis key prefix, so tests run in parallel safely.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .env ] && set -a && . ./.env && set +a
export FUZE_MODEL_DIR=${FUZE_MODEL_DIR:-$PWD/models/all-MiniLM-L6-v2}
export FUZE_FIXTURES_DIR=${FUZE_FIXTURES_DIR:-$PWD/../shared/fixtures}
# Leftovers of earlier runs: per-test databases and Redis prefixes.
admin_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/fuze}"; admin_url="${admin_url%/*}/postgres"
for db in $(psql "$admin_url" -Atqc "select datname from pg_database where datname like 'fuze_test_%'"); do
  psql "$admin_url" -qc "drop database if exists \"$db\" with (force)" >/dev/null
done
redis-cli -u "${REDIS_URL:-redis://127.0.0.1:6379}" --scan --pattern 'fuzetest:*' | xargs -r -n 500 redis-cli -u "${REDIS_URL:-redis://127.0.0.1:6379}" del >/dev/null
# The end-to-end tests start the real fuze-worker binary: cargo test builds it (the worker crate
# has integration tests), with the same features as the tests. A separate `cargo build --bins`
# would build most of the workspace a second time (without the dev-only tokio features).
log=$(mktemp)
status=0
cargo test --workspace --lib --bins --tests --no-fail-fast -- --test-threads="${FUZE_TEST_THREADS:-4}" 2>&1 \
  | tee "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "\nsummary: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
rm -f "$log"
exit "$status"
