#!/usr/bin/env python3
"""Search quality on a public retrieval benchmark, through Fuze's real ingestion path.

BEIR SciFact (5,183 abstracts, 300 test claims with relevance judgements) is loaded as one user's
bookmarks: a local page server serves each abstract as a page, the list of their URLs is uploaded
to `POST /api/v1/imports`, and the release api and worker scrape, embed (passages) and index them
like any import. Then every test claim is searched through `GET /api/v1/search` in each mode and
nDCG@10 and recall@100 are printed beside the published BM25 and all-MiniLM-L6-v2 figures. The
keyword and semantic lists are also fused offline with other fusion settings, so the server's
choice is compared with its alternatives on the same lists.

Usage: scripts/search_quality.py [--queries N] [--keep]
Needs: `make setup` (PostgreSQL with pgvector, Redis, the model) and `cargo build --release --bins`
(built here when missing). Writes a fresh database `fuze_quality` and Redis keys `fuzequality:*`.

The data: the official BEIR zip's host cannot be reached from these machines, so the collection
is rebuilt from the allenai/scifact CSV export committed in a public GitHub repository (pinned to
a commit and checked by sha256). The rebuild follows BEIR's conversion (test queries = SciFact's
dev claims, relevant documents = their cited documents, text = abstract sentences joined by
spaces) and gives BEIR's counts (5,183 documents, 300 test queries, 339 judgements); each output
file is checked by sha256 too. Where that host is unreachable as well, put the zip at
target/bench-data/scifact.zip (or name it in FUZE_SCIFACT_ZIP); docs/SEARCH.md says how it was
obtained here.
"""

import argparse
import ast
import csv
import hashlib
import html
import http.server
import io
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import tokenize
import urllib.error
import urllib.parse
import urllib.request
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "target", "bench-data")
SOURCE_URL = (
    "https://raw.githubusercontent.com/sumithra-p-v/claimverifier/"
    "b42f1c3444b28884ddcfadffafbfe223646c6c37/data/scifact.zip"
)
SOURCE_SHA256 = "a798a7046af0f6fa04476448459ce7cafeea5bd90d4d99c53a0e27dc5e1a4673"
BEIR_SHA256 = {
    "corpus.jsonl": "d289bf5d711d1d6b0c9fba52b90e45a76e0b0e9f173fd3ff49cd098588de2581",
    "queries.jsonl": "4816ec1e0b1e4a3beed2b701eee2ece822626128c17564f315279af1ad25cd23",
    "qrels/test.tsv": "68c0ac63f1c24b9e8ce497649694f09b2d0850bab7ec2b103cc66996f5f8b3a3",
}
# Published nDCG@10 on BEIR SciFact (test), for comparison.
PUBLISHED = [
    ("BM25 (Pyserini, flat index; 2cr/beir.yaml)", 0.6789),
    ("BM25 (Pyserini, multifield index)", 0.6647),
    ("all-MiniLM-L6-v2 (MTEB results repository, mteb 1.2.0)", 0.6739),
]
MODES = ("keyword", "semantic", "hybrid")
DB_NAME = "fuze_quality"
PREFIX = "fuzequality"
ADMIN = "quality-admin-token"


def log(msg):
    print(f"[quality] {msg}", file=sys.stderr, flush=True)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- data


def source_zip():
    path = os.path.join(DATA, "scifact.zip")
    os.makedirs(DATA, exist_ok=True)
    given = os.environ.get("FUZE_SCIFACT_ZIP")
    if not os.path.exists(path) and given:
        shutil.copyfile(given, path)
    if not os.path.exists(path):
        log(f"downloading {SOURCE_URL}")
        try:
            with urllib.request.urlopen(SOURCE_URL, timeout=60) as r, open(path + ".part", "wb") as f:
                shutil.copyfileobj(r, f)
            os.replace(path + ".part", path)
        except (urllib.error.URLError, OSError) as e:
            sys.exit(
                f"could not download {SOURCE_URL} ({e}); put the file at {path} "
                "or name it in FUZE_SCIFACT_ZIP"
            )
    got = sha256(path)
    if got != SOURCE_SHA256:
        sys.exit(f"{path}: sha256 {got}, expected {SOURCE_SHA256}")
    return path


def sentences(numpy_repr):
    """The abstract column holds the repr of an array of sentence strings."""
    tokens = tokenize.generate_tokens(io.StringIO(numpy_repr).readline)
    return [ast.literal_eval(t.string) for t in tokens if t.type == tokenize.STRING]


def build_beir(zip_path):
    """BEIR-format SciFact (corpus.jsonl, queries.jsonl, qrels/test.tsv), checked by sha256."""
    out = os.path.join(DATA, "scifact")
    os.makedirs(os.path.join(out, "qrels"), exist_ok=True)
    csv.field_size_limit(10**9)
    with zipfile.ZipFile(zip_path) as z:
        read = lambda name: io.StringIO(z.read(name).decode("utf-8"))  # noqa: E731
        with open(os.path.join(out, "corpus.jsonl"), "w") as f:
            for r in csv.DictReader(read("corpus_train.csv")):
                doc = {"_id": r["doc_id"], "title": r["title"],
                       "text": " ".join(sentences(r["abstract"])), "metadata": {}}
                f.write(json.dumps(doc) + "\n")
        queries = {}
        for split, name in (("train", "claims_train.csv"), ("test", "claims_validation.csv")):
            pairs = []
            for r in csv.DictReader(read(name)):
                queries.setdefault(r["id"], r["claim"])
                for d in re.findall(r"\d+", r["cited_doc_ids"]):
                    if (r["id"], d) not in pairs:
                        pairs.append((r["id"], d))
            with open(os.path.join(out, "qrels", f"{split}.tsv"), "w") as f:
                f.write("query-id\tcorpus-id\tscore\n")
                for q, d in pairs:
                    f.write(f"{q}\t{d}\t1\n")
    with open(os.path.join(out, "queries.jsonl"), "w") as f:
        for q, text in sorted(queries.items(), key=lambda x: int(x[0])):
            f.write(json.dumps({"_id": q, "text": text, "metadata": {}}) + "\n")
    for name, want in BEIR_SHA256.items():
        got = sha256(os.path.join(out, name))
        if got != want:
            sys.exit(f"{out}/{name}: sha256 {got}, expected {want}")
    return out


def load_qrels(folder, split):
    qrels = {}
    for line in list(open(os.path.join(folder, "qrels", f"{split}.tsv")))[1:]:
        q, d, score = line.rstrip("\n").split("\t")
        qrels.setdefault(q, {})[d] = int(score)
    return qrels


def load_beir(folder):
    corpus = {}
    for line in open(os.path.join(folder, "corpus.jsonl")):
        d = json.loads(line)
        corpus[d["_id"]] = (d["title"], d["text"])
    queries = {}
    for line in open(os.path.join(folder, "queries.jsonl")):
        q = json.loads(line)
        queries[q["_id"]] = q["text"]
    return corpus, queries, load_qrels(folder, "test")


# ---------------------------------------------------------------- services


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_pages(corpus):
    """Each abstract as a page at /d/{id}."""

    class Pages(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            doc = corpus.get(self.path[3:]) if self.path.startswith("/d/") else None
            if doc is None:
                self.send_error(404)
                return
            title, text = (html.escape(x) for x in doc)
            body = (
                f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title></head>"
                f"<body><article><h1>{title}</h1><p>{text}</p></article></body></html>"
            ).encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def run(cmd, env=None, check=True):
    return subprocess.run(cmd, env=env, check=check, capture_output=True, text=True)


def fresh_database(base_url):
    admin = base_url.rsplit("/", 1)[0] + "/postgres"
    run(["psql", admin, "-qc", f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'])
    run(["psql", admin, "-qc", f'CREATE DATABASE "{DB_NAME}"'])
    return base_url.rsplit("/", 1)[0] + "/" + DB_NAME


def clear_redis(redis_url):
    keys = run(["redis-cli", "-u", redis_url, "--scan", "--pattern", f"{PREFIX}:*"]).stdout.split()
    for i in range(0, len(keys), 500):
        run(["redis-cli", "-u", redis_url, "del", *keys[i : i + 500]])


class Http:
    def __init__(self, base, token):
        self.base, self.token = base, token

    def call(self, method, path, body=None, content_type="application/json", token=None):
        req = urllib.request.Request(self.base + path, data=body, method=method)
        req.add_header("authorization", f"Bearer {token or self.token}")
        if body is not None:
            req.add_header("content-type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


def wait_ready(url, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.25)
    sys.exit(f"{url} never answered")


# ---------------------------------------------------------------- metrics


def ndcg_at(ranked, relevant, k=10):
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked, relevant, k=100):
    wanted = [d for d, g in relevant.items() if g > 0]
    return sum(1 for d in ranked[:k] if d in relevant) / len(wanted) if wanted else 0.0


def rrf(lists, k, depth):
    scores = {}
    for ranked in lists:
        for i, d in enumerate(ranked[:depth]):
            scores[d] = scores.get(d, 0.0) + 1.0 / (k + i + 1)
    return sorted(scores, key=lambda d: (-scores[d], d))


def blend(keyword, semantic, weight, depth):
    """Min-max normalized scores, `weight` on the semantic side."""

    def normalized(hits):
        hits = hits[:depth]
        if not hits:
            return {}
        lo, hi = min(s for _, s in hits), max(s for _, s in hits)
        return {d: (s - lo) / (hi - lo) if hi > lo else 1.0 for d, s in hits}

    k, s = normalized(keyword), normalized(semantic)
    scores = {d: (1 - weight) * k.get(d, 0.0) + weight * s.get(d, 0.0) for d in set(k) | set(s)}
    return sorted(scores, key=lambda d: (-scores[d], d))


def summarize(rankings, qrels):
    nd = [ndcg_at(rankings[q], qrels[q]) for q in rankings]
    rc = [recall_at(rankings[q], qrels[q]) for q in rankings]
    return statistics.mean(nd), statistics.mean(rc)


def fusion_table(split, keys, qrels, rankings, scored):
    print(f"\n# Fusion alternatives on the same keyword and semantic lists ({split}, offline)\n")
    print("| fusion | nDCG@10 | recall@100 |\n|---|---|---|")
    lists = lambda q: (rankings["keyword"][q], rankings["semantic"][q])  # noqa: E731
    for k in (10, 30, 60, 100):
        for depth in (20, 50, 100):
            fused = {q: rrf(lists(q), k, depth) for q in keys}
            nd, rc = summarize(fused, qrels)
            print(f"| RRF k={k} depth={depth} | {nd:.4f} | {rc:.4f} |")
    for weight in (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9):
        fused = {q: blend(scored["keyword"][q], scored["semantic"][q], weight, 100) for q in keys}
        nd, rc = summarize(fused, qrels)
        print(f"| min-max blend, semantic weight {weight} | {nd:.4f} | {rc:.4f} |")


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=0, help="first N test queries only")
    parser.add_argument("--keep", action="store_true", help="leave the database and keys")
    parser.add_argument(
        "--tune", action="store_true",
        help="also search the 809 train claims and print the fusion alternatives on them "
        "(settings are chosen on train, reported on test)",
    )
    args = parser.parse_args()

    folder = build_beir(source_zip())
    corpus, queries, qrels = load_beir(folder)
    train_qrels = load_qrels(folder, "train") if args.tune else {}
    test = sorted(qrels, key=int)
    if args.queries:
        test = test[: args.queries]
    log(f"SciFact: {len(corpus)} documents, {len(test)} test queries")

    for binary in ("fuze-api", "fuze-worker"):
        if not os.path.exists(os.path.join(ROOT, "target", "release", binary)):
            log("building release binaries")
            subprocess.run(["cargo", "build", "--release", "--bins"], cwd=ROOT, check=True)
            break

    base_db = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fuze")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
    database_url = fresh_database(base_db)
    clear_redis(redis_url)
    pages = serve_pages(corpus)
    api_port, metrics_port = free_port(), free_port()
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        FUZE_REDIS_PREFIX=PREFIX,
        FUZE_MODEL_DIR=os.environ.get(
            "FUZE_MODEL_DIR", os.path.join(ROOT, "models", "all-MiniLM-L6-v2")
        ),
        FUZE_API_PORT=str(api_port),
        FUZE_WORKER_METRICS_PORT=str(metrics_port),
        FUZE_ADMIN_TOKEN=ADMIN,
        FUZE_SCRAPE_ALLOW_INTERNAL="127.0.0.0/8",
        FUZE_SCRAPE_HOST_CONCURRENCY="0",
        FUZE_SCRAPE_HOST_INTERVAL_MS="0",
        FUZE_SCRAPE_RESPECT_ROBOTS="false",
        FUZE_USER_MAX_PENDING_JOBS="0",
        FUZE_RATE_WRITES_PER_S="0",
        FUZE_RATE_SEARCHES_PER_S="0",
        FUZE_USER_DB_CONCURRENCY="0",
        FUZE_SEARCH_LIMIT_MAX="100",
        FUZE_SEARCH_FUSION_DEPTH="100",
        # A semantic search must not fall back to keywords because the worker was slow once.
        FUZE_QUERY_EMBED_TIMEOUT_MS="10000",
        FUZE_TTL_QUERY_S="1",
        RUST_LOG="warn",
    )
    release = os.path.join(ROOT, "target", "release")
    run([os.path.join(release, "fuze-api"), "migrate"], env=env)
    procs = [
        subprocess.Popen([os.path.join(release, "fuze-api")], env=env),
        subprocess.Popen([os.path.join(release, "fuze-worker")], env=env),
    ]
    try:
        api = f"http://127.0.0.1:{api_port}"
        wait_ready(api + "/healthz")
        wait_ready(f"http://127.0.0.1:{metrics_port}/healthz")
        http_ = Http(api, ADMIN)
        status, user = http_.call(
            "POST", "/api/v1/admin/users", json.dumps({"email": "quality@bench.test"}).encode()
        )
        assert status == 201, (status, user)
        http_ = Http(api, user["token"])

        started = time.time()
        urls = "\n".join(f"{pages}/d/{d}" for d in corpus).encode()
        status, imported = http_.call("POST", "/api/v1/imports", urls, "text/plain")
        assert status == 202, (status, imported)
        while True:
            time.sleep(5)
            _, progress = http_.call("GET", f"/api/v1/imports/{imported['id']}")
            log(f"import: {progress['state']} {progress['counts']}")
            if progress["state"] in ("completed", "failed", "cancelled"):
                break
        ingest_s = time.time() - started
        counts = progress["counts"]
        ready = run(["psql", database_url, "-Atc",
                     "SELECT count(*) FROM saved_content WHERE status = 'ready'"]).stdout.strip()
        passages = run(["psql", database_url, "-Atc",
                        "SELECT count(*) FROM bookmark_passages"]).stdout.strip()
        log(f"ingested in {ingest_s:.0f} s: {ready} ready, {passages} passages, counts {counts}")

        by_url = {f"{pages}/d/{d}": d for d in corpus}
        rankings = {m: {} for m in MODES}
        scored = {"keyword": {}, "semantic": {}}
        latency = {m: [] for m in MODES}
        fallbacks = 0
        searched = test + sorted(train_qrels, key=int)
        for mode in MODES:
            for q in searched:
                path = "/api/v1/search?" + urllib.parse.urlencode(
                    {"q": queries[q], "mode": mode, "limit": 100, "explain": "true"}
                )
                t = time.perf_counter()
                status, found = http_.call("GET", path)
                latency[mode].append((time.perf_counter() - t) * 1000)
                assert status == 200, (status, found)
                if found["mode"] != mode:
                    fallbacks += 1
                hits = [(by_url[h["bookmark"]["url"]], h) for h in found["items"]]
                rankings[mode][q] = [d for d, _ in hits]
                if mode == "keyword":
                    scored[mode][q] = [(d, h["explain"]["keyword_score"]) for d, h in hits]
                elif mode == "semantic":
                    scored[mode][q] = [(d, h["explain"]["semantic_similarity"]) for d, h in hits]

        print(f"\n# BEIR SciFact through Fuze ({len(test)} test queries, {ready} pages, "
              f"{passages} passages, ingest {ingest_s:.0f} s)\n")
        print("| mode | nDCG@10 | recall@100 | search p50 ms |")
        print("|---|---|---|---|")
        results = {}
        only = lambda ranked, keys: {q: ranked[q] for q in keys}  # noqa: E731
        for mode in MODES:
            nd, rc = summarize(only(rankings[mode], test), qrels)
            results[mode] = nd
            p50 = statistics.median(latency[mode])
            print(f"| {mode} (GET /search) | {nd:.4f} | {rc:.4f} | {p50:.1f} |")
        print(f"\nsemantic searches answered by the keyword fallback: {fallbacks}\n")
        print("| published | nDCG@10 |\n|---|---|")
        for name, value in PUBLISHED:
            print(f"| {name} | {value:.4f} |")

        fusion_table("test", test, qrels, rankings, scored)
        if train_qrels:
            train = sorted(train_qrels, key=int)
            for mode in MODES:
                nd, rc = summarize(only(rankings[mode], train), train_qrels)
                print(f"\ntrain split, {mode}: nDCG@10 {nd:.4f}, recall@100 {rc:.4f}")
            fusion_table("train", train, train_qrels, rankings, scored)

        best_single = max(results["keyword"], results["semantic"])
        print("\n# Goals\n")
        print(f"- hybrid {results['hybrid']:.4f} vs the better single mode {best_single:.4f}: "
              f"{results['hybrid'] - best_single:+.4f} (goal >= +0.01)")
        print(f"- keyword {results['keyword']:.4f} vs BM25 {PUBLISHED[0][1]:.4f}: "
              f"{results['keyword'] - PUBLISHED[0][1]:+.4f} (goal within 0.02)")
        print(f"- semantic {results['semantic']:.4f} vs all-MiniLM-L6-v2 {PUBLISHED[2][1]:.4f}: "
              f"{results['semantic'] - PUBLISHED[2][1]:+.4f} (goal within 0.01)")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if not args.keep:
            admin = base_db.rsplit("/", 1)[0] + "/postgres"
            run(["psql", admin, "-qc", f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'],
                check=False)
            clear_redis(redis_url)


if __name__ == "__main__":
    main()
