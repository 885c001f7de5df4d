"""Oddscope shares the machine: idle OpenMP threads sleep instead of spinning (bench_concurrent_index.py)."""

import os
import subprocess
import sys

CHECK = "import oddscope.core, torch, os; print(os.environ['OMP_WAIT_POLICY'])"


def _policy(**env) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env
    return subprocess.run([sys.executable, "-c", CHECK], env=environ, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_importing_the_engine_makes_idle_openmp_threads_sleep_unless_the_user_chose():
    assert _policy() == "PASSIVE"
    assert _policy(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
