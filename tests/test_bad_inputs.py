"""Bad-input battery: every public entry point rejects malformed input with a documented error.

Each case asserts that
- the exception is the documented type (`InputError`, `DataFileError`, `ModelFormatError`, all `GluekitError`),
- the message names the culprit (which AnnData / key / column / feature) and hints at the fix,
- it is raised *before* the expensive step: that step is monkeypatched to fail the test if it is ever reached.

Cases that the owning module does not yet catch properly are `xfail(strict=True)` with the observed behaviour
as the reason, so they flip to a failure (and must be un-marked) once fixed.
Set GLUEKIT_BAD_INPUT_LOG=/path/file.jsonl to record every case with the message it got.
"""
import contextlib
import gzip
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import anndata as ad
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gluekit import cli, data as D, glue as GL, gluer as GR, graph as G, metrics as M, regulatory as R, scenic as S
from gluekit.core import DataFileError, GluekitError, InputError, ModelFormatError

SHARED = Path(os.environ.get("GLUEKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
needs_data = pytest.mark.skipif(not (SHARED / "snare_adbrain" / "GxC1.npz").is_file(),
                                reason="real data cache not available (set GLUEKIT_DATA)")
EXE = Path(sys.executable).parent / "gluekit"
HYP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# words that make a message actionable: a requirement, a valid choice, or what to do
HINT_WORDS = ("have:", "use ", "pass ", "remove", "drop", "add ", "must ", "one of", "valid", "fill", "lower",
              "raise ", "check", "rename", "make ", "set ", "delete", "call ", "fix", "subset", "choose", "need",
              "annotate", "swap", "rescale", "copy it", "point ", "build ", "widen", "prefix", "impute", "run ",
              "filter", "fetch", "give ", "should", "map ", "write ",
              # statements of what is expected / valid count as hints too
              "expected", "known", "trained on", "built for", "the model has", "outside", "between")


def _record(case: str, e: BaseException | None) -> None:
    path = os.environ.get("GLUEKIT_BAD_INPUT_LOG")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"case": case, "error": None if e is None else type(e).__name__,
                                "message": None if e is None else str(e)}) + "\n")


@contextlib.contextmanager
def bad(exc: type, *fragments: str, hint: bool = True):
    "Expect `exc` (a GluekitError) whose message contains every fragment (case-insensitive) and a fix hint."
    case = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0].split("::")[-1]
    try:
        yield
    except pytest.fail.Exception:
        raise
    except exc as e:
        _record(case, e)
        assert isinstance(e, GluekitError), f"{type(e).__name__} is not a GluekitError"
        msg = str(e)
        missing = [f for f in fragments if f.lower() not in msg.lower()]
        assert not missing, f"message lacks {missing}: {msg}"
        if hint:
            assert any(w in msg.lower() for w in HINT_WORDS), f"message gives no fix hint: {msg}"
        return
    except BaseException as e:
        _record(case, e)
        raise AssertionError(f"expected {exc.__name__}, got {type(e).__module__}.{type(e).__name__}: {e}") from e
    _record(case, None)
    pytest.fail(f"no {exc.__name__} was raised")


def forbid(monkeypatch, obj, name: str) -> None:
    "Replace the expensive `obj.name` by a function that fails the test when called."
    def boom(*a, **k):
        pytest.fail(f"{getattr(obj, '__name__', obj)}.{name} ran before the bad input was rejected")
    monkeypatch.setattr(obj, name, boom)


# ---------------------------------------------------------------- shared tiny data
@pytest.fixture(scope="module")
def sim():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return D.simulate_multiome(n_cells=150, n_genes=60, n_peaks=300, n_batches=2, random_state=0)


@pytest.fixture
def rna(sim):
    return sim["rna"].copy()


@pytest.fixture
def atac(sim):
    return sim["atac"].copy()


@pytest.fixture(scope="module")
def graph(sim):
    return G.build_guidance_graph(sim["rna"], sim["atac"])


def _counts(n=30, m=20, seed=0) -> np.ndarray:
    x = np.random.default_rng(seed).poisson(2.0, (n, m)).astype(np.float32)
    x[:, 0] += 1  # no empty cell
    return x


# ================================================================ gluekit.data
CORRUPTIONS = {"nan": (np.nan, "NaN/Inf"), "inf": (np.inf, "NaN/Inf"), "-inf": (-np.inf, "NaN/Inf"),
               "negative": (None, "negative"), "fraction": (None, "non-integer")}


@HYP
@given(kind=st.sampled_from(sorted(CORRUPTIONS)), i=st.integers(0, 29), j=st.integers(0, 19),
       neg=st.integers(-1000, -1), frac=st.floats(0.01, 0.99), sparse=st.booleans(), use_layer=st.booleans(),
       target=st.sampled_from(["preprocess_rna", "preprocess_atac", "configure_NB", "configure_ZINB"]))
def test_corrupted_counts_named(monkeypatch, kind, i, j, neg, frac, sparse, use_layer, target):
    "Any NaN/Inf/negative/fractional entry in a count matrix raises InputError naming the AnnData slot."
    import scanpy as sc
    import sklearn.utils.extmath as em
    forbid(monkeypatch, sc.pp, "highly_variable_genes"); forbid(monkeypatch, em, "randomized_svd")
    x = _counts()
    val, frag = CORRUPTIONS[kind]
    x[i, j] = {"negative": float(neg), "fraction": x[i, j] + frac}.get(kind, val)
    m = sp.csr_matrix(x) if sparse else x
    a = ad.AnnData(X=m.copy())
    a.obs_names = [f"c{k}" for k in range(a.n_obs)]; a.var_names = [f"g{k}" for k in range(a.n_vars)]
    layer = "counts" if use_layer else None
    if use_layer:
        a.layers["counts"] = m.copy(); a.X = sp.csr_matrix(_counts())
    where = "adata.layers['counts']" if use_layer else "adata.X"
    with bad(InputError, where, frag):
        if target == "preprocess_rna":
            D.preprocess_rna(a, layer=layer, n_comps=5, copy=True)
        elif target == "preprocess_atac":
            D.preprocess_atac(a, layer=layer, n_comps=5, copy=True)
        else:
            GL.configure_dataset(a, target.split("_")[1], layer=layer)


def test_string_counts(monkeypatch, rna):
    import scanpy as sc
    forbid(monkeypatch, sc.pp, "highly_variable_genes")
    rna.layers["counts"] = rna.layers["counts"].toarray().astype(str)
    with bad(InputError, "adata.layers['counts']", "numeric"):
        D.preprocess_rna(rna, copy=True)


def test_missing_layer(rna):
    with bad(InputError, "'raw'", "adata.layers", "have:"):
        D.preprocess_rna(rna, layer="raw", copy=True)


@pytest.mark.parametrize("axis", ["obs", "var"])
def test_duplicated_names(monkeypatch, rna, axis):
    import scanpy as sc
    forbid(monkeypatch, sc.pp, "highly_variable_genes")
    names = list(getattr(rna, f"{axis}_names")); names[7] = names[3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        setattr(rna, f"{axis}_names", names)
    with bad(InputError, f"adata.{axis}_names", "duplicated", repr(names[3]), "unique"):
        D.preprocess_rna(rna, copy=True)


def test_empty_var_name(monkeypatch, rna):
    import scanpy as sc
    forbid(monkeypatch, sc.pp, "highly_variable_genes")
    rna.var_names = [""] + list(rna.var_names[1:])
    with bad(InputError, "adata.var_names", "empty", "give every entry a name"):
        D.preprocess_rna(rna, copy=True)


def test_empty_cell(monkeypatch, rna):
    import scanpy as sc
    forbid(monkeypatch, sc.pp, "highly_variable_genes")
    x = rna.layers["counts"].toarray(); x[5] = 0; rna.layers["counts"] = sp.csr_matrix(x)
    with bad(InputError, "adata.layers['counts']", "no counts", rna.obs_names[5], "filter_cells"):
        D.preprocess_rna(rna, copy=True)


@pytest.mark.parametrize("fn", ["preprocess_rna", "preprocess_atac"])
def test_zero_cells_after_filtering(monkeypatch, sim, fn):
    import scanpy as sc
    import sklearn.utils.extmath as em
    forbid(monkeypatch, sc.pp, "highly_variable_genes"); forbid(monkeypatch, em, "randomized_svd")
    a = sim["rna" if fn == "preprocess_rna" else "atac"]
    empty = a[np.asarray(a.layers["counts"].sum(1)).ravel() > 1e9].copy()  # a filter nothing passes
    assert empty.n_obs == 0
    with bad(InputError, "adata", "0 cell", "filter"):
        getattr(D, fn)(empty, copy=True)


@pytest.mark.parametrize("kw,frag", [(dict(modalities=("rna", "hic")), "modalities"),
                                     (dict(n_cells=0), "n_cells"),
                                     (dict(n_cells=100.5), "n_cells"),
                                     (dict(proportions=np.array([1, -1, 1, 1, 1, 1.])), "proportions"),
                                     (dict(paired=True, n_cells={"rna": 50, "atac": 60}), "paired=True")])
def test_simulator_arguments(monkeypatch, kw, frag):
    forbid(monkeypatch, D, "_simulate_genome")
    with bad(InputError, frag):
        D.simulate_multiome(**kw)


def test_fetch_unknown_name(monkeypatch):
    import pooch
    forbid(monkeypatch, pooch, "create")
    with bad(InputError, "'snare/GxC1.npz'", "REGISTRY", "have:"):
        D.fetch("snare/GxC1.npz")


def _cache_with(tmp_path, monkeypatch, *names, truncate=None):
    "A tmp cache (GLUEKIT_DATA) holding copies of `names`; `truncate` is copied with only its first half."
    for n in names:
        (tmp_path / n).parent.mkdir(parents=True, exist_ok=True)
        b = (SHARED / n).read_bytes()
        (tmp_path / n).write_bytes(b[: len(b) // 2] if n == truncate else b)
    monkeypatch.setenv("GLUEKIT_DATA", str(tmp_path))
    monkeypatch.delenv("GLUEKIT_MIRROR", raising=False)
    return tmp_path


SNARE = [f"snare_adbrain/{f}" for f in ("meta_c1.csv", "genes.txt", "regions.txt", "GxC1.npz", "RxC1.npz")]
MM10 = "annotation/genes_Gencode_mm10.bed"


@needs_data
@pytest.mark.parametrize("loader,files,truncate", [
    (lambda: D.load_snare_adbrain(), SNARE + [MM10], "snare_adbrain/GxC1.npz"),
    (lambda: D.load_snare_adbrain(), SNARE + [MM10], "snare_adbrain/meta_c1.csv"),
    (lambda: D.load_gene_annotation("mm10"), [MM10], MM10),
    (lambda: D.load_trrust("mouse"), ["trrust_v2/trrust_rawdata.mouse.tsv"], "trrust_v2/trrust_rawdata.mouse.tsv"),
    (lambda: D.load_tf_list("mm"), ["tf_lists/allTFs_mm.txt"], "tf_lists/allTFs_mm.txt"),
], ids=["snare_npz", "snare_meta", "annotation_bed", "trrust", "tf_list"])
def test_truncated_cache_file(tmp_path, monkeypatch, loader, files, truncate):
    "A truncated cache file is caught by its checksum: no download attempt, no parse attempt."
    import pooch
    _cache_with(tmp_path, monkeypatch, *files, truncate=truncate)
    forbid(monkeypatch, pooch, "create"); forbid(monkeypatch, sp, "load_npz")
    with bad(DataFileError, str(tmp_path / truncate), "corrupt", "delete it and fetch again"):
        loader()


def test_derived_file_missing_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GLUEKIT_DATA", str(tmp_path)); monkeypatch.delenv("GLUEKIT_MIRROR", raising=False)
    name = "cistarget/motifs-v10nr_clust-nr.mgi-m0.001-o0.0.tsv.gz"
    with bad(DataFileError, name, "not in the cache", "copy it"):
        D.fetch(name)


def test_unreachable_mirror(tmp_path, monkeypatch):
    monkeypatch.setenv("GLUEKIT_DATA", str(tmp_path)); monkeypatch.setenv("GLUEKIT_MIRROR", "http://127.0.0.1:9")
    with bad(DataFileError, "tf_lists/allTFs_hg38.txt", "could not get", "GLUEKIT_DATA"):
        D.fetch("tf_lists/allTFs_hg38.txt")


@pytest.mark.parametrize("call,frag", [(lambda: D.load_gene_annotation("hg19"), "genome"),
                                       (lambda: D.load_trrust("yeast"), "species"),
                                       (lambda: D.load_tf_list("dm6"), "species")], ids=["genome", "trrust", "tfs"])
def test_unknown_genome_or_species(monkeypatch, call, frag):
    forbid(monkeypatch, D, "fetch")
    with bad(InputError, frag, "one of"):
        call()


def test_truncated_gzip_bed(tmp_path):
    b = gzip.compress(b"chr1\t1\t100\tA\t0\t+\n" * 2000)
    p = tmp_path / "genes.bed.gz"; p.write_bytes(b[: len(b) // 2])
    with bad(DataFileError, str(p)):
        D.read_bed(p)


def test_binary_bed(tmp_path):
    p = tmp_path / "x.bed"; p.write_bytes(b"\x00\xff\xfe garbage \x00\n\x01")
    with bad(DataFileError, str(p)):
        D.read_bed(p)


def test_bed_fractional_coordinates(tmp_path):
    p = tmp_path / "x.bed"; p.write_text("chr1\t10\t20\nchr1\t10.5\t30\n")
    with bad(InputError, str(p), "chromStart", "non-integer", "'10.5'"):
        D.read_bed(p)


# ================================================================ gluekit.graph
def _graph_call(rna, atac, monkeypatch):
    forbid(monkeypatch, G, "_join")
    return lambda: G.build_guidance_graph(rna, atac)


def test_chromosome_naming_mismatch(monkeypatch, rna, atac):
    rna.var["chrom"] = rna.var["chrom"].str.replace("chr", "", regex=False)
    with bad(InputError, "rna.var", "atac.var", "'1'", "'chr1'", "'chr' + var['chrom']"):
        _graph_call(rna, atac, monkeypatch)()


def test_genome_build_mismatch_no_shared_chromosome(monkeypatch, rna, atac):
    atac.var["chrom"] = atac.var["chrom"].map({"chr1": "NC_000067.6"}).fillna("NC_000068.7")
    with bad(InputError, "rna.var", "atac.var", "share no chromosome", "genome assembly"):
        _graph_call(rna, atac, monkeypatch)()


@needs_data
def test_genome_build_mismatch_annotation(monkeypatch):
    "Mouse gene symbols against the human annotation: most are missing, the message points at the assembly."
    monkeypatch.setenv("GLUEKIT_DATA", str(SHARED))
    mm, hs = D.load_gene_annotation("mm10"), D.load_gene_annotation("hg38")
    genes = mm.index[~mm.index.isin(hs.index)][:40]
    rna = ad.AnnData(X=np.ones((3, len(genes)), np.float32), var=pd.DataFrame(index=genes))
    with bad(InputError, "rna.var_names", "not in the annotation", genes[0], "species/assembly"):
        G.add_gene_coordinates(rna, hs)


@pytest.mark.parametrize("edit,frags", [
    (lambda v: v.drop(columns="strand"), ["rna.var", "'strand'", "add_gene_coordinates"]),
    (lambda v: v.assign(chrom=v["chrom"].where(np.arange(len(v)) != 4)), ["rna.var", "without coordinates", "Gene0004", "drop_missing=True"]),
    (lambda v: v.assign(chromStart=v["chromStart"].where(np.arange(len(v)) != 2, -5)), ["chromStart", "non-negative integers", "Gene0002"]),
    (lambda v: v.assign(chromStart=v["chromStart"].astype(float).where(np.arange(len(v)) != 2, 10.5)), ["chromStart", "Gene0002"]),
    (lambda v: v.assign(chromEnd=v["chromEnd"].where(np.arange(len(v)) != 3, 0)), ["chromStart > chromEnd", "Gene0003", "swap"]),
    (lambda v: v.assign(strand=v["strand"].where(np.arange(len(v)) != 6, ".")), ["strand", "Gene0006"]),
], ids=["no_strand", "nan_coordinate", "negative_start", "fractional_start", "reversed_interval", "bad_strand"])
def test_bad_gene_coordinates(monkeypatch, rna, atac, edit, frags):
    rna.var = edit(rna.var)
    with bad(InputError, *frags):
        _graph_call(rna, atac, monkeypatch)()


def test_duplicated_gene_names(monkeypatch, rna, atac):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rna.var_names = ["Gene0001"] + list(rna.var_names[1:])
    with bad(InputError, "rna.var_names", "duplicated", "'Gene0001'", "unique"):
        _graph_call(rna, atac, monkeypatch)()


def test_gene_named_like_a_peak(monkeypatch, rna, atac):
    rna.var_names = [atac.var_names[0]] + list(rna.var_names[1:])
    with bad(InputError, "both a gene and a peak", atac.var_names[0], "unique"):
        _graph_call(rna, atac, monkeypatch)()


def test_unparseable_peak_names(monkeypatch, rna, atac):
    atac.var = pd.DataFrame(index=[f"peak{i}" for i in range(atac.n_vars)])
    with bad(InputError, "peak name(s)", "'peak0'", "atac.var[['chrom', 'chromStart', 'chromEnd']]"):
        _graph_call(rna, atac, monkeypatch)()


@HYP
@given(w=st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda w: not 0 < w <= 1),
                   st.sampled_from([0.0, -0.0, 1.0000001, np.nan, -np.inf])))
def test_edge_weight_outside_unit_interval(w):
    e = pd.DataFrame({"source": ["a", "b"], "target": ["b", "c"], "weight": [0.5, w], "sign": [1, 1], "evidence": "x"})
    with bad(InputError, "weight(s) outside (0, 1]", "'b'", "'c'", "rescale"):
        G.edges_to_graph(e, {"rna": ["a"], "atac": ["b", "c"]})


def test_edge_table_missing_column():
    e = pd.DataFrame({"source": ["a"], "target": ["b"], "weight": [0.5], "evidence": "x"})
    with bad(InputError, "'sign'", "edges.columns", "have:"):
        G.edges_to_graph(e, {"rna": ["a"], "atac": ["b"]})


@pytest.mark.parametrize("s", [0, 2, 0.5, np.nan, "up"])
def test_edge_sign_invalid(s):
    e = pd.DataFrame({"source": ["a", "b"], "target": ["b", "c"], "weight": [0.5, 0.5], "sign": [1, s], "evidence": "x"})
    with bad(InputError, "sign(s) not -1/+1", "'b'", "'c'"):
        G.edges_to_graph(e, {"rna": ["a"], "atac": ["b", "c"]})


def test_check_graph_missing_feature(rna, atac, graph):
    g = graph.copy(); g.remove_node("Gene0007")
    with bad(InputError, "rna.var_names", "'Gene0007'", "not graph vertices", "build the graph"):
        G.check_graph(g, {"rna": rna, "atac": atac})


def test_check_graph_self_loop_weight(rna, atac, graph):
    g = graph.copy(); g["Gene0007"]["Gene0007"][0]["weight"] = 0.3
    with bad(InputError, "self-loop", "'Gene0007'"):
        G.check_graph(g, {"rna": rna, "atac": atac})


@pytest.mark.parametrize("rate", [-0.1, 1.5, np.nan])
def test_corrupt_graph_rate(monkeypatch, graph, rate):
    forbid(monkeypatch, G, "graph_to_edges")
    with bad(InputError, "rate", "[0, 1]"):
        G.corrupt_graph(graph, rate)


def test_add_evidence_unknown_feature(graph):
    pairs = pd.DataFrame({"peak": ["chrZ:1-100"], "gene": ["Gene0001"], "weight": [1.0]})
    with bad(InputError, "'chrZ:1-100'", "not vertices of the graph"):
        G.add_evidence(graph, pairs, evidence="pchic")


@pytest.mark.parametrize("bad_value", [np.nan, -2.0])
def test_gene_activity_bad_counts(monkeypatch, rna, atac, bad_value):
    forbid(monkeypatch, G, "_join")
    x = atac.layers["counts"].copy(); x.data[3] = bad_value; atac.layers["counts"] = x
    with bad(InputError, "atac.layers['counts']"):
        G.gene_activity(atac, rna)


def test_gene_activity_missing_layer(rna, atac):
    with bad(InputError, "'raw'", "atac.layers", "have:"):
        G.gene_activity(atac, rna, layer="raw")


def _truncate(p: Path, frac=0.5):
    b = p.read_bytes(); p.write_bytes(b[: int(len(b) * frac)])


@pytest.mark.parametrize("suffix", [".graphml", ".parquet", ".tsv"])
def test_truncated_graph_file(tmp_path, graph, suffix):
    p = tmp_path / f"g{suffix}"
    G.write_graph(graph, p)
    if suffix == ".tsv":  # cut the last row after its first field: a partial row, not a clean line boundary
        lines = p.read_text().splitlines()
        p.write_text("\n".join(lines[:-1] + [lines[-1].split("\t")[0]]) + "\n")
    else:
        _truncate(p)
    with bad(DataFileError, str(p), "truncated"):
        G.read_graph(p)


def test_graph_file_unknown_format(tmp_path, graph):
    with bad(InputError, "unknown graph format", ".graphml"):
        G.write_graph(graph, tmp_path / "g.pickle")


# ================================================================ gluekit.glue (model configuration, training, encoding)
@pytest.fixture(scope="module")
def glue_setup(sim, graph):
    r, a = sim["rna"].copy(), sim["atac"].copy()
    GL.configure_dataset(r, "NB", batch_key="batch"); GL.configure_dataset(a, "NB")
    d = {"rna": r, "atac": a}
    return d, GL.GlueModel(d, graph, n_latent=4, n_hidden=8, n_layers=1)


@pytest.mark.parametrize("prob,kind,frags", [
    ("Normal", np.inf, ["adata.X", "NaN/Inf", "impute"]),
    ("ZILN", -1.0, ["adata.X", "negative"])], ids=["normal_inf", "ziln_neg"])
def test_configure_continuous_models(rna, prob, kind, frags):
    x = rna.X.toarray(); x[0, 0] = kind; rna.X = x
    with bad(InputError, *frags):
        GL.configure_dataset(rna, prob, layer=None)


@pytest.mark.parametrize("kw,frags", [
    (dict(prob_model="Poisson"), ["prob_model", "'Poisson'", "one of"]),
    (dict(prob_model="NB", use_rep="X_pca"), ["'X_pca'", "adata.obsm", "have:"]),
    (dict(prob_model="NB", batch_key="sample"), ["'sample'", "adata.obs", "have:"]),
    (dict(prob_model="NB", use_highly_variable=True), ["'highly_variable'", "adata.var"]),
], ids=["prob_model", "use_rep", "batch_key", "highly_variable"])
def test_configure_bad_options(rna, kw, frags):
    with bad(InputError, *frags):
        GL.configure_dataset(rna, **kw)


def test_configure_nan_representation(rna):
    rna.obsm["X_pca"] = np.zeros((rna.n_obs, 5)); rna.obsm["X_pca"][3, 2] = np.nan
    with bad(InputError, "adata.obsm['X_pca']", "NaN/Inf"):
        GL.configure_dataset(rna, "NB", use_rep="X_pca")


def test_configure_missing_batch(rna):
    rna.obs["batch"] = rna.obs["batch"].astype(object); rna.obs.iloc[2, rna.obs.columns.get_loc("batch")] = np.nan
    with bad(InputError, "adata.obs['batch']", "missing", "fill"):
        GL.configure_dataset(rna, "NB", batch_key="batch")


def test_configure_zero_cells(rna):
    with bad(InputError, "adata", "0 cell"):
        GL.configure_dataset(rna[:0].copy(), "NB")


def test_model_feature_missing_from_graph(monkeypatch, glue_setup, graph):
    d, _ = glue_setup
    g = graph.copy(); g.remove_node("Gene0003")
    forbid(monkeypatch, GL, "GlueNet")
    with bad(InputError, "'rna'", "'Gene0003'", "missing from the guidance graph", "add them to the graph"):
        GL.GlueModel(d, g)


@pytest.mark.parametrize("col,val,frags", [
    ("weight", 2.0, ["edge weights", "(0, 1]"]),
    ("weight", -0.5, ["edge weights", "(0, 1]"]),
    ("weight", np.nan, ["'weight'", "give every edge"]),
    ("sign", 2, ["edge signs", "-1 or +1"]),
    ("sign", 0, ["'sign'", "give every edge"]),
])
def test_model_invalid_edge_table(monkeypatch, glue_setup, graph, col, val, frags):
    d, _ = glue_setup
    e = G.graph_to_edges(graph)
    i = np.flatnonzero((e["source"] != e["target"]).to_numpy())[0]
    e.loc[i, col] = val
    forbid(monkeypatch, GL, "GlueNet")
    with bad(InputError, *frags, repr(e.loc[i, "source"])):
        GL.GlueModel(d, e)


def test_model_graph_wrong_type(glue_setup):
    d, _ = glue_setup
    with bad(InputError, "graph", "list", "networkx graph or an edge DataFrame"):
        GL.GlueModel(d, [("a", "b")])


def test_model_unconfigured_layer(monkeypatch, glue_setup, atac, graph):
    d, _ = glue_setup
    forbid(monkeypatch, GL, "GlueNet")
    with bad(InputError, "adatas['atac']", "configure_dataset"):
        GL.GlueModel({"rna": d["rna"], "atac": atac}, graph)


def test_model_layer_without_cross_edges(monkeypatch, glue_setup):
    d, _ = glue_setup
    g = G.edges_to_graph(pd.DataFrame(columns=["source", "target", "weight", "sign", "evidence"]),
                         {"rna": d["rna"].var_names, "atac": d["atac"].var_names})
    forbid(monkeypatch, GL, "GlueNet")
    with bad(InputError, "'rna'", "no guidance-graph edge", "check"):
        GL.GlueModel(d, g)


def test_model_feature_in_two_layers(monkeypatch, glue_setup, graph):
    d, _ = glue_setup
    a = d["atac"].copy(); a.var_names = ["Gene0001"] + list(a.var_names[1:])
    forbid(monkeypatch, GL, "GlueNet")
    with bad(InputError, "'Gene0001'", "more than one layer", "prefix"):
        GL.GlueModel({"rna": d["rna"], "atac": a}, graph)


def test_fit_batch_larger_than_data(monkeypatch, glue_setup):
    d, m = glue_setup
    forbid(monkeypatch, GL, "_train_stage")
    with bad(InputError, "'rna'", "batch_size=1000", "lower batch_size"):
        m.fit(d, batch_size=1000, progress=False, device="cpu")


def test_fit_data_edited_after_configure(monkeypatch, glue_setup):
    d, m = glue_setup
    r = d["rna"].copy(); x = r.layers["counts"].copy(); x.data[0] = 0.5; r.layers["counts"] = x
    forbid(monkeypatch, GL, "_train_stage")
    with bad(InputError, "rna.layers['counts']", "non-integer", "raw counts"):
        m.fit({"rna": r, "atac": d["atac"]}, progress=False, device="cpu")


def test_fit_wrong_layers(monkeypatch, glue_setup):
    d, m = glue_setup
    forbid(monkeypatch, GL, "_train_stage")
    with bad(InputError, "'met'", "the model was built for"):
        m.fit({"rna": d["rna"], "met": d["atac"]}, progress=False, device="cpu")


def test_fit_unknown_device(monkeypatch, glue_setup):
    d, m = glue_setup
    forbid(monkeypatch, GL, "_train_stage")
    with bad(InputError, "'tpu'", "use 'auto', 'cpu'"):
        m.fit(d, device="tpu", progress=False)


def test_encode_unknown_batch_category(glue_setup):
    d, m = glue_setup
    r = d["rna"].copy(); r.obs["batch"] = r.obs["batch"].cat.rename_categories({"batch0": "batch9"})
    with bad(InputError, "rna.obs['batch']", "'batch9'", "not trained on", "known:"):
        m.encode_data("rna", r)


@pytest.mark.parametrize("case", ["unknown_layer", "missing_features", "nan_counts", "rep_width"])
def test_encode_bad_inputs(sim, graph, glue_setup, case):
    d, m = glue_setup
    r = d["rna"].copy()
    if case == "unknown_layer":
        with bad(InputError, "'met'", "the model has"):
            m.encode_data("met", r)
    elif case == "missing_features":
        with bad(InputError, "rna.var_names", "'Gene0000'", "missing"):
            m.encode_data("rna", r[:, 5:].copy())
    elif case == "nan_counts":
        x = r.layers["counts"].copy(); x.data[0] = np.nan; r.layers["counts"] = x
        with bad(InputError, "rna.layers['counts']", "NaN/Inf"):
            m.encode_data("rna", r)
    else:
        r2, a2 = sim["rna"].copy(), sim["atac"].copy()
        r2.obsm["X_pca"] = np.zeros((r2.n_obs, 6), np.float32)
        GL.configure_dataset(r2, "NB", use_rep="X_pca"); GL.configure_dataset(a2, "NB")
        m2 = GL.GlueModel({"rna": r2, "atac": a2}, graph, n_latent=4, n_hidden=8, n_layers=1)
        r2.obsm["X_pca"] = np.zeros((r2.n_obs, 4), np.float32)
        with bad(InputError, "rna.obsm['X_pca']", "4 columns", "trained on 6"):
            m2.encode_data("rna", r2)


class _Foreign:  # a harmless class that weights_only loading must refuse
    pass


@pytest.fixture(scope="module")
def saved_model(glue_setup, tmp_path_factory):
    p = tmp_path_factory.mktemp("model")
    glue_setup[1].save(p)
    return p


def _tampered(saved, tmp_path, what):
    p = tmp_path / "m"; shutil.copytree(saved, p)
    cfg = json.loads((p / "config.json").read_text())
    if what == "truncated_weights":
        _truncate(p / "weights.pt")
    elif what == "foreign_pickle":
        torch.save({"edge_index": _Foreign()}, p / "weights.pt")
    elif what == "version":
        cfg["format_version"] = 99; (p / "config.json").write_text(json.dumps(cfg))
    elif what == "missing_key":
        del cfg["layers"]; (p / "config.json").write_text(json.dumps(cfg))
    elif what == "truncated_config":
        _truncate(p / "config.json")
    elif what == "not_a_model":
        (p / "config.json").unlink()
    return p


@pytest.mark.parametrize("what,frags", [
    ("truncated_weights", ["weights.pt"]),
    ("foreign_pickle", ["weights.pt", "weights_only=True"]),
    ("version", ["format version 99", "reads 1"]),
    ("missing_key", ["config.json", "'layers'"]),
    ("truncated_config", ["config.json"]),
    ("not_a_model", ["not a gluekit model directory"]),
])
def test_load_tampered_model(saved_model, tmp_path, what, frags):
    p = _tampered(saved_model, tmp_path, what)
    with bad(ModelFormatError, str(p), *frags, hint=False):
        GL.GlueModel.load(p)


# ================================================================ gluekit.metrics
@HYP
@given(n=st.integers(3, 12), d=st.integers(1, 4), row=st.integers(0, 11), col=st.integers(0, 3),
       val=st.sampled_from([np.nan, np.inf, -np.inf]), which=st.sampled_from(["x", "y"]),
       fn=st.sampled_from(["foscttm", "foscttm_score", "integration_accuracy"]))
def test_metric_nonfinite_embedding(monkeypatch, n, d, row, col, val, which, fn):
    forbid(monkeypatch, M, "_closer_counts")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    r, c = row % n, col % d
    (x if which == "x" else y)[r, c] = val
    with bad(InputError, f"{which} holds NaN/Inf", f"rows {r}", "remove those cells"):
        getattr(M, fn)(x, y)


@pytest.mark.parametrize("x,y,frags", [
    (np.zeros((10, 3)), np.zeros((9, 3)), ["x has 10 cells but y has 9", "subset both"]),
    (np.zeros((10, 3)), np.zeros((10, 2)), ["x has 3 dimensions but y has 2", "same aligned space"]),
    (np.array([["a", "b"], ["c", "d"]]), np.zeros((2, 2)), ["x must be a numeric"]),
    (np.zeros(5), np.zeros(5), ["x must be a 2-D"]),
    (np.zeros((0, 3)), np.zeros((0, 3)), ["x is empty"]),
], ids=["cells", "dims", "strings", "1d", "empty"])
def test_metric_bad_shapes(monkeypatch, x, y, frags):
    forbid(monkeypatch, M, "_closer_counts")
    with bad(InputError, *frags):
        M.foscttm(x, y)


@pytest.mark.parametrize("fn,args,frags", [
    (M.mean_average_precision, (np.zeros((10, 2)), ["a"] * 5), ["labels has 5 entries but x has 10 cells", "must match"]),
    (M.cell_type_asw, (np.zeros((4, 2)), ["a", None, "b", "b"]), ["labels", "missing label", "drop"]),
    (M.cell_type_asw, (np.zeros((4, 2)), ["a"] * 4), ["labels has 1 distinct cell types", "needs at least 2"]),
    (lambda x, l: M.mean_average_precision(x, l, k=20), (np.zeros((10, 2)), ["a"] * 10), ["k + 1 = 21", "smaller k"]),
    (M.seurat_alignment_score, (np.zeros((6, 2)), ["rna"] * 6), ["domains has 1 distinct layers", "at least 2"]),
], ids=["labels_length", "labels_nan", "one_type", "k_too_large", "one_layer"])
def test_metric_bad_labels(monkeypatch, fn, args, frags):
    forbid(monkeypatch, M, "silhouette_score")
    with bad(InputError, *frags):
        fn(*args)


def _with_emb(sim):
    d = {k: sim[k].copy() for k in ("rna", "atac")}
    for k, a in d.items():
        a.obsm["X_glue"] = np.asarray(a.obsm["X_latent"][:, :4], np.float64)
    return d


@pytest.mark.parametrize("kw,edit,frags", [
    (dict(metrics=["map", "fosctm"]), None, ["unknown metric", "'fosctm'", "choose from"]),
    (dict(use_rep="X_gluer"), None, ["'X_gluer'", "adatas['rna'].obsm", "have:"]),
    (dict(), lambda d: d.pop("atac"), ["at least 2 layers"]),
    (dict(graph="weight2"), None, ["weight", "(0, 1]"]),
    (dict(graph="sign0"), None, ["sign", "-1 or +1"]),
], ids=["unknown_metric", "missing_rep", "one_layer", "graph_weight", "graph_sign"])
def test_evaluate_rejects_before_work(monkeypatch, sim, graph, kw, edit, frags):
    d = _with_emb(sim)
    if edit: edit(d)
    if kw.get("graph") in ("weight2", "sign0"):
        e = G.graph_to_edges(graph)
        i = np.flatnonzero((e["source"] != e["target"]).to_numpy())[0]
        e.loc[i, "weight" if kw["graph"] == "weight2" else "sign"] = 2.0 if kw["graph"] == "weight2" else 0
        kw = dict(kw, graph=e)
    forbid(monkeypatch, M, "_evaluate_rep")
    with bad(InputError, *frags):
        M.evaluate(d, progress=False, **kw)


def test_integration_consistency_n_meta(monkeypatch, sim, graph):
    forbid(monkeypatch, M, "KMeans")
    with bad(InputError, "n_meta=10000", "between 2 and the number of cells"):
        M.integration_consistency(_with_emb(sim), graph, n_meta=10_000)


# ================================================================ gluekit.regulatory
@pytest.fixture
def reg(sim):
    r, a = sim["rna"].copy(), sim["atac"].copy()
    r.varm["X_glue"] = np.random.default_rng(0).normal(size=(r.n_vars, 4))
    a.varm["X_glue"] = np.random.default_rng(1).normal(size=(a.n_vars, 4))
    return {"rna": r, "atac": a}


@pytest.mark.parametrize("kw,frags", [
    (dict(null="perm"), ["null", "'perm'", "one of"]),
    (dict(alternative="bigger"), ["alternative", "'bigger'", "one of"]),
    (dict(window=-5), ["window", "-5", "non-negative"]),
    (dict(use_rep="X_scglue"), ["'X_scglue'", "rna.varm", "have:"]),
    (dict(null="shuffle", n_shuffles=0), ["n_shuffles", "positive integer"]),
    (dict(null="shuffle", n_shuffles=1, pool="bin", resolution=1e-6), ["resolution", "use n_shuffles >="]),
    (dict(pairs=pd.DataFrame({"gene": ["Gene0001"], "distance": [5]})), ["'peak'", "pairs.columns", "have:"]),
], ids=["null", "alternative", "window", "use_rep", "n_shuffles", "resolution", "pairs_no_peak_column"])
def test_regulatory_options(monkeypatch, reg, kw, frags):
    forbid(monkeypatch, R, "cosine_scores")
    with bad(InputError, *frags):
        R.score_regulatory(reg, progress=False, inplace=False, **kw)


def test_regulatory_chromosome_naming(monkeypatch, reg):
    reg["rna"].var["chrom"] = reg["rna"].var["chrom"].str.replace("chr", "", regex=False)
    forbid(monkeypatch, R, "cosine_scores")
    with bad(InputError, "inconsistent chromosome naming", "rna.var", "atac.var"):
        R.score_regulatory(reg, progress=False, inplace=False)


def test_regulatory_pairs_distance_and_duplicates(monkeypatch, reg):
    forbid(monkeypatch, R, "cosine_scores")
    p = R.candidate_pairs(reg["rna"], reg["atac"])
    neg = p.assign(distance=p["distance"].where(np.arange(len(p)) != 0, -1))
    with bad(InputError, "pairs['distance']", ">= 0"):
        R.score_regulatory(reg, pairs=neg, progress=False, inplace=False)
    with bad(InputError, "duplicated (peak, gene)", "drop duplicates"):
        R.score_regulatory(reg, pairs=pd.concat([p, p.iloc[:2]]), progress=False, inplace=False)


def test_regulatory_nan_embedding(monkeypatch, reg):
    reg["atac"].varm["X_glue"][4, 1] = np.nan
    forbid(monkeypatch, R, "cosine_scores")
    with bad(InputError, reg["atac"].var_names[4], "NaN"):
        R.score_regulatory(reg, progress=False, inplace=False)


def test_regulatory_varm_width_mismatch(monkeypatch, reg):
    reg["rna"].varm["X_glue"] = np.zeros((reg["rna"].n_vars, 5))
    forbid(monkeypatch, R, "cosine_scores")
    with bad(InputError, "rna.varm['X_glue']", "atac.varm['X_glue']", "columns"):
        R.score_regulatory(reg, progress=False, inplace=False)


def test_regulatory_pairs_unknown_gene(monkeypatch, reg):
    p = pd.DataFrame({"peak": [reg["atac"].var_names[0]], "gene": ["NotAGene"], "distance": [10]})
    forbid(monkeypatch, R, "cosine_scores")
    with bad(InputError, "'NotAGene'", "rna.var_names"):
        R.score_regulatory(reg, pairs=p, progress=False, inplace=False)


def test_get_regulatory_df(reg):
    with bad(InputError, "'regulatory'", "adata.uns", "have:"):
        R.get_regulatory_df(reg["atac"])
    reg["atac"].uns["regulatory"] = {"links": pd.DataFrame({"qval": [0.1]}), "params": {}}
    with bad(InputError, "fdr", "(0, 1]"):
        R.get_regulatory_df(reg["atac"], fdr=0)


# ================================================================ gluekit.scenic
@pytest.mark.parametrize("edit,frags", [
    (lambda s: s.assign(chrom=s["chrom"].str.replace("chr", "", regex=False)), ["unknown to the peaks", "'1'", "unknown_chroms='drop'"]),
    (lambda s: s.drop(columns="tf"), ["sites must be a DataFrame", "tf"]),
    (lambda s: s.assign(chromEnd=s["chromStart"]), ["sites", "chromEnd <= chromStart", "0-based half-open"]),
    (lambda s: s.iloc[:0], ["sites is empty", "pass at least one"]),
], ids=["chrom_naming", "no_tf_column", "empty_interval", "no_sites"])
def test_count_tf_sites_bad_sites(monkeypatch, atac, edit, frags):
    forbid(monkeypatch, S, "_overlap_pairs")
    with bad(InputError, *frags):
        S.count_tf_sites(atac, edit(atac.uns["tf_sites"]))


@pytest.fixture(scope="module")
def binding(sim):
    return S.count_tf_sites(sim["atac"], sim["atac"].uns["tf_sites"])


@pytest.mark.parametrize("case", ["unknown_peak", "nothing_passes_fdr", "no_gene_column", "n_samples",
                                  "duplicated_genes"])
def test_rank_genes_by_tf_bad_links(monkeypatch, sim, binding, case):
    tl, kw = sim["atac"].uns["true_links"], {}
    if case == "unknown_peak":
        links, frags = pd.DataFrame({"peak": ["chr9:1-2"], "gene": ["Gene0001"]}), ["'chr9:1-2'", "not in the binding matrix", "same ATAC peaks"]
    elif case == "nothing_passes_fdr":
        links, frags = tl.assign(qval=0.5), ["qval <= fdr=0.05", "raise fdr"]
    elif case == "no_gene_column":
        links, frags = tl[["peak"]], ["links must be a DataFrame", "'gene'"]
    elif case == "n_samples":
        links, kw, frags = tl, dict(n_samples=0), ["n_samples", ">= 1"]
    else:
        genes = list(pd.unique(tl["gene"]))
        links, kw, frags = tl, dict(genes=genes + genes[:1]), ["genes", "duplicated", repr(genes[0])]
    forbid(monkeypatch, S, "_length_bins")
    with bad(InputError, *frags):
        S.rank_genes_by_tf(binding, links, progress=False, **kw)


def test_rank_genes_by_tf_not_a_binding_matrix(monkeypatch, sim):
    forbid(monkeypatch, S, "_length_bins")
    with bad(InputError, "binding", "count_tf_sites"):
        S.rank_genes_by_tf(sim["atac"], sim["atac"].uns["true_links"], progress=False)


def test_promoter_without_strand(rna, atac):
    rna.var = rna.var.drop(columns="strand")
    with bad(InputError, "'strand'", "genes need"):
        S.rank_genes_by_promoter(rna, atac.uns["tf_sites"])


def test_cistarget_db_invalid_ranks(tmp_path):
    rank = pd.DataFrame([[0, 0, 1], [0, 1, 2]], index=["t1", "t2"], columns=["a", "b", "c"])
    with bad(InputError, "every track must rank all genes exactly once", "0-based"):
        S.write_cistarget_db(rank, tmp_path / "db")
    assert not list(tmp_path.iterdir())


def test_cistarget_db_truncated(tmp_path, sim):
    rk = S.rank_genes_by_promoter(sim["rna"], sim["atac"].uns["tf_sites"])
    p = S.write_cistarget_db(rk, tmp_path / "db")
    _truncate(p)
    with bad(DataFileError, str(p), "truncated"):
        S.read_cistarget_db(p)


@pytest.mark.parametrize("case", ["tf_absent", "no_annotation", "no_database", "nan_expression", "missing_layer"])
def test_run_scenic_rejects_before_grnboost2(monkeypatch, tmp_path, sim, case):
    rna = sim["rna"].copy()
    ann = tmp_path / "ann.tsv"; ann.write_text("#motif_id\tgene_name\n")
    dbs = [S.write_cistarget_db(S.rank_genes_by_promoter(rna, sim["atac"].uns["tf_sites"]), tmp_path / "db")]
    forbid(monkeypatch, S, "_grnboost2")
    kw = {}
    if case == "tf_absent":
        kw, frags = dict(tfs=["NotAGene", rna.uns["tfs"][0]]), ["'NotAGene'", "rna.var_names", "drop them"]
    elif case == "no_annotation":
        ann, frags = tmp_path / "nope.tsv", ["nope.tsv", "does not exist"]
    elif case == "no_database":
        dbs, frags = [], ["no ranking database", "write_cistarget_db"]
    elif case == "nan_expression":
        x = rna.layers["counts"].copy(); x.data[0] = np.nan; rna.layers["counts"] = x
        frags = ["rna.layers['counts']", "NaN"]
    else:
        kw, frags = dict(layer="raw"), ["'raw'", "rna.layers", "layer=None"]
    with bad(InputError, *frags):
        S.run_scenic(rna, dbs, ann, progress=False, **kw)


def test_evaluate_network_columns():
    with bad(InputError, "network", "'tf' and 'target'"):
        S.evaluate_network(pd.DataFrame({"TF": ["a"], "target": ["b"]}), pd.DataFrame({"tf": ["a"], "target": ["b"]}),
                           tfs=["a"], genes=["b"])


# ================================================================ gluekit.gluer
@pytest.fixture(scope="module")
def ga(sim):
    return G.gene_activity(sim["atac"], sim["rna"])


def _gluer(monkeypatch, ref, queries, **kw):
    forbid(monkeypatch, GR, "joint_nmf")
    return GR.run_gluer(ref, queries, progress=False, copy=True, device="cpu", **kw)


@pytest.mark.parametrize("val,frags", [(-1.0, ["rna (on 60 shared features)", "negative", "pass raw counts"]),
                                       (np.nan, ["rna (on 60 shared features)", "NaN/Inf", "impute"]),
                                       (0.0, ["rna (on 60 shared features)", "all zero", "filter_low_quality"])],
                         ids=["negative", "nan", "all_zero_cell"])
def test_gluer_bad_values(monkeypatch, rna, ga, val, frags):
    x = rna.X.toarray()
    if val == 0.0:
        x[3] = 0
    else:
        x[3, 5] = val
    rna.X = sp.csr_matrix(x)
    with bad(InputError, *frags):
        _gluer(monkeypatch, rna, {"atac": ga})


@pytest.mark.parametrize("case", ["no_shared", "normalize", "dup_obs", "pairs", "layer", "gene_key", "n_latent",
                                  "hvg", "pairs_out_of_range", "ref_name_clash"])
def test_gluer_bad_options(monkeypatch, rna, ga, case):
    q, kw = ga.copy(), {}
    if case == "no_shared":
        q.var_names = ["x" + v for v in q.var_names]; frags = ["no shared features", "'xGene0000'", "gene_key="]
    elif case == "normalize":
        kw, frags = dict(normalize="log"), ["normalize", "'log'", "must be"]
    elif case == "dup_obs":
        q.obs_names = ["c"] * q.n_obs; frags = ["atac.obs_names", "duplicated", "'c'", "unique"]
    elif case == "pairs":
        kw, frags = dict(pairs="bogus"), ["pairs for 'atac'", "'bogus'", "must be"]
    elif case == "layer":
        kw, frags = dict(layer="raw"), ["'raw'", "rna.layers", "layer=None"]
    elif case == "gene_key":
        kw, frags = dict(gene_key="symbol"), ["gene_key 'symbol'", "rna.var", "have:"]
    elif case == "n_latent":
        kw, frags = dict(n_latent=80), ["60 shared feature", "n_latent=80", "lower n_latent"]
    elif case == "hvg":
        kw, frags = dict(use_highly_variable=True), ["rna.var", "'highly_variable'", "highly_variable_genes"]
    elif case == "pairs_out_of_range":
        kw = dict(pairs={"atac": pd.DataFrame({"ref": [0, 1], "query": [2, 999]})})
        frags = ["pairs['query']", "'atac'", "999", "outside 0..149"]
    else:
        kw, frags = dict(ref_name="atac"), ["'atac'", "ref_name", "rename"]
    with bad(InputError, *frags):
        _gluer(monkeypatch, rna, {"atac": q}, **kw)


def test_gluer_zero_cells_after_filtering(monkeypatch, rna, ga):
    r = GR.filter_low_quality(rna, min_counts=1e12)
    assert r.n_obs == 0
    with bad(InputError, "'rna'", "0 cells"):
        _gluer(monkeypatch, r, {"atac": ga})


# ================================================================ gluekit.cli and the console script
@pytest.fixture
def no_papermill(monkeypatch):
    import papermill
    forbid(monkeypatch, papermill, "execute_notebook")


def _main(capsys, argv):
    rc = cli.main(argv)
    err = capsys.readouterr().err
    _record(os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0].split("::")[-1], InputError(err.strip()))
    return rc, err


@pytest.mark.parametrize("argv,frags", [
    (["run", "snare_bench", "--out", "{out}"], ["unknown case study 'snare_bench'", "valid studies", "snare_benchmark"]),
    (["run", "snare_benchmark", "--out", "{out}", "-p", "n_cellz", "5"], ["'n_cellz'", "valid:", "n_cells"]),
    (["run", "snare_benchmark", "--out", "{out}", "--preset", "huge"], ["unknown preset 'huge'", "valid: demo, ci"]),
    (["data", "fetch", "snare"], ["unknown dataset 'snare'", "valid:", "snare_adbrain"]),
], ids=["study", "parameter", "preset", "dataset"])
def test_cli_unknown_names(capsys, tmp_path, no_papermill, argv, frags):
    out = tmp_path / "out"
    rc, err = _main(capsys, [a.format(out=out) for a in argv])
    assert rc == 2 and err.startswith("gluekit: error:")
    for f in frags:
        assert f in err, err
    assert not out.exists(), "nothing may be written before the arguments are validated"


def test_cli_wrong_parameter_type(capsys, tmp_path, no_papermill):
    rc, err = _main(capsys, ["run", "snare_benchmark", "--out", str(tmp_path / "out"), "-p", "n_cells", "abc"])
    assert rc == 2 and "n_cells" in err and "int" in err


def test_cli_missing_case_study_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("GLUEKIT_CASE_STUDIES", str(tmp_path / "nowhere"))
    rc, err = _main(capsys, ["list"])
    assert rc == 2 and "nowhere" in err and "GLUEKIT_CASE_STUDIES" in err


@needs_data
def test_cli_corrupt_cache_console_script(tmp_path):
    "The installed `gluekit` command reports a truncated cache file and exits 2, without downloading."
    (tmp_path / "tf_lists").mkdir()
    b = (SHARED / "tf_lists/allTFs_mm.txt").read_bytes()
    (tmp_path / "tf_lists/allTFs_mm.txt").write_bytes(b[: len(b) // 2])
    env = {**os.environ, "GLUEKIT_DATA": str(tmp_path), "GLUEKIT_MIRROR": "http://127.0.0.1:9"}
    r = subprocess.run([EXE, "data", "fetch", "tf_lists/allTFs_mm.txt"], capture_output=True, text=True, env=env)
    _record("test_cli_corrupt_cache_console_script", DataFileError(r.stderr.strip()))
    assert r.returncode == 2
    assert "corrupt" in r.stderr and "delete it and fetch again" in r.stderr and "Traceback" not in r.stderr
    assert "downloading" not in r.stderr
