"""Shared pytest configuration for gluekit.

- `--run-slow` runs tests marked `slow` (full-size case studies); `--gpu` runs tests marked `gpu`.
- The real-data cache is `$GLUEKIT_DATA`, else `../shared/data` beside the checkout (as the Makefile sets it).
"""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("GLUEKIT_PROGRESS", "0")
os.environ.setdefault("MPLBACKEND", "Agg")
if not os.environ.get("GLUEKIT_DATA") and (ROOT.parent / "shared" / "data" / "PROVENANCE.md").exists():
    os.environ["GLUEKIT_DATA"] = str(ROOT.parent / "shared" / "data")


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")
    parser.addoption("--gpu", action="store_true", default=False, help="run tests marked gpu (needs CUDA)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: full-size runs, opt in with --run-slow")
    config.addinivalue_line("markers", "gpu: needs CUDA, opt in with --gpu")


def pytest_collection_modifyitems(config, items):
    skip_slow = pytest.mark.skip(reason="slow: pass --run-slow to run")
    skip_gpu = pytest.mark.skip(reason="gpu: pass --gpu to run (needs CUDA)")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--run-slow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not config.getoption("--gpu"):
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def data_cache() -> Path:
    "The offline data cache holding the registry's files (skips when absent)."
    p = os.environ.get("GLUEKIT_DATA")
    if not p or not Path(p).exists():
        pytest.skip("no offline data cache: set GLUEKIT_DATA to a folder holding the registry files")
    return Path(p)
