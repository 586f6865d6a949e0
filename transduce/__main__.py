"""``python -m transduce`` (also what ``torchrun -m transduce`` runs)."""

from transduce.commands.cli import entry

entry()
