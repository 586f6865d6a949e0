"""``python -m transduce`` (also what ``torchrun -m transduce`` runs)."""

from transduce.commands.launch import entry

entry()
