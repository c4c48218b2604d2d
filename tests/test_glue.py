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
