"""Over-alignment of layer-specific cell types: gluekit (discriminator on samples or on means) vs scglue.

    .venv/bin/python bench/bench_unbalanced.py --seeds 0 1 2 3 [--scglue]

The scenario of tests/test_glue.py::test_balancing_reduces_misalignment: 800 unpaired cells per layer, six cell
types with very different proportions, type0 only in RNA and type1 only in ATAC. Mis-alignment is the fraction of
the 15 nearest neighbours (co-embedding) of those layer-specific cells that come from the other layer; lower is
better. gluekit trains 20 + 20 epochs with its default architecture (n_latent 50, n_hidden 256, as scglue's;
`--n-latent 16 --n-hidden 64` is the test's), with and without balancing weights, for each discriminator input;
`--scglue` also runs the reference implementation (scglue 0.4.1, its defaults, 20 + 20 epochs,
always balanced) through bench/_scglue_runner.py. Prints a table and writes bench/results/bench_unbalanced.json.
"""
import argparse, json, os, subprocess, tempfile, warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.neighbors import NearestNeighbors

from gluekit.core import torch_threads
from gluekit.data import preprocess_atac, preprocess_rna, simulate_multiome
from gluekit.glue import GlueModel, configure_dataset
from gluekit.graph import build_guidance_graph, graph_to_edges

HERE = Path(__file__).resolve().parent
PROPS = {"rna": np.array([.30, 0., .40, .15, .10, .05]), "atac": np.array([0., .30, .05, .10, .15, .40])}


def data():
    d = simulate_multiome(n_cells=800, n_genes=200, n_peaks=800, paired=False, proportions=PROPS, random_state=1)
    with torch_threads(torch.get_num_threads()):
        preprocess_rna(d["rna"], n_top_genes=d["rna"].n_vars, n_comps=20); preprocess_atac(d["atac"], n_comps=20)
    configure_dataset(d["rna"], "NB", use_rep="X_pca"); configure_dataset(d["atac"], "NB", use_rep="X_lsi")
    return d


def misalignment(d, zr: np.ndarray, za: np.ndarray, k: int = 15) -> float:
    "Fraction of the k nearest neighbours of layer-specific cells that come from the other layer."
    z = np.concatenate([zr, za])
    layer = np.repeat([0, 1], [d["rna"].n_obs, d["atac"].n_obs])
    ct = np.concatenate([d["rna"].obs.cell_type, d["atac"].obs.cell_type])
    spec = ((layer == 0) & (ct == "type0")) | ((layer == 1) & (ct == "type1"))
    idx = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z[spec], return_distance=False)[:, 1:]
    return float((layer[idx] != layer[spec][:, None]).mean())


def run_scglue(d, graph, seed: int) -> float:
    w = Path(tempfile.mkdtemp(prefix="gluekit-unbalanced-"))
    for k in ("rna", "atac"):
        a = d[k].copy(); a.uns = {}; a.write_h5ad(w / f"{k}.h5ad")
    graph_to_edges(graph).to_csv(w / "edges.tsv", sep="\t", index=False)
    (w / "config.json").write_text(json.dumps({"epochs": 20, "threads": 1, "seed": seed}))
    subprocess.run([HERE / ".venv-scglue" / "bin" / "python", HERE / "_scglue_runner.py", w], check=True,
                   env={**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}, capture_output=True)
    return misalignment(d, np.load(w / "scglue_rna.npy"), np.load(w / "scglue_atac.npy"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--n-latent", type=int, default=50)
    ap.add_argument("--n-hidden", type=int, default=256)
    ap.add_argument("--scglue", action="store_true", help="also run scglue (needs bench/.venv-scglue, see compare_scglue.py)")
    args = ap.parse_args()
    torch.set_num_threads(1); warnings.simplefilter("ignore")
    d = data(); graph = build_guidance_graph(d["rna"], d["atac"])
    rows = []
    for s in args.seeds:
        row = {"seed": s}
        for mode in ("sample", "mean"):
            for bal in (False, True):
                m = GlueModel(d, graph, n_latent=args.n_latent, n_hidden=args.n_hidden, random_state=s).fit(
                    d, max_epochs=20, balance=bal, progress=False, device="cpu", random_state=s, discriminator_input=mode)
                row[f"{mode}{', balanced' if bal else ''}"] = misalignment(d, m.encode_data("rna", d["rna"]),
                                                                           m.encode_data("atac", d["atac"]))
        if args.scglue:
            row["scglue (balanced)"] = run_scglue(d, graph, s)
        rows.append(row); print(row, flush=True)
    t = pd.DataFrame(rows).set_index("seed")
    t.loc["median"] = t.median()
    print("\nmis-alignment of layer-specific types (lower is better)\n" + t.round(3).to_string())
    arch = "" if (args.n_latent, args.n_hidden) == (50, 256) else f"_l{args.n_latent}h{args.n_hidden}"
    out = HERE / "results" / f"bench_unbalanced{arch}.json"
    out.write_text(json.dumps(t.round(4).reset_index().to_dict(orient="records"), indent=1))


if __name__ == "__main__":
    main()
