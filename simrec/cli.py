"""The ``simrec`` command (a Hydra app).

``simrec`` alone runs the main job: every policy of the top-level ``compare`` list on the
default scenario, a comparison table on stdout and figures in the run directory.
``simrec policy=hourly`` runs one policy; ``simrec -m policy=hourly,daily seed=0,1`` sweeps.
A run directory that already holds the ``summary.json`` of the same config (same
``run_id``) is complete and is not run again, so a sweep that was interrupted can be started
again with the same ``hydra.sweep.dir``; a directory holding another config's run is run
again and overwritten.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from simrec.config import Config, ConfigError, from_dict

APP_KEYS = ("compare", "workers")


def to_config(cfg: DictConfig | dict[str, Any]) -> Config:
    """Typed config from a composed Hydra config (app-level keys dropped)."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    data = {k: v for k, v in data.items() if k not in APP_KEYS and k != "hydra"}
    return from_dict(data)


def policy_preset(name: str) -> dict[str, Any]:
    """The ``policy`` group option ``name`` as a dict (for the main job's comparison)."""
    path = resources.files("simrec.conf") / "policy" / f"{name}.yaml"
    if not path.is_file() or name == "compare":
        known = sorted(
            p.name[:-5]
            for p in (resources.files("simrec.conf") / "policy").iterdir()
            if p.name.endswith(".yaml") and p.name != "compare.yaml"
        )
        raise ConfigError(f"compare={name!r} is not allowed: known policies are {', '.join(known)}")
    return OmegaConf.to_container(OmegaConf.load(str(path)), resolve=True)


def compose_config(overrides: list[str]) -> Config:
    """The typed config the command would run with ``overrides`` (one policy); a bad
    override raises :class:`ConfigError`, as on the command line."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    precheck(overrides)
    try:
        with initialize_config_module(config_module="simrec.conf", version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"{' '.join(overrides)}: {e}".strip()) from e
    if cfg.policy.name == "compare":
        raise ConfigError(
            "policy=compare is the main job's comparison: choose one policy, e.g. policy=hourly"
        )
    return to_config(cfg)


def comparison_configs(cfg: DictConfig) -> list[Config]:
    """One typed config per policy of the comparison, all checked before anything runs."""
    from simrec.engine import check

    base = OmegaConf.to_container(cfg, resolve=True)
    names = base["compare"]
    if not isinstance(names, list) or not names:
        raise ConfigError(
            f"compare={names!r} is not allowed: must be a non-empty list of policies, "
            "e.g. 'compare=[hourly,daily]'"
        )
    if len(set(map(str, names))) != len(names):
        raise ConfigError(f"compare={names!r} is not allowed: must name each policy once")
    workers = base.get("workers")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers={workers!r} is not allowed: must be an integer >= 1")
    out = []
    for name in names:
        data = {**base, "policy": policy_preset(name)}
        c = to_config(data)
        check(c)
        out.append(c)
    return out


def _run_and_save(cfg: Config, directory: Path) -> dict[str, Any]:
    """Run ``cfg`` into ``directory``, unless a finished run of the same config is there."""
    import json

    import simrec
    from simrec.config import to_dict
    from simrec.results.io import run_id

    summary = directory / "summary.json"
    if summary.exists():
        done = json.loads(summary.read_text())
        if done.get("run_id") == run_id(to_dict(cfg)):
            return done
        print(f"simrec: {directory} holds a run of another config; running again", file=sys.stderr)
    result = simrec.run(cfg)
    result.save(directory)
    (directory / "FAILED").unlink(missing_ok=True)
    return result.summary


def _main_job(cfg: DictConfig, out: Path) -> None:
    import time
    from concurrent.futures import as_completed

    from simrec.report import comparison_table, write_report
    from simrec.results.collect import collect
    from simrec.results.io import atomic_write_text

    configs = comparison_configs(cfg)
    quiet = not cfg.sim.progress
    for c in configs:
        c.sim.progress = False  # one bar per process would interleave; report runs done
    workers = max(1, min(int(cfg.workers), len(configs), os.cpu_count() or 1))
    dirs = {c.policy.name: out / c.policy.name for c in configs}
    _progress(
        f"simrec: comparing {len(configs)} policies on scenario {configs[0].scenario!r} "
        f"({workers} processes), results in {out}",
        quiet,
    )
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {
            pool.submit(_run_and_save, c, dirs[c.policy.name]): c.policy.name for c in configs
        }
        for done, f in enumerate(as_completed(futures), 1):
            f.result()
            _progress(
                f"  {done}/{len(configs)} runs done: {futures[f]} "
                f"({time.perf_counter() - t0:.0f} s)",
                quiet,
            )
    collected = collect([out])
    table = comparison_table(collected.runs)
    atomic_write_text(table.to_csv(index=False), out / "comparison.csv")
    write_report(collected, out / "report")
    print(_format(table))
    print(f"\ntable: {out / 'comparison.csv'}\nfigures: {out / 'report'}")


def _format(table) -> str:
    from simrec.report import _format_table

    return _format_table(table)


def _progress(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


GROUPS = {"policy": "policies", "scenario": "scenarios", "infra": "infras"}


def _options(group: str) -> list[str]:
    folder = resources.files("simrec.conf") / group
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def precheck(overrides: list[str]) -> None:
    """Refuse unknown config-group options and unknown keys in one line, before Hydra runs.

    Sweep values (``a,b``) are checked one by one; Hydra's own syntax (``+key``, ``~key``,
    ``hydra.*``, ``hydra/...``, sweep functions) is left to Hydra.
    """
    import dataclasses

    extra_search_path = any(o.startswith("hydra.searchpath") for o in overrides)
    for item in overrides:
        if item.startswith(("-", "+", "~", "hydra")) or "=" not in item:
            continue
        key, value = item.split("=", 1)
        if key in GROUPS:
            if "(" in value or extra_search_path:  # sweep functions; options found elsewhere
                continue
            known = _options(key)
            for v in value.split(","):
                if v.strip() not in known:
                    raise ConfigError(
                        f"{key}={v.strip()!r} is not allowed: known {GROUPS[key]} "
                        f"are {', '.join(known)}"
                    )
            continue
        if key in APP_KEYS or "[" in key:
            continue
        node: Any = Config
        path = key.split(".")
        for depth, part in enumerate(path):
            if not dataclasses.is_dataclass(node) and depth:
                break  # inside a free-form mapping (policy.params)
            fields = (
                {f.name: f for f in dataclasses.fields(node)}
                if dataclasses.is_dataclass(node)
                else {}
            )
            if part not in fields:
                where = ".".join(path[:depth]) or "config"
                raise ConfigError(
                    f"{key}: unknown setting (settings of {where}: "
                    f"{', '.join(sorted(fields)) or 'none'})"
                )
            node = _field_type(node, part)


def _field_type(cls: type, name: str) -> Any:
    import typing

    tp = typing.get_type_hints(cls)[name]
    return tp if isinstance(tp, type) else None


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def _app(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    sweep = hc.mode == RunMode.MULTIRUN
    label = f"[job {hc.job.num}] " if sweep else ""
    try:
        if cfg.policy.name == "compare":
            _main_job(cfg, out)
            return
        config = to_config(cfg)
        from simrec.engine import check

        check(config)
        if sweep:
            config.sim.progress = False
        summary = _run_and_save(config, out)
        keys = (
            "policy",
            "seed",
            "expected_ctr",
            "oracle_expected_ctr",
            "regret",
            "staleness_mean_s",
            "bytes_moved_per_day",
            "updates_landed",
        )
        print(
            label
            + "  ".join(
                f"{k}={summary[k]:.4g}" if isinstance(summary[k], float) else f"{k}={summary[k]}"
                for k in keys
            ),
            flush=True,
        )
    except ConfigError as e:
        print(f"simrec: error: {label}{e}", file=sys.stderr)
        if not sweep:
            raise SystemExit(2) from None
        _mark_failed(out, str(e))
    except Exception as e:  # a failed run of a sweep is reported; the others go on
        if not sweep:
            raise
        print(f"simrec: error: {label}failed: {type(e).__name__}: {e}", file=sys.stderr)
        _mark_failed(out, f"{type(e).__name__}: {e}")


def _mark_failed(out: Path, message: str) -> None:
    from simrec.results.io import atomic_write_text

    atomic_write_text(message + "\n", out / "FAILED")


def main() -> None:
    """Console entry point."""
    try:
        precheck(sys.argv[1:])
    except ConfigError as e:
        print(f"simrec: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    _app()
