"""Retrieval by local embeddings on a repository of realistic size: shipyard's own code and docs.

Measures loading the model, indexing cold (a fresh cache; wall and CPU seconds, as the machine may
be shared) and warm (nothing changed), query latency
(embedding the query and the exact search), and recall@k on a small labelled set of questions whose
answer is a known file: a question counts as found at k when one of the top k chunks is in it.

    .venv/bin/python benchmarks/retrieval.py [--repo .] [--commit HEAD] [--paths src docs]
        [--pg URL] [--budget SECONDS] [--json]
    .venv/bin/python benchmarks/retrieval.py --per-chunk 96 [--rounds 2]

``--pg`` also measures pgvector in that PostgreSQL database (which needs the vector extension).
``--budget`` also indexes into a fresh cache under that time budget, as a first run does, and
reports how much of the tree it covered and the recall on what was indexed.
``--per-chunk N`` compares, in one process and alternating, the cost of embedding the same N
chunks (a fixed random sample) as before (the first 2,000 characters, 256 word pieces) and now
(each chunk's compact head, 128 word pieces), in wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
import torch  # noqa: E402

from shipyard.agent.context.chunks import Chunk, chunk_file  # noqa: E402
from shipyard.agent.context.embeddings import DIMENSION, load_embedder  # noqa: E402
from shipyard.agent.context.retrieval import Retriever  # noqa: E402
from shipyard.agent.context.rules import CommitTree  # noqa: E402
from shipyard.agent.context.vectors import PgVectors, SqliteVectors, Vectors  # noqa: E402

LABELLED: dict[str, tuple[str, ...]] = {
    "the most conservative action wins when policy rules disagree": (
        "src/shipyard/policy/decide.py",
    ),
    "match changed paths against gitignore-style patterns": ("src/shipyard/policy/guardrails.py",),
    "bubblewrap command line with the workspace mounted and no network": (
        "src/shipyard/sandbox/bwrap.py",
    ),
    "proxy that lets a sandbox reach only allowlisted hosts": ("src/shipyard/sandbox/egress.py",),
    "summarise older turns when the context window is nearly full": (
        "src/shipyard/agent/compaction.py",
    ),
    "stop the agent when it runs out of steps, tokens, money or time": (
        "src/shipyard/agent/budget.py",
    ),
    "rebase, re-verify and merge each change exactly once per target branch": (
        "src/shipyard/delivery/queue.py",
    ),
    "coverage delta between the baseline and the change": ("src/shipyard/gates/coverage.py",),
    "tests present at baseline and missing or skipped after the change count as failed": (
        "src/shipyard/gates/integrity.py",
        "src/shipyard/gates/integrity_python.py",
    ),
    "mask secrets in logs, events and transcripts": ("src/shipyard/redaction.py",),
    "PageRank over files that use each other's names": ("src/shipyard/agent/context/repomap.py",),
    "roll back automatically when the error rate rises after a merge": (
        "src/shipyard/rollout/health.py",
        "src/shipyard/rollout/runner.py",
        "docs/rollout.md",
    ),
    "Prometheus metrics for runs and decisions": ("src/shipyard/web/metrics.py",),
    "run blueprints on Celery workers with a Redis or RabbitMQ broker": (
        "src/shipyard/executor/celery.py",
    ),
    "the OpenAI-compatible provider retries rate limits with backoff": (
        "src/shipyard/agent/providers/openai_compat.py",
        "src/shipyard/agent/providers/base.py",
    ),
}
"""Questions and the files that answer them."""
KS = (1, 5, 10)


def scoped_tree(repo: Path, prefixes: list[str], commit: str = "HEAD") -> CommitTree:
    tree = CommitTree.at(repo, commit)
    keep = {p: e for p, e in tree.entries.items() if p.startswith(tuple(prefixes))}
    return CommitTree(tree.workspace, tree.commit, keep)


def recall(retriever: Retriever, tree: CommitTree) -> dict[str, float]:
    found = dict.fromkeys(KS, 0)
    for question, answers in LABELLED.items():
        matches = retriever.search(tree, question, k=max(KS))
        for k in KS:
            found[k] += any(m.path in answers for m in matches[:k])
    return {f"recall@{k}": round(found[k] / len(LABELLED), 3) for k in KS}


def budgeted(retriever: Retriever, tree: CommitTree, seconds: float) -> dict[str, object]:
    """A first run's index under ``seconds``: how much it covered, and recall on that."""
    cpu = time.process_time()
    stats = retriever.index(tree, seconds=seconds)
    return {
        "budget_s": seconds, "index_s": stats.seconds,
        "index_cpu_s": round(time.process_time() - cpu, 1), "embedded": stats.embedded,
        "covered_files": stats.covered, "files": stats.files, **recall(retriever, tree),
    }  # fmt: skip


def per_chunk(tree: CommitTree, n: int, rounds: int) -> dict[str, object]:
    """Embedding cost of the same ``n`` chunks before and now, alternating within one process."""
    embedder = load_embedder()
    model = embedder._model  # the benchmark varies what the embedder fixes
    texts = tree.read(tree.files())
    chunks = [c for path, text in sorted(texts.items()) for c in chunk_file(path, text)]
    sample = random.Random(7).sample(chunks, min(n, len(chunks)))
    forms = {
        "before (2,000 chars, 256 pieces, batch 32)": (
            [f"{c.path} {c.kind} {c.name}".strip() + "\n" + c.text for c in sample],
            256, 32,
        ),
        "now (compact head, 128 pieces, batch 16)": ([c.embed_text for c in sample], 128, 16),
    }  # fmt: skip
    threads = {"2 threads": max(2, torch.get_num_threads()), "1 thread": 1}
    runs = [(f"{form}, {count}", form, n) for form in forms for count, n in threads.items()]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in runs}
    for _round in range(rounds):
        for name, form_name, count in runs:
            form, tokens, batch = forms[form_name]
            torch.set_num_threads(count)
            model.max_seq_length = tokens
            wall, cpu = time.perf_counter(), time.process_time()
            with torch.inference_mode():
                model.encode([t[:2000] for t in form], batch_size=batch, show_progress_bar=False)
            results[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    model.max_seq_length = embedder.max_tokens
    return {
        "chunks": len(sample), "rounds": rounds,
        **{name: {"chunks_per_s": [round(len(sample) / w, 1) for w, _ in runs],
                  "cpu_s_per_chunk": [round(c / len(sample), 3) for _, c in runs]}
           for name, runs in results.items()},
    }  # fmt: skip


def measure(retriever: Retriever, tree: CommitTree) -> dict[str, object]:
    cpu = time.process_time()
    cold = retriever.index(tree)
    cpu = time.process_time() - cpu
    warm = retriever.index(tree)
    latencies, found = [], dict.fromkeys(KS, 0)
    for _round in range(3):
        for question, answers in LABELLED.items():
            began = time.perf_counter()
            matches = retriever.search(tree, question, k=max(KS))
            latencies.append(time.perf_counter() - began)
            if _round == 0:
                for k in KS:
                    found[k] += any(m.path in answers for m in matches[:k])
    latencies.sort()
    return {
        "backend": retriever.vectors.backend,
        "files": cold.files,
        "chunks": cold.embedded + cold.reused,
        "cold_index_s": cold.seconds,
        "cold_index_cpu_s": round(cpu, 1),
        "chunks_per_s": round((cold.embedded + cold.reused) / max(cold.seconds, 1e-9), 1),
        "warm_index_s": warm.seconds,
        "warm_embedded": warm.embedded,
        "query_median_ms": round(1000 * statistics.median(latencies), 1),
        "query_p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
        **{f"recall@{k}": round(found[k] / len(LABELLED), 3) for k in KS},
    }


def search_only(vectors: Vectors, n: int, k: int = 10) -> dict[str, object]:
    """Exact search alone (no model) over ``n`` random unit vectors in one commit's scope."""
    rng = random.Random(7)

    def unit() -> list[float]:
        v = [rng.gauss(0, 1) for _ in range(DIMENSION)]
        norm = math.sqrt(sum(x * x for x in v))
        return [x / norm for x in v]

    files = {(f"f{i}.py", f"{i:040x}"): [Chunk(path=f"f{i}.py", start=1, end=1, kind="text",
                                              name="", text=str(i))] for i in range(n)}  # fmt: skip
    vecs = {c[0].digest: unit() for c in files.values()}
    vectors.add("synthetic", "synthetic", files, vecs)
    scope = list(files)
    times = []
    for _round in range(20):
        began = time.perf_counter()
        vectors.search("synthetic", "synthetic", unit(), scope, k)
        times.append(time.perf_counter() - began)
    return {"backend": vectors.backend, "chunks": n,
            "search_median_ms": round(1000 * statistics.median(times), 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", type=Path, default=ROOT)
    parser.add_argument("--paths", nargs="*", default=["src/", "docs/"])
    parser.add_argument("--commit", default="HEAD", help="the commit to index")
    parser.add_argument("--pg", help="a PostgreSQL URL with pgvector, to measure it too")
    parser.add_argument("--budget", type=float, help="also index under this time budget")
    parser.add_argument("--per-chunk", type=int, metavar="N", help="compare per-chunk cost only")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--search-only", type=int, nargs="*", metavar="N",
        help="only time exact search over N random vectors per backend (no model)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.search_only:
        with tempfile.TemporaryDirectory() as home:
            for n in args.search_only:
                backends: list[Vectors] = [SqliteVectors(Path(home) / f"{n}.db")]
                if args.pg:
                    backends.append(PgVectors(args.pg))
                for vectors in backends:
                    print(json.dumps(search_only(vectors, n)))
                    vectors.close()
        return
    tree = scoped_tree(args.repo, args.paths, args.commit)
    if args.per_chunk:
        print(json.dumps({"commit": tree.commit[:12], "load_average": os.getloadavg(),
                          **per_chunk(tree, args.per_chunk, args.rounds)}, indent=2))  # fmt: skip
        return
    began = time.perf_counter()
    embedder = load_embedder()
    load_s = time.perf_counter() - began
    rows = []
    with tempfile.TemporaryDirectory() as home:
        if args.budget is not None:
            retriever = Retriever(embedder, SqliteVectors(Path(home) / "budget.db"))
            try:
                rows.append(budgeted(retriever, tree, args.budget))
            finally:
                retriever.close()
        stores: list[Vectors] = [SqliteVectors(Path(home) / "retrieval.db")]
        if args.pg:
            stores.append(PgVectors(args.pg))
        for vectors in stores:
            retriever = Retriever(embedder, vectors)
            try:
                rows.append(measure(retriever, tree))
            finally:
                retriever.close()
    result = {"commit": tree.commit[:12], "model": embedder.name, "load_s": round(load_s, 2),
              "questions": len(LABELLED), "load_average": os.getloadavg(),
              "results": rows}  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"model {embedder.name} loaded in {load_s:.1f} s; {tree.commit[:12]}, {args.paths}")
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
