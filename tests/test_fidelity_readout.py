"""The frontier read-out of ``examples/fidelity.py`` on curves whose answer is known."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

_SPEC = importlib.util.spec_from_file_location(
    "fidelity", Path(__file__).resolve().parents[1] / "examples" / "fidelity.py"
)
fidelity = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fidelity)


def curves(ratios_per_seed: list[list[float]], trained: int) -> pd.DataFrame:
    """Per-position MSE/D of each seed as ``ratio`` times a Bayes MSE/D that falls with position."""
    rows = []
    for seed, ratios in enumerate(ratios_per_seed):
        for position, ratio in enumerate(ratios):
            bayes = 1.0 / (1 + position)
            rows.append(
                {
                    "seed": seed,
                    "position": position,
                    "extrapolated": position >= trained,
                    "mse_model": ratio * bayes,
                    "mse_bayes": bayes,
                }
            )
    return pd.DataFrame(rows)


def test_the_frontier_reads_the_seed_mean_averaged_and_at_every_position():
    # Seed means per position: 1.00, 1.05, 1.20, 1.05, 1.30 (the two seeds straddle the bound
    # at position 1, so a per-seed reading would differ).
    table = curves([[1.0, 1.15, 1.2, 1.0, 1.3], [1.0, 0.95, 1.2, 1.1, 1.3]], trained=4)
    # Averaged: running ratios of averages 1.0, 1.0167, 1.05, 1.05, 1.0719 -- all within 1.10;
    # at every position the mean first exceeds 1.10 at position 2.
    assert fidelity.frontier(table, 1.10) == (5, 2)
    # Tighter bounds cut each where its ratio first exceeds them.
    assert fidelity.frontier(table, 1.06) == (4, 2)
    assert fidelity.frontier(table, 1.04) == (2, 1)


def test_above_counts_trained_positions_only_and_names_the_largest():
    table = curves([[1.0, 1.15, 1.2, 1.0, 1.3], [1.0, 0.95, 1.2, 1.1, 1.3]], trained=4)
    n_above, n_trained, worst, at = fidelity.above(table, 1.10)
    # Position 4 (1.30) is extrapolated: only position 2 (1.20) of the four trained is above.
    assert (n_above, n_trained, at) == (1, 4, 2)
    assert worst == pytest.approx(1.2)
