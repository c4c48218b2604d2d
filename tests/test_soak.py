"""Soak: train once, then save, load and encode repeatedly (bounded in count and time); memory must not grow."""
import gc
import time

import numpy as np
import psutil
import torch

from gluekit.core import torch_threads
from gluekit.data import preprocess_atac, preprocess_rna, simulate_multiome
from gluekit.glue import GlueModel, configure_dataset
from gluekit.graph import build_guidance_graph


def test_save_load_encode_loop_has_no_memory_growth(tmp_path):
    d = simulate_multiome(n_cells=300, n_genes=150, n_peaks=300, random_state=3)
    with torch_threads(1):
        preprocess_rna(d["rna"], n_top_genes=150, n_comps=10)
        preprocess_atac(d["atac"], n_comps=10)
        configure_dataset(d["rna"], "NB", use_rep="X_pca")
        configure_dataset(d["atac"], "NB", use_rep="X_lsi")
        g = build_guidance_graph(d["rna"], d["atac"])
        model = GlueModel(d, g, n_latent=8, n_hidden=32, random_state=0).fit(d, max_epochs=2, progress=False,
                                                                              device="cpu")
        ref = model.encode_data("rna", d["rna"])
        proc = psutil.Process()
        rss, t0 = [], time.perf_counter()
        for i in range(40):
            path = tmp_path / f"m{i % 2}"
            model.save(path)
            model = GlueModel.load(path)
            u = model.encode_data("rna", d["rna"])
            assert np.array_equal(u, ref), f"iteration {i}: a reloaded model encodes differently"
            gc.collect()
            rss.append(proc.memory_info().rss)
            if time.perf_counter() - t0 > 90:  # bounded in time as well as in count
                break
    assert len(rss) >= 15, f"only {len(rss)} iterations in 90 s"
    warm = np.median(rss[3:8])
    growth = (np.median(rss[-5:]) - warm) / 2**20
    assert growth < 25, f"RSS grew by {growth:.1f} MiB over {len(rss)} save/load/encode cycles"
