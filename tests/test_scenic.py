"""End-to-end SCENIC from links on the simulator: pySCENIC regulons recover planted TF targets.

Runs GRNBoost2 + cisTarget pruning (gluekit rankings) + AUCell in-process on 600 cells x 500 genes.
"""
import numpy as np
import pandas as pd
import pytest

from gluekit.core import InputError
from gluekit.data import simulate_multiome
from gluekit.graph import window_pairs
from gluekit import scenic


def noisy_links(rna, atac, *, keep=0.8, false_ratio=0.5, seed=1):
    "Stand-in for FDR-filtered GLUE links: 80% of the planted links plus random window pairs (50% as many)."
    rng = np.random.default_rng(seed)
    tl = atac.uns["true_links"][["peak", "gene"]]
    wp = window_pairs(rna, atac)[["peak", "gene"]]
    false = wp.merge(tl, how="left", indicator=True).query("_merge == 'left_only'")[["peak", "gene"]]
    false = false.iloc[rng.choice(len(false), int(false_ratio * len(tl)), replace=False)]
    return pd.concat([tl[rng.random(len(tl)) < keep], false], ignore_index=True)


@pytest.fixture(scope="module")
def sim():
    d = simulate_multiome(n_cells=600, n_genes=500, random_state=0)
    return d["rna"], d["atac"]


@pytest.fixture(scope="module")
def rankings(sim):
    rna, atac = sim
    bind = scenic.count_tf_sites(atac, atac.uns["tf_sites"])
    peaks = scenic.rank_genes_by_tf(bind, noisy_links(rna, atac), genes=rna.var_names, progress=False)
    prom = scenic.rank_genes_by_promoter(rna, atac.uns["tf_sites"])
    return peaks, prom


def test_rankings_put_planted_targets_first(sim, rankings):
    rna, _ = sim
    peaks, _ = rankings
    tt = rna.uns["true_tf_targets"]
    tf = tt["tf"].value_counts().index[0]
    targets = set(tt.loc[tt["tf"] == tf, "target"])
    top = peaks.rank.loc[f"gluekit_peaks__{tf}"].sort_values().index[: len(targets)]
    # most planted targets are in the top ranks despite 20 % missing and 33 % false links
    assert len(targets & set(top)) / len(targets) >= 0.6
    # the null is calibrated where there is no planted relation: few false pairs reach P < 0.01
    fr = peaks.to_frame()
    fr = fr.merge(tt.rename(columns={"target": "gene"}), how="left", indicator=True)
    false = fr[fr["_merge"] == "left_only"]
    assert (false["pval"] < 0.01).mean() < 0.1


def test_databases_are_read_by_ctxcore(tmp_path, rankings):
    from ctxcore.rnkdb import FeatherRankingDatabase
    peaks, _ = rankings
    p = scenic.write_cistarget_db(peaks, tmp_path / "sim")
    assert p.name.endswith(".genes_vs_tracks.rankings.feather")
    db = FeatherRankingDatabase(str(p), name="sim")
    full = db.load_full()
    assert full.shape == peaks.rank.shape
    assert (full.loc[peaks.rank.index, peaks.rank.columns].to_numpy() == peaks.rank.to_numpy()).all()


def test_bad_input(sim, tmp_path):
    rna, atac = sim
    bind = scenic.count_tf_sites(atac, atac.uns["tf_sites"])
    with pytest.raises(InputError, match="links is empty"):
        scenic.rank_genes_by_tf(bind, pd.DataFrame(columns=["peak", "gene"]))
    with pytest.raises(InputError, match="unknown to the peaks"):
        scenic.count_tf_sites(atac, atac.uns["tf_sites"].assign(chrom="chrZ"))
    with pytest.raises(InputError, match="absent from the expression data"):
        scenic.run_scenic(rna, [tmp_path / "x"], tmp_path / "y", tfs=["NotAGene", rna.uns["tfs"][0]])


def test_scenic_recovers_planted_targets(sim, rankings, tmp_path):
    rna, atac = sim
    peaks, prom = rankings
    dbs = [scenic.write_cistarget_db(peaks, tmp_path / "peaks"), scenic.write_cistarget_db(prom, tmp_path / "promoter")]
    ann = scenic.write_motif_annotations(pd.concat([peaks.tracks, prom.tracks]), tmp_path / "annotations.tsv")
    res = scenic.run_scenic(rna, dbs, ann, min_genes=10, auc_threshold=0.1, nes_threshold=2.5, n_jobs=2,
                            progress=False, copy=True)
    assert len(res.regulons) >= 3
    act = res.adata.obsm["X_tf_activity"]
    assert act.shape == (rna.n_obs, len(res.regulons)) and np.isfinite(act.to_numpy()).all()
    assert "X_tf_activity" not in rna.obsm  # copy=True leaves the input alone
    assert set(res.adata.uns["tf_ranking"]["tf"]) == {r.transcription_factor for r in res.regulons}
    assert res.graph.number_of_edges() == len(res.network)
    ref, tfs = rna.uns["true_tf_targets"], rna.uns["tfs"]
    cmp = scenic.compare_networks({"coexpression": scenic.regulons_to_network(res.modules),
                                   "peak_links": scenic.rankings_to_network(peaks),
                                   "glue_scenic": res.network}, ref, tfs=tfs, genes=rna.var_names)
    print(cmp)
    glue, coexp = cmp.loc["glue_scenic"], cmp.loc["coexpression"]
    assert glue["odds_ratio"] >= 5 and glue["pval"] < 1e-8 and glue["n_overlap"] >= 20
    assert glue["odds_ratio"] > 2 * coexp["odds_ratio"]
    assert glue["precision"] > coexp["precision"]
