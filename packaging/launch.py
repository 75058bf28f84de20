"""Entry point of the frozen app: the same command line as `memdesk` (no arguments opens the window)."""
import sys

from memdesk.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
