#!/usr/bin/env python3
"""Reference figures for all-MiniLM-L6-v2 on two stock engines: onnxruntime and
sentence-transformers (torch), both on the CPU with 2 threads.

Per engine and run, each in a fresh subprocess (this script started again with --child):
  1. short, production: short.jsonl in corpus order, handed over in chunks of 256 texts; inside a
     chunk the texts are sorted by token length and cut into batches of <= 32 (padded to the
     longest of the batch); texts/s.
  2. docs, production: the first 300 docs of docs.jsonl, same chunking, batches of <= 32 texts and
     <= 2048 padded tokens (texts x longest); docs/s.
  3. one short text: 200 single-text calls cycling through short.jsonl, each timed end to end
     (tokenize + forward + pool + normalize), after 10 untimed calls; p50 and p99 ms.
  Then parity with the sentence-transformers fixture (min cosine over its rows, truncation at 256
  tokens) and the peak RSS (VmHWM) of the subprocess.

Both engines go through the same batching code below; an engine only tokenizes (truncating at 256
word pieces) and embeds one padded batch. Before measurement 1, one batch of short texts and one
of docs are embedded untimed, so that one-time allocations are not billed to the first chunk.

Usage (from the repository root):
  python3 scripts/reference_engines.py                  # both engines, 3 runs, medians
  python3 scripts/reference_engines.py --runs 5 --engines onnxruntime
  python3 scripts/reference_engines.py --quick          # tiny subsets, 1 run: a check in seconds
  python3 scripts/reference_engines.py --parity-only    # fixture parity only

The first run creates a venv under --workdir (default /tmp/refbench) and pip-installs the pinned
packages below from PyPI (about 3 GB of wheels: the PyPI torch wheel pulls CUDA libraries, unused
here); --no-install prints the commands instead. The ONNX file is exported once from the local
safetensors weights with torch.onnx and kept in --workdir; it is rebuilt when the weights change.
No model hub is contacted.
"""

import argparse
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

try:  # only the subprocesses need numpy; the parent runs on any python3
    import numpy as np
except ImportError:
    np = None

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_DIR = Path(os.environ.get("FUZE_MODEL_DIR", REPO / "models" / "all-MiniLM-L6-v2"))
DEFAULT_CORPUS_DIR = Path(os.environ.get("FUZE_BENCH_CORPUS_DIR", REPO.parent / "shared" / "bench-corpus"))
DEFAULT_FIXTURE = REPO.parent / "shared" / "fixtures" / "minilm_reference.jsonl"
DEFAULT_WORKDIR = Path("/tmp/refbench")

ENGINES = ("onnxruntime", "sentence-transformers")

# Pinned so that reruns compare like with like. The inference stack of onnxruntime is small; the
# torch stack is needed by sentence-transformers and, once, to export the ONNX file.
ORT_REQUIREMENTS = ["numpy==2.4.6", "tokenizers==0.23.3", "onnxruntime==1.32.0"]
TORCH_REQUIREMENTS = ["torch==2.15.0", "transformers==5.24.0", "sentence-transformers==6.2.0",
                      "safetensors==0.8.0", "onnx==1.23.2"]
VERSION_PACKAGES = {
    "onnxruntime": ["onnxruntime", "numpy", "tokenizers"],
    "sentence-transformers": ["sentence-transformers", "torch", "transformers", "tokenizers", "numpy"],
}

THREADS = 2
MAX_SEQ = 256          # the model's max_seq_length (sentence_bert_config.json), [CLS]/[SEP] included
CHUNK = 256            # texts handed over at once
MAX_BATCH = 32         # texts per forward pass (--max-batch)
DOC_MAX_TOKENS = 2048  # padded tokens (texts x longest) per forward pass, docs only
ONNX_OPSET = 17        # first opset with LayerNormalization
PARITY_MIN_COS = 0.9999

FULL = {"short": 2000, "docs": 300, "calls": 200, "warmup_calls": 10}
QUICK = {"short": 50, "docs": 10, "calls": 20, "warmup_calls": 10}


# ---------------------------------------------------------------------------------------------
# Batching and pooling, shared by both engines
# ---------------------------------------------------------------------------------------------

def plan_batches(lengths, max_texts, max_tokens=None):
    """Indices sorted by token length (stable), cut greedily into batches of at most max_texts
    texts and, if given, at most max_tokens padded tokens."""
    batches, current = [], []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        longest = lengths[i]  # ascending order: the newcomer sets the padded width
        full = len(current) == max_texts
        too_wide = max_tokens is not None and (len(current) + 1) * longest > max_tokens
        if current and (full or too_wide):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def pad(sequences):
    """Right-pad token id lists to the longest; returns (input_ids, attention_mask) as int64."""
    width = max(len(s) for s in sequences)
    ids = np.zeros((len(sequences), width), dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = seq
        mask[row, :len(seq)] = 1
    return ids, mask


def mean_pool_normalize(hidden, mask):
    """Mean over real tokens, then L2 normalization (as sentence-transformers' Pooling+Normalize)."""
    weights = mask[:, :, None].astype(np.float32)
    mean = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)


def embed(engine, texts, max_tokens=None):
    """The production path: chunks of CHUNK texts, each sorted by length and cut into batches."""
    out = np.empty((len(texts), engine.dim), dtype=np.float32)
    for start in range(0, len(texts), CHUNK):
        token_ids = engine.tokenize(texts[start:start + CHUNK])
        for batch in plan_batches([len(t) for t in token_ids], engine.max_batch, max_tokens):
            ids, mask = pad([token_ids[i] for i in batch])
            out[[start + i for i in batch]] = engine.embed_padded(ids, mask)
    return out


# ---------------------------------------------------------------------------------------------
# Engines: tokenize (truncated at MAX_SEQ) and embed one padded batch
# ---------------------------------------------------------------------------------------------

class OnnxRuntimeEngine:
    name = "onnxruntime"

    def __init__(self, model_dir, onnx_path):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json ships truncation 128 and fixed padding 128; the model's pipeline uses 256
        # and per-batch padding, which pad() does.
        self.tokenizer.enable_truncation(MAX_SEQ)
        self.tokenizer.no_padding()
        self.dim = self.session.get_outputs()[0].shape[-1]

    def tokenize(self, texts):
        return [e.ids for e in self.tokenizer.encode_batch(texts)]

    def embed_padded(self, ids, mask):
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self.session.run(["last_hidden_state"], feeds)[0]
        return mean_pool_normalize(hidden, mask)

    def details(self):
        return f"providers {self.session.get_providers()}, intra-op threads {THREADS}, inter-op 1"


class SentenceTransformersEngine:
    name = "sentence-transformers"

    def __init__(self, model_dir):
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(THREADS)
        self.torch = torch
        self.model = SentenceTransformer(str(model_dir), device="cpu")
        self.model.eval()
        if self.model.max_seq_length != MAX_SEQ:
            raise SystemExit(f"max_seq_length is {self.model.max_seq_length}, expected {MAX_SEQ}")
        self.dim = self.model.get_sentence_embedding_dimension()

    def tokenize(self, texts):
        # The model's own tokenizer with the truncation sentence-transformers applies.
        return self.model.tokenizer(texts, truncation=True, max_length=self.model.max_seq_length,
                                    padding=False, return_attention_mask=False,
                                    return_token_type_ids=False)["input_ids"]

    def embed_padded(self, ids, mask):
        # The model's modules (Transformer -> Pooling -> Normalize), as encode() runs them per batch.
        ids_t = self.torch.from_numpy(ids)
        features = {"input_ids": ids_t, "attention_mask": self.torch.from_numpy(mask),
                    "token_type_ids": self.torch.zeros_like(ids_t)}
        with self.torch.inference_mode():
            return self.model(features)["sentence_embedding"].numpy()

    def details(self):
        attention = self.model[0].model.config._attn_implementation
        return f"torch threads {self.torch.get_num_threads()}, attention implementation {attention}"


def load_engine(name, args):
    if name == "onnxruntime":
        return OnnxRuntimeEngine(args.model_dir, onnx_path(args))
    return SentenceTransformersEngine(args.model_dir)


# ---------------------------------------------------------------------------------------------
# ONNX export (subprocess with torch; the benchmark subprocess of onnxruntime never imports it)
# ---------------------------------------------------------------------------------------------

def onnx_path(args):
    return args.workdir / "all-MiniLM-L6-v2.onnx"


def weights_sha256(model_dir):
    digest = hashlib.sha256()
    with open(model_dir / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def onnx_is_current(args):
    sidecar = onnx_path(args).with_suffix(".json")
    if not onnx_path(args).exists() or not sidecar.exists():
        return False
    return json.loads(sidecar.read_text()).get("weights_sha256") == weights_sha256(args.model_dir)


def build_onnx(args):
    """Export BertModel -> last_hidden_state from the local weights (pooling stays in numpy)."""
    import torch
    from transformers import AutoModel

    torch.set_num_threads(THREADS)
    bert = AutoModel.from_pretrained(str(args.model_dir), attn_implementation="eager").eval()

    class LastHiddenState(torch.nn.Module):
        # Embeddings and encoder called directly with the classic additive mask, so that the graph
        # is the plain BERT one rather than transformers' generic mask construction.
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.model.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
            additive = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
            return self.model.encoder(hidden, attention_mask=additive).last_hidden_state

    wrapper = LastHiddenState(bert).eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    example = sample_batch(batch=2, width=8, seed=0)
    target = onnx_path(args)
    partial = target.with_suffix(".partial.onnx")
    with torch.no_grad():
        torch.onnx.export(wrapper, tuple(torch.from_numpy(example[n]) for n in names), str(partial),
                          input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names + ["last_hidden_state"]},
                          opset_version=ONNX_OPSET, dynamo=False)
    check_export(partial, bert, torch)
    partial.replace(target)
    import transformers
    target.with_suffix(".json").write_text(json.dumps({
        "weights_sha256": weights_sha256(args.model_dir), "opset": ONNX_OPSET,
        "torch": torch.__version__, "transformers": transformers.__version__}, indent=1))
    print(f"wrote {target}")


def sample_batch(batch, width, seed):
    """Random token ids with [CLS]/[SEP] and right padding of varied lengths (row 0 unpadded)."""
    rng = np.random.default_rng(seed)
    lengths = [width] + list(rng.integers(2, width + 1, size=batch - 1))
    ids = [[101] + list(rng.integers(1000, 30000, size=n - 2)) + [102] for n in lengths]
    input_ids, mask = pad(ids)
    return {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}


def check_export(path, bert, torch):
    """The exported graph must match torch at shapes other than the traced one."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, width in [(1, 3), (5, 47), (2, MAX_SEQ)]:
        feeds = sample_batch(batch, width, seed=width)
        got = session.run(None, feeds)[0]
        with torch.no_grad():
            want = bert(**{k: torch.from_numpy(v) for k, v in feeds.items()}).last_hidden_state.numpy()
        diff = float(np.abs((got - want) * feeds["attention_mask"][:, :, None]).max())
        if diff > 1e-4:
            raise SystemExit(f"exported graph differs from torch by {diff} at batch {batch} x {width}")


# ---------------------------------------------------------------------------------------------
# Measurements (subprocess)
# ---------------------------------------------------------------------------------------------

def read_jsonl(path, limit=None):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if limit is not None and len(rows) == limit:
                break
            rows.append(json.loads(line))
    return rows


def texts_per_second(engine, texts, max_tokens=None):
    start = time.perf_counter()
    embed(engine, texts, max_tokens)
    return len(texts) / (time.perf_counter() - start)


def single_text_latency(engine, texts, calls, warmup_calls):
    """p50 and p99 in ms of one-text calls cycling through texts, after untimed warm-up calls."""
    for i in range(warmup_calls):
        embed(engine, [texts[i % len(texts)]])
    times_ms = []
    for i in range(calls):
        text = texts[(warmup_calls + i) % len(texts)]
        start = time.perf_counter()
        embed(engine, [text])
        times_ms.append((time.perf_counter() - start) * 1e3)
    return float(np.percentile(times_ms, 50)), float(np.percentile(times_ms, 99))


def parity(engine, fixture_rows):
    """Min cosine with the fixture, through the production path; also checks the truncation."""
    texts = [r["text"] for r in fixture_rows]
    ours = embed(engine, texts, DOC_MAX_TOKENS)
    ref = np.array([r["embedding"] for r in fixture_rows], dtype=np.float32)
    cos = (ours * ref).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    worst = int(np.argmin(cos))
    lengths = [len(t) for t in engine.tokenize(texts)]
    bad_lengths = [r["id"] for r, n in zip(fixture_rows, lengths) if n != min(r["tokens"], MAX_SEQ)]
    return {"parity_min_cos": float(cos[worst]), "parity_worst_id": fixture_rows[worst]["id"],
            "parity_rows": len(fixture_rows), "truncation_mismatches": bad_lengths}


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_bench(args):
    """One run of one engine: measurements 1-3, parity, peak RSS; returns a dict."""
    sizes = QUICK if args.quick else FULL
    engine = load_engine(args.engine, args)
    engine.max_batch = args.max_batch
    fixture = read_jsonl(args.fixture)
    result = {"engine": engine.name, "details": engine.details()}
    if not args.parity_only:
        short = [r["text"] for r in read_jsonl(args.corpus_dir / "short.jsonl", sizes["short"])]
        docs = [r["text"] for r in read_jsonl(args.corpus_dir / "docs.jsonl", sizes["docs"])]
        embed(engine, short[:engine.max_batch])  # untimed warm-up: one batch of each workload
        embed(engine, docs[:DOC_MAX_TOKENS // MAX_SEQ], DOC_MAX_TOKENS)
        result["short_per_s"] = texts_per_second(engine, short)
        result["docs_per_s"] = texts_per_second(engine, docs, DOC_MAX_TOKENS)
        result["one_p50_ms"], result["one_p99_ms"] = single_text_latency(
            engine, short, sizes["calls"], sizes["warmup_calls"])
        result["sizes"] = {"short": len(short), "docs": len(docs), "calls": sizes["calls"]}
    result.update(parity(engine, fixture))
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def probe():
    """Which engines are installed here, and the versions of their packages. Nothing is imported
    (torch alone takes seconds of CPU): an engine that fails to import fails its bench subprocess,
    whose error is then printed."""
    from importlib import metadata, util

    report = {"python": sys.version.split()[0]}
    for name, module in [("onnxruntime", "onnxruntime"), ("sentence-transformers", "sentence_transformers")]:
        try:
            if util.find_spec(module) is None:
                raise ImportError(f"no module named {module}")
            report[name] = {"ok": True, "versions": {p: metadata.version(p) for p in VERSION_PACKAGES[name]}}
        except Exception as error:
            report[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    return report


def child_main(args):
    if args.child == "probe":
        result = probe()
    elif args.child == "build-onnx":
        build_onnx(args)
        return
    else:
        result = run_bench(args)
    print("RESULT " + json.dumps(result))


# ---------------------------------------------------------------------------------------------
# Environment: a venv under --workdir with the pinned packages (parent, stdlib only)
# ---------------------------------------------------------------------------------------------

def venv_python(args):
    return args.workdir / "venv" / "bin" / "python"


def missing_requirements(python, requirements):
    """Pinned requirements that the interpreter lacks or has at another version."""
    check = ("import sys, importlib.metadata as m\n"
             "for req in sys.argv[1:]:\n"
             "    name, want = req.split('==')\n"
             "    try:\n"
             "        ok = m.version(name) == want\n"
             "    except m.PackageNotFoundError:\n"
             "        ok = False\n"
             "    if not ok:\n"
             "        print(req)\n")
    out = subprocess.run([str(python), "-c", check, *requirements], capture_output=True, text=True, check=True)
    return out.stdout.split()


def ensure_environment(args):
    """Create the venv and install what is missing, or print the commands with --no-install."""
    python = venv_python(args)
    commands = []
    if not python.exists():
        commands.append([sys.executable, "-m", "venv", str(python.parents[1])])
    for group in (ORT_REQUIREMENTS, TORCH_REQUIREMENTS):
        missing = group if not python.exists() else missing_requirements(python, group)
        if missing:
            commands.append([str(python), "-m", "pip", "install", *missing])
    if not commands:
        return python
    if args.no_install:
        print("missing packages; run:\n  " + "\n  ".join(shlex.join(c) for c in commands))
        raise SystemExit(2)
    for command in commands:
        print("+ " + shlex.join(command), flush=True)
        start = time.perf_counter()
        # A failed torch install leaves onnxruntime usable if its ONNX file already exists.
        if subprocess.run(command).returncode != 0:
            if "venv" in command[1:3]:
                raise SystemExit("could not create the venv (on Debian's own python3: apt-get install python3-venv)")
            print(f"  failed after {time.perf_counter() - start:.0f} s; engines that need it are skipped")
        else:
            print(f"  done in {time.perf_counter() - start:.0f} s")
    return python


def child_env():
    env = dict(os.environ)
    # Nothing is fetched from a model hub, and their progress bars would clutter the report.
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                "TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1"})
    return env


def run_child(python, args, mode, engine=None):
    """Start this script again in the venv; returns the dict it printed, or None on failure."""
    command = [str(python), str(Path(__file__).resolve()), "--child", mode,
               "--model-dir", str(args.model_dir), "--corpus-dir", str(args.corpus_dir),
               "--fixture", str(args.fixture), "--workdir", str(args.workdir)]
    if engine:
        command += ["--engine", engine]
    command += ["--quick"] * args.quick + ["--parity-only"] * args.parity_only
    command += ["--max-batch", str(args.max_batch)]
    try:
        out = subprocess.run(command, capture_output=True, text=True, env=child_env(), timeout=1800)
    except subprocess.TimeoutExpired:
        print(f"  {mode} {engine or ''} did not finish in 30 minutes")
        return None
    results = [line[len("RESULT "):] for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or (mode != "build-onnx" and not results):
        print(f"  {mode} {engine or ''} failed (exit {out.returncode}):\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
        return None
    return json.loads(results[-1]) if results else {}


# ---------------------------------------------------------------------------------------------
# Report (parent)
# ---------------------------------------------------------------------------------------------

COLUMNS = [("short_per_s", "short/s", "{:.1f}"), ("docs_per_s", "docs/s", "{:.2f}"),
           ("one_p50_ms", "1-text p50 ms", "{:.2f}"), ("one_p99_ms", "p99 ms", "{:.2f}"),
           ("parity_min_cos", "parity min cos", "{:.7f}"), ("peak_rss_mib", "peak RSS MiB", "{:.0f}")]


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return "unknown (no lscpu)"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def table_row(label, run, values):
    cells = [fmt.format(values[key]) if key in values else "-" for key, _, fmt in COLUMNS]
    return f"{label:<22} {run:>6} " + " ".join(f"{c:>{len(h)}}" for c, (_, h, _) in zip(cells, COLUMNS))


def medians(results):
    return {key: statistics.median(r[key] for r in results) for key, _, _ in COLUMNS if key in results[0]}


def print_header(args, probe_report, engines):
    sizes = QUICK if args.quick else FULL
    load = os.getloadavg()[0]
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average {load:.2f} at start")
    if load > 0.5 and not (args.quick or args.parity_only):
        print("  warning: the machine is busy, so these are not reference figures")
    print(f"python {probe_report['python']}")
    for name in engines:
        versions = ", ".join(f"{p} {v}" for p, v in probe_report[name]["versions"].items())
        print(f"{name}: {versions}")
    if "onnxruntime" in engines:
        built = json.loads(onnx_path(args).with_suffix(".json").read_text())
        print(f"ONNX file: {onnx_path(args)} (opset {built['opset']}, exported with torch {built['torch']},"
              f" transformers {built['transformers']}, weights sha256 {built['weights_sha256'][:12]}...)")
    if not args.parity_only:
        print(f"workload: {sizes['short']} short texts, {sizes['docs']} docs, {sizes['calls']} one-text calls"
              f" (after {sizes['warmup_calls']} warm-up); chunks of {CHUNK}, batches <= {args.max_batch}"
              f" texts (docs also <= {DOC_MAX_TOKENS} padded tokens); {THREADS} threads"
              + (" [--quick: not a benchmark]" if args.quick else ""))


def available_engines(args, python, probe_report):
    """Requested engines that import, and for onnxruntime have a current ONNX file (built if needed)."""
    engines = []
    for name in args.engines:
        if not probe_report[name]["ok"]:
            print(f"skipping {name}: {probe_report[name]['error']}")
            continue
        if name == "onnxruntime" and (args.rebuild_onnx or not onnx_is_current(args)):
            if not probe_report["sentence-transformers"]["ok"]:
                print("skipping onnxruntime: no current ONNX file, and torch is needed to export it")
                continue
            print(f"exporting the ONNX file to {onnx_path(args)} ...", flush=True)
            if run_child(python, args, "build-onnx") is None:
                continue
        engines.append(name)
    return engines


def parent_main(args):
    args.workdir.mkdir(parents=True, exist_ok=True)
    python = ensure_environment(args)
    probe_report = run_child(python, args, "probe")
    if probe_report is None:
        raise SystemExit(1)
    engines = available_engines(args, python, probe_report)
    if not engines:
        raise SystemExit("no engine available")
    print_header(args, probe_report, engines)

    print(f"\n{'engine':<22} {'run':>6} " + " ".join(h for _, h, _ in COLUMNS))
    runs = {name: [] for name in engines}
    for run in range(1, args.runs + 1):
        for name in engines:  # interleaved, so that drift in the machine's load hits both engines
            result = run_child(python, args, "bench", name)
            if result is not None:
                runs[name].append(result)
                print(table_row(name, run, result), flush=True)

    print()
    failed = False
    for name, results in runs.items():
        if not results:
            failed = True
            continue
        print(table_row(name, "median", medians(results)))
        worst = min(results, key=lambda r: r["parity_min_cos"])
        ok = worst["parity_min_cos"] >= PARITY_MIN_COS and not worst["truncation_mismatches"]
        failed |= not ok
        cos = worst["parity_min_cos"]
        print(f"  parity over {worst['parity_rows']} fixture rows: min cos {cos:.7f} (1 - cos = {1 - cos:.1e},"
              f" row id {worst['parity_worst_id']}), truncation mismatches {worst['truncation_mismatches']}"
              f" -> {'ok' if ok else 'FAIL'} (>= {PARITY_MIN_COS})")
        print(f"  {results[0]['details']}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_model(), "probe": probe_report, "quick": args.quick,
                                         "runs": runs}, indent=1))
    raise SystemExit(1 if failed else 0)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=None, help="runs per engine (default 3, --quick 1)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated: " + ", ".join(ENGINES))
    parser.add_argument("--quick", action="store_true", help="tiny subsets, to check correctness in seconds")
    parser.add_argument("--parity-only", action="store_true", help="only the fixture parity and peak RSS")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--corpus-dir", type=Path, default=DEFAULT_CORPUS_DIR)
    parser.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="venv and ONNX file")
    parser.add_argument("--no-install", action="store_true", help="print the install commands instead")
    parser.add_argument("--rebuild-onnx", action="store_true", help="export the ONNX file again")
    parser.add_argument("--json", type=Path, help="also write all results to this file")
    parser.add_argument("--max-batch", type=int, default=MAX_BATCH,
                        help=f"texts per forward pass (default {MAX_BATCH}; Fuze's default is 128)")
    parser.add_argument("--child", choices=["probe", "build-onnx", "bench"], help=argparse.SUPPRESS)
    parser.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(args.engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engine(s) {sorted(unknown)}; choose from {', '.join(ENGINES)}")
    if args.runs is None:
        args.runs = 1 if args.quick or args.parity_only else 3
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.child:
        child_main(arguments)
    else:
        parent_main(arguments)
