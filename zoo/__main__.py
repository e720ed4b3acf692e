"""``python -m zoo`` runs the ``zoo`` command line (so ``torchrun -m zoo train ...`` works)."""

from __future__ import annotations

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main())
