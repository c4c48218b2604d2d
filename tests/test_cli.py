"""The `gluekit` console script: listing, parameter validation, data cache commands."""
import subprocess
import sys
from pathlib import Path

import pytest

from gluekit.cli import main, resolve_parameters, study_parameters
from gluekit.core import InputError

EXE = Path(sys.executable).parent / "gluekit"


def test_list_shows_studies_and_parameters():
    r = subprocess.run([EXE, "list"], capture_output=True, text=True, check=True)
    assert "snare_benchmark" in r.stdout and "max_epochs" in r.stdout


def test_unknown_study_and_parameter_list_valid_ones(tmp_path):
    r = subprocess.run([EXE, "run", "nope", "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "valid studies" in r.stderr and "snare_benchmark" in r.stderr
    r = subprocess.run([EXE, "run", "snare_benchmark", "--out", str(tmp_path), "-p", "n_cellz", "5"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "'n_cellz'" in r.stderr and "n_cells" in r.stderr
    assert not any(tmp_path.iterdir()), "nothing may be written before the parameters are validated"


def test_presets_only_name_declared_parameters():
    for name in ("snare_benchmark",):
        declared = study_parameters(name)
        for preset in ("demo", "ci"):
            assert set(resolve_parameters(name, preset=preset)) <= set(declared)
    with pytest.raises(InputError, match="unknown preset"):
        resolve_parameters("snare_benchmark", preset="huge")


def test_data_path_and_fetch(data_cache, capsys):
    assert main(["data", "path"]) == 0
    assert capsys.readouterr().out.strip() == str(data_cache)
    assert main(["data", "fetch", "snare_adbrain"]) == 0
    assert len(capsys.readouterr().out.split()) == 6
    assert main(["data", "fetch", "no_such"]) == 2
