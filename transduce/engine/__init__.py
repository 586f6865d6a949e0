"""The training engine: one objective module (:mod:`.objective`) under DistributedDataParallel
(:mod:`.parallel`), the teacher-forcing policy (:mod:`.teacher`) and a loop that knows no
task (:mod:`.loop`). Tasks (:mod:`transduce.tasks`) plug their data and validation in."""
