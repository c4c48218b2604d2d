"""Side by side with the reference implementation: gluekit vs scglue 0.4.1 on the same data, graph and epochs.

    .venv/bin/python bench/compare_scglue.py --n-cells 1000 --genes 2000 --peaks 10000 --epochs 50 --threads 1
    GLUEKIT_DATA=../shared/data .venv/bin/python bench/compare_scglue.py --data snare --n-cells 0 --epochs 3 --gluekit-epochs 6

Installs scglue==0.4.1 (with torch==2.13.0 and the project's pins) into bench/.venv-scglue on first use, writes the
shared inputs (gluekit's simulator or SNARE-seq, same preprocessing, same guidance graph with sorted edges) to a
work folder, trains both for the same number of epochs per stage (pretraining and fine-tuning, early stopping off)
with the same torch thread count, and prints training throughput (minibatch steps of 128 cells per second) and
FOSCTTM on the true pairing. Results go to bench/results/compare_scglue_<data>_<n>.json.

Both tools train the layers as unpaired. scglue matches cells across layers by obs_names, and both the simulator's
paired cells and SNARE-seq's nuclei carry the same names in both layers; so scglue gets layer-prefixed names
(`--scglue-names distinct`, the default), otherwise every scglue minibatch would hold the same cells in both layers.
With distinct names scglue's epoch walks the union of the names, about twice gluekit's steps per epoch (gluekit
walks the largest layer): `--epochs 3 --gluekit-epochs 6` gives both the same number of minibatch steps on SNARE-seq.
"""
import argparse, json, math, os, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-scglue"
PINS = ["torch==2.13.0", "scglue==0.4.1", "numpy==2.4.6", "pandas==2.3.3", "scanpy==1.11.5", "anndata==0.12.19",
        "pynndescent==0.5.13", "setuptools<81"]


def ensure_scglue() -> Path:
    py = VENV / "bin" / "python"
    if not py.exists() or subprocess.run([py, "-c", "import scglue"], capture_output=True).returncode:
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", *PINS], check=True)
    return py


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", choices=["sim", "snare"], default="sim")
    ap.add_argument("--n-cells", type=int, default=1000)
    ap.add_argument("--genes", type=int, default=2000)
    ap.add_argument("--peaks", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=50, help="epochs per stage (pretraining and fine-tuning)")
    ap.add_argument("--gluekit-epochs", type=int, default=None,
                    help="gluekit's epochs per stage when they differ (e.g. equal minibatch steps: see below)")
    ap.add_argument("--scglue-names", choices=["distinct", "shared"], default="distinct",
                    help="distinct: scglue sees layer-prefixed obs_names, so its minibatches are unpaired like "
                         "gluekit's; shared: the data's own names, which scglue uses to put the same cells in "
                         "both layers' minibatches (a use of the pairing)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-scglue", action="store_true")
    ap.add_argument("--discriminator-input", choices=["sample", "mean"], default="sample",
                    help="gluekit: what the discriminator sees (sampled embeddings, or posterior means as scglue does)")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import numpy as np, torch
    torch.set_num_threads(args.threads)
    import gluekit.data as gd, gluekit.graph as gg, gluekit.glue as gl
    from gluekit.metrics import foscttm_score

    if args.data == "sim":
        ads = gd.simulate_multiome(n_cells=args.n_cells, n_genes=args.genes, n_peaks=args.peaks, paired=True,
                                   random_state=args.seed)
    else:
        ads = gd.load_snare_adbrain()
        if args.n_cells and args.n_cells < ads["rna"].n_obs:
            idx = np.sort(np.random.default_rng(args.seed).choice(ads["rna"].n_obs, args.n_cells, replace=False))
            ads = {k: v[idx].copy() for k, v in ads.items()}
    rna, atac = ads["rna"], ads["atac"]
    gd.preprocess_rna(rna, random_state=args.seed)
    gd.preprocess_atac(atac, random_state=args.seed)
    graph = gg.build_guidance_graph(rna, atac, scheme="standard", drop_missing=args.data == "snare")
    edges = gg.graph_to_edges(graph)
    # both tools model the same features: those in the graph
    keep = set(edges.source) | set(edges.target)
    rna = rna[:, rna.var_names.isin(keep)].copy(); atac = atac[:, atac.var_names.isin(keep)].copy()
    edges = edges[edges.source.isin(set(rna.var_names) | set(atac.var_names)) &
                  edges.target.isin(set(rna.var_names) | set(atac.var_names))]
    # minibatch steps per epoch: gluekit walks the largest layer; scglue walks the union of obs_names, twice the
    # cells when the names are distinct (each missing layer row is filled with a random cell of that layer)
    steps_per_epoch = math.ceil(math.floor(0.9 * rna.n_obs) / 128)
    union = rna.n_obs * (2 if args.scglue_names == "distinct" else 1)
    scglue_steps_per_epoch = math.ceil(round(0.9 * union) / 128)
    gk_epochs = args.gluekit_epochs or args.epochs
    work = Path(tempfile.mkdtemp(prefix="gluekit-vs-scglue-"))
    results = {"data": args.data, "n_cells": rna.n_obs, "n_genes": rna.n_vars, "n_peaks": atac.n_vars,
               "n_edges": len(edges), "epochs_per_stage": args.epochs, "gluekit_epochs_per_stage": gk_epochs,
               "scglue_names": args.scglue_names, "threads": args.threads, "work": str(work)}

    if not args.skip_scglue:
        py = ensure_scglue()
        for a in (rna, atac):
            a.uns = {}
        rna.write_h5ad(work / "rna.h5ad"); atac.write_h5ad(work / "atac.h5ad")
        edges.to_csv(work / "edges.tsv", sep="\t", index=False)
        (work / "config.json").write_text(json.dumps({"epochs": args.epochs, "threads": args.threads, "seed": args.seed,
                                                          "distinct_names": args.scglue_names == "distinct"}))
        env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": str(args.threads)}
        subprocess.run([py, HERE / "_scglue_runner.py", work], check=True, env=env)
        t = json.loads((work / "scglue_timing.json").read_text())
        results["scglue"] = {"fit_seconds": t["fit_seconds"], "steps": 2 * args.epochs * scglue_steps_per_epoch,
                             "steps_per_second": 2 * args.epochs * scglue_steps_per_epoch / t["fit_seconds"],
                             "foscttm": foscttm_score(np.load(work / "scglue_rna.npy"), np.load(work / "scglue_atac.npy"))}

    gl.configure_dataset(rna, "NB", layer="counts", use_rep="X_pca")
    gl.configure_dataset(atac, "NB", layer="counts", use_rep="X_lsi")
    t0 = time.perf_counter()
    model = gl.fit_glue({"rna": rna, "atac": atac}, graph, max_epochs=gk_epochs, patience=gk_epochs + 1,
                        reduce_lr_patience=gk_epochs + 1, random_state=args.seed, device="cpu", progress=False,
                        discriminator_input=args.discriminator_input)
    fit_s = time.perf_counter() - t0
    n_epochs = len(model.history) if hasattr(model, "history") else 2 * gk_epochs
    results["gluekit"] = {"fit_seconds": fit_s, "epochs_run": int(n_epochs), "steps": int(n_epochs) * steps_per_epoch,
                          "discriminator_input": args.discriminator_input,
                          "steps_per_second": n_epochs * steps_per_epoch / fit_s,
                          "foscttm": foscttm_score(model.encode_data("rna", rna), model.encode_data("atac", atac))}
    if "scglue" in results:
        results["throughput_ratio"] = results["gluekit"]["steps_per_second"] / results["scglue"]["steps_per_second"]

    print(f"\n{'tool':<8} {'steps':>6} {'fit s':>8} {'steps/s':>8} {'FOSCTTM':>8}")
    for tool in ("scglue", "gluekit"):
        if tool in results:
            r = results[tool]
            print(f"{tool:<8} {r['steps']:6d} {r['fit_seconds']:8.1f} {r['steps_per_second']:8.2f} {r['foscttm']:8.4f}")
    if "throughput_ratio" in results:
        print(f"throughput ratio gluekit / scglue: {results['throughput_ratio']:.2f}x")
    out = HERE / "results" / f"compare_scglue_{args.data}_{rna.n_obs}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
