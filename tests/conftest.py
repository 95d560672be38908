"""Shared fixtures: a SimPy environment, a seeded generator and small, fast configs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import simpy

matplotlib.use("Agg")

from simrec.config import Config  # noqa: E402


@pytest.fixture
def env() -> simpy.Environment:
    return simpy.Environment()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def tiny(**over) -> Config:
    """A small world (3 000 users, 1 000 items) with a short warm-up; runs in seconds.

    Keyword arguments override settings by dotted path with ``__``, e.g.
    ``tiny(policy__name="frozen", sim__days=0.5)``.
    """
    cfg = Config()
    cfg.users.initial = 3000
    cfg.items.initial = 1000
    cfg.sim.days = 0.25
    cfg.sim.warmup_days = 0.25
    return override(cfg, **over)


def override(cfg: Config, **over) -> Config:
    """Set settings of ``cfg`` in place by dotted path written with ``__``; returns ``cfg``."""
    for key, value in over.items():
        obj = cfg
        *path, last = key.split("__")
        for part in path:
            obj = getattr(obj, part)
        if not hasattr(obj, last):
            raise AttributeError(key)
        setattr(obj, last, value)
    return cfg


@pytest.fixture
def tiny_config() -> Config:
    return tiny()


def simrec_cmd(*args: str, cwd: Path, hashseed: str | None = None) -> subprocess.CompletedProcess:
    """Run the ``simrec`` console entry point in a fresh interpreter (optionally with a given
    ``PYTHONHASHSEED``), capturing its output."""
    code = "import sys; from simrec.cli import main; sys.argv[0] = 'simrec'; main()"
    env = {**os.environ, **({"PYTHONHASHSEED": hashseed} if hashseed is not None else {})}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
