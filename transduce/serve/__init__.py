"""Serving trained models over HTTP: ``transduce serve`` (see app.py, batcher.py)."""
