"""Benchmark gluekit.metrics: FOSCTTM and the full `evaluate` table at 10k and 100k cells (time, peak RSS).

Each case runs in a fresh subprocess so that its peak RSS (ru_maxrss) is its own. Usage:

    .venv/bin/python bench/bench_metrics.py                 # sizes 10000 100000, 2 threads
    .venv/bin/python bench/bench_metrics.py --sizes 10000 --threads 1

Cases (N = size):
- foscttm: N paired cells per layer, 50-dim embeddings (y = x + noise); `foscttm_score` (blockwise).
- table:   `evaluate` with every metric on N cells in all (N/2 paired cells per layer, from
           `gluekit.data.simulate_multiome`, 500 genes, 4,000 peaks), one aligned embedding (50 dims),
           neighbour conservation against a second noisy embedding, integration consistency on the
           guidance graph (gluekit.graph when available, else the planted links) with 200 metacells.
- breakdown: the same data, one `evaluate(metrics=[m])` call per metric, to show where the time goes
           (MAP and graph connectivity then each pay for their own kNN search); sizes <= --breakdown-max only.
Results: a printed table and bench/results/bench_metrics.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def _set_threads(n: int) -> None:
    import torch
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)
    except ImportError:
        pass


def _embeddings(n: int, dim: int = 50, seed: int = 0):
    import numpy as np
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, dim)).astype(np.float32)
    return x, (x + r.normal(scale=0.3, size=x.shape)).astype(np.float32)


def _simulated(n_total: int, seed: int = 0):
    import numpy as np
    import pandas as pd
    from gluekit.data import simulate_multiome
    adatas = simulate_multiome(n_cells=n_total // 2, n_genes=500, random_state=seed)
    r = np.random.default_rng(seed + 1)
    z = np.asarray(adatas["rna"].obsm["X_latent"], dtype=np.float64)
    proj = r.normal(size=(z.shape[1], 50)) / np.sqrt(z.shape[1])
    for a in adatas.values():
        zz = np.asarray(a.obsm["X_latent"], dtype=np.float64) @ proj
        a.obsm["X_glue"] = (zz + r.normal(scale=0.2 * zz.std(), size=zz.shape)).astype(np.float32)
        a.obsm["X_own"] = (zz + r.normal(scale=0.4 * zz.std(), size=zz.shape)).astype(np.float32)
    try:
        from gluekit.graph import build_guidance_graph
        graph, source = build_guidance_graph(adatas["rna"], adatas["atac"]), "gluekit.graph.build_guidance_graph"
    except ImportError:
        links = adatas["atac"].uns["true_links"]
        graph = pd.DataFrame({"source": links["peak"], "target": links["gene"], "weight": 1.0, "sign": links["sign"]})
        source = "planted links (gluekit.graph not available)"
    return adatas, graph, source


def run_case(case: str, n: int, threads: int) -> dict:
    """Run one case in this process and return its measurements."""
    _set_threads(threads)
    from gluekit import metrics as M
    out = {"case": case, "n_cells": n, "threads": threads}
    if case == "foscttm":
        x, y = _embeddings(n)
        out["rss_before_gib"] = _rss_gib()
        t = time.perf_counter()
        out["foscttm"] = M.foscttm_score(x, y)
        out["seconds"] = time.perf_counter() - t
    else:
        t = time.perf_counter()
        adatas, graph, out["graph"] = _simulated(n)
        out["data_seconds"] = time.perf_counter() - t
        out["rss_before_gib"] = _rss_gib()
        kw = dict(use_rep="X_glue", single_rep={"rna": "X_own", "atac": "X_own"}, graph=graph, progress=False)
        if case == "table":
            t = time.perf_counter()
            table = M.evaluate(adatas, **kw)
            out["seconds"] = time.perf_counter() - t
            out["metrics"] = {k: float(v) for k, v in table.iloc[0].items()}
        else:
            out["per_metric_seconds"] = {}
            for m in M.ALL_METRICS:
                t = time.perf_counter()
                M.evaluate(adatas, metrics=[m], **kw)
                out["per_metric_seconds"][m] = time.perf_counter() - t
            out["seconds"] = sum(out["per_metric_seconds"].values())
    out["peak_rss_gib"] = _rss_gib()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--cases", nargs="+", default=["foscttm", "table", "breakdown"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--breakdown-max", type=int, default=20_000, help="run the per-metric breakdown only up to this size")
    p.add_argument("--one", nargs=2, metavar=("CASE", "N"), help=argparse.SUPPRESS)  # child mode
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "bench_metrics.json"))
    a = p.parse_args(argv)
    if a.one:
        print(json.dumps(run_case(a.one[0], int(a.one[1]), a.threads)))
        return 0
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads),
               MKL_NUM_THREADS=str(a.threads), GLUEKIT_PROGRESS="0")
    results = []
    for n in a.sizes:
        for case in a.cases:
            if case == "breakdown" and n > a.breakdown_max:
                continue
            r = subprocess.run([sys.executable, __file__, "--one", case, str(n), "--threads", str(a.threads)],
                               capture_output=True, text=True, env=env, cwd=ROOT)
            if r.returncode != 0:
                print(r.stderr[-3000:], file=sys.stderr)
                results.append({"case": case, "n_cells": n, "error": r.stderr.strip().splitlines()[-1:]})
                continue
            res = json.loads(r.stdout.strip().splitlines()[-1])
            results.append(res)
            print(f"{case:>10} n={n:>7,}  {res['seconds']:8.1f} s  peak RSS {res['peak_rss_gib']:6.2f} GiB "
                  f"(before the metric: {res['rss_before_gib']:.2f})", flush=True)
    print("\ncase        cells     seconds  peak RSS GiB")
    for r in results:
        if "error" in r:
            print(f"{r['case']:<10} {r['n_cells']:>7,}  failed: {r['error']}")
        else:
            print(f"{r['case']:<10} {r['n_cells']:>7,}  {r['seconds']:9.1f}  {r['peak_rss_gib']:8.2f}")
            for m, s in r.get("per_metric_seconds", {}).items():
                print(f"  {m:<28} {s:8.1f} s")
    meta = {"machine": platform.platform(), "cpus": os.cpu_count(), "threads": a.threads, "python": sys.version.split()[0]}
    from gluekit.core import atomic_path
    with atomic_path(a.out) as tmp:
        tmp.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
