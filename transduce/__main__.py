"""``python -m transduce`` (also what ``torchrun -m transduce`` runs)."""

import sys

from transduce.commands.cli import main

sys.exit(main())
