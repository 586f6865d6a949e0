"""The training engine: one objective module (:mod:`.objective`) under DistributedDataParallel
(:mod:`.parallel`), the teacher-forcing policy (:mod:`.teacher`) and a loop that knows no
task but the :class:`~.task.Task` protocol (:mod:`.loop`), extended by callbacks
(:mod:`.callbacks`: progress, metrics, checkpoints). Tasks (:mod:`transduce.tasks`) plug
their data and validation in."""
