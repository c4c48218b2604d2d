"""Side by side with scglue over several seeds: runs compare_scglue.py once per seed and reports the medians.

    GLUEKIT_DATA=../shared/data .venv/bin/python bench/compare_scglue_seeds.py --data snare --n-cells 0 --epochs 3 --gluekit-epochs 6 --seeds 0 1 2
    ... --gluekit-only --tag dmean --discriminator-input mean    # gluekit with an option, same scglue runs

Each seed is a separate process (so the BLAS thread count set by compare_scglue.py applies before numpy loads,
which makes every run reproducible). Per-seed results are kept as compare_scglue_<data>_<n>_e<epochs>[g<gluekit epochs>]_s<seed>.json;
the summary (per seed, median, and whether gluekit's median FOSCTTM is no worse) goes to
compare_scglue_<data>_<n>_e<epochs>[g<...>]_seeds.json and is printed as a table. `--collect` skips the runs and only
summarises per-seed files that already exist; `--gluekit-only` reruns gluekit alone (after a change to gluekit)
and keeps the scglue half of each existing per-seed file (scglue's runs do not depend on gluekit's training code).
"""
import argparse, json, statistics, subprocess, sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", choices=["sim", "snare"], default="snare")
    ap.add_argument("--n-cells", type=int, default=0, help="cells (sim) or nuclei kept (snare, 0: all)")
    ap.add_argument("--epochs", type=int, default=5, help="epochs per stage (scglue's; gluekit's too unless given)")
    ap.add_argument("--gluekit-epochs", type=int, default=None, help="gluekit's epochs per stage, if different")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--collect", action="store_true", help="only summarise existing per-seed files")
    ap.add_argument("--tag", default="", help="added to the result file names (e.g. for a gluekit option)")
    ap.add_argument("--gluekit-only", action="store_true", help="rerun gluekit, keep the stored scglue results")
    args, rest = ap.parse_known_args()
    res = HERE / "results"
    runs = {}
    tag = f"_{args.tag}" if args.tag else ""
    ep = f"e{args.epochs}" + (f"g{args.gluekit_epochs}" if args.gluekit_epochs else "")
    for s in args.seeds:
        if not args.collect:
            old = sorted(res.glob(f"compare_scglue_{args.data}_*_{ep}_s{s}.json"))
            if args.gluekit_only and not old:
                sys.exit(f"--gluekit-only needs a stored scglue result for seed {s}; run without it first")
            subprocess.run([sys.executable, HERE / "compare_scglue.py", "--data", args.data, "--n-cells",
                            str(args.n_cells), "--epochs", str(args.epochs), "--threads", str(args.threads),
                            *(["--gluekit-epochs", str(args.gluekit_epochs)] if args.gluekit_epochs else []),
                            "--seed", str(s), *(["--skip-scglue"] if args.gluekit_only else []), *rest], check=True)
            out = max(res.glob(f"compare_scglue_{args.data}_*.json"), key=lambda p: p.stat().st_mtime)
            new = json.loads(out.read_text())
            if args.gluekit_only:
                prev = json.loads(old[-1].read_text())
                new["scglue"] = prev["scglue"]
                new["throughput_ratio"] = new["gluekit"]["steps_per_second"] / prev["scglue"]["steps_per_second"]
                out.write_text(json.dumps(new, indent=2))
            out.rename(res / f"compare_scglue_{args.data}_{new['n_cells']}_{ep}{tag}_s{s}.json")
        found = sorted(res.glob(f"compare_scglue_{args.data}_*_{ep}{tag}_s{s}.json"))
        if not found:
            sys.exit(f"no result for seed {s} in {res}; run without --collect first")
        runs[s] = json.loads(found[-1].read_text())
    n = next(iter(runs.values()))["n_cells"]
    med = {t: statistics.median(r[t]["foscttm"] for r in runs.values()) for t in ("scglue", "gluekit")}
    speed = {t: statistics.median(r[t]["steps_per_second"] for r in runs.values()) for t in ("scglue", "gluekit")}
    first = next(iter(runs.values()))
    steps = {t: first[t].get("steps") for t in ("scglue", "gluekit")}
    print(f"\n{args.data}, {n} cells, {args.epochs} + {args.epochs} epochs"
          + (f" (gluekit {args.gluekit_epochs} + {args.gluekit_epochs})" if args.gluekit_epochs else "")
          + f", minibatch steps scglue {steps['scglue']} / gluekit {steps['gluekit']}, {args.threads} thread(s), "
          + f"scglue obs_names {first.get('scglue_names', 'shared')}")
    print(f"{'seed':>6} {'scglue':>8} {'gluekit':>8} {'ratio':>6}")
    for s, r in runs.items():
        print(f"{s:>6} {r['scglue']['foscttm']:8.4f} {r['gluekit']['foscttm']:8.4f} {r['throughput_ratio']:5.1f}x")
    print(f"{'median':>6} {med['scglue']:8.4f} {med['gluekit']:8.4f} {speed['gluekit'] / speed['scglue']:5.1f}x")
    verdict = "no worse" if med["gluekit"] <= med["scglue"] else "worse"
    print(f"gluekit's median FOSCTTM is {verdict} than scglue's")
    summary = dict(data=args.data, n_cells=n, epochs_per_stage=args.epochs, gluekit_epochs_per_stage=
                   args.gluekit_epochs or args.epochs, steps=steps, scglue_names=first.get("scglue_names", "shared"),
                   threads=args.threads, seeds=args.seeds,
                   foscttm={t: {str(s): r[t]["foscttm"] for s, r in runs.items()} for t in ("scglue", "gluekit")},
                   median_foscttm=med, median_steps_per_second=speed, gluekit_no_worse=med["gluekit"] <= med["scglue"])
    summary["gluekit_options"] = " ".join(rest)
    (res / f"compare_scglue_{args.data}_{n}_{ep}{tag}_seeds.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
