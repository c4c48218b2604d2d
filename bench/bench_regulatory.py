"""Benchmark of gluekit.regulatory: how well GLUE regulatory scores rank the simulator's planted links.

Usage: .venv/bin/python bench/bench_regulatory.py [--cells 500] [--genes 200] [--threads 1] [--quick | --baselines-only]
Prints a table (AUROC / average precision against all planted links and against the activating ones, for GLUE
under several training settings, the paired-cell correlation, |correlation|, genomic distance alone, and a
*supervised* combinations as upper references: logistic on distance and correlation, and gradient boosting on
distance, correlation, LASSO and the number of candidates of the gene, both cross-validated on the truth) and writes
bench/results/bench_regulatory.json. About 5 minutes on one CPU thread (`--quick`: the first two settings;
`--baselines-only`: no GLUE, writes bench_regulatory_baselines_<cells>.json; use it to see what any method could reach).
"""
from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import cross_val_predict

from gluekit.data import preprocess_atac, preprocess_rna, simulate_multiome
from gluekit.glue import configure_dataset, fit_glue
from gluekit.graph import build_guidance_graph
from gluekit.regulatory import _labels, candidate_pairs, lasso_scores, peak_gene_correlation, regulatory_scores

# GLUE settings compared: (label, graph scheme, epochs per stage, seeds, fit keywords)
SETTINGS = [
    ("GLUE window, 20 ep", "window", 20, 1, {}),
    ("GLUE window, 150 ep lr 5e-3", "window", 150, 1, {"lr": 5e-3}),
    ("GLUE window, 20 ep x 4 seeds", "window", 20, 4, {}),
    ("GLUE standard, 20 ep", "standard", 20, 1, {}),
    ("GLUE window, 20 ep, lam_graph 5", "window", 20, 1, {"lam_graph": 5.0}),
]


def metrics(y: np.ndarray, pos: np.ndarray, s: np.ndarray) -> dict:
    "AUROC / AP against all planted links and against the activating ones (repressive links left out)."
    keep = ~(y & ~pos)
    return dict(auroc=roc_auc_score(y, s), ap=average_precision_score(y, s),
                auroc_act=roc_auc_score(pos[keep], s[keep]), ap_act=average_precision_score(pos[keep], s[keep]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=500); ap.add_argument("--genes", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1); ap.add_argument("--quick", action="store_true")
    ap.add_argument("--baselines-only", action="store_true", help="no GLUE: correlation, LASSO, distance, supervised ceilings")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    d = simulate_multiome(n_cells=args.cells, n_genes=args.genes, random_state=0)
    rna, atac = d["rna"], d["atac"]
    truth = atac.uns["true_links"]
    preprocess_rna(rna, n_top_genes=rna.n_vars, n_comps=30); preprocess_atac(atac, n_comps=30)
    configure_dataset(rna, "NB", layer="counts", use_rep="X_pca")
    configure_dataset(atac, "NB", layer="counts", use_rep="X_lsi")
    cand = candidate_pairs(rna, atac)
    y, pos = _labels(cand, truth), _labels(cand, truth[truth["sign"] > 0])
    r = peak_gene_correlation(rna, atac, cand)
    logd = -np.log1p(cand["distance"].to_numpy() / 1e3)
    comb = cross_val_predict(LogisticRegression(), np.c_[logd, r, np.abs(r)], y, cv=5, method="predict_proba")[:, 1]
    rows = {"paired correlation": metrics(y, pos, r), "|paired correlation|": metrics(y, pos, np.abs(r)),
            "distance alone": metrics(y, pos, logd),
            "supervised distance+corr (uses truth)": metrics(y, pos, comb)}
    if args.baselines_only:
        lasso = lasso_scores(rna, atac, cand, progress=False)
        n_cand = cand.groupby("gene")["peak"].transform("size").to_numpy()
        feats = np.c_[logd, r, np.abs(r), lasso, np.abs(lasso), np.log(n_cand)]
        gb = cross_val_predict(HistGradientBoostingClassifier(max_iter=200, random_state=0), feats, y, cv=5,
                               method="predict_proba")[:, 1]
        rows.update({"|LASSO|": metrics(y, pos, np.abs(lasso)),
                     "supervised boosting, 6 features (uses truth)": metrics(y, pos, gb)})
    secs = {}
    runs = [] if args.baselines_only else SETTINGS[:2] if args.quick else SETTINGS
    for label, scheme, epochs, n_seeds, kw in runs:
        graph = build_guidance_graph(rna, atac, scheme=scheme)
        t0 = time.perf_counter()
        models = [fit_glue(d, graph, max_epochs=epochs, random_state=s, device="cpu", progress=False, paired=True,
                           **kw) for s in range(n_seeds)]
        secs[label] = time.perf_counter() - t0
        links, _ = regulatory_scores(models, cand, progress=False)
        rows[label] = metrics(y, pos, links["score"].to_numpy())
        rows[label + " (z in distance bin)"] = metrics(y, pos, links["zscore"].to_numpy())
        print(label, {k: round(v, 3) for k, v in rows[label].items()}, f"{secs[label]:.0f}s", flush=True)
    table = pd.DataFrame(rows).T.round(3)
    print(f"\n{args.cells} paired cells, {len(cand)} candidates, {int(y.sum())} planted "
          f"({int(pos.sum())} activating), {args.threads} thread(s)\n")
    print(table.to_string())
    name = f"bench_regulatory_baselines_{args.cells}.json" if args.baselines_only else "bench_regulatory.json"
    out = Path(__file__).parent / "results" / name
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(dict(table=table.to_dict(orient="index"), fit_seconds=secs, n_cells=args.cells,
                                   n_genes=args.genes, n_pairs=len(cand), n_true=int(y.sum()), threads=args.threads,
                                   torch=torch.__version__, machine=platform.platform()), indent=1))


if __name__ == "__main__":
    main()
