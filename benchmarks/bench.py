"""Throughput, memory and per-stage profile of simrec, and the ratio against the naive reference.

For the default scenario (``simrec.Config()``: policy hourly over infra single_dc) at a ladder
of scales (users.initial 10 k, 100 k, 1 M; items.initial = users / 4, the default ratio), each
scale in its own subprocess so that peak memory (``ru_maxrss``) is its own:

* simulated requests per wall-second, end to end (``Simulation(cfg)`` + ``run()`` +
  ``build_result``; requests counted in warm-up too, since the engine serves them the same way);
* the wall time of each engine stage, in microseconds per request, measured by timers wrapped
  around the stage functions from outside (the stages are disjoint; ``other`` is the rest of
  the run: SimPy, glue, coverage counters, policy bookkeeping);
* the naive reference (benchmarks/naive_reference.py) on the middle scale's configuration,
  capped at ``--reference-requests`` requests.

A scale simulates ``--requests`` requests (at most ``--max-sim-days`` days), one third warm-up
and two thirds measured, like the default 1 + 2 days. The last line printed is one JSON object.

    python benchmarks/bench.py            # ~6-8 min on 2 cores
    python benchmarks/bench.py --quick    # ~1 min
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
import time
from collections import defaultdict
from datetime import datetime, timezone

import numpy as np

import simrec
from simrec.config import DAY_S

SCALES = (10_000, 100_000, 1_000_000)


def scaled_config(users: int, requests: float, max_sim_days: float,
                  sim_days: float | None = None) -> simrec.Config:
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
def stage_timers() -> tuple[dict[str, float], dict[str, int]]:
    """Wrap the engine's stage functions with timers; returns (seconds, counts) by stage."""
    from simrec.engine import Simulation
    from simrec.metrics.recorder import Recorder
    from simrec.model.learner import Learner
    from simrec.model.log import ClickLog
    from simrec.model.training import TrainingSide
    from simrec.pipeline import checkpoint
    from simrec.serving.replica import Server
    from simrec.world.users import Users
    from simrec.world.world import World

    stages = {
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
    }
    secs: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)

    def wrap(fn, key):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                secs[key] += time.perf_counter() - t0

        return timed

    for key, (owner, name) in stages.items():
        setattr(owner, name, wrap(getattr(owner, name), key))
    sample = Users.sample_requests

    def counting(self, *args, **kwargs):
        ids = sample(self, *args, **kwargs)
        counts["requests"] += len(ids)
        return ids

    Users.sample_requests = counting
    return secs, counts


def engine_worker(users: int, requests: float, max_sim_days: float, sim_days: float | None,
                  profile: int) -> dict:
    from simrec.engine import Simulation
    from simrec.results.io import build_result

    rss_base = peak_rss_bytes()
    cfg = scaled_config(users, requests, max_sim_days, sim_days)
    secs, counts = stage_timers()
    cpu0, t0 = time.process_time(), time.perf_counter()
    sim = Simulation(cfg)
    t1 = time.perf_counter()
    if profile:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        state = prof.runcall(sim.run)
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(profile)
        print(out.getvalue(), file=sys.stderr)
    else:
        state = sim.run()
    t2 = time.perf_counter()
    result = build_result(state)
    t3 = time.perf_counter()
    n = counts["requests"]
    run_s = t2 - t1
    us = {k: 1e6 * v / n for k, v in sorted(secs.items(), key=lambda kv: -kv[1])}
    us["other"] = 1e6 * (run_s - sum(secs.values())) / n
    return {
        "users": users,
        "items": cfg.items.initial,
        "sim_days": cfg.sim.warmup_days + cfg.sim.days,
        "requests": n,
        "build_s": t1 - t0,
        "run_s": run_s,
        "result_s": t3 - t2,
        "wall_s": t3 - t0,
        "cpu_s": time.process_time() - cpu0,
        "requests_per_s": n / (t3 - t0),
        "run_requests_per_s": n / run_s,
        "us_per_request": 1e6 * (t3 - t0) / n,
        "stage_us_per_request": us,
        "peak_rss_bytes": peak_rss_bytes(),
        "baseline_rss_bytes": rss_base,
        "expected_ctr": result.summary["expected_ctr"],
    }


def naive_worker(users: int, requests: float, max_sim_days: float, max_requests: int) -> dict:
    """The naive reference on the same configuration. Its rate is taken after the first join
    delay (plus one step), from when every request it serves is also trained on."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from naive_reference import NaiveSim

    cfg = scaled_config(users, requests, max_sim_days)
    cpu0, t0 = time.process_time(), time.perf_counter()
    sim = NaiveSim(cfg, max_requests=max_requests)
    sim.start()
    sim.env.run(until=cfg.learner.join_delay_s + cfg.sim.step_s)
    n1, t1 = sim.requests, time.perf_counter()
    sim.env.run(until=sim.done)
    t2 = time.perf_counter()
    return {
        "users": users,
        "requests": sim.requests,
        "timed_requests": sim.requests - n1,
        "sim_time_s": sim.env.now,
        "wall_s": t2 - t0,
        "cpu_s": time.process_time() - cpu0,
        "requests_per_s": (sim.requests - n1) / (t2 - t1),
        "end_to_end_requests_per_s": sim.requests / (t2 - t0),
        "peak_rss_bytes": peak_rss_bytes(),
    }


def in_subprocess(args: list[str]) -> dict:
    """Run this script as a worker and return the JSON object of its last stdout line."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), *args],
                          stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- report -----------------------------------------------------------------------------
def gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="small budgets (~1 min): 300 k requests a scale, 8 k reference requests")
    ap.add_argument("--scales", type=int, nargs="+", default=list(SCALES),
                    help="users.initial of each scale (the middle one is the headline)")
    ap.add_argument("--requests", type=float, default=None,
                    help="requests simulated per scale (default 3e6; quick 3e5)")
    ap.add_argument("--max-sim-days", type=float, default=3.0,
                    help="cap on simulated days per scale (default 3, the default run length)")
    ap.add_argument("--sim-days", type=float, default=None,
                    help="simulate exactly this many days at every scale (overrides --requests)")
    ap.add_argument("--reference-requests", type=int, default=None,
                    help="cap of the naive reference run (default 40 000; quick 8 000)")
    ap.add_argument("--no-reference", action="store_true", help="skip the naive reference")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="also print the N hottest functions (cProfile) of each scale to stderr")
    ap.add_argument("--worker", choices=("engine", "naive"), help=argparse.SUPPRESS)
    ap.add_argument("--users", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    requests = a.requests or (3e5 if a.quick else 3e6)
    ref_requests = a.reference_requests or (8_000 if a.quick else 40_000)

    if a.worker == "engine":
        print(json.dumps(engine_worker(a.users, requests, a.max_sim_days, a.sim_days,
                                       a.profile)))
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
        r = in_subprocess(["--worker", "engine", "--users", str(users), "--profile",
                           str(a.profile), *common])
        ladder.append(r)
        print(f"users {r['users']:>9,}  items {r['items']:>7,}  sim {r['sim_days']:5.2f} d  "
              f"requests {r['requests']:>10,}  {r['requests_per_s']:>9,.0f} req/s "
              f"({r['us_per_request']:.1f} us/req, run only {r['run_requests_per_s']:,.0f}/s, "
              f"build {r['build_s']:.1f} s)  peak RSS {gib(r['peak_rss_bytes'])}", flush=True)
    middle = ladder[len(ladder) // 2]
    print(f"\nstage profile, us per request (users {middle['users']:,}):")
    for k, v in middle["stage_us_per_request"].items():
        print(f"  {k:<16} {v:8.2f}  ({100 * v / middle['us_per_request']:4.1f} %)")
    ref = None
    if not a.no_reference:
        ref = in_subprocess(["--worker", "naive", "--users", str(middle["users"]),
                             "--reference-requests", str(ref_requests), *common])
        print(f"\nnaive reference (users {ref['users']:,}): {ref['requests']:,} requests in "
              f"{ref['wall_s']:.1f} s; {ref['requests_per_s']:,.0f} req/s once training "
              f"(end to end {ref['end_to_end_requests_per_s']:,.0f}); "
              f"speedup {middle['requests_per_s'] / ref['requests_per_s']:.1f}x")
    small, large = ladder[0], ladder[-1]
    summary = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "processor": platform.processor(),
                    "loadavg_at_start": load},
        "quick": a.quick,
        "requests_per_s": middle["requests_per_s"],
        "middle_users": middle["users"],
        "reference_requests_per_s": ref["requests_per_s"] if ref else None,
        "speedup": middle["requests_per_s"] / ref["requests_per_s"] if ref else None,
        "per_request_ratio_largest_vs_smallest": large["us_per_request"]
        / small["us_per_request"],
        "peak_rss_bytes": {str(r["users"]): r["peak_rss_bytes"] for r in ladder},
        "stage_us_per_request": middle["stage_us_per_request"],
        "ladder": ladder,
        "reference": ref,
        "bench_wall_s": time.perf_counter() - t_start,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
