"""The datacenter network: links with processor sharing, and dissemination topologies."""

from simrec.network.link import Link, Transfer
from simrec.network.topology import TOPOLOGIES, Topology, build_topology

__all__ = ["TOPOLOGIES", "Link", "Topology", "Transfer", "build_topology"]
