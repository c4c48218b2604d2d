"""Runs the reference implementation (scglue 0.4.1) on inputs written by compare_scglue.py.

Executed by bench/.venv-scglue/bin/python, never imported by gluekit. Reads rna.h5ad, atac.h5ad and an edge
table, trains fit_SCGLUE for a fixed number of epochs per stage, writes embeddings and timings.
"""
import json, sys, time
from pathlib import Path

import numpy as np
import pandas as pd

work = Path(sys.argv[1]); cfg = json.loads((work / "config.json").read_text())
import torch
torch.set_num_threads(cfg["threads"])
import anndata as ad, networkx as nx, scglue

rna = ad.read_h5ad(work / "rna.h5ad"); atac = ad.read_h5ad(work / "atac.h5ad")
if cfg.get("distinct_names", True):
    # scglue pairs cells by obs_names: shared names (paired data trained "as unpaired") would put the same cells
    # in both layers' minibatches, a use of the pairing. Distinct names make its minibatches truly unpaired.
    rna.obs_names = "rna:" + rna.obs_names; atac.obs_names = "atac:" + atac.obs_names
edges = pd.read_csv(work / "edges.tsv", sep="\t").sort_values(["source", "target", "sign", "weight"], kind="stable")
g = nx.MultiDiGraph()
g.add_nodes_from(sorted(set(edges.source) | set(edges.target)))  # sorted: independent of PYTHONHASHSEED
g.add_edges_from((s, t, {"weight": float(w), "sign": int(z)}) for s, t, w, z in
                 edges[["source", "target", "weight", "sign"]].itertuples(index=False))
scglue.models.configure_dataset(rna, "NB", use_highly_variable=False, use_layer="counts", use_rep="X_pca")
scglue.models.configure_dataset(atac, "NB", use_highly_variable=False, use_layer="counts", use_rep="X_lsi")
E = cfg["epochs"]
t0 = time.perf_counter()
model = scglue.models.fit_SCGLUE(
    {"rna": rna, "atac": atac}, g,
    init_kws={"random_seed": cfg["seed"]},
    fit_kws={"directory": str(work / "scglue"), "max_epochs": E, "patience": None, "reduce_lr_patience": None},
)
t1 = time.perf_counter()
u_rna = model.encode_data("rna", rna); u_atac = model.encode_data("atac", atac)
np.save(work / "scglue_rna.npy", u_rna); np.save(work / "scglue_atac.npy", u_atac)
(work / "scglue_timing.json").write_text(json.dumps({"fit_seconds": t1 - t0, "epochs_per_stage": E}))
