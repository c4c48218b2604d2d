"Tests of gluekit.graph: hand-checkable intervals, schemes, corruption, bad input, I/O, simulator and SNARE-seq."
from __future__ import annotations

import os
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from gluekit.core import InputError
from gluekit import graph as gg

DATA = Path(os.environ.get("GLUEKIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _rna(var: pd.DataFrame) -> ad.AnnData:
    return ad.AnnData(sp.csr_matrix((2, len(var)), dtype=np.float32), var=var)


def _atac(names) -> ad.AnnData:
    return ad.AnnData(sp.csr_matrix((2, len(names)), dtype=np.float32), var=pd.DataFrame(index=list(names)))


@pytest.fixture
def toy():
    "A '+' and a '-' gene with body [10000, 20000) and peaks at the edges of their promoters."
    var = pd.DataFrame({"chrom": "chr1", "chromStart": 10_000, "chromEnd": 20_000, "strand": ["+", "-"]},
                       index=["gp", "gm"])
    peaks = ["chr1:7000-8001",     # '+' promoter [8000, 10001): last base 8000 is 1 bp inside
             "chr1:7000-8000",     # last base 7999: 1 bp outside
             "chr1:10000-10001",   # the '+' TSS itself
             "chr1:21999-23000",   # '-' promoter [19999, 22000): first base 21999 is 1 bp inside
             "chr1:22000-23000",   # first base 22000: 1 bp outside
             "chr1:23000-23100",   # 1 kb from the '-' promoter
             "chr1:31000-31100",   # 9 kb from the '-' promoter
             "chr1:172000-172100", # 150 kb from the '-' promoter (included)
             "chr1:172001-172100", # 150,001 bp (excluded)
             "chr2:20000-20100"]   # another chromosome
    return _rna(var), _atac(peaks)


def _pairs(graph, evidence=None):
    e = gg.graph_to_edges(graph, self_loops=False)
    if evidence is not None:
        e = e[e["evidence"] == evidence]
    return set(zip(e["source"], e["target"]))


# ---------------------------------------------------------------- hand-checkable cases
def test_promoter_one_bp_inside_outside_each_strand(toy):
    rna, atac = toy
    std = _pairs(gg.build_guidance_graph(rna, atac, scheme="standard"))
    assert ("chr1:7000-8001", "gp") in std and ("gp", "chr1:7000-8001") in std
    assert ("chr1:7000-8000", "gp") not in std
    assert ("chr1:21999-23000", "gm") in std
    assert ("chr1:22000-23000", "gm") not in std
    assert ("chr1:10000-10001", "gp") in std and ("chr1:10000-10001", "gm") in std  # TSS of gp, body of gm
    # gene body only (promoter=0) needs no strand and drops the promoter-only peaks
    body = _pairs(gg.build_guidance_graph(rna, atac, scheme="standard", promoter=0))
    assert ("chr1:7000-8001", "gp") not in body and ("chr1:21999-23000", "gm") not in body


def test_power_law_weight_at_known_distances(toy):
    rna, atac = toy
    wp = gg.window_pairs(rna, atac).set_index(["peak", "gene"])
    expect = {("chr1:21999-23000", "gm"): (0, 1.0), ("chr1:23000-23100", "gm"): (1000, 2 ** -0.75),
              ("chr1:31000-31100", "gm"): (9000, 10 ** -0.75), ("chr1:172000-172100", "gm"): (150_000, 151 ** -0.75)}
    for k, (d, w) in expect.items():
        assert wp.loc[k, "distance"] == d
        assert wp.loc[k, "weight"] == pytest.approx(w, rel=1e-12)
    assert ("chr1:172001-172100", "gm") not in wp.index
    assert not any(p.startswith("chr2") for p, _ in wp.index)
    w2 = gg.window_pairs(rna, atac, window=10_000, power=1.0).set_index(["peak", "gene"])
    assert w2.loc[("chr1:31000-31100", "gm"), "weight"] == pytest.approx(0.1)
    assert ("chr1:172000-172100", "gm") not in w2.index


def test_window_pairs_match_brute_force():
    rng = np.random.default_rng(5)
    n, m = 60, 500
    s = rng.integers(0, 2_000_000, n); e = s + rng.integers(1, 80_000, n)
    var = pd.DataFrame({"chrom": rng.choice(["chr1", "chr2"], n), "chromStart": s, "chromEnd": e,
                        "strand": rng.choice(["+", "-"], n)}, index=[f"g{i}" for i in range(n)])
    ps = rng.integers(0, 2_100_000, m); pe = ps + rng.integers(1, 3000, m)
    pch = rng.choice(["chr1", "chr2"], m)
    names = [f"{c}:{a}-{b}" for c, a, b in zip(pch, ps, pe)]
    rna, atac = _rna(var), _atac(pd.unique(np.array(names)))
    got = gg.window_pairs(rna, atac, window=100_000, power=0.5)
    # brute force over all pairs with numpy broadcasting
    pv = gg.parse_peak_names(atac.var_names)
    plus = var["strand"].to_numpy() == "+"
    tss = np.where(plus, s, e - 1)
    a = np.where(plus, tss - 2000, tss); b = np.where(plus, tss + 1, tss + 2001)
    gap = np.maximum(0, np.maximum(pv["chromStart"].to_numpy()[None] - b[:, None], a[:, None] - pv["chromEnd"].to_numpy()[None]))
    ok = (gap <= 100_000) & (var["chrom"].to_numpy()[:, None] == pv["chrom"].to_numpy()[None])
    gi, pi = np.nonzero(ok)
    want = pd.DataFrame({"peak": atac.var_names[pi], "gene": var.index[gi], "distance": gap[gi, pi]})
    m_ = got.merge(want, on=["peak", "gene"], how="outer", indicator=True)
    assert (m_["_merge"] == "both").all(), m_["_merge"].value_counts()
    assert (m_["distance_x"] == m_["distance_y"]).all()
    np.testing.assert_allclose(m_["weight"], (m_["distance_y"] / 1000 + 1) ** -0.5)


def test_self_loops_both_directions_and_multi_edges(toy):
    rna, atac = toy
    g = gg.build_guidance_graph(rna, atac, scheme=["standard", "window"])
    assert g.is_directed() and g.is_multigraph()
    assert set(g.nodes) == set(rna.var_names) | set(atac.var_names)
    for v in g.nodes:  # exactly one self-loop per vertex, weight 1, sign +1
        loops = g.get_edge_data(v, v)
        assert len(loops) == 1 and loops[0]["weight"] == 1.0 and loops[0]["sign"] == 1
    assert g.number_of_edges("chr1:7000-8001", "gp") == 2  # standard and window: two edges kept
    assert g.number_of_edges("gp", "chr1:7000-8001") == 2
    for u, v, d in g.edges(data=True):
        assert 0 < d["weight"] <= 1 and d["sign"] in (-1, 1)
        assert g.has_edge(v, u)


def test_gene_activity_hand(toy):
    rna, atac = toy
    x = np.arange(1, atac.n_vars + 1, dtype=np.float32)[None].repeat(2, 0)
    a2 = ad.AnnData(sp.csr_matrix(x), var=atac.var.copy()); a2.layers["counts"] = a2.X.copy()
    ga = gg.gene_activity(a2, rna)
    # gp: body + 2.5 kb upstream = [7500, 20000) -> peaks 0, 1, 2 (1+2+3); gm: [10000, 22500) -> peaks 2, 3, 4 (3+4+5)
    np.testing.assert_array_equal(ga.X.toarray(), [[6, 12], [6, 12]])
    assert ga.obs_names.equals(a2.obs_names) and list(ga.var_names) == ["gp", "gm"]


# ---------------------------------------------------------------- simulator: recall, corruption
@pytest.fixture(scope="module")
def sim():
    from gluekit.data import simulate_multiome
    return simulate_multiome(n_cells=300, n_genes=500, random_state=0)


def test_simulator_recall_of_planted_links(sim):
    rna, atac = sim["rna"], sim["atac"]
    truth = atac.uns["true_links"]
    planted = set(zip(truth["peak"], truth["gene"]))
    std = gg.build_guidance_graph(rna, atac, scheme="standard")
    both = gg.build_guidance_graph(rna, atac, scheme=["standard", "window"])
    r_std = len(planted & _pairs(std)) / len(planted)
    r_both = len(planted & _pairs(both)) / len(planted)
    print(f"planted {len(planted)}; recall standard {r_std:.3f} ({std.number_of_edges()} edges), "
          f"standard+window {r_both:.3f} ({both.number_of_edges()} edges)")
    assert r_both >= 0.95
    assert r_std <= r_both
    near = truth[truth["distance"] <= 1000]
    have = _pairs(std, "standard")
    r_near = np.mean([(p, g) in have for p, g in zip(near["peak"], near["gene"])])
    assert r_near >= 0.95  # links within 1 kb of the TSS are in the promoter or the body


@pytest.fixture(scope="module")
def sim_graph(sim):
    return gg.build_guidance_graph(sim["rna"], sim["atac"], scheme=["standard", "window"])


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.25, 1.0])
def test_corruption_changes_exact_fraction(sim, sim_graph, rate):
    g, peaks = sim_graph, set(sim["atac"].var_names)
    pg = _pairs(g)
    before = {(p, q) for p, q in pg if p in peaks}
    c = gg.corrupt_graph(g, rate, random_state=1)
    pc = _pairs(c)
    after = {(p, q) for p, q in pc if p in peaks}
    assert len(after) == len(before)
    assert len(before - after) == round(rate * len(before))
    assert pc == {(b, a) for a, b in pc}  # still both directions
    assert set(c.nodes) == set(g.nodes)
    assert sum(1 for u, v in c.edges() if u == v) == c.number_of_nodes()
    if 0 < rate < 1:
        assert _pairs(gg.corrupt_graph(g, rate, random_state=1)) == pc
        assert _pairs(gg.corrupt_graph(g, rate, random_state=2)) != pc


def test_check_graph_reports_unlinked(sim):
    rna, atac = sim["rna"], sim["atac"]
    g = gg.build_guidance_graph(rna, atac)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        rep = gg.check_graph(g, {"rna": rna, "atac": atac})
    e = gg.graph_to_edges(g, self_loops=False)
    assert rep.loc["atac", "n_linked"] == e.loc[e["source"].isin(atac.var_names), "source"].nunique()
    assert rep.loc["rna", "n_unlinked"] == rna.n_vars - e.loc[e["source"].isin(rna.var_names), "source"].nunique()
    assert len(rec) == int((rep["n_unlinked"] > 0).sum())
    bad = g.copy()
    u, v, k = next((u, v, k) for u, v, k in bad.edges(keys=True) if u != v)
    bad.edges[u, v, k]["weight"] = 0.0
    with pytest.raises(InputError, match="outside"):
        gg.check_graph(bad, {"rna": rna})


def test_triple_omics_and_protein():
    from gluekit.data import simulate_multiome
    s = simulate_multiome(n_cells=100, n_genes=60, modalities=("rna", "atac", "met", "prot"), random_state=2)
    g = gg.compose_graphs(gg.build_guidance_graph(s["rna"], s["atac"]), gg.link_methylation(s["met"], s["rna"]),
                          gg.link_protein(s["prot"], s["rna"]))
    rep = gg.check_graph(g, s)
    assert rep.loc["met", "n_unlinked"] == 0 and rep.loc["prot", "n_unlinked"] == 0
    e = gg.graph_to_edges(g, self_loops=False)
    met = e[e["source"].isin(s["met"].var_names)]
    assert (met["sign"] == -1).all() and len(met) == s["met"].n_vars
    assert (met["target"].to_numpy() == s["met"].var.loc[met["source"], "gene"].to_numpy()).all()


# ---------------------------------------------------------------- bad input
def test_bad_input_messages(toy):
    rna, atac = toy
    ann = pd.DataFrame({"chrom": ["chr1", "chr1", "chr1"], "chromStart": [100, 50, 0], "chromEnd": [200, 400, 10],
                        "name": ["gp", "gp", "gm"], "strand": ["+", "+", "-"]})
    r = _rna(pd.DataFrame(index=["gp", "gm"] + [f"Missing{i}" for i in range(7)]))
    with pytest.raises(InputError, match=r"7 of 9 gene\(s\).*'Missing0'.*drop_missing=True"):
        gg.add_gene_coordinates(r, ann)
    with pytest.warns(UserWarning, match="7 of 9"):
        r2 = gg.add_gene_coordinates(r, ann, drop_missing=True, copy=True)
    assert list(r2.var_names) == ["gp", "gm"] and r.n_vars == 9
    assert r2.var.loc["gp", "chromStart"] == 50  # duplicated symbol: the longest row wins
    r3 = gg.add_gene_coordinates(r, ann, drop_missing=True, duplicates="first", copy=True)
    assert r3.var.loc["gp", "chromStart"] == 100
    with pytest.raises(InputError, match="duplicated symbol"):
        gg.add_gene_coordinates(r, ann, duplicates="error", drop_missing=True, copy=True)
    with pytest.warns(UserWarning):
        gg.add_gene_coordinates(r, ann, drop_missing=True)  # in place
    assert r.n_vars == 2 and "strand" in r.var

    bad = rna.copy(); bad.var["chrom"] = "1"
    with pytest.raises(InputError, match="inconsistent chromosome naming.*'1'.*'chr1'"):
        gg.build_guidance_graph(bad, atac)
    bad = rna.copy(); bad.var["chromEnd"] = [20_000, 5]
    with pytest.raises(InputError, match="chromStart > chromEnd: 'gm'"):
        gg.window_pairs(bad, atac)
    bad = rna.copy(); del bad.var["strand"]
    with pytest.raises(InputError, match="strand"):
        gg.build_guidance_graph(bad, atac)
    gg.build_guidance_graph(bad, atac, promoter=0)  # gene bodies need no strand
    bad = rna.copy(); bad.var.loc["gm", "strand"] = "."
    with pytest.raises(InputError, match="1 feature\\(s\\) without a '\\+'/'-' strand: 'gm'"):
        gg.window_pairs(bad, atac)
    bad = rna.copy(); bad.var.loc["gm", "chromStart"] = np.nan
    with pytest.raises(InputError, match="1 gene\\(s\\) without coordinates: 'gm'; pass drop_missing=True"):
        gg.build_guidance_graph(bad, atac)
    with pytest.warns(UserWarning, match="1 gene\\(s\\) without coordinates"):
        ga = gg.gene_activity(atac, bad, layer=None, drop_missing=True)
    assert ga.X[:, 1].nnz == 0 and ga.shape == (atac.n_obs, 2)
    with pytest.raises(InputError, match="not of the form"):
        gg.build_guidance_graph(rna, _atac(["chr1:1-5", "peak_x"]))
    with pytest.raises(InputError, match="unknown scheme"):
        gg.build_guidance_graph(rna, atac, scheme="nearest")

    g = gg.build_guidance_graph(rna, atac)
    for w in (0.0, 1.5, -0.1, np.nan):
        with pytest.raises(InputError, match=r"weight\(s\) outside \(0, 1\]"):
            gg.add_evidence(g, pd.DataFrame({"peak": ["chr1:7000-8000"], "gene": ["gp"], "weight": [w]}), evidence="x")
    with pytest.raises(InputError, match="not vertices"):
        gg.add_evidence(g, pd.DataFrame({"peak": ["chr9:1-2"], "gene": ["gp"], "weight": [1.0]}), evidence="x")
    with pytest.raises(InputError, match="rate"):
        gg.corrupt_graph(g, 1.2)


def test_annotation_readers(tmp_path):
    (tmp_path / "a.gtf.gz").write_bytes(__import__("gzip").compress(
        b'chr1\tH\tgene\t101\t200\t.\t-\t.\tgene_id "E1"; gene_name "Aa";\n'
        b'chr1\tH\ttranscript\t101\t200\t.\t-\t.\tgene_id "E1"; gene_name "Aa";\n'))
    gtf = gg.read_gtf(tmp_path / "a.gtf.gz")
    assert gtf[["chrom", "chromStart", "chromEnd", "name", "strand"]].to_numpy().tolist() == [["chr1", 100, 200, "Aa", "-"]]
    (tmp_path / "t.bed").write_text("chr1\t500\t501\tCd4\t0\t+\nchr1\t900\t901\tCd8a\t0\t-\n")
    tss = gg.read_tss_bed(tmp_path / "t.bed")
    assert tss[["chromStart", "chromEnd"]].to_numpy().tolist() == [[500, 501], [900, 901]]


def test_io_roundtrip(tmp_path, toy):
    rna, atac = toy
    g = gg.build_guidance_graph(rna, atac, scheme=["standard", "window"])
    key = lambda h: sorted(map(tuple, gg.graph_to_edges(h).fillna(-1).astype(str).to_numpy().tolist()))
    for name in ("g.graphml", "g.graphml.gz", "g.tsv", "g.parquet"):
        gg.write_graph(g, tmp_path / name)
        h = gg.read_graph(tmp_path / name)
        assert key(h) == key(g), name
        assert dict(h.nodes(data="layer")) == dict(g.nodes(data="layer"))


# ---------------------------------------------------------------- SNARE-seq (real data)
@pytest.mark.skipif(not (DATA / "snare_adbrain" / "GxR.npz").exists(), reason="SNARE-seq data not available")
def test_snare_graph_from_gencode_bed(monkeypatch):
    monkeypatch.setenv("GLUEKIT_DATA", str(DATA))
    from gluekit.data import load_snare_adbrain, read_bed
    snare = load_snare_adbrain()
    rna = snare["rna"]
    atac = snare["atac"]
    # coordinates straight from the GENCODE BED (1-based start) and the region names
    genes = ad.AnnData(sp.csr_matrix((1, rna.n_vars), dtype=np.float32), var=pd.DataFrame(index=rna.var_names))
    bed = read_bed(DATA / "annotation" / "genes_Gencode_mm10.bed", one_based_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gg.add_gene_coordinates(genes, bed, drop_missing=True)
    peaks = _atac(atac.var_names)
    g = gg.build_guidance_graph(genes, peaks, scheme=["standard", "window"])
    rep = gg.check_graph(g, {"rna": genes, "atac": peaks})
    assert rep.loc["atac", "n_linked"] > 0
    e = gg.graph_to_edges(g, self_loops=False)
    n_std, n_win = (e["evidence"] == "standard").sum() // 2, (e["evidence"] == "window").sum() // 2
    assert n_std > 0 and n_win > 0
    assert rep.loc["atac", "n_linked"] >= 0.95 * peaks.n_vars  # scMoMaT kept regions near its genes
    assert e.loc[e["evidence"] == "window", "distance"].max() <= 150_000
    gxr = sp.load_npz(DATA / "snare_adbrain" / "GxR.npz").tocoo()
    prior = set(zip(atac.var_names[gxr.col], rna.var_names[gxr.row]))
    std = _pairs(g, "standard"); win = _pairs(g, "window")
    print(f"SNARE: {genes.n_vars} genes, {peaks.n_vars} peaks; standard {n_std} pairs, window {n_win}; "
          f"GxR {len(prior)} pairs, in standard {len(prior & std) / len(prior):.3f}, "
          f"in window {len(prior & win) / len(prior):.3f}")


@pytest.mark.skipif(not (DATA / "annotation" / "hg19-limited-upstream500.bed.gz").exists(), reason="data not available")
def test_real_promoter_bed():
    tss = gg.read_tss_bed(DATA / "annotation" / "hg19-limited-upstream500.bed.gz", kind="promoter")
    assert not tss["name"].str.contains("#").any()
    assert set(tss["strand"]) == {"+", "-"}
    assert (tss["chromEnd"] - tss["chromStart"] == 1).all()
    first = tss.iloc[0]  # chr19 58864865 58865366 A1BG#1 0 - : the TSS is the promoter's first base on '-'
    assert (first["chrom"], first["chromStart"], first["name"]) == ("chr19", 58864865, "A1BG")
