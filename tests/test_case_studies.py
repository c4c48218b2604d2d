"""Case studies run end to end through papermill at small size (CPU), asserting on their metrics.json.

The same notebooks at full size (their `parameters` defaults) are the GPU runs: `make test-gpu`.
"""
import json
import os
from pathlib import Path

import pytest

from gluekit.cli import run_study, PRESETS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _run(name, tmp_path, **params):
    out = tmp_path / name
    run_study(name, out, params={"device": "cpu", **params}, progress=False)
    assert (out / "report.html").stat().st_size > 10_000
    return json.loads((out / "metrics.json").read_text()), out


def test_snare_benchmark_small(tmp_path, data_cache):
    """Real SNARE-seq subsample (CI preset: 1,200 nuclei, 25 epochs per stage): the pipeline runs end to end and every
    method beats random pairing (FOSCTTM 0.5) and random label transfer (23 types). The short CI schedule is far from
    GLUE's converged quality on these data; the full-size run (parameters defaults) is the accuracy benchmark."""
    m, out = _run("snare_benchmark", tmp_path, **PRESETS["snare_benchmark"]["ci"])
    assert m["n_cells"] == PRESETS["snare_benchmark"]["ci"]["n_cells"]
    for method in ("glue", "gluer", "conversion"):
        assert m["foscttm"][method] < 0.45, m["foscttm"]
        assert m["label_transfer"][method] > 0.2, m["label_transfer"]
    assert {"foscttm", "map", "cell_type_asw", "seurat_alignment_score"} <= set(m["table"][0]), m["table"][0]
    for f in m["figures"].values():
        assert Path(f).exists()


def test_triple_omics_small(tmp_path):
    "RNA + ATAC + methylation (simulated, paired, trained unpaired): all pairs aligned, labels transfer, R² ordering."
    m, out = _run("triple_omics", tmp_path, **PRESETS["triple_omics"]["ci"])
    assert set(m["foscttm"]) == {"rna-atac", "rna-met", "atac-met"}
    assert m["foscttm_mean"] < 0.3, m["foscttm"]                   # 0.5 is random; measured 0.19 (ci preset)
    assert max(m["foscttm"].values()) < 0.4, m["foscttm"]
    assert min(m["label_transfer"].values()) > 0.3, m["label_transfer"]   # 6 types: chance is ~0.17
    assert m["graph_edges"]["methylation"] == 2 * m["n_met"]      # one negative edge per met feature, both directions
    glue, truth = m["r2"]["GLUE"], m["r2"]["true pairing"]
    assert truth["methylation"] > 0.3 and truth["ATAC"] > 0.03, truth   # the regression finds the planted relations
    assert truth["methylation"] > truth["ATAC"], truth
    assert glue["methylation"] > 0.1 and glue["methylation"] > glue["ATAC"], glue
    assert m["n_metacells"]["GLUE"] >= 8, m["n_metacells"]        # metacells with enough cells of all three layers
    for f in m["figures"].values():
        assert Path(f).exists()


def test_gluer_panel_small(tmp_path):
    """RNA reference + 30-protein panel on disjoint halves, the panel nearly blind to two types (`panel_blind`):
    integration, clustering ARIs, the blind types merged by everything built on the panel but separated by the
    transcriptome, and imputation vs held-out RNA."""
    p = PRESETS["gluer_panel"]["ci"]
    m, out = _run("gluer_panel", tmp_path, **p)
    assert m["n_panel_features"] == 30 and m["n_shared_genes"] == 30
    assert m["panel_blind"] == p["panel_blind"] and m["n_blind_panel_cells"] > 100, m["n_blind_panel_cells"]
    # measured 0.60 overall (the blind types cannot be told apart), 0.67 on the other types
    assert m["cell_type_transfer_accuracy"] > 0.45, m["cell_type_transfer_accuracy"]
    assert m["cell_type_transfer_accuracy_visible"] > 0.55, m["cell_type_transfer_accuracy_visible"]
    ari = m["ari_best"]
    assert ari["reference on its transcriptome"] > 0.8, ari                          # measured 0.96
    assert ari["co-embedding"] > 0.45 and ari["reference clusters transferred"] > 0.3, ari  # measured 0.68, 0.50
    # the blind types: merged by the panel and by anything computed from it (measured ARI ~0.00-0.02 on their cells),
    # separated by the reference's own transcriptome (measured 1.00)
    b = m["blind_ari_best"]
    assert b["reference on its transcriptome"] > 0.8, b
    for k in ("panel alone", "co-embedding", "reference clusters transferred", "reference labels transferred"):
        assert b[k] < 0.15, b
    r = m["imputation_median_r"]
    assert r["GLUER"] > 0.12 and abs(r["shuffled"]) < 0.05, r                    # measured 0.19, 0.003
    assert r["GLUER"] > 0.3 * r["oracle"], r                      # measured 0.41 of the oracle (0.87 with a random panel)
    assert r["oracle"] >= r["GLUER"] - 0.02, r                    # the true latent space is the ceiling
    for f in m["figures"].values():
        assert Path(f).exists()
    assert "blind_types" in m["figures"]


def test_robustness_small(tmp_path):
    "Corruption and subsampling curves: a 90 %-corrupted graph aligns worse than the clean one, all runs scored."
    p = PRESETS["robustness"]["ci"]
    m, out = _run("robustness", tmp_path, **p)
    c = m["corruption"]
    assert set(c) == {str(float(r)) for r in p["corruption_rates"]}
    assert c["0.0"]["foscttm"] < c["0.9"]["foscttm"], c
    assert c["0.0"]["foscttm"] < 0.2, c                          # clean graph: well aligned
    assert len(m["runs"]) == len(p["seeds"]) * (len(p["corruption_rates"]) + len(p["subsample_sizes"]))
    assert all(0 <= r["foscttm"] <= 1 and 0 <= r["map"] <= 1 for r in m["runs"])
    assert Path(m["figures"]["robustness"]).exists()


def test_regulation_scenic_small(tmp_path):
    """Simulated paired cells with planted links and TF targets (CI preset: 400 cells, 200 genes, one seed, 20 epochs per
    stage): GLUE links rank planted links above chance and decay with distance; the TF ranking built from GLUE's top
    links and the pySCENIC regulons beat the same networks with randomly relabelled TFs."""
    m, out = _run("regulation_scenic", tmp_path, **PRESETS["regulation_scenic"]["ci"])
    assert m["data"] == "sim" and m["n_models"] == 1
    assert m["n_candidates"] > 1000 and m["n_true_links"] > 100, m
    # measured AUROC 0.63 (ci preset; |correlation| 0.73, closeness to promoter 0.82): a short CPU schedule
    assert m["auroc"] > 0.55, m["links"]
    assert m["distance_decay_spearman"] < -0.1, m["distance_decay_spearman"]   # measured -0.39
    assert m["fdp"] <= 0.5, m                                                  # if anything passes the FDR, most are real
    nets = m["networks"]
    rank = nets["TF ranking (GLUE links)"]
    # measured precision 0.72 against a random-TF mean of ~0.35 (q95 ~0.47), odds ratio ~15
    assert rank["precision"] > rank["precision_random_tf_q95"], rank
    assert rank["odds_ratio"] > 3 and rank["pval"] < 1e-4, rank
    coexp = nets["co-expression modules"]
    assert m["n_modules"] >= 10 and coexp["n_predicted"] > rank["n_predicted"], (m["n_modules"], coexp)
    # pySCENIC keeps the co-expressed targets that carry the TF's sites in linked peaks: measured 2-3 regulons,
    # precision 0.6-0.7 against a random-TF mean of ~0.2 and the co-expression modules' 0.19
    scenic = nets["GLUE + SCENIC regulons"]
    assert m["n_regulons"] >= 1, m["n_regulons"]
    assert scenic["precision"] > scenic["precision_random_tf"] and scenic["precision"] > coexp["precision"], scenic
    for f in m["figures"].values():
        assert Path(f).exists()
