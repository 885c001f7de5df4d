"""Oddscope engine: everything a scientist can script without Qt.

One process-wide default is set here, before torch (and its OpenMP runtime) can
load: idle OpenMP threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``,
unless the environment already says otherwise).  With the spinning default, two
indexing runs on a 2-core machine reached together 0.28 of one run's images/s;
passive, 1.5 times one run's, and one run alone is as fast
(``benchmarks/bench_concurrent_index.py``).  A script that imports torch before
Oddscope keeps torch's setting.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
