"""The fused-loop benchmark does the work it times (``benchmarks/fused_loop.py``).

Its timings only mean something if its loop serves real slates: clicks drawn with the shown
items' probabilities, an oracle that ranks by the truth, training that learns. Values are
checked, never times.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

_path = Path(__file__).resolve().parents[1] / "benchmarks" / "fused_loop.py"
_spec = importlib.util.spec_from_file_location("fused_loop", _path)
fused = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fused)

N = 800 * fused.BATCH  # 204 800 requests


def test_clicks_follow_the_shown_probabilities_and_the_oracle_ranks_by_truth():
    clicks, expected, oracle = fused.run(N, 4, 1, fused.tables(0))
    # clicks are independent Bernoulli draws whose probabilities sum to `expected`: their
    # variance is below `expected`, so 4 sd bound a false alarm at about 6e-5
    assert abs(clicks - expected) <= 4 * math.sqrt(expected)
    # the oracle shows the true top 10 of its candidates; the model's slates (trained for
    # the run's length only, from near-random rows) are far worse: about 4.1 against 1.0
    assert oracle > 3 * expected > 0


def test_training_learns():
    # same seed, same draws: with training the model's slates have more expected clicks
    # (1.013 against 0.921 per request, the untrained model ranking at random)
    _, untrained, _ = fused.run(N, 2, 1, fused.tables(0))
    _, trained, _ = fused.run(N, 3, 1, fused.tables(0))
    assert trained > 1.05 * untrained
