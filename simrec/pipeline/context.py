"""What an update policy may use: the context handed to :meth:`UpdatePolicy.start`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import simpy

if TYPE_CHECKING:
    from simrec.model.log import ClickLog
    from simrec.model.training import TrainingSide
    from simrec.network.topology import Topology
    from simrec.pipeline.updates import UpdateLog
    from simrec.serving.replica import Replica
    from simrec.world.world import World


@dataclass
class UpdateContext:
    """Everything a policy may touch.

    Attributes:
        env: the SimPy environment (time in seconds).
        world: ground truth (only the oracle policy reads it).
        training: the training datacenter: snapshots, deltas, last shipped version.
        log: the click log (held-out examples for validation).
        topology: links from the training datacenter to the inference datacenters.
        replicas: serving replica of each inference datacenter, by name.
        updates: the update log.
        measure_start_s: start of the measured period (s); policies start then.
        end_s: end of the run (s).
    """

    env: simpy.Environment
    world: World
    training: TrainingSide
    log: ClickLog
    topology: Topology
    replicas: dict[str, Replica]
    updates: UpdateLog
    measure_start_s: float
    end_s: float
