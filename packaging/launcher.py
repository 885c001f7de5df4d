"""Entry point of the desktop bundle: the same `oddscope` command line."""
from oddscope.core.cli import main

main()
