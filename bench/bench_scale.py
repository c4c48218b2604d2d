"""How GLUE's cost grows with the number of cells and of peaks (gluekit.scale, issue 10).

Usage: python bench/bench_scale.py [--cells 1000 3000 10000 30000 100000] [--max-cells 30000]
                                   [--peaks 10000 30000 100000 200000] [--epochs 2] [--threads 1]
                                   [--device cpu] [--tag ""]
Each size runs in its own subprocess, so peak memory is per size. Per size it times simulation,
balanced preprocessing (gluekit.scale.balanced_pca / balanced_lsi), graph construction and
training (GlueModel.fit with `--epochs` epochs per stage, balancing weights on), and reads the
process memory from /proc/self/status:
  data_rss_mb   resident memory once the data, graph and representations are built
  train_peak_mb peak resident memory during training (the peak counter is reset just before fit)
  train_extra_mb = train_peak_mb - data_rss_mb, what training adds on top of the data
Prints a table, writes bench/results/bench_scale{tag}.json and log-log plots
bench/results/bench_scale{tag}_cells.png, bench/results/bench_scale{tag}_peaks.png.
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


def _mem() -> dict:
    "Current and peak resident memory of this process (MB)."
    d = dict(line.split(":", 1) for line in open("/proc/self/status"))
    kb = lambda k: int(d[k].split()[0]) / 1024
    return dict(rss=kb("VmRSS"), hwm=kb("VmHWM"))


def _reset_peak():
    "Reset VmHWM to the current RSS (Linux >= 4.0)."
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def run_one(n_cells: int, n_genes: int, n_peaks: int, epochs: int, threads: int, device: str) -> dict:
    "Benchmark one size (inside the subprocess)."
    import gc
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    torch.set_num_threads(threads)
    from gluekit.data import simulate_multiome
    from gluekit.glue import GlueModel, configure_dataset
    from gluekit.graph import build_guidance_graph
    from gluekit.metrics import foscttm_score
    from gluekit.scale import balanced_lsi, balanced_pca

    t = {}
    t0 = time.perf_counter()
    d = simulate_multiome(n_cells=n_cells, n_genes=n_genes, n_peaks=n_peaks, random_state=0)
    t["simulate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    balanced_pca(d["rna"], group_key="cell_type", n_top_genes=n_genes, n_comps=50)
    balanced_lsi(d["atac"], group_key="cell_type", n_comps=50)
    t["preprocess_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    g = build_guidance_graph(d["rna"], d["atac"])
    t["graph_s"] = time.perf_counter() - t0
    configure_dataset(d["rna"], "NB", use_rep="X_pca"); configure_dataset(d["atac"], "NB", use_rep="X_lsi")
    nnz = int(d["rna"].layers["counts"].nnz + d["atac"].layers["counts"].nnz)
    gc.collect()
    data = _mem()["rss"]
    _reset_peak()
    m = GlueModel(d, g, random_state=0)
    t0 = time.perf_counter()
    m.fit(d, max_epochs=epochs, patience=10**6, progress=False, device=device)
    t["fit_s"] = time.perf_counter() - t0
    peak = _mem()["hwm"]
    h = m.history
    steps = int(h.steps.sum())
    t["epoch_s"] = float(h.seconds.mean())
    t["step_ms"] = 1e3 * float(h.seconds.sum() / steps)
    t["balancing_and_overhead_s"] = t["fit_s"] - float(h.seconds.sum())
    ft = foscttm_score(m.encode_data("rna", d["rna"]), m.encode_data("atac", d["atac"]))
    return dict(n_cells=n_cells, n_genes=n_genes, n_peaks=n_peaks, epochs_per_stage=epochs, steps=steps,
                n_edges=m.config["n_edges"], nnz=nnz, data_rss_mb=data, train_peak_mb=peak,
                train_extra_mb=peak - data, foscttm=float(ft), **t)


def _spawn(n_cells, n_genes, n_peaks, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", str(n_cells), str(n_genes), str(n_peaks),
           "--epochs", str(args.epochs), "--threads", str(args.threads), "--device", args.device]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads), NUMBA_NUM_THREADS=str(args.threads))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"size {n_cells} cells / {n_peaks} peaks failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _table(rows, key):
    cols = [key, "steps", "epoch_s", "step_ms", "fit_s", "preprocess_s", "graph_s", "data_rss_mb",
            "train_peak_mb", "train_extra_mb", "foscttm"]
    lines = ["  ".join(f"{c:>14}" for c in cols)]
    for r in rows:
        lines.append("  ".join(f"{r[c]:>14.4g}" if isinstance(r[c], float) else f"{r[c]:>14}" for c in cols))
    return "\n".join(lines)


def _plot(rows, key, xlabel, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x = [r[key] for r in rows]
    fig, axs = plt.subplots(1, 2, figsize=(9, 3.5))
    for c, lab in [("epoch_s", "s / epoch (training)"), ("fit_s", "fit, total s"), ("preprocess_s", "preprocessing s"),
                   ("graph_s", "graph s")]:
        axs[0].loglog(x, [max(r[c], 1e-3) for r in rows], "o-", label=lab)
    axs[0].set(xlabel=xlabel, ylabel="seconds"); axs[0].legend(fontsize=7)
    for c, lab in [("data_rss_mb", "RSS with data loaded"), ("train_peak_mb", "peak RSS in training"),
                   ("train_extra_mb", "training on top of data")]:
        axs[1].loglog(x, [max(r[c], 1) for r in rows], "o-", label=lab)
    axs[1].set(xlabel=xlabel, ylabel="MB"); axs[1].legend(fontsize=7)
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", type=int, nargs="*", default=[1000, 3000, 10000, 30000, 100000])
    p.add_argument("--max-cells", type=int, default=30000, help="skip --cells sizes above this")
    p.add_argument("--peaks", type=int, nargs="*", default=[10000, 30000, 100000, 200000])
    p.add_argument("--genes", type=int, default=500, help="genes in the cells sweep (peaks default 8x)")
    p.add_argument("--peak-cells", type=int, default=2000, help="cells in the peaks sweep")
    p.add_argument("--peak-genes", type=int, default=2000, help="genes in the peaks sweep")
    p.add_argument("--epochs", type=int, default=2, help="epochs per stage")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tag", default="", help="suffix of the output files (e.g. _gpu)")
    p.add_argument("--worker", type=int, nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(run_one(*args.worker, args.epochs, args.threads, args.device)))
        return
    import torch
    machine = dict(platform=platform.platform(), python=platform.python_version(), torch=torch.__version__,
                   cpus=os.cpu_count(), threads=args.threads, device=args.device,
                   gpu=torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None,
                   note="shared 2-vCPU machine: timings are inflated by other users' jobs" if os.cpu_count() <= 2 else "")
    cells = []
    for n in [n for n in args.cells if n <= args.max_cells]:
        cells.append(_spawn(n, args.genes, 8 * args.genes, args)); print(f"done: {n} cells", file=sys.stderr)
    peaks = []
    for n in args.peaks:
        peaks.append(_spawn(args.peak_cells, args.peak_genes, n, args)); print(f"done: {n} peaks", file=sys.stderr)
    out = dict(machine=machine, command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
               date=time.strftime("%Y-%m-%d"), vs_cells=cells, vs_peaks=peaks)
    res = HERE / "results"; res.mkdir(exist_ok=True)
    (res / f"bench_scale{args.tag}.json").write_text(json.dumps(out, indent=1))
    if cells:
        print("vs cells\n" + _table(cells, "n_cells"))
        _plot(cells, "n_cells", "cells per layer", res / f"bench_scale{args.tag}_cells.png")
    if peaks:
        print("vs peaks\n" + _table(peaks, "n_peaks"))
        _plot(peaks, "n_peaks", "peaks", res / f"bench_scale{args.tag}_peaks.png")


if __name__ == "__main__":
    main()
