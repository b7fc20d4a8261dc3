import os
import shutil

import pytest
import torch
from filelock import FileLock

from helpers import fill_workdir, new_workdir, snakemake


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
    """The whole pipeline on the test config, built once per test run (read-only). Under
    pytest-xdist every worker has a session of its own: they share one build in the run's
    common temporary folder, made by the first to take the lock while the others wait."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        workdir = new_workdir(tmp_path_factory, "pipeline")
        snakemake(workdir)
        return workdir
    shared = tmp_path_factory.getbasetemp().parent
    workdir, built = shared / "pipeline", shared / "pipeline.built"
    with FileLock(shared / "pipeline.lock"):
        if not built.exists():
            shutil.rmtree(workdir, ignore_errors=True)  # what a failed build of another worker left
            snakemake(fill_workdir(workdir))
            built.touch()
    return workdir
