"""Regulatory inference (gluekit.regulatory): calibration of the null, accuracy against planted links, bad input.

Budget: about 2-3 minutes on 2 CPU cores; two short GLUE fits dominate (the SNARE-seq test is marked slow).
"""
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from gluekit.core import InputError
from gluekit.data import preprocess_atac, preprocess_rna, simulate_multiome
from gluekit.glue import configure_dataset, embed, fit_glue
from gluekit.graph import build_guidance_graph
from gluekit.regulatory import (candidate_pairs, empirical_pvalues, get_regulatory_df, lasso_scores, link_metrics,
                                peak_gene_correlation, regulatory_graph, regulatory_scores, score_regulatory)

N_CELLS, N_GENES = 500, 200


def _labels(links, truth):
    key = set(zip(truth["peak"], truth["gene"]))
    return np.array([(p, g) in key for p, g in zip(links["peak"], links["gene"])])


def _prior_only(rna, atac, cand, *, m=20, seed=0):
    "Feature embeddings V = Â E over the window graph: the prior's structure, no link information."
    rng = np.random.default_rng(seed)
    names = pd.Index(np.r_[rna.var_names, atac.var_names])
    n = len(names)
    i, j = names.get_indexer(cand["peak"]), names.get_indexer(cand["gene"])
    w = sp.coo_matrix((np.r_[cand["weight"], cand["weight"]], (np.r_[i, j], np.r_[j, i])), shape=(n, n)) + sp.eye(n)
    dinv = sp.diags(1 / np.sqrt(np.asarray(w.sum(1)).ravel()))
    return pd.DataFrame(dinv @ w @ dinv @ rng.standard_normal((n, m)), index=names)


@pytest.fixture(scope="module")
def sim():
    d = simulate_multiome(n_cells=N_CELLS, n_genes=N_GENES, random_state=0)
    return d, candidate_pairs(d["rna"], d["atac"])


def _fit(d, seed=0, epochs=20, **kw):
    rna, atac = d["rna"], d["atac"]
    preprocess_rna(rna, n_top_genes=N_GENES, n_comps=30)
    preprocess_atac(atac, n_comps=30)
    configure_dataset(rna, "NB", layer="counts", use_rep="X_pca")
    configure_dataset(atac, "NB", layer="counts", use_rep="X_lsi")
    graph = build_guidance_graph(rna, atac, scheme="window")
    torch.set_num_threads(1)   # small models gain little from a 2nd thread; oversubscribed threads on a busy machine cost 10x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_glue(d, graph, max_epochs=epochs, random_state=seed, device="cpu", progress=False, paired=True, **kw)


@pytest.fixture(scope="module")
def trained():
    "GLUE on paired simulated data with planted links (short CPU budget)."
    d = simulate_multiome(n_cells=N_CELLS, n_genes=N_GENES, random_state=0)
    return d, _fit(d, epochs=150, lr=5e-3)   # ~1,200 steps per stage: more training ranks links better (bench)


@pytest.fixture(scope="module")
def trained_no_links():
    "GLUE on the same data with the genes' coordinates shuffled: the window prior is intact, no candidate is a link."
    d = simulate_multiome(n_cells=N_CELLS, n_genes=N_GENES, random_state=0)
    cols = ["chrom", "chromStart", "chromEnd", "strand"]
    perm = np.random.default_rng(1).permutation(d["rna"].n_vars)
    d["rna"].var[cols] = d["rna"].var[cols].iloc[perm].to_numpy()
    return d, _fit(d, epochs=10)   # calibration needs the prior's structure, not a converged model


# ---------------------------------------------------------------- calibration
def test_empirical_null_calibrated_on_prior_only_embeddings(sim):
    d, cand = sim
    embs = [_prior_only(d["rna"], d["atac"], cand, seed=s) for s in range(3)]
    emp, _ = regulatory_scores(embs, cand, progress=False)
    shuf, _ = regulatory_scores(embs, cand, null="shuffle", n_shuffles=5, progress=False)
    assert (emp["qval"] < 0.05).mean() <= 0.05 + 0.02
    assert 0.02 <= (emp["pval"] < 0.05).mean() <= 0.05 + 0.03        # uniform P-values
    assert (shuf["pval"] < 0.05).mean() > 0.15                         # the paper's null: anti-conservative


def test_empirical_null_calibrated_on_glue_without_links(trained_no_links):
    d, model = trained_no_links
    cand = candidate_pairs(d["rna"], d["atac"])
    truth = d["atac"].uns["true_links"]
    assert _labels(cand, truth).mean() < 0.01                          # shuffled truth: (almost) no link is a candidate
    emp = score_regulatory(d, [model], pairs=cand, progress=False, inplace=False)
    shuf = score_regulatory(d, [model], pairs=cand, null="shuffle", n_shuffles=5, progress=False, inplace=False)
    mir = score_regulatory(d, [model], pairs=cand, tail="mirror", progress=False, inplace=False)
    for res in (emp, mir):
        assert (res["qval"] < 0.05).mean() <= 0.05 + 0.02
        assert (res["pval"] < 0.05).mean() <= 0.05 + 0.03
    assert (shuf["pval"] < 0.05).mean() > (emp["pval"] < 0.05).mean() + 0.05


# ---------------------------------------------------------------- accuracy
def test_glue_scores_rank_planted_links(trained):
    d, model = trained
    rna, atac = d["rna"], d["atac"]
    truth = atac.uns["true_links"]
    embed(model, d)
    score_regulatory(d, progress=False)                                # reads varm["X_glue"]
    links = get_regulatory_df(atac, fdr=None)
    m = link_metrics(links, truth)
    m_corr = link_metrics(links, truth, score=peak_gene_correlation(rna, atac, links))
    # Measured (bench/bench_regulatory.py, notebook "A diagnosis"): GLUE 0.69, signed paired correlation 0.58,
    # |corr| 0.76, distance alone 0.82; a logistic fit of distance + correlation on the truth reaches only 0.87,
    # so the 0.9 is out of reach on this simulator. GLUE's one-sided score beats the baseline of the same
    # direction (the signed correlation); 30 % of the planted links repress and rank low in both.
    assert m["auroc"] > 0.63, m
    assert m["auroc"] > m_corr["auroc"] + 0.05, (m, m_corr)
    assert m["average_precision"] > 0.12, m                              # base rate 278 / 4701 = 0.06
    y = _labels(links, truth)
    assert (links["pval"].to_numpy()[~y] < 0.05).mean() <= 0.05 + 0.03  # decoys stay calibrated
    g = regulatory_graph(atac, fdr=0.05)
    assert g.number_of_edges() == int((links["qval"] <= 0.05).sum())


def test_baselines_rank_planted_links(sim):
    d, cand = sim
    rna, atac = d["rna"], d["atac"]
    truth = atac.uns["true_links"]
    r = peak_gene_correlation(rna, atac, cand)
    la = lasso_scores(rna, atac, cand, progress=False)
    assert link_metrics(cand, truth, score=np.abs(r))["auroc"] > 0.7
    assert link_metrics(cand, truth, score=np.abs(la))["auroc"] > 0.65


def test_metacell_correlation_on_unpaired_data():
    d = simulate_multiome(n_cells=400, n_genes=100, paired=False, random_state=2)
    rna, atac = d["rna"], d["atac"]
    for a in (rna, atac):
        a.obsm["X_glue"] = a.obsm["X_latent"]                      # a perfectly aligned embedding
    cand = candidate_pairs(rna, atac)
    with pytest.raises(InputError, match="n_metacells"):
        peak_gene_correlation(rna, atac, cand)
    r = peak_gene_correlation(rna, atac, cand, n_metacells=40, method="spearman")
    assert np.isfinite(r).all()
    assert link_metrics(cand, atac.uns["true_links"], score=np.abs(r))["auroc"] > 0.65


# ---------------------------------------------------------------- mechanics and bad input
def test_empirical_pvalues_exact_and_grouped():
    p = empirical_pvalues(np.array([2.5, -1.0, 10.0]), np.arange(4.0))
    np.testing.assert_allclose(p, [2 / 5, 1.0, 1 / 5])
    p2 = empirical_pvalues(np.array([0.0, 0.0]), np.array([1.0, -1, 5, 6]), groups=np.array([0, 1]),
                           null_groups=np.array([0, 0, 1, 1]), alternative="two-sided")
    np.testing.assert_allclose(p2, [1.0, 2 / 3])


def test_shuffle_null_reproducible(sim):
    d, cand = sim
    embs = [_prior_only(d["rna"], d["atac"], cand, seed=0)]
    a, _ = regulatory_scores(embs, cand, null="shuffle", n_shuffles=2, random_state=3, progress=False)
    b, _ = regulatory_scores(embs, cand, null="shuffle", n_shuffles=2, random_state=3, progress=False)
    c, _ = regulatory_scores(embs, cand, null="shuffle", n_shuffles=2, random_state=4, progress=False)
    np.testing.assert_array_equal(a["pval"], b["pval"])
    assert not np.array_equal(a["pval"], c["pval"])


def test_bad_input(sim):
    d, cand = sim
    rna, atac = d["rna"], d["atac"]
    emb = _prior_only(rna, atac, cand)
    with pytest.raises(InputError, match="without feature names"):
        regulatory_scores([emb.to_numpy()], cand, progress=False)
    with pytest.raises(InputError, match="no embedding"):
        regulatory_scores([emb.rename(index=lambda s: s.lower())], cand, progress=False)
    bad = cand.copy(); bad.loc[0, "peak"] = "chrX:1-2"
    with pytest.raises(InputError, match="chrX:1-2"):
        score_regulatory(d, [emb], pairs=bad, progress=False, inplace=False)
    with pytest.raises(InputError, match="n_shuffles >="):
        regulatory_scores([emb], cand, null="shuffle", n_shuffles=2, pool="bin", resolution=1e-6, progress=False)
    with pytest.raises(InputError, match="alternative"):
        regulatory_scores([emb], cand, alternative="bigger", progress=False)
    with pytest.raises(InputError, match="uns"):
        get_regulatory_df(rna)


# ---------------------------------------------------------------- SNARE-seq (real paired data, no truth)
@pytest.mark.slow
def test_snare_distance_decay_and_correlation_agreement(data_cache):
    "2,000 SNARE-seq nuclei, 30 epochs: scores decay with distance, agree with the paired correlation, some pass FDR."
    from scipy import stats
    from gluekit.data import load_snare_adbrain
    snare = load_snare_adbrain()
    keep = np.sort(np.random.default_rng(0).choice(snare["rna"].n_obs, 2000, replace=False))
    rna = snare["rna"][keep, snare["rna"].var["chrom"].notna().to_numpy()].copy()
    atac = snare["atac"][keep].copy()
    atac = atac[:, np.asarray(atac.layers["counts"].sum(0)).ravel() >= 5].copy()
    ok = (np.asarray(rna.layers["counts"].sum(1)).ravel() > 0) & (np.asarray(atac.layers["counts"].sum(1)).ravel() > 0)
    d = {"rna": rna[ok].copy(), "atac": atac[ok].copy()}
    preprocess_rna(d["rna"], n_top_genes=d["rna"].n_vars, n_comps=50); preprocess_atac(d["atac"], n_comps=50)
    configure_dataset(d["rna"], "NB", layer="counts", use_rep="X_pca")
    configure_dataset(d["atac"], "NB", layer="counts", use_rep="X_lsi")
    torch.set_num_threads(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit_glue(d, build_guidance_graph(d["rna"], d["atac"], scheme="window"), max_epochs=30, random_state=0,
                         device="cpu", progress=False, paired=True)
    score_regulatory(d, [model], progress=False)
    links = get_regulatory_df(d["atac"], fdr=None)
    corr = peak_gene_correlation(d["rna"], d["atac"], links)
    med = links.groupby("bin")["score"].median()
    assert med.iloc[0] > med.iloc[-1] + 0.3, med                           # measured 0.998 vs -0.10
    assert stats.spearmanr(links["score"], corr)[0] > 0.05                 # measured 0.13
    assert stats.spearmanr(links["zscore"], corr)[0] > 0.03                # measured 0.11 (within distance bins)
    n_fdr = int((links["qval"] <= 0.05).sum())
    assert 0 < n_fdr < 0.1 * len(links), n_fdr                              # measured 77 of 8,040
