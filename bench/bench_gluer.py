"""Benchmark gluekit.gluer on 10k RNA + 10k ATAC (gene activity) cells: time and memory per step.

Data: `gluekit.data.simulate_multiome(n_cells=N, n_genes=G)` (paired; the pairing is hidden from
MNN mode and only used to score), ATAC turned into gene activity by `gluekit.graph.gene_activity`.
Steps, run in this order in one process:
  prepare   shared features + log-normalisation of both layers (sparse)
  nmf       joint NMF (k=20, alpha=1, default tol / max_iter), sparse products only
  pairs     filtered MNN pairs (loading MNN + canonical-correlation MNN check + top_k)
  mapping   mapping network training (early stopping)
  run_gluer the one call, end to end (repeats the four steps above)
  impute    RNA imputation for all ATAC cells (chunked, 15 neighbours)
For each step: wall time, the step's peak extra RSS over the RSS when it started (sampled every
20 ms by a background thread with psutil; tracemalloc is not used because its allocation hook slows
the PyTorch training loop several-fold) and the process peak RSS so far (ru_maxrss). FOSCTTM / integration accuracy of the co-embedding
are reported too.

    .venv/bin/python bench/bench_gluer.py                       # N=10000, G=2000, 2 threads
    .venv/bin/python bench/bench_gluer.py --n-cells 2000 --threads 1
    GLUEKIT_DATA=/work/shared/data .venv/bin/python bench/bench_gluer.py --data snare

`--data snare` runs GLUER (MNN mode, pairing hidden) on SNARE-seq adult mouse cortex instead:
RNA restricted to 2,000 highly variable genes with coordinates (scanpy seurat_v3 on counts), ATAC
turned into gene activity on those genes, nuclei with no signal on them removed from both layers;
writes bench/results/bench_gluer_snare.json.

Results: a printed table and bench/results/bench_gluer.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def _snare(n_genes: int):
    "SNARE-seq RNA (HVGs with coordinates) and ATAC gene activity on the same nuclei, none all-zero."
    import scanpy as sc
    from gluekit.data import load_snare_adbrain
    from gluekit.graph import gene_activity
    from gluekit.gluer import filter_low_quality
    d = load_snare_adbrain()
    rna, atac = d["rna"], d["atac"]
    sc.pp.highly_variable_genes(rna, flavor="seurat_v3", n_top_genes=n_genes, layer="counts")
    keep = rna.var["highly_variable"].to_numpy() & rna.var[["chrom", "chromStart", "chromEnd", "strand"]].notna().all(axis=1).to_numpy()
    rna = rna[:, keep].copy()
    ga = filter_low_quality(gene_activity(atac, rna, upstream=2500))
    rna = filter_low_quality(rna)
    common = rna.obs_names.intersection(ga.obs_names)
    return rna[common].copy(), ga[common].copy()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-cells", type=int, default=10_000, help="cells per layer")
    ap.add_argument("--n-genes", type=int, default=2_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", choices=["simulated", "snare"], default="simulated")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/bench_gluer[_snare].json)")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = str(ROOT / "bench" / "results" / ("bench_gluer.json" if args.data == "simulated" else "bench_gluer_snare.json"))

    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
    except ImportError:
        pass
    from gluekit.data import simulate_multiome
    from gluekit.graph import gene_activity
    from gluekit.gluer import (find_pairs, fit_mapping, impute_features, joint_nmf, prepare_layer, run_gluer,
                               shared_features)
    from gluekit.metrics import foscttm_score, integration_accuracy

    t = time.perf_counter()
    if args.data == "snare":
        rna, ga = _snare(args.n_genes)
        args.n_cells = rna.n_obs
        args.n_genes = rna.n_vars  # highly variable genes that also have coordinates
    else:
        sim = simulate_multiome(n_cells=args.n_cells, n_genes=args.n_genes, random_state=0)
        rna = sim["rna"]
        ga = gene_activity(sim["atac"], rna, upstream=2500)
    t_sim = time.perf_counter() - t
    rows = []

    import psutil
    proc = psutil.Process()

    def step(name, fn):
        base = proc.memory_info().rss
        peak = [base]
        done = threading.Event()
        def sample():
            while not done.wait(0.02):
                peak[0] = max(peak[0], proc.memory_info().rss)
        th = threading.Thread(target=sample, daemon=True); th.start()
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        done.set(); th.join()
        peak[0] = max(peak[0], proc.memory_info().rss)
        rows.append(dict(step=name, seconds=round(dt, 2), extra_rss_peak_mib=round((peak[0] - base) / 2**20, 1),
                         process_peak_rss_gib=round(_rss_gib(), 2)))
        return out

    def prep():
        genes = shared_features({"rna": rna, "atac": ga})
        return [prepare_layer(a[:, genes].X, obs_names=a.obs_names, name=k) for k, a in (("rna", rna), ("atac", ga))]
    x0, x1 = step("prepare", prep)
    W, (h0, h1), J = step("nmf", lambda: joint_nmf([x0, x1], n_latent=20, alpha=1.0, progress=False))
    pairs = step("pairs", lambda: find_pairs(h0, h1, x0, x1))
    step("mapping", lambda: fit_mapping(h1[pairs["query"].to_numpy()], h0[pairs["ref"].to_numpy()],
                                        device="cpu", progress=False))
    res = step("run_gluer", lambda: run_gluer(rna, {"atac": ga}, random_state=0, device="cpu", progress=False, copy=True))
    imp = step("impute", lambda: impute_features(res.adatas["rna"], res.adatas["atac"], n_neighbors=15))
    e0, e1 = res.embeddings["rna"], res.embeddings["atac"]
    summary = dict(
        n_cells_per_layer=args.n_cells, n_genes=args.n_genes, threads=args.threads,
        nnz=dict(rna=int(x0.nnz), atac_gene_activity=int(x1.nnz)), nmf_iterations=int(len(J)),
        n_pairs=int(len(pairs)), mapping_epochs=int(len(res.history["atac"])), imputed_shape=list(imp.shape),
        foscttm=round(foscttm_score(e0, e1), 4), integration_accuracy=round(integration_accuracy(e0, e1), 4),
        simulate_seconds=round(t_sim, 1), steps=rows, python=platform.python_version(), torch=torch.__version__,
        machine=platform.machine(), note="shared machine: wall times are inflated by other jobs",
    )
    summary["data"] = args.data
    print(f"GLUER on {args.data}, {args.n_cells} + {args.n_cells} cells, {args.n_genes} genes, {args.threads} thread(s)")
    print(f"{'step':<10} {'seconds':>9} {'extra RSS peak MiB':>19} {'process peak RSS GiB':>21}")
    for r in rows:
        print(f"{r['step']:<10} {r['seconds']:>9.2f} {r['extra_rss_peak_mib']:>19.1f} {r['process_peak_rss_gib']:>21.2f}")
    print(f"NMF iterations {summary['nmf_iterations']}, pairs {summary['n_pairs']}, mapping epochs "
          f"{summary['mapping_epochs']}, FOSCTTM {summary['foscttm']}, integration accuracy {summary['integration_accuracy']}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
