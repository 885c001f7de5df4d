"""Fixtures of the end-to-end tests that run on Ray."""
import logging

import pytest


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs, as CI has, for the tests of one module (``--cluster auto`` joins it)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()
