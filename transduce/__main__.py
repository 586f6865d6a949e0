"""``python -m transduce`` (also what ``torchrun -m transduce`` runs)."""

import sys

from transduce.cli import main

sys.exit(main())
