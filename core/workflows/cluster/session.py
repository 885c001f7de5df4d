"""Connecting to a Ray cluster for one run, and the message when Ray is not installed.

``local`` starts Ray on this machine with every core; ``auto`` joins the cluster this machine belongs to
(``ray start`` ran here) or starts a local one when there is none; ``ray://HOST:PORT`` connects through Ray
Client.  A Ray that this process started is shut down when the run ends, also on Ctrl+C; one that was
already running (joined, or initialised by the caller) is left running.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

INSTALL_HINT = "pip install 'oddscope[cluster]'"
CLUSTER_CHOICES = "local, auto or ray://HOST:PORT"


class RayMissing(RuntimeError):
    """``--cluster`` was asked for but Ray is not installed."""


def require_ray():
    """The ``ray`` module, or :class:`RayMissing` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the extraction pipeline needs Ray Data, not only Ray core
    except ImportError as err:
        raise RayMissing(f"--cluster needs Ray, which is not installed ({err}): {INSTALL_HINT}") from None
    return ray


def check_address(address: str) -> str:
    """``address`` if it is one of :data:`CLUSTER_CHOICES`, else a ValueError naming them."""
    if address in ("local", "auto") or address.startswith("ray://"):
        return address
    raise ValueError(f"--cluster {address!r}: expected {CLUSTER_CHOICES}")


@contextmanager
def ray_cluster(address: str):
    """Ray initialised for ``address`` (:data:`CLUSTER_CHOICES`) during the block; yields the ``ray`` module."""
    ray = require_ray()
    check_address(address)
    started = False
    if not ray.is_initialized():
        quiet = {"include_dashboard": False, "logging_level": logging.WARNING}
        if address == "local":
            ray.init(num_cpus=os.cpu_count(), **quiet)
        elif address == "auto":
            try:
                ray.init(address="auto", logging_level=logging.WARNING)
            except ConnectionError:  # no cluster to join: this machine is the cluster
                ray.init(num_cpus=os.cpu_count(), **quiet)
        else:
            ray.init(address=address, logging_level=logging.WARNING)
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def cpu_nodes(ray) -> tuple[int, int]:
    """``(nodes, cores)``: the live nodes with CPUs, and the cores of the smallest (at least 1 each)."""
    cores = [n["Resources"]["CPU"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU")]
    return max(1, len(cores)), max(1, int(min(cores, default=1)))


def quiet_ray_data() -> None:
    """Our own progress bar says how far the run is: Ray Data's bars and per-run log lines would bury it."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.issue_detectors_config.detectors = []  # advice on memory use, per run, that users cannot act on
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # also its notice that its bars are off
