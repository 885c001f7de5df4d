"""Run Python as in the desktop bundle: torch, torchvision, timm and open_clip are not installed.

``PRELUDE`` is code to put first in a ``python -c`` script: it hides those packages from the
import system (``import torch`` fails, ``importlib.util.find_spec("torch")`` is None), the
faithful equivalent of their absence.
"""

import os
import subprocess
import sys

BLOCKED = ("torch", "torchvision", "timm", "open_clip", "triton")
PRELUDE = f"""
import importlib.machinery
_find_spec = importlib.machinery.PathFinder.find_spec
def _hide(fullname, path=None, target=None):
    if fullname.split(".")[0] in {BLOCKED!r}:
        return None
    return _find_spec(fullname, path, target)
importlib.machinery.PathFinder.find_spec = staticmethod(_hide)
"""


def python_without_torch(script: str, *args, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """Run ``script`` (after :data:`PRELUDE`) with ``args`` in a fresh interpreter; output captured as text."""
    return subprocess.run([sys.executable, "-c", PRELUDE + script, *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def oddscope_without_torch(*args, cwd=None) -> subprocess.CompletedProcess:
    """The ``oddscope`` command line, without torch."""
    return python_without_torch("import sys\nsys.argv[0] = 'oddscope'\nfrom oddscope.app.cli import main\nmain()\n",
                                *args, cwd=cwd)
