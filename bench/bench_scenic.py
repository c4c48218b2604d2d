"""Benchmark of the ranking step: time and peak memory of `rank_genes_by_tf`.

2,000 genes x 300 TFs x 1,000 null samples (16,000 peaks, ~4 links per gene, ~1 site per peak).
Usage: .venv/bin/python bench/bench_scenic.py [--n-genes 2000 --n-tfs 300 --n-samples 1000]
Writes bench/results/scenic_ranking.json and prints a table.
"""
import argparse
import json
import os
import platform
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import torch

torch.set_num_threads(1)  # the ranking is numpy/scipy; pin torch anyway so runs compare

from gluekit.scenic import count_tf_sites, rank_genes_by_tf


def synthetic(n_genes, n_tfs, n_peaks, links_per_gene, sites_per_peak, seed=0):
    "Peaks of varied length, random TF sites, random peak -> gene links."
    r = np.random.default_rng(seed)
    start = np.arange(n_peaks) * 5_000
    length = r.integers(200, 2_000, n_peaks)
    peaks = pd.DataFrame({"chrom": "chr1", "chromStart": start, "chromEnd": start + length},
                         index=[f"chr1:{s}-{s + l}" for s, l in zip(start, length)])
    n_sites = int(sites_per_peak * n_peaks)
    host = r.integers(0, n_peaks, n_sites)
    pos = start[host] + r.integers(0, 150, n_sites)
    sites = pd.DataFrame({"chrom": "chr1", "chromStart": pos, "chromEnd": pos + 20,
                          "tf": [f"TF{k:03d}" for k in r.integers(0, n_tfs, n_sites)]})
    n_links = links_per_gene * n_genes
    links = pd.DataFrame({"peak": peaks.index[r.integers(0, n_peaks, n_links)],
                          "gene": [f"G{k:05d}" for k in r.integers(0, n_genes, n_links)]})
    return peaks, sites, links


class PeakRSS:
    "Sample the process RSS in a thread; report the peak above the starting level."
    def __init__(self, interval=0.02):
        self.p, self.interval, self.peak, self._run = psutil.Process(), interval, 0, True
    def __enter__(self):
        self.base = self.p.memory_info().rss
        self.t = threading.Thread(target=self._loop, daemon=True); self.t.start(); return self
    def _loop(self):
        while self._run:
            self.peak = max(self.peak, self.p.memory_info().rss); time.sleep(self.interval)
    def __exit__(self, *a):
        self._run = False; self.t.join(); self.peak = max(self.peak, self.p.memory_info().rss)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-genes", type=int, default=2000)
    ap.add_argument("--n-tfs", type=int, default=300)
    ap.add_argument("--n-samples", type=int, default=1000)
    ap.add_argument("--n-peaks", type=int, default=16000)
    ap.add_argument("--links-per-gene", type=int, default=4)
    ap.add_argument("--sites-per-peak", type=float, default=1.0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "scenic_ranking.json"))
    a = ap.parse_args()
    peaks, sites, links = synthetic(a.n_genes, a.n_tfs, a.n_peaks, a.links_per_gene, a.sites_per_peak)
    t0 = time.perf_counter()
    bind = count_tf_sites(peaks, sites)
    t_bind = time.perf_counter() - t0
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        res = rank_genes_by_tf(bind, links, genes=[f"G{k:05d}" for k in range(a.n_genes)], n_samples=a.n_samples,
                               progress=False, random_state=0)
        t_rank = time.perf_counter() - t0
    dense_bytes = res.pval.shape[0] * res.pval.shape[1] * a.n_samples * 4
    row = dict(n_genes=res.pval.shape[0], n_tfs=res.pval.shape[1], n_samples=a.n_samples, n_peaks=a.n_peaks,
               n_links=int(res.params["n_links"]), n_sites=len(sites), count_sites_s=round(t_bind, 2),
               rank_s=round(t_rank, 2), peak_extra_rss_mb=round((mem.peak - mem.base) / 2**20, 1),
               dense_null_would_need_mb=round(dense_bytes / 2**20, 1), cpu_count=os.cpu_count(),
               omp_num_threads=os.environ.get("OMP_NUM_THREADS"), python=platform.python_version())
    print(pd.DataFrame([row]).T.to_string(header=False))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
