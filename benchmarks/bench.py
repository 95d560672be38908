"""Throughput, memory and per-stage profile of simrec, and the ratio against the naive reference.

For the default scenario (``simrec.Config()``: policy hourly over infra single_dc) at a ladder
of scales (users.initial 10 k, 100 k, 1 M; items.initial = users / 4, the default ratio), each
scale in its own subprocess so that peak memory (``ru_maxrss``) is its own:

* simulated requests per wall-second (and per CPU-second of all threads), end to end through
  ``simrec.run`` (build, run, results) with the default two threads, after a tiny run has
  loaded the compiled kernels; requests are counted in warm-up too, served the same way
  (but for the oracle's counterfactual, which only the metrics read: in warm-up its pools are
  drawn but not scored, in the engine as in the reference);
* the CPU time of each engine stage (of the thread it runs in), in microseconds per
  request, measured by timers wrapped around the stage functions from outside (the stages
  are disjoint; ``other`` is the rest of the process's CPU time in the run: SimPy, glue,
  thread hand-offs, coverage counters, policy bookkeeping), the wall time the main
  thread spends waiting for the worker threads' results, and the CPU time of the main
  thread and of the worker threads, which tells how evenly the two cores are loaded;
* the naive reference (benchmarks/naive_reference.py) on the middle scale's configuration,
  capped at ``--reference-requests`` requests.

A scale simulates ``--requests`` requests (at most ``--max-sim-days`` days), one third warm-up
and two thirds measured, like the default 1 + 2 days. The last line printed is one JSON object.

    python benchmarks/bench.py            # 1-1.5 min on 2 idle cores
    python benchmarks/bench.py --quick    # ~20 s
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from datetime import UTC, datetime

import numpy as np
from threadpoolctl import threadpool_limits

import simrec

SCALES = (10_000, 100_000, 1_000_000)


def scaled_config(
    users: int, requests: float, max_sim_days: float, sim_days: float | None = None
) -> simrec.Config:
    """The default scenario at ``users`` users, long enough for about ``requests`` requests."""
    cfg = simrec.Config()
    cfg.users.initial = users
    cfg.items.initial = max(users // 4, 1_000)
    u = cfg.users
    per_user_day = u.activity_median_per_day * math.exp(u.activity_sigma**2 / 2)
    per_day = users * per_user_day / (1 - u.anonymous_share)
    days = sim_days if sim_days is not None else min(requests / per_day, max_sim_days)
    cfg.sim.warmup_days = days / 3
    cfg.sim.days = days - cfg.sim.warmup_days
    return cfg


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


# --- workers (run in a subprocess each) -------------------------------------------------
Clock = dict[str, list[float]]  # name -> [wall s, CPU s]


def timing(fn, key: str, clock: Clock, cpu=time.process_time):
    """``fn`` adding its wall and CPU time (``cpu``: of the process, or of the calling
    thread with ``time.thread_time``) to ``clock[key]`` on every call."""

    def timed(*args, **kwargs):
        w0, c0 = time.perf_counter(), cpu()
        try:
            return fn(*args, **kwargs)
        finally:
            clock[key][0] += time.perf_counter() - w0
            clock[key][1] += cpu() - c0

    return timed


def instrument(stages: Clock, phases: Clock, counts: dict[str, int]) -> None:
    """Wrap the engine's stage functions (disjoint), ``Simulation.__init__`` / ``run`` (the
    phases), time the main thread's waits for results of worker threads (``main_wait``)
    and count the requests drawn."""
    from simrec.engine import Simulation
    from simrec.metrics.recorder import Recorder
    from simrec.model.learner import Learner
    from simrec.model.log import ClickLog
    from simrec.model.training import TrainingSide
    from simrec.pipeline import checkpoint
    from simrec.serving.replica import Server
    from simrec.world.users import Users
    from simrec.world.world import World

    for key, (owner, name) in {
        "world_advance": (World, "advance"),
        "sample_requests": (Users, "sample_requests"),
        "eligible": (Server, "eligible"),
        "serve": (Server, "serve"),
        "record": (Recorder, "record"),
        "log": (Simulation, "_log"),
        "join": (ClickLog, "ready"),
        "train": (Learner, "train"),
        "register_items": (Learner, "register_items"),
        "evict": (Learner, "evict"),
        "snapshot": (TrainingSide, "snapshot"),
        "validate": (checkpoint, "validate"),
        "oracle": (Server, "_oracle"),
    }.items():
        setattr(owner, name, timing(getattr(owner, name), key, stages, time.thread_time))
    result = Future.result
    main = threading.main_thread()
    from simrec.serving import replica

    slates = replica.model_slates
    shared = timing(slates, "rank_share", stages, time.thread_time)

    def ranking(*args):  # the model's ranking of the step's last requests, in the worker
        return slates(*args) if threading.current_thread() is main else shared(*args)

    replica.model_slates = ranking

    def waited(self, timeout=None):  # the main thread waiting for a worker thread
        if threading.current_thread() is not main:
            return result(self, timeout)
        w0 = time.perf_counter()
        try:
            return result(self, timeout)
        finally:
            phases["main_wait"][0] += time.perf_counter() - w0

    Future.result = waited
    Simulation.__init__ = timing(Simulation.__init__, "build", phases)
    Simulation.run = timing(
        timing(Simulation.run, "run", phases), "run_main", phases, time.thread_time
    )
    sample = Users.sample_requests

    def counting(self, *args, **kwargs):
        ids = sample(self, *args, **kwargs)
        counts["requests"] += len(ids)
        return ids

    Users.sample_requests = counting


def profiled(fn, top: int):
    """``fn`` under cProfile; prints its ``top`` hottest functions to stderr."""
    import cProfile
    import io
    import pstats

    def inner(*args, **kwargs):
        prof = cProfile.Profile()
        out = prof.runcall(fn, *args, **kwargs)
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(top)
        print(text.getvalue(), file=sys.stderr)
        return out

    return inner


def warm_kernels() -> float:
    """Load (or, on a first run on this machine, compile and cache) the compiled kernels
    with a tiny run that takes every code path of the timed ones; returns its seconds."""
    t0 = time.perf_counter()
    cfg = simrec.Config()
    cfg.users.initial, cfg.items.initial = 2_000, 8_000  # sparse pool draws (> 8 x pool)
    cfg.sim.warmup_days, cfg.sim.days = 0.01, 0.02
    simrec.run(cfg)
    return time.perf_counter() - t0


def engine_worker(
    users: int, requests: float, max_sim_days: float, sim_days: float | None, profile: int
) -> dict:
    """``simrec.run`` at one scale, instrumented."""
    from simrec.engine import Simulation

    rss_base = peak_rss_bytes()
    warm_s = warm_kernels()
    cfg = scaled_config(users, requests, max_sim_days, sim_days)
    if profile:
        Simulation.run = profiled(Simulation.run, profile)
    stages, phases = defaultdict(lambda: [0.0, 0.0]), defaultdict(lambda: [0.0, 0.0])
    counts: dict[str, int] = defaultdict(int)
    instrument(stages, phases, counts)
    run = timing(simrec.run, "total", phases)
    result = run(cfg)
    n = counts["requests"]
    wall, cpu = phases["total"]
    us = {k: 1e6 * v[1] / n for k, v in sorted(stages.items(), key=lambda kv: -kv[1][1])}
    us["other"] = 1e6 * (phases["run"][1] - sum(v[1] for v in stages.values())) / n
    return {
        "users": users,
        "items": cfg.items.initial,
        "sim_days": cfg.sim.warmup_days + cfg.sim.days,
        "requests": n,
        "build_s": phases["build"][0],
        "run_s": phases["run"][0],
        "wall_s": wall,
        "cpu_s": cpu,
        "requests_per_s": n / wall,
        "requests_per_cpu_s": n / cpu,
        "run_requests_per_s": n / phases["run"][0],
        "us_per_request": 1e6 * wall / n,
        "cpu_us_per_request": 1e6 * cpu / n,
        "stage_cpu_us_per_request": us,
        "main_wait_us_per_request": 1e6 * phases["main_wait"][0] / n,
        "main_cpu_us_per_request": 1e6 * phases["run_main"][1] / n,
        "worker_cpu_us_per_request": 1e6 * (phases["run"][1] - phases["run_main"][1]) / n,
        "peak_rss_bytes": peak_rss_bytes(),
        "baseline_rss_bytes": rss_base,
        "kernel_warmup_s": warm_s,
        "expected_ctr": result.summary["expected_ctr"],
    }


def naive_worker(users: int, requests: float, max_sim_days: float, max_requests: int) -> dict:
    """The naive reference on the same configuration. Its rate is taken after the first join
    delay (plus one step), from when every request it serves is also trained on."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from naive_reference import NaiveSim

    cfg = scaled_config(users, requests, max_sim_days)
    cpu0, t0 = time.process_time(), time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):  # as simrec.run
        sim = NaiveSim(cfg, max_requests=max_requests)
        sim.start()
        sim.env.run(until=cfg.learner.join_delay_s + cfg.sim.step_s)
        n1, t1, c1 = sim.requests, time.perf_counter(), time.process_time()
        sim.env.run(until=sim.done)
    t2, c2 = time.perf_counter(), time.process_time()
    return {
        "users": users,
        "requests": sim.requests,
        "timed_requests": sim.requests - n1,
        "sim_time_s": sim.env.now,
        "wall_s": t2 - t0,
        "cpu_s": time.process_time() - cpu0,
        "requests_per_s": (sim.requests - n1) / (t2 - t1),
        "requests_per_cpu_s": (sim.requests - n1) / (c2 - c1),
        "end_to_end_requests_per_s": sim.requests / (t2 - t0),
        "peak_rss_bytes": peak_rss_bytes(),
    }


def in_subprocess(args: list[str]) -> dict:
    """Run this script as a worker and return the JSON object of its last stdout line."""
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), *args],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- report -----------------------------------------------------------------------------
def gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB"


def git_commit() -> str | None:
    """Commit of the checkout (``+dirty`` with uncommitted changes), if it is a git one."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=here,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            text=True,
            capture_output=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="small budgets (~30 s): 300 k requests a scale, 8 k reference requests",
    )
    ap.add_argument(
        "--scales",
        type=int,
        nargs="+",
        default=list(SCALES),
        help="users.initial of each scale (the middle one is the headline)",
    )
    ap.add_argument(
        "--requests",
        type=float,
        default=None,
        help="requests simulated per scale (default 6e6; quick 3e5)",
    )
    ap.add_argument(
        "--max-sim-days",
        type=float,
        default=3.0,
        help="cap on simulated days per scale (default 3, the default run length)",
    )
    ap.add_argument(
        "--sim-days",
        type=float,
        default=None,
        help="simulate exactly this many days at every scale (overrides --requests)",
    )
    ap.add_argument(
        "--reference-requests",
        type=int,
        default=None,
        help="cap of the naive reference run (default 60 000; quick 8 000)",
    )
    ap.add_argument("--no-reference", action="store_true", help="skip the naive reference")
    ap.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="also print the N hottest functions (cProfile) of each scale to stderr",
    )
    ap.add_argument("--worker", choices=("engine", "naive"), help=argparse.SUPPRESS)
    ap.add_argument("--users", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    requests = a.requests or (3e5 if a.quick else 6e6)
    ref_requests = a.reference_requests or (8_000 if a.quick else 60_000)

    if a.worker == "engine":
        print(json.dumps(engine_worker(a.users, requests, a.max_sim_days, a.sim_days, a.profile)))
        return
    if a.worker == "naive":
        print(json.dumps(naive_worker(a.users, requests, a.max_sim_days, ref_requests)))
        return

    common = ["--requests", str(requests), "--max-sim-days", str(a.max_sim_days)]
    if a.sim_days is not None:
        common += ["--sim-days", str(a.sim_days)]
    t_start, load = time.perf_counter(), os.getloadavg()
    ladder = []
    for users in a.scales:
        r = in_subprocess(
            ["--worker", "engine", "--users", str(users), "--profile", str(a.profile), *common]
        )
        ladder.append(r)
        print(
            f"users {r['users']:>9,}  items {r['items']:>7,}  sim {r['sim_days']:5.2f} d  "
            f"requests {r['requests']:>10,}  {r['requests_per_s']:>9,.0f} req/s "
            f"({r['us_per_request']:.1f} us/req, {r['cpu_us_per_request']:.1f} CPU us/req, "
            f"build {r['build_s']:.1f} s)  peak RSS {gib(r['peak_rss_bytes'])}",
            flush=True,
        )
    middle = ladder[len(ladder) // 2]
    stages = middle["stage_cpu_us_per_request"]
    print(f"\nstage profile, CPU us per request (users {middle['users']:,}):")
    for k, v in stages.items():
        print(f"  {k:<16} {v:8.2f}  ({100 * v / sum(stages.values()):4.1f} % of the run)")
    wait = middle["main_wait_us_per_request"]
    print(
        f"  main thread waiting for the workers: {wait:.2f} us per request "
        f"({100 * wait / middle['us_per_request']:.1f} % of the wall time)"
    )
    print(
        f"  CPU us per request by thread: main {middle['main_cpu_us_per_request']:.2f}, "
        f"workers {middle['worker_cpu_us_per_request']:.2f}"
    )
    ref = speedup = speedup_cpu = None
    if not a.no_reference:
        ref = in_subprocess(
            [
                "--worker",
                "naive",
                "--users",
                str(middle["users"]),
                "--reference-requests",
                str(ref_requests),
                *common,
            ]
        )
        speedup = middle["requests_per_s"] / ref["requests_per_s"]
        speedup_cpu = middle["requests_per_cpu_s"] / ref["requests_per_cpu_s"]
        print(
            f"\nnaive reference (users {ref['users']:,}): {ref['requests']:,} requests in "
            f"{ref['wall_s']:.1f} s; {ref['requests_per_s']:,.0f} req/s once training "
            f"(end to end {ref['end_to_end_requests_per_s']:,.0f}); "
            f"speedup {speedup:.1f}x (by CPU time {speedup_cpu:.1f}x)"
        )
    small, large = ladder[0], ladder[-1]
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "processor": platform.processor(),
            "loadavg_at_start": load,
            "loadavg_at_end": os.getloadavg(),
        },
        "simrec_commit": git_commit(),
        "quick": a.quick,
        "requests_per_s": middle["requests_per_s"],
        "middle_users": middle["users"],
        "reference_requests_per_s": ref["requests_per_s"] if ref else None,
        "speedup": speedup,
        "speedup_cpu": speedup_cpu,
        "per_request_ratio_largest_vs_smallest": large["us_per_request"] / small["us_per_request"],
        "per_request_cpu_ratio_largest_vs_smallest": large["cpu_us_per_request"]
        / small["cpu_us_per_request"],
        "peak_rss_bytes": {str(r["users"]): r["peak_rss_bytes"] for r in ladder},
        "stage_cpu_us_per_request": middle["stage_cpu_us_per_request"],
        "ladder": ladder,
        "reference": ref,
        "bench_wall_s": time.perf_counter() - t_start,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
