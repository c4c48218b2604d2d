"""Tests of gluekit.metrics: hand-known values, brute-force agreement, memory bound, simulated ground truth."""
import tracemalloc

import anndata as ad
import networkx as nx
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist
from sklearn.metrics import silhouette_samples, silhouette_score

from gluekit.core import InputError
from gluekit.metrics import (ALL_METRICS, aggregate_scores, cell_type_asw, evaluate, feature_consistency, foscttm,
                             foscttm_score, graph_connectivity, integration_accuracy, integration_consistency,
                             label_transfer, label_transfer_accuracy, mean_average_precision, neighbor_conservation,
                             omics_asw, seurat_alignment_score)


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(42)


# ---------------------------------------------------------------- FOSCTTM
@pytest.mark.parametrize("chunk_size", [None, 1, 7, 1000])
def test_foscttm_matches_brute_force(rng, chunk_size):
    x = rng.normal(size=(150, 4)); y = x + rng.normal(scale=0.7, size=x.shape)
    d = cdist(x, y)
    fx, fy = foscttm(x, y, chunk_size=chunk_size)
    np.testing.assert_array_equal(fx, (d < np.diag(d)[:, None]).sum(1) / 150)
    np.testing.assert_array_equal(fy, (d < np.diag(d)[None, :]).sum(0) / 150)
    assert foscttm_score(x, y) == pytest.approx((fx.mean() + fy.mean()) / 2)


def test_foscttm_hand_values(rng):
    x = rng.normal(size=(300, 6))
    assert foscttm_score(x, x) == 0.0
    fx, fy = foscttm(np.arange(4.)[:, None], np.arange(4.)[::-1, None])  # reversed partners on a line
    np.testing.assert_array_equal(fx, [.75, .25, .25, .75]); np.testing.assert_array_equal(fy, fx)
    # swapping the partners of two cells in far-apart clusters: only those two cells are off, by 1/N each way
    y = x.copy(); y[[0, 1]] = y[[1, 0]]
    assert 0 < foscttm_score(x, y) <= 2 * 2 / 300
    assert foscttm_score(x, rng.normal(size=x.shape)) == pytest.approx(0.5, abs=0.04)


def test_foscttm_never_builds_the_full_matrix(rng):
    n = 20_000
    x = rng.normal(size=(n, 10)).astype(np.float32); y = x + rng.normal(scale=0.1, size=x.shape).astype(np.float32)
    tracemalloc.start()
    try:
        s = foscttm_score(x, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.15 * n * n * 8, f"peak {peak / 2**20:.0f} MiB; the full matrix would be {n * n * 8 / 2**20:.0f} MiB"
    assert s < 0.01


def test_foscttm_bad_input(rng):
    x = rng.normal(size=(20, 3))
    with pytest.raises(InputError, match="x has 20 cells but y has 5"):
        foscttm(x, x[:5])
    with pytest.raises(InputError, match="y holds NaN/Inf in 1 cell"):
        y = x.copy(); y[3, 1] = np.nan; foscttm(x, y)
    with pytest.raises(InputError, match="dimensions"):
        foscttm(x, x[:, :2])


# ---------------------------------------------------------------- GLUER integration accuracy
def test_integration_accuracy(rng):
    x = rng.normal(size=(120, 3)); y = x + rng.normal(scale=0.5, size=x.shape)
    both = np.r_[x, y]; d = cdist(both, both); n = len(x)
    partner = np.r_[np.arange(n, 2 * n), np.arange(n)]
    dp = d[np.arange(2 * n), partner]
    closer = (d < dp[:, None]).sum(1) - 1  # minus the cell itself (distance 0 < dp)
    assert integration_accuracy(x, y, chunk_size=11) == pytest.approx(1 - (closer / (2 * n - 2)).mean())
    assert integration_accuracy(x, x) == 1.0  # higher is better
    assert integration_accuracy(np.arange(4.)[:, None], np.arange(4.)[::-1, None]) == pytest.approx(0.5)
    assert integration_accuracy(x, rng.normal(size=x.shape)) == pytest.approx(0.5, abs=0.05)


# ---------------------------------------------------------------- biology conservation
def test_map_hand_value_and_bad_input(rng):
    line = np.array([[0.], [1.], [2.1], [3.3]])
    assert mean_average_precision(line, list("abab"), k=2) == pytest.approx(0.25)
    blobs = np.r_[rng.normal(size=(60, 2)), rng.normal(size=(40, 2)) + 30]
    lab = np.repeat(["a", "b"], [60, 40])
    assert mean_average_precision(blobs, lab) == 1.0
    # k=1: AP is 1 when the nearest neighbour matches, else 0 -> MAP = fraction of matching nearest neighbours
    x = rng.normal(size=(200, 2)); lab2 = rng.integers(0, 3, 200)
    nn = np.argsort(cdist(x, x) + np.eye(200) * 1e9, axis=1)[:, 0]
    assert mean_average_precision(x, lab2, k=1) == pytest.approx(np.mean(lab2[nn] == lab2))
    with pytest.raises(InputError, match="labels has 99 entries but x has 100 cells"):
        mean_average_precision(blobs, lab[:99])
    with pytest.raises(InputError, match="fewer than k"):
        mean_average_precision(blobs, lab, k=100)


def test_cell_type_asw_agrees_with_sklearn(rng):
    x = rng.normal(size=(90, 3)); lab = rng.integers(0, 3, 90)
    assert cell_type_asw(x, lab) == pytest.approx((silhouette_score(x, lab) + 1) / 2)
    toy = np.array([[0.], [1.], [10.], [11.]])
    s = np.mean([1 - 1 / 10.5, 1 - 1 / 9.5, 1 - 1 / 9.5, 1 - 1 / 10.5])
    assert cell_type_asw(toy, list("aabb")) == pytest.approx((s + 1) / 2)
    with pytest.raises(InputError, match="labels has 1 distinct cell types"):
        cell_type_asw(x, np.zeros(90))


def test_neighbor_conservation(rng):
    x = rng.normal(size=(300, 5))
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    assert neighbor_conservation(x @ q + 3, x) == pytest.approx(1.0)
    noisy = x + rng.normal(scale=0.3, size=x.shape)
    assert 0.1 < neighbor_conservation(noisy, x) < 1
    assert neighbor_conservation(rng.normal(size=x.shape), x) < 0.05
    with pytest.raises(InputError, match="x_single has 10"):
        neighbor_conservation(x, x[:10])


# ---------------------------------------------------------------- omics mixing
def test_seurat_alignment_score(rng):
    a = rng.normal(size=(100, 2)); dom = np.repeat(["rna", "atac"], [100, 300])
    apart = np.r_[a, rng.normal(size=(300, 2)) + 50]
    assert seurat_alignment_score(apart, dom) == 0.0
    mixed = rng.normal(size=(400, 2))
    assert seurat_alignment_score(mixed, dom) == pytest.approx(1.0, abs=0.15)
    assert seurat_alignment_score(mixed, dom, random_state=3) == seurat_alignment_score(mixed, dom, random_state=3)
    three = np.r_[a, a + 100, a + 200]
    assert seurat_alignment_score(three, np.repeat(list("xyz"), 100)) == 0.0
    with pytest.raises(InputError, match="domains has 1 distinct layers"):
        seurat_alignment_score(mixed, np.repeat("rna", 400))
    with pytest.raises(InputError, match="domains has 3 entries"):
        seurat_alignment_score(mixed, ["rna", "atac", "rna"])


def test_omics_asw(rng):
    mixed = rng.normal(size=(200, 2)); dom = np.tile(["rna", "atac"], 100)
    types = np.repeat(["T", "B"], 100)
    expect = np.mean([np.mean(1 - np.abs(silhouette_samples(mixed[types == t], dom[types == t]))) for t in ("T", "B")])
    assert omics_asw(mixed, dom, types) == pytest.approx(expect)
    apart = mixed + (dom == "rna")[:, None] * 100
    assert omics_asw(apart, dom, types) < 0.05
    # a cell type seen in one layer only is skipped, not scored 0
    types2 = types.copy(); types2[(types == "B") & (dom == "atac")] = "only_rna"
    types2[(types == "B") & (dom == "rna")] = "only_rna"
    types2[(types2 == "only_rna") & (dom == "atac")] = "T"
    assert np.isfinite(omics_asw(mixed, dom, types2))
    with pytest.raises(InputError, match="no cell type has cells from two layers"):
        omics_asw(mixed, dom, np.where(dom == "rna", "T", "B"))


def test_graph_connectivity_hand_value(rng):
    x = np.r_[rng.normal(size=(40, 2)), rng.normal(size=(20, 2)) + 100, rng.normal(size=(30, 2)) - 100]
    lab = np.repeat(["a", "a", "b"], [40, 20, 30])
    assert graph_connectivity(x, lab) == pytest.approx(5 / 6)
    with pytest.raises(InputError, match="fewer than k"):
        graph_connectivity(x[:15], lab[:15])


# ---------------------------------------------------------------- aggregates, feature consistency, label transfer
def test_aggregate_scores_hand_values():
    runs = pd.DataFrame({"map": [.9, .5, .7], "cell_type_asw": [.7, .5, .6], "neighbor_conservation": [.3, .1, .2],
                         "seurat_alignment_score": [.2, .8, .5], "omics_asw": [.8, .9, .85],
                         "graph_connectivity": [.90, .98, .94]}, index=["A", "B", "C"])
    out = aggregate_scores(runs)
    np.testing.assert_allclose(out["overall_score"], [0.6, 0.4, 0.5])
    np.testing.assert_allclose(out["omics_mixing"], [0, 1, 0.5])
    assert list(out.index) == ["A", "B", "C"] and "map_scaled" in out
    with pytest.warns(UserWarning, match="equal across all 1 run"):
        aggregate_scores(runs.iloc[:1])
    with pytest.raises(InputError, match="missing values"):
        aggregate_scores(runs.assign(map=[.9, np.nan, .7]))


def test_feature_consistency(rng):
    v = rng.normal(size=(2500, 10))
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    assert feature_consistency(v, v @ q) == pytest.approx(1.0)
    assert abs(feature_consistency(v, rng.normal(size=(2500, 12)))) < 0.03
    noisy = feature_consistency(v, v + rng.normal(scale=1.0, size=v.shape))
    assert 0.2 < noisy < 0.95
    with pytest.raises(InputError, match="v1 has 2500 features but v2 has 3"):
        feature_consistency(v, v[:3])


def test_label_transfer(rng):
    ref = np.r_[rng.normal(size=(50, 2)), rng.normal(size=(50, 2)) + 20]
    lab = np.repeat(["a", "b"], 50)
    np.testing.assert_array_equal(label_transfer(ref, lab, np.array([[0., 0.], [20., 20.]])), ["a", "b"])
    assert label_transfer_accuracy(ref, lab, ref + 0.1, lab) == 1.0
    assert label_transfer_accuracy(ref, lab, ref, lab[::-1]) == 0.0
    with pytest.raises(InputError, match="x_ref has 2 dimensions but x_query has 3"):
        label_transfer(ref, lab, np.zeros((2, 3)))


# ---------------------------------------------------------------- simulated data with ground truth
def _guidance_edges(rna, atac):
    "The guidance graph from gluekit.graph when it exists, else planted links plus 150-kb window pairs."
    try:
        from gluekit.graph import build_guidance_graph
    except ImportError:
        build_guidance_graph = None
    if build_guidance_graph is not None:
        return build_guidance_graph(rna, atac)
    links = atac.uns["true_links"]
    peaks = atac.var[["chrom", "chromStart", "chromEnd"]].rename_axis("peak").reset_index()
    tss = np.where(rna.var["strand"] == "+", rna.var["chromStart"], rna.var["chromEnd"] - 1)
    genes = pd.DataFrame({"gene": rna.var_names, "chrom": rna.var["chrom"].to_numpy(), "tss": tss})
    pairs = peaks.merge(genes, on="chrom")
    d = (pairs["chromStart"] + pairs["chromEnd"]) / 2 - pairs["tss"]
    pairs = pairs[d.abs() <= 150_000].assign(weight=(d.abs() / 1000 + 1) ** -0.75, sign=1)
    planted = pd.DataFrame({"peak": links["peak"], "gene": links["gene"], "weight": 1.0, "sign": links["sign"]})
    e = pd.concat([pairs[["peak", "gene", "weight", "sign"]], planted])
    return e.rename(columns={"peak": "source", "gene": "target"})


@pytest.fixture(scope="module")
def sim():
    from gluekit.data import simulate_multiome
    adatas = simulate_multiome(n_cells=1000, n_genes=300, random_state=1)
    r = np.random.default_rng(5)
    for a in adatas.values():
        z = np.asarray(a.obsm["X_latent"], dtype=np.float64)
        a.obsm["X_good"] = z + r.normal(scale=0.1 * z.std(), size=z.shape)
        a.obsm["X_own"] = z + r.normal(scale=0.3 * z.std(), size=z.shape)
    a = adatas["atac"]
    a.obsm["X_shuffled"] = a.obsm["X_good"][r.permutation(a.n_obs)]
    adatas["rna"].obsm["X_shuffled"] = adatas["rna"].obsm["X_good"]
    return adatas, _guidance_edges(adatas["rna"], adatas["atac"])


def test_integration_consistency_correct_beats_shuffled(sim):
    adatas, graph = sim
    good = integration_consistency(adatas, graph, use_rep="X_good", n_meta=100)
    bad = integration_consistency(adatas, graph, use_rep="X_shuffled", n_meta=100)
    assert good > 0.05 and good > bad + 0.1, (good, bad)
    assert abs(bad) < 0.05
    # the same graph as a networkx MultiDiGraph (both directions + self-loops) gives the same score
    edges = nx.to_pandas_edgelist(graph) if isinstance(graph, nx.Graph) else graph
    g = nx.MultiDiGraph()
    g.add_edges_from((s, t, {"weight": w, "sign": sg}) for s, t, w, sg in edges[["source", "target", "weight", "sign"]].itertuples(index=False))
    g.add_edges_from((t, s, {"weight": w, "sign": sg}) for s, t, w, sg in edges[["source", "target", "weight", "sign"]].itertuples(index=False))
    g.add_edges_from((v, v, {"weight": 1.0, "sign": 1}) for v in list(g.nodes))
    assert integration_consistency(adatas, g, use_rep="X_good", n_meta=100) == pytest.approx(good)


def test_integration_consistency_bad_input(sim):
    adatas, graph = sim
    edges = nx.to_pandas_edgelist(graph) if isinstance(graph, nx.Graph) else graph
    with pytest.raises(InputError, match="'X_nope' not in adatas\\['rna'\\].obsm"):
        integration_consistency(adatas, edges, use_rep="X_nope")
    with pytest.raises(InputError, match="lack attribute"):
        integration_consistency(adatas, edges.drop(columns="weight"), use_rep="X_good")
    with pytest.raises(InputError, match="no guidance-graph edge"):
        integration_consistency(adatas, edges.assign(source="nope"), use_rep="X_good")
    with pytest.raises(InputError, match="at least 2"):
        integration_consistency({"rna": adatas["rna"]}, edges, use_rep="X_good")


@pytest.mark.filterwarnings("ignore:metric\\(s\\)")
def test_evaluate_table(sim):
    adatas, graph = sim
    t = evaluate(adatas, use_rep=["X_good", "X_shuffled"], single_rep={"rna": "X_own", "atac": "X_own"},
                 graph=graph, n_meta=100, progress=False)
    assert list(t.index) == ["X_good", "X_shuffled"] and list(t.columns) == ["n_cells", *ALL_METRICS]
    assert t.notna().all().all()
    g, s = t.loc["X_good"], t.loc["X_shuffled"]
    assert g["foscttm"] < 0.05 and s["foscttm"] > 0.4
    assert g["integration_accuracy"] > 0.95 and s["integration_accuracy"] < 0.6
    assert g["integration_consistency"] > s["integration_consistency"] + 0.1
    assert g["map"] > s["map"] and g["label_transfer_accuracy"] > s["label_transfer_accuracy"]
    # each number equals the stand-alone function
    x = np.r_[adatas["rna"].obsm["X_good"], adatas["atac"].obsm["X_good"]]
    lab = np.r_[adatas["rna"].obs["cell_type"].astype(str), adatas["atac"].obs["cell_type"].astype(str)]
    dom = np.repeat(["rna", "atac"], 1000)
    assert g["map"] == pytest.approx(mean_average_precision(x, lab))
    assert g["graph_connectivity"] == pytest.approx(graph_connectivity(x, lab))
    assert g["seurat_alignment_score"] == pytest.approx(seurat_alignment_score(x, dom))
    assert g["foscttm"] == pytest.approx(foscttm_score(adatas["rna"].obsm["X_good"], adatas["atac"].obsm["X_good"]))
    # the scaled summary prefers the correct alignment
    assert aggregate_scores(t)["overall_score"].idxmax() == "X_good"


def test_evaluate_concatenated_and_unpaired(sim):
    adatas, _ = sim
    cat = ad.concat({k: ad.AnnData(obs=v.obs[["cell_type", "domain"]], obsm={"X_good": v.obsm["X_good"]})
                     for k, v in adatas.items()}, index_unique="-")
    t = evaluate(cat, use_rep="X_good", metrics=["map", "foscttm", "seurat_alignment_score"], progress=False)
    assert np.isnan(t.loc["X_good", "foscttm"])  # made-unique names: pairing unknown, so NaN (logged)
    t2 = evaluate(adatas, use_rep="X_good", metrics=["map", "seurat_alignment_score"], progress=False)
    assert t.loc["X_good", "map"] == pytest.approx(t2.loc["X_good", "map"])
    with pytest.raises(InputError, match="unknown metric"):
        evaluate(adatas, use_rep="X_good", metrics=["nope"], progress=False)
    bad = {k: v.copy() for k, v in adatas.items()}
    bad["atac"].obsm["X_good"] = bad["atac"].obsm["X_good"].copy(); bad["atac"].obsm["X_good"][0, 0] = np.nan
    with pytest.raises(InputError, match=r"adatas\['atac'\].obsm\['X_good'\] holds NaN"):
        evaluate(bad, use_rep="X_good", metrics=["map"], progress=False)
