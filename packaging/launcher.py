"""Entry point of the desktop bundle: the same `oddscope` command line."""
import multiprocessing

from oddscope.app.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # decoding workers of a frozen app (spawn on Windows and macOS)
    main()
