"""GLUE training throughput on simulated multiome data (gluekit.glue).

Usage: python bench/bench_glue.py [--sizes 1000 10000] [--threads 1] [--epochs 3] [--genes 2000] [--peaks 10000]
Each size runs in its own subprocess (so peak RSS is per size). Prints a table and writes
bench/results/bench_glue.json. Reference point (issue 4): scglue 0.4.1 took ~0.16 s per minibatch step
of 128 cells on 1,000 cells x (2,000 genes + 10,000 peaks), CPU, 2 cores.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_one(n_cells: int, threads: int, epochs: int, genes: int, peaks: int, e2e_epochs: int) -> dict:
    "Benchmark one data size (runs inside the subprocess)."
    import resource
    import warnings
    warnings.filterwarnings("ignore")
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    from gluekit.data import preprocess_atac, preprocess_rna, simulate_multiome
    from gluekit.glue import GlueModel, _LayerData, _Sampler, configure_dataset
    from gluekit.graph import build_guidance_graph
    from gluekit.metrics import foscttm_score
    import pandas as pd

    t0 = time.perf_counter()
    d = simulate_multiome(n_cells=n_cells, n_genes=genes, n_peaks=peaks, random_state=0)
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    preprocess_rna(d["rna"], n_top_genes=genes, n_comps=100)
    preprocess_atac(d["atac"], n_comps=100)
    g = build_guidance_graph(d["rna"], d["atac"])
    configure_dataset(d["rna"], "NB", use_rep="X_pca"); configure_dataset(d["atac"], "NB", use_rep="X_lsi")
    t_prep = time.perf_counter() - t0
    # training throughput: `epochs` epochs per stage, default hyperparameters (m=50, 2x256, batch 128)
    m = GlueModel(d, g, random_state=0)
    t0 = time.perf_counter()
    m.fit(d, max_epochs=epochs, balance=False, patience=10**6, progress=False, device="cpu")
    t_fit = time.perf_counter() - t0
    h = m.history.iloc[1:]      # drop the first epoch (warm-up)
    step_s = float(h.seconds.sum() / h.steps.sum())
    # data loading alone: sampling indices and gathering sparse minibatch rows for one epoch
    dev = torch.device("cpu")
    data = {k: _LayerData(d[k], k, m.config["layers"][k], pd.Index(m.config["layers"][k]["features"]), None, dev)
            for k in m.names}
    smp = _Sampler({k: np.arange(int(0.9 * d[k].n_obs)) for k in m.names}, 128, torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    for idx, _ in smp.epoch():
        for k in m.names:
            xb = data[k].x.rows(idx[k]); data[k].encoder_input(idx[k], xb)
    load_s = (time.perf_counter() - t0) / smp.steps
    out = dict(n_cells=n_cells, n_genes=genes, n_peaks=peaks, threads=threads, n_edges=m.config["n_edges"],
               steps_per_epoch=int(h.steps.iloc[0]), s_per_epoch=float(h.seconds.mean()), s_per_step=step_s,
               steps_per_s=1 / step_s, data_loading_s_per_step=load_s, fit_s=t_fit, simulate_s=t_sim,
               preprocess_graph_s=t_prep)
    if e2e_epochs:
        t0 = time.perf_counter()
        m2 = GlueModel(d, g, random_state=0).fit(d, max_epochs=e2e_epochs, progress=False, device="cpu")
        z = {k: m2.encode_data(k, d[k]) for k in m2.names}
        out["e2e_epochs_per_stage"] = e2e_epochs
        out["e2e_fit_s"] = time.perf_counter() - t0
        out["e2e_foscttm"] = float(foscttm_score(z["rna"], z["atac"]))
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--genes", type=int, default=2000)
    p.add_argument("--peaks", type=int, default=10000)
    p.add_argument("--e2e-epochs", type=int, default=0, help="also time a full two-stage fit with this cap and score FOSCTTM")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(json.dumps(run_one(a.one, a.threads, a.epochs, a.genes, a.peaks, a.e2e_epochs)))
        return
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads), GLUEKIT_PROGRESS="0")
    rows = []
    for n in a.sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--threads", str(a.threads), "--epochs", str(a.epochs),
               "--genes", str(a.genes), "--peaks", str(a.peaks), "--e2e-epochs", str(a.e2e_epochs)]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode:
            sys.stderr.write(r.stderr); raise SystemExit(r.returncode)
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    cols = ["n_cells", "threads", "steps_per_epoch", "s_per_epoch", "s_per_step", "steps_per_s",
            "data_loading_s_per_step", "peak_rss_gb"] + (["e2e_fit_s", "e2e_foscttm"] if a.e2e_epochs else [])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols))
    res = dict(machine=dict(platform=platform.platform(), cpu_count=os.cpu_count(), python=platform.python_version()),
               command=" ".join([os.path.relpath(__file__)] + sys.argv[1:]), results=rows)
    out = HERE / "results" / "bench_glue.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
