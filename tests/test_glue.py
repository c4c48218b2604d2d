"Tests of the GLUE model (gluekit.nn, gluekit.glue) on simulated data with ground truth."
import json
import subprocess
import sys
import warnings

import anndata as ad
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch

from gluekit.core import InputError, ModelFormatError
from gluekit.data import preprocess_atac, preprocess_rna, simulate_multiome
from gluekit.glue import GlueModel, configure_dataset, embed, fit_glue
from gluekit.graph import build_guidance_graph, compose_graphs, link_methylation
from gluekit.metrics import foscttm_score

from gluekit.core import torch_threads

torch.set_num_threads(1)   # explicit: the suite may share 2 cores with other processes


def _prep(d, n_comps=20):
    with torch_threads(torch.get_num_threads()):   # scanpy's preprocessing may change torch's thread count
        preprocess_rna(d["rna"], n_top_genes=d["rna"].n_vars, n_comps=n_comps)
        preprocess_atac(d["atac"], n_comps=n_comps)
    configure_dataset(d["rna"], "NB", use_rep="X_pca")
    configure_dataset(d["atac"], "NB", use_rep="X_lsi")
    return d


@pytest.fixture(scope="module")
def small():
    "300 paired cells, 200 genes, 400 peaks, standard guidance graph."
    d = _prep(simulate_multiome(n_cells=300, n_genes=200, n_peaks=400, random_state=0))
    return d, build_guidance_graph(d["rna"], d["atac"])


@pytest.fixture(scope="module")
def small_model(small):
    d, g = small
    m = GlueModel(d, g, n_latent=16, n_hidden=64, random_state=0)
    return m.fit(d, max_epochs=6, progress=False, device="cpu")


def test_foscttm_unpaired_training():
    "2,000 simulated multiome cells trained as unpaired: FOSCTTM well below 0.1, cell types match across layers."
    d = _prep(simulate_multiome(n_cells=2000, random_state=0), n_comps=50)
    g = build_guidance_graph(d["rna"], d["atac"])
    m = fit_glue(d, g, max_epochs=30, device="cpu", progress=False, random_state=0)
    zr, za = m.encode_data("rna", d["rna"]), m.encode_data("atac", d["atac"])
    f = foscttm_score(zr, za)
    assert f < 0.06, f
    # cell types mixed across layers: the nearest RNA cell of an ATAC cell has its type
    from sklearn.neighbors import NearestNeighbors
    nn = NearestNeighbors(n_neighbors=1).fit(zr).kneighbors(za, return_distance=False)[:, 0]
    acc = (d["rna"].obs.cell_type.to_numpy()[nn] == d["atac"].obs.cell_type.to_numpy()).mean()
    assert acc > 0.9, acc


def test_same_seed_bit_identical(small, small_model):
    d, g = small
    m2 = GlueModel(d, g, n_latent=16, n_hidden=64, random_state=0).fit(d, max_epochs=6, progress=False, device="cpu")
    assert np.array_equal(m2.encode_data("rna", d["rna"]), small_model.encode_data("rna", d["rna"]))
    assert np.array_equal(m2.encode_graph(), small_model.encode_graph())
    m3 = GlueModel(d, g, n_latent=16, n_hidden=64, random_state=1).fit(d, max_epochs=6, progress=False, device="cpu")
    assert not np.array_equal(m3.encode_data("rna", d["rna"]), small_model.encode_data("rna", d["rna"]))


def test_loss_decreases_and_history(small_model):
    h = small_model.history
    assert list(h.stage.unique()) == ["pretrain", "finetune"]
    assert h.vae.iloc[-1] < 0.7 * h.vae.iloc[0]
    assert np.isfinite(h[["x_nll", "g_nll", "dsc", "val_loss"]].to_numpy()).all()


def test_save_load_fresh_process(small, small_model, tmp_path):
    d, _ = small
    small_model.save(tmp_path / "model")
    d["atac"].write_h5ad(tmp_path / "atac.h5ad")
    code = ("import numpy as np, anndata as ad; from gluekit.glue import GlueModel; "
            f"m = GlueModel.load({str(tmp_path / 'model')!r}); a = ad.read_h5ad({str(tmp_path / 'atac.h5ad')!r}); "
            f"np.save({str(tmp_path / 'u.npy')!r}, m.encode_data('atac', a)); np.save({str(tmp_path / 'v.npy')!r}, m.encode_graph())")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert np.array_equal(np.load(tmp_path / "u.npy"), small_model.encode_data("atac", d["atac"]))
    assert np.array_equal(np.load(tmp_path / "v.npy"), small_model.encode_graph())
    # weights are plain tensors: loadable with weights_only=True; no pickle anywhere
    torch.load(tmp_path / "model" / "weights.pt", weights_only=True)
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    cfg["format"] = "something.else"
    (tmp_path / "model" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError):
        GlueModel.load(tmp_path / "model")


def test_embed_writes_keys(small, small_model):
    d, _ = small
    d = {k: a.copy() for k, a in d.items()}
    embed(small_model, d)
    assert d["rna"].obsm["X_glue"].shape == (300, 16)
    assert d["atac"].varm["X_glue"].shape == (400, 16)
    assert d["rna"].uns["glue"]["params"]["random_state"] == 0


def test_bad_inputs(small):
    d, g = small
    rna, atac = d["rna"], d["atac"]
    # a feature missing from the graph: named and counted
    g2 = g.copy(); g2.remove_nodes_from(list(rna.var_names[:3]))
    with pytest.raises(InputError, match=r"3 feature\(s\) of 'rna' are missing from the guidance graph: 'Gene0000'"):
        GlueModel(d, g2)
    # a layer without cross-layer edges
    g3 = nx.MultiDiGraph(); g3.add_nodes_from(list(rna.var_names) + list(atac.var_names))
    with pytest.raises(InputError, match="no guidance-graph edge"):
        GlueModel(d, g3)
    # non-integer / negative counts for NB
    bad = rna.copy(); bad.layers["counts"] = bad.layers["counts"] * 0.5
    with pytest.raises(InputError, match="non-integer"):
        configure_dataset(bad, "NB", use_rep="X_pca")
    bad.layers["counts"] = -rna.layers["counts"]
    with pytest.raises(InputError, match="negative"):
        configure_dataset(bad, "NB", use_rep="X_pca")
    # counts changed after configuration are caught at fit time
    bad = rna.copy(); bad.layers["counts"] = bad.layers["counts"] * 0.5
    with pytest.raises(InputError, match="non-integer"):
        GlueModel({"rna": bad, "atac": atac}, g).fit({"rna": bad, "atac": atac}, progress=False)
    # NaN / Inf
    bad = rna.copy(); bad.obsm["X_pca"] = bad.obsm["X_pca"].copy(); bad.obsm["X_pca"][3, 1] = np.inf
    with pytest.raises(InputError, match="NaN/Inf"):
        GlueModel({"rna": bad, "atac": atac}, g).fit({"rna": bad, "atac": atac}, progress=False)
    # missing use_rep
    with pytest.raises(InputError, match="'X_umap' not in adata.obsm"):
        configure_dataset(rna.copy(), "NB", use_rep="X_umap")
    # unseen batch category at encode time
    rb = rna.copy(); configure_dataset(rb, "NB", use_rep="X_pca", batch_key="batch")
    mb = GlueModel({"rna": rb, "atac": atac}, g, n_latent=8, n_hidden=16)
    rb2 = rb.copy(); rb2.obs["batch"] = pd.Categorical(["batch7"] * rb2.n_obs)
    with pytest.raises(InputError, match="not trained on: 'batch7'"):
        mb.encode_data("rna", rb2)
    # fewer cells than a minibatch
    with pytest.raises(InputError, match="fewer than batch_size=512"):
        GlueModel(d, g).fit(d, batch_size=512, progress=False)
    # vertex names colliding across layers
    a2 = atac.copy(); a2.var_names = [rna.var_names[0]] + list(atac.var_names[1:])
    with pytest.raises(InputError, match="occur in more than one layer: 'Gene0000'"):
        GlueModel({"rna": rna, "atac": a2}, g)
    # unconfigured layer
    with pytest.raises(InputError, match="configure_dataset"):
        GlueModel({"rna": rna, "atac": ad.AnnData(atac.X, var=atac.var)}, g)


def test_graph_order_does_not_matter(small):
    "Edges inserted in another order give bit-identical models (edges sorted by vertex order)."
    d, g = small
    g2 = nx.MultiDiGraph(); g2.add_nodes_from(reversed(list(g.nodes)))
    g2.add_edges_from(reversed(list(g.edges(data=True))))
    m1 = GlueModel(d, g, n_latent=8, n_hidden=16).fit(d, max_epochs=2, progress=False, device="cpu")
    m2 = GlueModel(d, g2, n_latent=8, n_hidden=16).fit(d, max_epochs=2, progress=False, device="cpu")
    assert np.array_equal(m1.encode_graph(), m2.encode_graph())


def test_three_layers_batches_and_paired():
    "RNA + ATAC + methylation (ZILN, negative edges), 2 batches, paired pulling loss: trains and aligns."
    d = simulate_multiome(n_cells=400, n_genes=150, n_peaks=300, n_batches=2, modalities=("rna", "atac", "met"),
                          random_state=2)
    with torch_threads(1):
        preprocess_rna(d["rna"], n_top_genes=150, n_comps=20); preprocess_atac(d["atac"], n_comps=20)
    from sklearn.decomposition import PCA
    d["met"].obsm["X_pca"] = PCA(20, random_state=0).fit_transform(d["met"].X).astype(np.float32)
    configure_dataset(d["rna"], "NB", use_rep="X_pca", batch_key="batch")
    configure_dataset(d["atac"], "ZINB", use_rep="X_lsi", batch_key="batch")
    configure_dataset(d["met"], "ZILN", layer=None, use_rep="X_pca", batch_key="batch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = compose_graphs(build_guidance_graph(d["rna"], d["atac"]), link_methylation(d["met"], d["rna"]))
    m = GlueModel(d, g, n_latent=16, n_hidden=64)
    assert m.net.u2x["rna"].bias.shape == (2, 150)
    signs = m.net.edge_sign.numpy()
    assert (signs < 0).any() and (signs > 0).any()
    m.fit(d, max_epochs=15, batch_size=64, paired=True, progress=False, device="cpu")
    z = {k: m.encode_data(k, a) for k, a in d.items()}
    assert all(np.isfinite(v).all() for v in z.values())
    assert foscttm_score(z["rna"], z["met"]) < 0.4       # 0.5 = random
    assert foscttm_score(z["rna"], z["atac"]) < 0.4


def test_balancing_reduces_misalignment():
    "Unpaired layers with layer-specific cell types: balanced fine-tuning mixes them less with the other layer."
    props = {"rna": np.array([.30, 0., .40, .15, .10, .05]), "atac": np.array([0., .30, .05, .10, .15, .40])}
    d = _prep(simulate_multiome(n_cells=800, n_genes=200, n_peaks=800, paired=False, proportions=props, random_state=1))
    g = build_guidance_graph(d["rna"], d["atac"])
    from sklearn.neighbors import NearestNeighbors

    def mis(m, k=15):
        z = np.concatenate([m.encode_data("rna", d["rna"]), m.encode_data("atac", d["atac"])])
        layer = np.repeat([0, 1], [d["rna"].n_obs, d["atac"].n_obs])
        ct = np.concatenate([d["rna"].obs.cell_type, d["atac"].obs.cell_type])
        spec = ((layer == 0) & (ct == "type0")) | ((layer == 1) & (ct == "type1"))
        idx = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z[spec], return_distance=False)[:, 1:]
        return (layer[idx] != layer[spec][:, None]).mean()

    res = {}
    for bal in (False, True):
        m = GlueModel(d, g, n_latent=16, n_hidden=64).fit(d, max_epochs=20, balance=bal, progress=False, device="cpu")
        res[bal] = mis(m)
    assert res[True] < 0.8 * res[False], res


# ---------------------------------------------------------------- checkpoint and resume (issue 11)
_CKPT_MODEL = dict(n_latent=8, n_hidden=32, random_state=7)
_CKPT_FIT = dict(max_epochs=8, batch_size=64, random_state=7)

_CHILD = """
import sys, time
import torch
torch.set_num_threads(1)
import anndata as ad
from gluekit import glue as GL
from gluekit.graph import build_guidance_graph
tmp, model_kw, fit_kw = sys.argv[1], eval(sys.argv[2]), eval(sys.argv[3])
d = {k: ad.read_h5ad(f"{tmp}/{k}.h5ad") for k in ("rna", "atac")}
GL.configure_dataset(d["rna"], "NB", use_rep="X_pca"); GL.configure_dataset(d["atac"], "NB", use_rep="X_lsi")
g = build_guidance_graph(d["rna"], d["atac"])
write = GL._write_checkpoint
def write_then_park(*a, **k):   # park after the first checkpoint, so that the SIGKILL surely lands mid-fit
    write(*a, **k)
    time.sleep(600)
GL._write_checkpoint = write_then_park
GL.GlueModel(d, g, **model_kw).fit(d, **fit_kw, checkpoint_dir=f"{tmp}/ckpt", checkpoint_every=3, progress=False,
                                   device="cpu")
"""


def test_kill_and_resume_bit_identical(small, tmp_path):
    "A fit killed (SIGKILL) after its first checkpoint, resumed in another process, equals an uninterrupted fit."
    import os
    import signal
    import time
    d, g = small
    for k, a in d.items():
        a2 = a.copy(); del a2.uns["gluekit"]; a2.write_h5ad(tmp_path / f"{k}.h5ad")
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path), repr(_CKPT_MODEL), repr(_CKPT_FIT)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ckpt = tmp_path / "ckpt" / "checkpoint.pt"
    # meanwhile, in this process: the uninterrupted reference fit (no checkpoints)
    ref = GlueModel(d, g, **_CKPT_MODEL).fit(d, **_CKPT_FIT, progress=False, device="cpu")
    deadline = time.monotonic() + 150
    while not ckpt.exists():
        assert child.poll() is None, f"the child exited early: {child.communicate()[1].decode()[-2000:]}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL
    saved = torch.load(ckpt, weights_only=True)                       # plain tensors + JSON, no pickle
    meta = json.loads(saved["meta"])
    assert (meta["stage"], meta["epoch"], len(meta["history"])) == ("pretrain", 3, 3)
    assert not list((tmp_path / "ckpt").glob(".*.tmp"))               # no half-written file left behind
    res = GlueModel.resume(tmp_path / "ckpt", d, device="cpu", progress=False)
    for k in ("rna", "atac"):
        assert np.array_equal(res.encode_data(k, d[k]), ref.encode_data(k, d[k]))
    assert np.array_equal(res.encode_graph(), ref.encode_graph())
    cols = ["stage", "epoch", "lr", "tau", "x_nll", "g_nll", "dsc", "vae", "val_loss"]
    assert res.history[cols].equals(ref.history[cols])
    for k in ("rna", "atac"):
        assert np.array_equal(res.balancing_weights[k], ref.balancing_weights[k])


def test_resume_in_finetuning_and_refusals(small, tmp_path, monkeypatch):
    "Interrupted in fine-tuning: fit(resume=True) finishes identically; wrong arguments or files are refused."
    from gluekit import glue as GL
    d, g = small
    ref = GlueModel(d, g, **_CKPT_MODEL).fit(d, **_CKPT_FIT, progress=False, device="cpu")
    write = GL._write_checkpoint

    def write_then_fail(path, model, **k):
        write(path, model, **k)
        if k["stage"] == "finetune" and k["state"]["epoch"] == 6:    # after annealing: best state is tracked
            raise KeyboardInterrupt
    monkeypatch.setattr(GL, "_write_checkpoint", write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        GlueModel(d, g, **_CKPT_MODEL).fit(d, **_CKPT_FIT, progress=False, device="cpu", checkpoint_dir=tmp_path,
                                           checkpoint_every=2)
    monkeypatch.undo()
    meta = json.loads(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["meta"])
    assert (meta["stage"], meta["epoch"]) == ("finetune", 6) and meta["best"] is not None
    with pytest.raises(InputError, match=r"batch_size=64 \(now 32\)"):
        GlueModel(d, g, **_CKPT_MODEL).fit(d, **{**_CKPT_FIT, "batch_size": 32}, progress=False, device="cpu",
                                           checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(InputError, match="another model"):
        GlueModel(d, g, **{**_CKPT_MODEL, "n_hidden": 16}).fit(d, **_CKPT_FIT, progress=False, device="cpu",
                                                               checkpoint_dir=tmp_path, resume=True)
    res = GlueModel(d, g, **_CKPT_MODEL).fit(d, **_CKPT_FIT, progress=False, device="cpu", checkpoint_dir=tmp_path,
                                             resume=True)
    assert np.array_equal(res.encode_data("rna", d["rna"]), ref.encode_data("rna", d["rna"]))
    assert np.array_equal(res.encode_graph(), ref.encode_graph())
    assert len(res.history) == len(ref.history)
    # a damaged checkpoint is refused with the file named
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFormatError, match="checkpoint.pt"):
        GlueModel.resume(tmp_path, d, device="cpu", progress=False)


def test_interrupted_save_detected(small, small_model, tmp_path):
    "weights.pt from another save (a save interrupted between its two files) fails the checksum in config.json."
    d, g = small
    small_model.save(tmp_path / "a")
    GlueModel(d, g, n_latent=16, n_hidden=64, random_state=1).save(tmp_path / "b")
    (tmp_path / "a" / "weights.pt").write_bytes((tmp_path / "b" / "weights.pt").read_bytes())
    with pytest.raises(ModelFormatError, match="checksum"):
        GlueModel.load(tmp_path / "a")
    assert not list((tmp_path / "a").glob(".*.tmp"))


def test_training_options_refused_clearly(small, tmp_path):
    "The stage, weighting, distributed, normalisation and on-disk options fail with a message naming the fix."
    d, g = small
    with pytest.raises(InputError, match="graph_norm must be"):
        GlueModel(d, g, graph_norm="row")
    m = GlueModel(d, g, n_latent=8, n_hidden=32)
    with pytest.raises(InputError, match="initialised process group"):
        m.fit(d, max_epochs=1, distributed=True, progress=False, device="cpu")
    with pytest.raises(InputError, match="stages must be"):
        m.fit(d, max_epochs=1, stages=("finetune", "finetune"), progress=False, device="cpu")
    with pytest.raises(InputError, match="stages has no 'finetune'"):
        m.fit(d, max_epochs=1, stages=("pretrain",), balancing={k: np.ones(a.n_obs) for k, a in d.items()},
              progress=False, device="cpu")
    with pytest.raises(InputError, match=r"balancing\['atac'\]"):
        m.fit(d, max_epochs=1, balancing={"rna": np.ones(d["rna"].n_obs), "atac": -np.ones(d["atac"].n_obs)},
              progress=False, device="cpu")
    # on disk: bad counts are found by the streaming check at fit time, with the rows named
    b = d["atac"].copy(); b.X = b.layers["counts"].copy(); del b.layers["counts"]; b.uns.pop("gluekit")
    b.X.data[-1] = 0.5
    b.write_h5ad(tmp_path / "atac.h5ad")
    disk = ad.read_h5ad(tmp_path / "atac.h5ad", backed="r")
    configure_dataset(disk, "NB", layer=None, use_rep="X_lsi")          # does not read the whole matrix
    with pytest.raises(InputError, match=r"atac\.X \(rows 0.299\) holds non-integer"):
        GlueModel({"rna": d["rna"], "atac": disk}, g, n_latent=8, n_hidden=32).fit(
            {"rna": d["rna"], "atac": disk}, max_epochs=1, progress=False, device="cpu")
    disk.file.close()
    # the old symmetric normalisation stays available and gives a different (valid) model
    ms = GlueModel(d, g, n_latent=8, n_hidden=32, graph_norm="sym").fit(d, max_epochs=2, progress=False, device="cpu")
    mk = GlueModel(d, g, n_latent=8, n_hidden=32).fit(d, max_epochs=2, progress=False, device="cpu")
    assert ms.config["graph_norm"] == "sym" and mk.config["graph_norm"] == "keepvar"
    assert not np.allclose(ms.encode_graph(), mk.encode_graph())


def test_balancing_weights_approximate_knn_above_4096_cells():
    "pynndescent's kNN path (used above `exact_below` cells) gives the exact path's weights on 5,000+ cells per layer."
    from gluekit.glue import balancing_weights
    rs = np.random.default_rng(0)
    cent = np.eye(3, 10) * 5
    blob = lambda c, n: cent[c] + rs.normal(size=(n, 10))
    ea = np.concatenate([blob(0, 4500), blob(1, 500)])
    eb = np.concatenate([blob(0, 500), blob(1, 4500), blob(2, 1500)])
    exact = balancing_weights({"a": ea, "b": eb}, resolution=0.3)
    approx = balancing_weights({"a": ea, "b": eb}, resolution=0.3, exact_below=4096)
    for w in (exact, approx):
        assert w["a"][4500:].mean() > 3 * w["a"][:4500].mean()          # the rare type is up-weighted
        assert w["b"][5000:].mean() < 0.05 * w["b"][:5000].mean()       # the unmatched type is switched off
    groups = {"a": [slice(0, 4500), slice(4500, None)], "b": [slice(0, 500), slice(500, 5000)]}
    for k, sl in groups.items():
        for s in sl:
            assert abs(approx[k][s].mean() / exact[k][s].mean() - 1) < 0.2, (k, s)
