"Tests of gluekit.data: simulator truth, registry (offline, loopback download, corruption), SNARE loader, preprocessing."
import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from gluekit.core import DataFileError, InputError
from gluekit import data as D

SHARED = Path(os.environ.get("GLUEKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
needs_data = pytest.mark.skipif(not (SHARED / "snare_adbrain" / "GxC1.npz").is_file(),
                                reason="real data cache not available (set GLUEKIT_DATA)")


def _zscore_lognorm(x):
    x = sp.csr_matrix(x)
    x = x.multiply(1e4 / np.asarray(x.sum(1))).tocsr().log1p().toarray()
    return (x - x.mean(0)) / np.maximum(x.std(0), 1e-12)


# ---------------------------------------------------------------- simulator
@pytest.fixture(scope="module")
def paired():
    return D.simulate_multiome(n_cells=2000, n_genes=300, n_batches=2, random_state=11)


def test_contract_fields(paired):
    rna, atac = paired["rna"], paired["atac"]
    assert list(rna.obs_names) == list(atac.obs_names)
    for a in (rna, atac):
        assert {"cell_type", "batch", "domain"} <= set(a.obs)
        assert isinstance(a.obs["cell_type"].dtype, pd.CategoricalDtype)
        assert a.obsm["X_latent"].shape[0] == a.n_obs
        assert sp.isspmatrix_csr(a.X) and a.X.dtype == np.float32
        assert (a.X != a.layers["counts"]).nnz == 0
        assert np.all(a.X.data == np.round(a.X.data)) and a.X.data.min() > 0
    assert {"chrom", "chromStart", "chromEnd", "strand", "is_tf"} <= set(rna.var)
    assert set(rna.var["strand"]) == {"+", "-"}
    assert (rna.var["chromEnd"] > rna.var["chromStart"]).all() and (rna.var["chromStart"] >= 0).all()
    v = atac.var
    assert list(atac.var_names[:1]) == [f"{v.chrom.iloc[0]}:{v.chromStart.iloc[0]}-{v.chromEnd.iloc[0]}"]
    assert sorted(rna.uns["tfs"]) == sorted(rna.var_names[rna.var["is_tf"]])
    dens_atac = atac.X.nnz / np.prod(atac.shape)
    dens_rna = rna.X.nnz / np.prod(rna.shape)
    assert 0.01 < dens_atac < 0.08 and dens_rna > 3 * dens_atac


def test_truth_tables_consistent(paired):
    rna, atac = paired["rna"], paired["atac"]
    tl, sites, tt = atac.uns["true_links"], atac.uns["tf_sites"], rna.uns["true_tf_targets"]
    assert list(tl.columns) == ["peak", "gene", "sign", "strength", "distance"]
    assert tl["peak"].isin(atac.var_names).all() and tl["gene"].isin(rna.var_names).all()
    assert set(tl["sign"]) == {-1, 1} and tl["distance"].max() <= 150_000
    # recompute distances from the coordinates: peak centre to TSS
    pv, gv = atac.var.loc[tl["peak"]], rna.var.loc[tl["gene"]]
    tss = np.where(gv["strand"] == "+", gv["chromStart"], gv["chromEnd"] - 1)
    d = np.abs((pv["chromStart"].to_numpy() + pv["chromEnd"].to_numpy()) // 2 - tss)
    np.testing.assert_array_equal(d, tl["distance"].to_numpy())
    assert (tl["distance"] <= 2_000).mean() > 0.2 and (tl["distance"] > 50_000).any()
    # sites lie inside their peaks, are named by TF genes, and decoys exist outside planted peaks
    ps = atac.var.loc[sites["peak"]]
    assert (sites["chromStart"].to_numpy() >= ps["chromStart"].to_numpy()).all()
    assert (sites["chromEnd"].to_numpy() <= ps["chromEnd"].to_numpy()).all()
    assert sites["tf"].isin(rna.uns["tfs"]).all()
    assert (~sites["peak"].isin(tl["peak"])).sum() > 0
    # TF->target truth = TF binds a planted peak of the target
    exp = sites.merge(tl, on="peak")[["tf", "gene"]].drop_duplicates()
    assert set(map(tuple, exp.to_numpy())) == set(map(tuple, tt[["tf", "target"]].to_numpy()))
    # a 150-kb window around a TSS holds many peaks, of which only a few are planted
    per_gene = tl.groupby("gene").size()
    assert per_gene.max() <= 5 and per_gene.mean() < 3


def test_planted_links_correlate_more_than_distance_matched(paired):
    rna, atac = paired["rna"], paired["atac"]
    R, A = _zscore_lognorm(rna.layers["counts"]), _zscore_lognorm(atac.layers["counts"])
    tl = atac.uns["true_links"]
    pi, gi = atac.var_names.get_indexer(tl["peak"]), rna.var_names.get_indexer(tl["gene"])
    r_pl = (R[:, gi] * A[:, pi]).mean(0) * tl["sign"].to_numpy()
    # distance-matched controls: for each planted link, the unplanted peak of the same gene whose distance to
    # the TSS is closest to the planted one's
    centre = ((atac.var["chromStart"] + atac.var["chromEnd"]) // 2).to_numpy()
    gv = rna.var
    tss = np.where(gv["strand"] == "+", gv["chromStart"], gv["chromEnd"] - 1)
    planted = set(zip(pi, gi))
    chrom = atac.var["chrom"].to_numpy()
    ctrl_p, ctrl_g = [], []
    for p, g, d in zip(pi, gi, tl["distance"]):  # a few hundred links
        dist = np.where(chrom == gv["chrom"].iloc[g], np.abs(centre - tss[g]), np.inf)
        dist[[q for q, h in planted if h == g]] = np.inf
        q = int(np.argmin(np.abs(dist - d)))
        ctrl_p.append(q); ctrl_g.append(g)
    r_ct = (R[:, ctrl_g] * A[:, ctrl_p]).mean(0)
    assert np.median(r_pl) > 0.04  # measured 0.069 (seed 11)
    assert np.median(r_pl) > 2 * np.median(np.abs(r_ct)), (np.median(r_pl), np.median(np.abs(r_ct)))  # measured 0.069 vs 0.024
    assert np.mean(r_pl > np.abs(r_ct)) > 0.6  # measured 0.70


def test_unpaired_proportions_as_requested():
    props = {"rna": [0.5, 0.3, 0.2, 0.0], "atac": [0.1, 0.2, 0.3, 0.4]}
    sim = D.simulate_multiome(n_cells={"rna": 500, "atac": 300}, n_genes=60, n_cell_types=4, paired=False,
                              proportions=props, random_state=3)
    assert not set(sim["rna"].obs_names) & set(sim["atac"].obs_names)
    for m, p in props.items():
        frac = sim[m].obs["cell_type"].value_counts(normalize=True).reindex([f"type{i}" for i in range(4)])
        np.testing.assert_allclose(frac.to_numpy(), p, atol=1 / sim[m].n_obs)
    # defaults differ between layers, and some type is rare in the second layer
    sim = D.simulate_multiome(n_cells=600, n_genes=60, paired=False, random_state=3)
    f = {m: a.obs["cell_type"].value_counts(normalize=True).sort_index().to_numpy() for m, a in sim.items()}
    assert np.abs(f["rna"] - f["atac"]).max() > 0.1 and f["atac"].min() < 0.03


def test_determinism():
    kw = dict(n_cells=300, n_genes=60, n_batches=2, modalities=("rna", "atac", "met", "prot"))
    a, b, c = D.simulate_multiome(**kw, random_state=4), D.simulate_multiome(**kw, random_state=4), \
        D.simulate_multiome(**kw, random_state=5)
    for m in a:
        xa, xb, xc = (sp.csr_matrix(s[m].X).toarray() for s in (a, b, c))
        np.testing.assert_array_equal(xa, xb)
        assert not np.array_equal(xa, xc)
    pd.testing.assert_frame_equal(a["atac"].uns["true_links"], b["atac"].uns["true_links"])
    # a Generator is used as is, and the global numpy state plays no part
    np.random.seed(0); x1 = D.simulate_multiome(n_cells=50, n_genes=40, random_state=np.random.default_rng(9))
    np.random.seed(1); x2 = D.simulate_multiome(n_cells=50, n_genes=40, random_state=np.random.default_rng(9))
    assert (x1["rna"].X != x2["rna"].X).nnz == 0


def test_met_and_prot_follow_expression():
    sim = D.simulate_multiome(n_cells=800, n_genes=120, modalities=("rna", "met", "prot"), n_batches=1,
                              random_state=2)
    rna, met, prot = sim["rna"], sim["met"], sim["prot"]
    assert met.n_vars == 2 * rna.n_vars and set(met.var["gene"]) == set(rna.var_names)
    assert met.X.min() >= 0 and met.X.max() <= 1 and 0.2 < (met.X == 0).mean() < 0.4
    assert 20 <= prot.n_vars <= 40 and prot.var["gene"].isin(rna.var_names).all()
    R = _zscore_lognorm(rna.layers["counts"])
    for suffix in ("_mCH", "_mCG"):
        M = met[:, [g + suffix for g in rna.var_names]].X
        r = [np.corrcoef(R[M[:, j] > 0, j], M[M[:, j] > 0, j])[0, 1] for j in range(R.shape[1])]
        assert np.nanmedian(r) < -0.15
    gi = rna.var_names.get_indexer(prot.var["gene"])
    r = [np.corrcoef(R[:, g], prot.X[:, i])[0, 1] for i, g in enumerate(gi)]
    assert np.median(r) > 0.15


def test_batches_shift_libraries_and_features():
    sim = D.simulate_multiome(n_cells=1500, n_genes=200, n_batches=3, random_state=8)
    rna = sim["rna"]
    lib = pd.Series(np.asarray(rna.X.sum(1)).ravel()).groupby(rna.obs["batch"].to_numpy()).median()
    assert lib.max() / lib.min() > 1.1
    assert set(rna.obs["batch"].cat.categories) == {"batch0", "batch1", "batch2"}


@pytest.mark.parametrize("kw, msg", [
    (dict(modalities=("rna", "hic")), "modalities"),
    (dict(n_cells={"rna": 10, "atac": 20}), "paired=True"),
    (dict(n_cells=0), "n_cells['rna']"),
    (dict(n_genes=5), "n_genes"),
    (dict(proportions=[1, 2]), "proportions['rna']"),
    (dict(paired=False, proportions={"rna": [1] * 6}), "exactly the layers"),
    (dict(random_state=-3), "random_state"),
])
def test_simulator_bad_input(kw, msg):
    with pytest.raises(InputError, match=msg.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        D.simulate_multiome(**kw)


# ---------------------------------------------------------------- registry
def test_registry_matches_provenance():
    prov = (SHARED / "PROVENANCE.md")
    if not prov.is_file():
        pytest.skip("PROVENANCE.md not available")
    rows = [l.split("|") for l in prov.read_text().splitlines() if l.startswith("| ") and "/" in l.split("|")[1]]
    listed = {r[1].strip(): r[3].strip() for r in rows if len(r[3].strip()) == 64}
    assert set(listed) == set(D.REGISTRY)
    for name, sha in listed.items():
        assert D.REGISTRY[name][1] == sha, name
        url = D.REGISTRY[name][0]
        assert url is None or url.startswith("https://"), name


@needs_data
def test_fetch_offline_from_cache(monkeypatch):
    monkeypatch.setenv("GLUEKIT_DATA", str(SHARED))
    monkeypatch.setenv("GLUEKIT_MIRROR", "http://127.0.0.1:9")  # would fail if any network were attempted
    for name in D.REGISTRY:
        assert D.fetch(name) == SHARED / name


def test_data_dir_default(monkeypatch):
    monkeypatch.delenv("GLUEKIT_DATA", raising=False)
    assert D.data_dir().name == "gluekit"
    monkeypatch.setenv("GLUEKIT_DATA", "/tmp/somewhere")
    assert D.data_dir() == Path("/tmp/somewhere")


@pytest.fixture
def loopback():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SHARED))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True); t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown(); srv.server_close()


@needs_data
def test_download_through_loopback_mirror(monkeypatch, tmp_path, loopback):
    monkeypatch.setenv("GLUEKIT_DATA", str(tmp_path))
    monkeypatch.setenv("GLUEKIT_MIRROR", loopback)
    p = D.fetch("tf_lists/allTFs_mm.txt")
    assert p == tmp_path / "tf_lists/allTFs_mm.txt"
    assert p.read_bytes() == (SHARED / "tf_lists/allTFs_mm.txt").read_bytes()
    # the downloaded file is now used offline
    monkeypatch.setenv("GLUEKIT_MIRROR", "http://127.0.0.1:9")
    assert D.fetch("tf_lists/allTFs_mm.txt") == p
    # the derived file has no public URL, but a mirror serves it
    monkeypatch.setenv("GLUEKIT_MIRROR", loopback)
    assert D.fetch("cistarget/motifs-v10nr_clust-nr.mgi-m0.001-o0.0.tsv.gz").is_file()


@needs_data
def test_download_with_wrong_content_is_refused(monkeypatch, tmp_path):
    # a mirror that serves a truncated file: pooch's check fails and nothing lands in the cache
    srv_dir = tmp_path / "srv" / "tf_lists"; srv_dir.mkdir(parents=True)
    (srv_dir / "allTFs_mm.txt").write_bytes((SHARED / "tf_lists/allTFs_mm.txt").read_bytes()[:500])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "srv"))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("GLUEKIT_DATA", str(tmp_path / "cache"))
        monkeypatch.setenv("GLUEKIT_MIRROR", f"http://127.0.0.1:{srv.server_address[1]}")
        with pytest.raises(DataFileError, match="tf_lists/allTFs_mm.txt"):
            D.fetch("tf_lists/allTFs_mm.txt")
        assert not (tmp_path / "cache" / "tf_lists" / "allTFs_mm.txt").exists()
    finally:
        srv.shutdown(); srv.server_close()


def test_missing_file_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("GLUEKIT_DATA", str(tmp_path))
    monkeypatch.setenv("GLUEKIT_MIRROR", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(DataFileError, match=r"snare_adbrain/genes.txt.*GLUEKIT_DATA"):
        D.fetch("snare_adbrain/genes.txt")
    with pytest.raises(InputError, match="not in gluekit.data.REGISTRY"):
        D.fetch("snare_adbrain/nothing.npz")


@needs_data
@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_corrupted_cache_file(monkeypatch, tmp_path, how):
    name = "snare_adbrain/RxC1.npz"
    dst = tmp_path / name; dst.parent.mkdir(parents=True)
    shutil.copyfile(SHARED / name, dst)
    for other in ["GxC1.npz", "genes.txt", "regions.txt", "meta_c1.csv"]:
        shutil.copyfile(SHARED / "snare_adbrain" / other, tmp_path / "snare_adbrain" / other)
    (tmp_path / "annotation").mkdir()
    shutil.copyfile(SHARED / "annotation/genes_Gencode_mm10.bed", tmp_path / "annotation/genes_Gencode_mm10.bed")
    b = bytearray(dst.read_bytes())
    if how == "truncate":
        b = b[: len(b) // 2]
    else:
        b[1000] ^= 0xFF
    dst.write_bytes(bytes(b))
    monkeypatch.setenv("GLUEKIT_DATA", str(tmp_path))
    monkeypatch.setenv("GLUEKIT_MIRROR", "http://127.0.0.1:9")
    with pytest.raises(DataFileError, match="RxC1.npz is corrupt"):
        D.load_snare_adbrain()
    assert dst.read_bytes() == bytes(b)  # never silently replaced


# ---------------------------------------------------------------- loaders
@needs_data
def test_snare_loader(monkeypatch):
    monkeypatch.setenv("GLUEKIT_DATA", str(SHARED))
    s = D.load_snare_adbrain()
    rna, atac = s["rna"], s["atac"]
    assert rna.shape == (10309, 1677) and atac.shape == (10309, 25734)
    assert list(rna.obs_names) == list(atac.obs_names) and rna.obs_names.is_unique
    assert rna.obs["cell_type"].nunique() == 23 and rna.obs["library"].nunique() == 12
    assert atac.var_names[0] == "chr1:4914570-4914685"
    assert (atac.var["chromEnd"] > atac.var["chromStart"]).all()
    for a in (rna, atac):
        assert (a.X != a.layers["counts"]).nnz == 0 and np.all(a.X.data == np.round(a.X.data))
    # transposed correctly: GxC1 genes x cells, so total RNA counts of the first cell match the column sum
    g = sp.load_npz(SHARED / "snare_adbrain/GxC1.npz")
    assert rna.X[0].sum() == g[:, 0].sum() and rna.X[:, 0].sum() == g[0].sum()
    assert rna.var["chrom"].isna().sum() == 2
    # gene coordinates are 0-based: GENCODE's Xkr4 starts at 3,205,901 (1-based) when present
    ann = D.load_gene_annotation("mm10")
    assert ann.loc["Xkr4", "chromStart"] == 3205900
    assert ann.index.is_unique and len(ann) == 48709 - 122


@needs_data
def test_annotation_trrust_tf_lists(monkeypatch):
    monkeypatch.setenv("GLUEKIT_DATA", str(SHARED))
    hg = D.load_gene_annotation("hg38")
    assert hg.index.is_unique and len(hg) == len(D.read_bed(SHARED / "annotation/genes_Gencode_hg38.bed")) - 1870
    t = D.load_trrust("human")
    assert len(t) == 9396 and list(t.columns) == ["tf", "target", "mode", "pmid"]
    assert len(D.load_tf_list("hg38")) == 1797 and "Tcf7" in D.load_tf_list("mouse")
    bed = D.read_bed(SHARED / "annotation/hg19-limited-upstream500.bed.gz")
    assert list(bed.columns) == ["chrom", "chromStart", "chromEnd", "name", "score", "strand"]


def test_read_bed_bad_input(tmp_path):
    p = tmp_path / "x.bed"
    p.write_text("chr1\t10\t20\tA\t.\t+\nchr1\tten\t30\tB\t.\t-\n")
    with pytest.raises(InputError, match="chromStart holds non-integer values.*'ten'"):
        D.read_bed(p)
    p.write_text("chr1\t10\t5\tA\t.\t+\n")
    with pytest.raises(InputError, match="chromEnd <= chromStart"):
        D.read_bed(p)
    p.write_text("chr1\t1\t20\tA\t.\t+\n")
    assert D.read_bed(p, one_based_start=True)["chromStart"].tolist() == [0]


# ---------------------------------------------------------------- preprocessing
@pytest.fixture(scope="module")
def toy():
    return D.simulate_multiome(n_cells=600, n_genes=200, n_batches=2, random_state=1)


def test_preprocess_rna_and_atac(toy):
    rna = D.preprocess_rna(toy["rna"], n_top_genes=150, n_comps=30, copy=True)
    atac = D.preprocess_atac(toy["atac"], n_comps=30, copy=True)
    assert rna.var["highly_variable"].sum() == 150 and rna.obsm["X_pca"].shape == (600, 30)
    assert atac.obsm["X_lsi"].shape == (600, 30) and np.isfinite(atac.obsm["X_lsi"]).all()
    assert "X_pca" not in toy["rna"].obsm and "X_lsi" not in toy["atac"].obsm
    # both representations recover the true cell types (kNN purity far above 1/6)
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.model_selection import cross_val_score
    for x, y in [(rna.obsm["X_pca"], rna.obs["cell_type"]), (atac.obsm["X_lsi"], atac.obs["cell_type"])]:
        assert cross_val_score(KNeighborsClassifier(10), x, y, cv=3).mean() > 0.7
    # reproducible given random_state; in place returns None
    a2 = toy["atac"].copy()
    assert D.lsi(a2, n_components=30, key_added="X_l2") is None
    np.testing.assert_allclose(a2.obsm["X_l2"], atac.obsm["X_lsi"], rtol=1e-5, atol=1e-5)


def test_preprocess_bad_input(toy):
    a = toy["atac"].copy()
    a.layers["counts"] = a.layers["counts"] * 0.5
    with pytest.raises(InputError, match=r"adata.layers\['counts'\] holds non-integer"):
        D.lsi(a)
    r = toy["rna"].copy()
    r.obs_names = ["c0", "c0"] + list(r.obs_names[2:])
    with pytest.raises(InputError, match="obs_names has 1 duplicated"):
        D.preprocess_rna(r)
    with pytest.raises(InputError, match="'nope' not in adata.layers"):
        D.preprocess_atac(toy["atac"], layer="nope")
    r = toy["rna"].copy(); c = r.layers["counts"].tolil(); c[[5, 7]] = 0; r.layers["counts"] = c.tocsr()
    with pytest.raises(InputError, match="2 cell\\(s\\) have no counts.*'cell00005'"):
        D.preprocess_rna(r)
