"""SIGINT/SIGTERM inside training: the first asks to stop, a second SIGINT stops at once."""

from __future__ import annotations

import os
import signal

import pytest

from transduce.engine import interrupt


def test_first_signal_asks_second_sigint_raises():
    with interrupt.graceful():
        assert interrupt.requested() is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert interrupt.requested() == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)  # a repeated SIGTERM: still stopping, no raise
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert interrupt.requested() is None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
