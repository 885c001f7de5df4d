"""Entry point of the desktop bundle: the same `oddscope` command line."""
from oddscope.app.cli import main

main()
