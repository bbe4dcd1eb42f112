#!/usr/bin/env python3
"""How much of a page's main text Fuze's extractor keeps, on a public benchmark with gold text.

The Zyte (Scrapinghub) article extraction benchmark: 181 news and blog pages with the human-made
`articleBody` of each. Every page goes through `fuze-worker extract` (the scraper's own
extraction code), and the output is scored against the gold text two ways:

- **shingles** (the benchmark's own measure): precision and recall over 4-word shingles, per
  page, averaged over pages; F1 from the two averages;
- **tokens** (the usual token-level measure): the same over single words.

Other extractors' outputs on the same pages ship with the benchmark (trafilatura, Mozilla's
readability.js, readability-lxml, dom_smoothie, ...); they are scored by the same code, so the
figures side by side are comparable (and the shingle ones can be checked against the benchmark's
published table).

A second set checks that the tightening does not cost the pages Readability was built for:
Mozilla readability.js's 130 test pages (`source.html` with the expected `expected.html`, whose
text is the gold), taken from the crates.io package `readabilityrs` 0.1.4, which ships them
unchanged (checked by the package's sha256). Readability's own output is the gold there, so only
Fuze is scored.

Usage: scripts/extraction_quality.py [--show-worst N]
Needs `target/release/fuze-worker` (built here when missing). The data is fetched from GitHub at a
pinned commit and checked by a digest over every file used; where GitHub cannot be reached, put a
checkout at target/bench-data/article-extraction-benchmark (or name it in FUZE_AEB_DIR).
"""

import argparse
import collections
import gzip
import hashlib
import html.parser
import io
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "target", "bench-data", "article-extraction-benchmark")
COMMIT = "4a3bc979f76c0df73cb95fe272e2fc1b96f9f010"
TARBALL = f"https://codeload.github.com/scrapinghub/article-extraction-benchmark/tar.gz/{COMMIT}"
# sha256 over "path<TAB>sha256" lines (sorted) of every file read below.
DATA_DIGEST = "5ef864045fb18f80fa5321688427c046f1e3dfd06635bb60b3dedc0698ad4ac5"
MOZILLA_CRATE = "https://static.crates.io/crates/readabilityrs/readabilityrs-0.1.4.crate"
MOZILLA_SHA256 = "7c42603b08707aa2d44baa0ff2ec8fb89d66fbce4bc8eb5eec894009b6d18159"
MOZILLA = os.path.join(ROOT, "target", "bench-data", "readabilityrs-0.1.4", "tests", "test-pages")
REFERENCES = ["trafilatura", "readability_js", "readability", "dom_smoothie", "rs_trafilatura"]
WORD = re.compile(r"\w+", re.UNICODE)


def log(msg):
    print(f"[extraction] {msg}", file=sys.stderr, flush=True)


def files_used():
    names = ["ground-truth.json"] + [f"output/{r}.json" for r in REFERENCES]
    names += sorted(f"html/{n}" for n in os.listdir(os.path.join(DATA, "html")))
    return names


def digest():
    lines = []
    for name in files_used():
        with open(os.path.join(DATA, name), "rb") as f:
            lines.append(f"{name}\t{hashlib.sha256(f.read()).hexdigest()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def obtain():
    if os.path.isdir(os.path.join(DATA, "html")):
        return
    given = os.environ.get("FUZE_AEB_DIR")
    if given:
        shutil.copytree(given, DATA)
        return
    log(f"downloading {TARBALL}")
    try:
        with urllib.request.urlopen(TARBALL, timeout=120) as r:
            blob = r.read()
    except (urllib.error.URLError, OSError) as e:
        sys.exit(f"could not download {TARBALL} ({e}); put a checkout at {DATA} or name it in FUZE_AEB_DIR")
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        top = tar.getnames()[0].split("/")[0]
        tar.extractall(os.path.dirname(DATA), filter="data")
    os.rename(os.path.join(os.path.dirname(DATA), top), DATA)


def obtain_mozilla():
    if os.path.isdir(MOZILLA):
        return
    log(f"downloading {MOZILLA_CRATE}")
    with urllib.request.urlopen(MOZILLA_CRATE, timeout=120) as r:
        blob = r.read()
    got = hashlib.sha256(blob).hexdigest()
    if got != MOZILLA_SHA256:
        sys.exit(f"{MOZILLA_CRATE}: sha256 {got}, expected {MOZILLA_SHA256}")
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        members = [m for m in tar.getmembers() if "/tests/test-pages/" in m.name]
        tar.extractall(os.path.join(ROOT, "target", "bench-data"), members=members, filter="data")


class _Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts = []

    def handle_data(self, data):
        self.parts.append(data)


def html_text(markup):
    parser = _Text()
    parser.feed(markup)
    return " ".join(parser.parts)


def tokens(text):
    return WORD.findall(text or "")


def counts(text, n):
    words = tokens(text)
    if n == 1:
        return collections.Counter(words)
    grams = [tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))]
    return collections.Counter(g for g in grams if g)


def page_scores(gold, got, n):
    """(precision, recall) of one page, None where undefined (nothing predicted / nothing gold)."""
    g, p = counts(gold, n), counts(got, n)
    tp = sum((g & p).values())
    fp = sum(p.values()) - tp
    fn = sum(g.values()) - tp
    if tp + fp + fn == 0:
        return None, None
    if fp == 0 and fn == 0:
        return 1.0, 1.0
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    return precision, recall


def score(gold, predicted, n):
    ps, rs = [], []
    for key, text in gold.items():
        p, r = page_scores(text, predicted.get(key, ""), n)
        if p is not None:
            ps.append(p)
        if r is not None:
            rs.append(r)
    precision, recall = statistics.mean(ps), statistics.mean(rs)
    return 2 * precision * recall / (precision + recall), precision, recall


def run_fuze(pages, gold_urls, default_url="https://example.com/article"):
    binary = os.environ.get("FUZE_WORKER_BIN") or os.path.join(ROOT, "target", "release", "fuze-worker")
    if not os.path.exists(binary):
        log("building the release worker")
        subprocess.run(["cargo", "build", "--release", "--bins"], cwd=ROOT, check=True)
    out, seconds = {}, []
    for key, html in pages.items():
        url = gold_urls.get(key) or default_url
        started = time.perf_counter()
        done = subprocess.run(
            [binary, "extract", "--url", url], input=html, capture_output=True, check=True
        )
        seconds.append(time.perf_counter() - started)
        out[key] = json.loads(done.stdout)["text"]
    return out, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--show-worst", type=int, default=0, help="list the N worst pages")
    parser.add_argument("--print-digest", action="store_true")
    args = parser.parse_args()
    obtain()
    got_digest = digest()
    if args.print_digest:
        print(got_digest)
        return
    if got_digest != DATA_DIGEST:
        sys.exit(f"{DATA}: data digest {got_digest}, expected {DATA_DIGEST}")

    truth = json.load(open(os.path.join(DATA, "ground-truth.json")))
    gold = {k: v.get("articleBody", "") for k, v in truth.items()}
    gold_urls = {k: v.get("url") for k, v in truth.items()}
    pages = {}
    for key in gold:
        with gzip.open(os.path.join(DATA, "html", f"{key}.html.gz")) as f:
            pages[key] = f.read()
    fuze, seconds = run_fuze(pages, gold_urls)
    outputs = {"fuze (fuze-worker extract)": fuze}
    for name in REFERENCES:
        data = json.load(open(os.path.join(DATA, "output", f"{name}.json")))
        version = data.get("version", "")
        outputs[f"{name} {version}".strip()] = {
            k: v.get("articleBody", "") for k, v in data["output"].items()
        }

    print(f"\n# Zyte article extraction benchmark ({len(gold)} pages, commit {COMMIT[:10]})\n")
    print("| extractor | F1 (shingles) | precision | recall | F1 (tokens) | precision | recall |")
    print("|---|---|---|---|---|---|---|")
    for name, predicted in outputs.items():
        f4, p4, r4 = score(gold, predicted, 4)
        f1, p1, r1 = score(gold, predicted, 1)
        print(f"| {name} | {f4:.3f} | {p4:.3f} | {r4:.3f} | {f1:.3f} | {p1:.3f} | {r1:.3f} |")
    print(f"\nfuze-worker extract: {statistics.median(seconds) * 1000:.1f} ms per page (median, "
          "process start included)")
    obtain_mozilla()
    moz_gold, moz_pages = {}, {}
    for name in sorted(os.listdir(MOZILLA)):
        folder = os.path.join(MOZILLA, name)
        with open(os.path.join(folder, "expected.html"), encoding="utf-8", errors="replace") as f:
            moz_gold[name] = html_text(f.read())
        with open(os.path.join(folder, "source.html"), "rb") as f:
            moz_pages[name] = f.read()
    moz_fuze, _ = run_fuze(moz_pages, {}, "http://fakehost/test/page.html")
    f4, p4, r4 = score(moz_gold, moz_fuze, 4)
    f1, p1, r1 = score(moz_gold, moz_fuze, 1)
    print(f"\n# Mozilla readability.js test pages ({len(moz_gold)} pages, expected.html as gold)\n")
    print("| extractor | F1 (shingles) | precision | recall | F1 (tokens) | precision | recall |")
    print("|---|---|---|---|---|---|---|")
    print(f"| fuze (fuze-worker extract) | {f4:.3f} | {p4:.3f} | {r4:.3f} | {f1:.3f} | {p1:.3f} | {r1:.3f} |")
    if args.show_worst:
        worst = sorted(
            gold, key=lambda k: sum(x or 0 for x in page_scores(gold[k], fuze[k], 4))
        )[: args.show_worst]
        for key in worst:
            p, r = page_scores(gold[key], fuze[key], 4)
            print(f"{key[:12]} precision {p} recall {r} gold {len(tokens(gold[key]))} words, "
                  f"fuze {len(tokens(fuze[key]))} words, url {gold_urls.get(key)}")


if __name__ == "__main__":
    main()
