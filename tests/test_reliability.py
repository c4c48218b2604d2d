"""Reliability: public AnnData functions do not mutate their inputs beyond the documented keys, `copy=True` works
wherever it is offered, and the same `random_state` on CPU gives bit-identical results.

Every AnnData is fingerprinted slot by slot (X, each layer, each obs/var column, obs/var names, each obsm/varm/
obsp/varp/uns entry) with SHA-256 before and after a call; a test names the slots a function may add or change.
"""
import hashlib
import warnings
from collections.abc import Mapping

import anndata as ad
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from gluekit import data as D, glue as GL, gluer as GR, graph as G, metrics as M, regulatory as R, scenic as S
from gluekit.core import torch_threads


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


# ---------------------------------------------------------------- fingerprints
def _feed(h, v) -> None:
    "Feed a value's content (not its identity) into the hash `h`."
    if v is None:
        h.update(b"<None>")
    elif sp.issparse(v):
        m = v if v.format in ("csr", "csc") else v.tocsr()
        h.update(f"<{m.format} {m.shape} {m.dtype}>".encode())
        for a in (m.data, m.indices, m.indptr):
            h.update(np.ascontiguousarray(a).tobytes())
    elif isinstance(v, np.ndarray):
        h.update(f"<nd {v.shape} {v.dtype}>".encode())
        h.update(repr(v.tolist()).encode() if v.dtype.kind == "O" else np.ascontiguousarray(v).tobytes())
    elif isinstance(v, pd.DataFrame):
        h.update(f"<df {list(map(str, v.columns))} {[str(t) for t in v.dtypes]}>".encode())
        _feed(h, v.index)
        for c in v.columns:
            _feed(h, v[c])
    elif isinstance(v, (pd.Series, pd.Index)):
        h.update(f"<{type(v).__name__} {v.dtype}>".encode())
        if isinstance(v.dtype, pd.CategoricalDtype):
            h.update(repr(list(v.cat.categories if isinstance(v, pd.Series) else v.categories)).encode())
        h.update(pd.util.hash_pandas_object(pd.Series(np.asarray(v, dtype=object) if v.dtype.kind == "O" else v),
                                            index=False).to_numpy().tobytes())
        if isinstance(v, pd.Series):
            _feed(h, v.index)
    elif isinstance(v, Mapping):
        h.update(b"<map>")
        for k in sorted(v, key=str):
            h.update(repr(k).encode()); _feed(h, v[k])
    elif isinstance(v, (list, tuple)):
        h.update(f"<seq {len(v)}>".encode())
        for x in v:
            _feed(h, x)
    else:
        h.update(repr(v).encode())


def _digest(v) -> str:
    h = hashlib.sha256(); _feed(h, v)
    return h.hexdigest()


def snapshot(a: ad.AnnData) -> dict[str, str]:
    "Slot -> content hash of an AnnData."
    out = {"X": _digest(a.X), "obs_names": _digest(a.obs_names), "var_names": _digest(a.var_names)}
    for slot in ("obs", "var"):
        for c in getattr(a, slot).columns:
            out[f"{slot}/{c}"] = _digest(getattr(a, slot)[c])
    for slot in ("layers", "obsm", "varm", "obsp", "varp", "uns"):
        for k, v in getattr(a, slot).items():
            out[f"{slot}/{k}"] = _digest(v)
    return out


def changed(before: dict, after: dict) -> set[str]:
    "Slots added, removed or changed."
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def assert_only(before: dict, after: dict, allowed=(), what="adata") -> None:
    bad = changed(before, after) - set(allowed)
    assert not bad, f"{what}: undocumented change(s) to {sorted(bad)}"


def graph_digest(g: nx.MultiDiGraph) -> str:
    e = G.graph_to_edges(g).sort_values(["source", "target", "evidence", "weight"]).reset_index(drop=True)
    return _digest([e, sorted((str(v), str(k)) for v, k in g.nodes(data="layer"))])


def test_fingerprint_sees_every_slot(sim):
    a = sim["rna"].copy(); s0 = snapshot(a)
    a.layers["counts"].data[0] += 1
    a.obs["batch"] = a.obs["batch"].cat.reorder_categories(a.obs["batch"].cat.categories[::-1])
    a.uns["true_tf_targets"] = a.uns["true_tf_targets"].iloc[1:]
    a.obsm["X_latent"][0, 0] = 7
    assert changed(s0, snapshot(a)) == {"layers/counts", "obs/batch", "uns/true_tf_targets", "obsm/X_latent"}


# ---------------------------------------------------------------- tiny data
@pytest.fixture(scope="module")
def sim():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return D.simulate_multiome(n_cells=160, n_genes=60, n_peaks=300, n_batches=2, random_state=0)


@pytest.fixture(scope="module")
def graph(sim):
    return G.build_guidance_graph(sim["rna"], sim["atac"])


def _fresh(sim):
    return sim["rna"].copy(), sim["atac"].copy()


# ================================================================ no mutation, copy=True
HVG_COLS = {"var/highly_variable", "var/highly_variable_rank", "var/means", "var/variances", "var/variances_norm"}
PP = {
    "preprocess_rna": (lambda a, **k: D.preprocess_rna(a, n_comps=10, **k), "rna",
                       {"X", "obsm/X_pca", "varm/PCs", "uns/pca"} | HVG_COLS),
    "preprocess_atac": (lambda a, **k: D.preprocess_atac(a, n_comps=10, **k), "atac", {"obsm/X_lsi", "uns/lsi"}),
    "lsi": (lambda a, **k: D.lsi(a, n_components=10, key_added="X_l", **k), "atac", {"obsm/X_l", "uns/lsi"}),
}


@pytest.mark.parametrize("name", list(PP))
def test_preprocessing_copy_and_documented_keys(sim, name):
    fn, layer, documented = PP[name]
    a = sim[layer].copy(); s0 = snapshot(a)
    out = fn(a, copy=True)
    assert out is not a and isinstance(out, ad.AnnData)
    assert changed(s0, snapshot(a)) == set(), "copy=True changed the input"
    assert changed(s0, snapshot(out)) == documented
    b = sim[layer].copy()
    assert fn(b, copy=False) is None
    assert snapshot(b) == snapshot(out), "copy=True and copy=False give different results"


def test_add_gene_coordinates_copy(sim):
    rna = sim["rna"].copy()
    ann = rna.var[["chrom", "chromStart", "chromEnd", "strand"]].assign(name=rna.var_names).reset_index(drop=True)
    bare = ad.AnnData(rna.X.copy(), obs=rna.obs.copy(), var=pd.DataFrame(index=rna.var_names))
    s0 = snapshot(bare); s_ann = _digest(ann)
    out = G.add_gene_coordinates(bare, ann, copy=True)
    assert out is not bare and changed(s0, snapshot(bare)) == set() and _digest(ann) == s_ann
    assert changed(s0, snapshot(out)) == {"var/chrom", "var/chromStart", "var/chromEnd", "var/strand"}
    G.add_gene_coordinates(bare, ann)
    assert snapshot(bare) == snapshot(out)


def test_graph_functions_leave_inputs(sim, graph):
    rna, atac = _fresh(sim)
    s = {k: snapshot(a) for k, a in (("rna", rna), ("atac", atac))}
    g0 = graph_digest(graph)
    G.build_guidance_graph(rna, atac, scheme=["standard", "window"])
    G.window_pairs(rna, atac); G.overlap_pairs(rna, atac)
    ga = G.gene_activity(atac, rna)
    ga.obs["x"] = 1; ga.var["y"] = 2  # the result owns its obs/var: editing it leaves the inputs alone
    G.check_graph(graph, {"rna": rna, "atac": atac})
    G.corrupt_graph(graph, 0.5, random_state=0)
    G.add_evidence(graph, G.window_pairs(rna, atac).head(20), evidence="extra")
    assert graph_digest(graph) == g0
    for k, a in (("rna", rna), ("atac", atac)):
        assert_only(s[k], snapshot(a), what=k)


def test_glue_documented_keys(sim, graph):
    rna, atac = _fresh(sim)
    s = {"rna": snapshot(rna), "atac": snapshot(atac)}
    GL.configure_dataset(rna, "NB", batch_key="batch"); GL.configure_dataset(atac, "NB")
    for k, a in (("rna", rna), ("atac", atac)):
        assert_only(s[k], snapshot(a), {"uns/gluekit"}, k)
    d = {"rna": rna, "atac": atac}
    s = {k: snapshot(a) for k, a in d.items()}; g0 = graph_digest(graph)
    m = GL.fit_glue(d, graph, n_latent=4, n_hidden=16, n_layers=1, max_epochs=1, batch_size=32, balance=False,
                    device="cpu", progress=False)
    m.encode_data("rna", rna); m.encode_graph()
    for k, a in d.items():
        assert_only(s[k], snapshot(a), (), k)
    assert graph_digest(graph) == g0
    GL.embed(m, d)
    for k, a in d.items():
        assert_only(s[k], snapshot(a), {"obsm/X_glue", "varm/X_glue", "uns/glue"}, k)


def test_metrics_evaluate_leaves_inputs(sim, graph):
    d = {k: sim[k].copy() for k in ("rna", "atac")}
    for a in d.values():
        a.obsm["X_glue"] = a.obsm["X_latent"][:, :5].copy()
    d["rna"].obsm["X_pca"] = d["rna"].obsm["X_latent"].copy(); d["atac"].obsm["X_lsi"] = d["atac"].obsm["X_latent"] * 2
    s = {k: snapshot(a) for k, a in d.items()}; g0 = graph_digest(graph)
    t = M.evaluate(d, graph=graph, single_rep={"rna": "X_pca", "atac": "X_lsi"}, n_meta=20, progress=False)
    assert t.notna().all(axis=None)
    for k, a in d.items():
        assert_only(s[k], snapshot(a), (), k)
    assert graph_digest(graph) == g0


@pytest.fixture(scope="module")
def gluer_inputs(sim):
    rna, atac = _fresh(sim)
    ga = G.gene_activity(atac, rna)
    ga = GR.filter_low_quality(ga)
    return rna, ga


GLUER = dict(n_latent=8, n_neighbors=10, filter_neighbors=20, joint_rank=8, max_iter=100, max_epochs=30,
             device="cpu", progress=False)


def test_gluer_copy_and_documented_keys(gluer_inputs):
    rna, ga = gluer_inputs[0].copy(), gluer_inputs[1].copy()
    s = {"rna": snapshot(rna), "atac": snapshot(ga)}
    res = GR.run_gluer(rna, {"atac": ga}, copy=True, random_state=0, **GLUER)
    assert res.adatas["rna"] is not rna and res.adatas["atac"] is not ga
    for k, a in (("rna", rna), ("atac", ga)):
        assert changed(s[k], snapshot(a)) == set(), f"run_gluer(copy=True) changed {k}"
        assert changed(s[k], snapshot(res.adatas[k])) == {"obsm/X_gluer", "uns/gluer"}
    res2 = GR.run_gluer(rna, {"atac": ga}, copy=False, random_state=0, **GLUER)
    assert res2.adatas["rna"] is rna
    for k, a in (("rna", rna), ("atac", ga)):
        assert snapshot(a) == snapshot(res.adatas[k]), "copy=True and copy=False give different results"


@pytest.fixture(scope="module")
def reg_inputs(sim):
    rna, atac = _fresh(sim)
    rng = np.random.default_rng(0)
    rna.varm["X_glue"] = rng.normal(size=(rna.n_vars, 6)); atac.varm["X_glue"] = rng.normal(size=(atac.n_vars, 6))
    for a in (rna, atac):
        a.obsm["X_glue"] = a.obsm["X_latent"][:, :5].copy()
    return rna, atac


def test_regulatory_documented_keys(reg_inputs):
    rna, atac = reg_inputs[0].copy(), reg_inputs[1].copy()
    s = {"rna": snapshot(rna), "atac": snapshot(atac)}
    d = {"rna": rna, "atac": atac}
    pairs = R.candidate_pairs(rna, atac)
    R.score_regulatory(d, null="shuffle", progress=False, inplace=False)
    R.peak_gene_correlation(rna, atac, pairs)
    R.peak_gene_correlation(rna, atac, pairs, n_metacells=20)
    R.metacells(d, n_metacells=20)
    assert_only(s["rna"], snapshot(rna), (), "rna"); assert_only(s["atac"], snapshot(atac), (), "atac")
    R.score_regulatory(d, progress=False)
    assert_only(s["rna"], snapshot(rna), (), "rna"); assert_only(s["atac"], snapshot(atac), {"uns/regulatory"}, "atac")
    R.get_regulatory_df(atac); R.regulatory_graph(atac)
    assert_only(s["atac"], snapshot(atac), {"uns/regulatory"}, "atac")


def test_scenic_steps_leave_inputs(sim):
    rna, atac = _fresh(sim)
    s = {"rna": snapshot(rna), "atac": snapshot(atac)}
    sites, links = atac.uns["tf_sites"].copy(), atac.uns["true_links"].copy()
    bind = S.count_tf_sites(atac, atac.uns["tf_sites"])
    S.rank_genes_by_tf(bind, atac.uns["true_links"], genes=rna.var_names, n_samples=50, progress=False)
    S.rank_genes_by_promoter(rna, atac.uns["tf_sites"])
    assert_only(s["rna"], snapshot(rna), (), "rna"); assert_only(s["atac"], snapshot(atac), (), "atac")
    assert _digest(sites) == _digest(atac.uns["tf_sites"]) and _digest(links) == _digest(atac.uns["true_links"])


# ================================================================ determinism (CPU, same random_state)
def test_simulator_deterministic():
    kw = dict(n_cells=80, n_genes=40, n_peaks=160, n_batches=2, modalities=("rna", "atac", "met", "prot"))
    a, b, c = (D.simulate_multiome(random_state=s, **kw) for s in (3, 3, 4))
    for k in a:
        assert snapshot(a[k]) == snapshot(b[k]), f"{k} differs between two runs with random_state=3"
    assert snapshot(a["rna"])["layers/counts"] != snapshot(c["rna"])["layers/counts"]
    g1, g2 = (D.simulate_multiome(random_state=np.random.default_rng(5), **kw) for _ in range(2))
    assert snapshot(g1["atac"]) == snapshot(g2["atac"]), "equally seeded Generators must give the same data"


@pytest.mark.parametrize("name", list(PP))
def test_preprocessing_deterministic(sim, name):
    fn, layer, _ = PP[name]
    x, y = fn(sim[layer], copy=True, random_state=7), fn(sim[layer], copy=True, random_state=7)
    assert snapshot(x) == snapshot(y)


def test_graph_corruption_deterministic(graph):
    a, b, c = (G.corrupt_graph(graph, 0.4, random_state=s) for s in (1, 1, 2))
    assert graph_digest(a) == graph_digest(b) and graph_digest(a) != graph_digest(c)


def test_gluer_deterministic(gluer_inputs):
    rna, ga = gluer_inputs
    runs = [GR.run_gluer(rna, {"atac": ga}, copy=True, random_state=s, **GLUER) for s in (0, 0, 1)]
    for k in ("rna", "atac"):
        assert np.array_equal(runs[0].embeddings[k], runs[1].embeddings[k]), f"GLUER {k} embedding not reproducible"
    assert _digest(runs[0].pairs["atac"]) == _digest(runs[1].pairs["atac"])
    assert not np.array_equal(runs[0].embeddings["atac"], runs[2].embeddings["atac"])


def test_regulatory_deterministic(reg_inputs):
    d = {"rna": reg_inputs[0], "atac": reg_inputs[1]}
    a, b, c = (R.score_regulatory(d, null="shuffle", n_shuffles=5, random_state=s, progress=False, inplace=False)
               for s in (0, 0, 1))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert not np.array_equal(a["pval"].to_numpy(), c["pval"].to_numpy())
    x, y = (R.peak_gene_correlation(d["rna"], d["atac"], a, n_metacells=20, random_state=3) for _ in range(2))
    assert np.array_equal(x, y)


def test_tf_rankings_deterministic(sim):
    rna, atac = sim["rna"], sim["atac"]
    bind = S.count_tf_sites(atac, atac.uns["tf_sites"])
    a, b, c = (S.rank_genes_by_tf(bind, atac.uns["true_links"], genes=rna.var_names, n_samples=60,
                                  random_state=s, progress=False) for s in (0, 0, 1))
    pd.testing.assert_frame_equal(a.rank, b.rank, check_exact=True)
    pd.testing.assert_frame_equal(a.pval, b.pval, check_exact=True)
    assert not a.pval.equals(c.pval)
    p, q = (S.rank_genes_by_promoter(rna, atac.uns["tf_sites"], random_state=2) for _ in range(2))
    pd.testing.assert_frame_equal(p.rank, q.rank, check_exact=True)


def test_glue_embeddings_deterministic(sim, graph):
    rna, atac = _fresh(sim)
    GL.configure_dataset(rna, "NB", batch_key="batch"); GL.configure_dataset(atac, "NB")
    d = {"rna": rna, "atac": atac}
    kw = dict(n_latent=4, n_hidden=16, n_layers=1, max_epochs=2, batch_size=32, device="cpu", progress=False)
    m1, m2, m3 = (GL.fit_glue(d, graph, random_state=s, **kw) for s in (0, 0, 1))
    for k in d:
        assert np.array_equal(m1.encode_data(k, d[k]), m2.encode_data(k, d[k])), f"{k} cell embedding differs"
    assert np.array_equal(m1.encode_graph(), m2.encode_graph())
    assert all(np.array_equal(m1.balancing_weights[k], m2.balancing_weights[k]) for k in d)
    assert m1.history[["vae", "val_loss"]].equals(m2.history[["vae", "val_loss"]])
    assert not np.array_equal(m1.encode_graph(), m3.encode_graph())


def test_metrics_deterministic(sim, graph):
    d = {k: sim[k].copy() for k in ("rna", "atac")}
    for a in d.values():
        a.obsm["X_glue"] = a.obsm["X_latent"][:, :5] + np.random.default_rng(0).normal(size=(a.n_obs, 5))
    a, b = (M.evaluate(d, graph=graph, n_meta=20, random_state=4, progress=False) for _ in range(2))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
