"""``python -m oddscope.core.cli``: the engine's commands without the app."""

from oddscope.core.cli import main

main()
