"""What the generic training loop (:mod:`transduce.engine.loop`) trains: a task holds the
data, the objective and the validation of one kind of run (text, series)."""
