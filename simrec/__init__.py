"""simrec: simulate how a recommender system keeps its serving model fresh.

The public API is small::

    import simrec
    cfg = simrec.Config()              # or simrec.compose(["policy=daily", "seed=3"])
    result = simrec.run(cfg)           # -> simrec.Result (tidy DataFrames + summary)
    result.save("out/")                # and simrec.Result.load("out/")
"""

from __future__ import annotations

from typing import Any

from simrec.config import Config, ConfigError, from_dict
from simrec.results.io import Result

__version__ = "0.1.0"

__all__ = ["Config", "ConfigError", "Result", "__version__", "compose", "run"]


def run(config: Config | dict[str, Any]) -> Result:
    """Simulate one run and return its :class:`Result`.

    Args:
        config: a :class:`Config`, or a nested dict of settings (validated before anything
            runs; a bad setting raises :class:`ConfigError` naming it).
    """
    from threadpoolctl import threadpool_limits

    from simrec.engine import Simulation
    from simrec.results.io import build_result

    cfg = from_dict(config) if isinstance(config, dict) else config
    # The engine's matrix products are small: a multi-threaded BLAS only contends with itself
    # and with the other runs of a sweep, which is where the parallelism is.
    with threadpool_limits(limits=1, user_api="blas"):
        return build_result(Simulation(cfg).run())


def compose(overrides: list[str] | None = None) -> Config:
    """The config the ``simrec`` command would use with these Hydra overrides."""
    from simrec.cli import compose_config

    return compose_config(overrides or [])
