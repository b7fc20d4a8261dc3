import pytest
import torch

from helpers import new_workdir, snakemake


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Tests compare tensors bitwise; keep them on a fixed thread count.
    torch.set_num_threads(1)
    yield


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory):
    """The whole pipeline on the test config, built once per test session (read-only)."""
    workdir = new_workdir(tmp_path_factory, "pipeline")
    snakemake(workdir)
    return workdir
