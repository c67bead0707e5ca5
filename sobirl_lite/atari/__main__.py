"""``python -m sobirl_lite.atari train ...`` -- see :mod:`sobirl_lite.atari.cli`."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
