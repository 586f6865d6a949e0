"""The micro-batcher on a plain decode function: merging, order, fairness, failures."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from transduce.serve.batcher import Arrivals, MicroBatcher


class Recorder:
    """A decode function that upper-cases its items and records every batch it got."""

    def __init__(self, fail_on: str | None = None, delay: float = 0.0) -> None:
        self.batches: list[tuple[list[str], object]] = []
        self.fail_on, self.delay = fail_on, delay
        self.thread_names: set[str] = set()

    def __call__(self, items: list[str], options: object) -> list[str]:
        self.thread_names.add(threading.current_thread().name)
        self.batches.append((list(items), options))
        if self.delay:
            threading.Event().wait(self.delay)
        if self.fail_on in items:
            raise RuntimeError("bad batch")
        return [f"{x.upper()}/{options}" for x in items]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_merge_and_each_gets_its_own_results():
    decode = Recorder()

    async def main():
        b = MicroBatcher(decode, ThreadPoolExecutor(1), max_batch_size=64, max_wait_ms=50)
        jobs = [b.submit([f"r{i}a", f"r{i}b"], "greedy") for i in range(10)]
        out = await asyncio.gather(*jobs)
        await b.close()
        return b, out

    b, out = run(main())
    assert out == [[f"R{i}A/greedy", f"R{i}B/greedy"] for i in range(10)]
    assert b.calls == len(decode.batches) < 10 and b.items == 20
    assert threading.main_thread().name not in decode.thread_names  # not on the loop


def test_different_options_are_never_mixed():
    decode = Recorder()

    async def main():
        b = MicroBatcher(decode, ThreadPoolExecutor(1), max_wait_ms=20)
        out = await asyncio.gather(*(b.submit([str(i)], ("beam", i % 2)) for i in range(6)))
        await b.close()
        return out

    out = run(main())
    assert out == [[f"{i}/('beam', {i % 2})"] for i in range(6)]
    for _items, options in decode.batches:
        assert options in (("beam", 0), ("beam", 1))
    assert len(decode.batches) == 2


def test_a_large_request_is_split_and_does_not_starve_a_small_one():
    decode = Recorder(delay=0.01)

    async def main():
        b = MicroBatcher(decode, ThreadPoolExecutor(1), max_batch_size=4, max_wait_ms=1)
        big = asyncio.ensure_future(b.submit([f"big{i}" for i in range(40)], "o"))
        await asyncio.sleep(0.015)  # the first batch of the big request is decoding
        small = await b.submit(["small"], "o")
        done_big = big.done()
        await big
        await b.close()
        return small, done_big, big.result()

    small, done_big, big = run(main())
    assert small == ["SMALL/o"] and not done_big
    assert big == [f"BIG{i}/o" for i in range(40)]
    assert max(len(items) for items, _ in decode.batches) == 4
    where = next(k for k, (items, _) in enumerate(decode.batches) if "small" in items)
    assert where <= 2  # waited for at most the batch in flight and the one after


def test_a_failing_batch_fails_its_requests_only_and_the_batcher_goes_on():
    decode = Recorder(fail_on="boom")

    async def main():
        b = MicroBatcher(decode, ThreadPoolExecutor(1), max_batch_size=1, max_wait_ms=0)
        results = await asyncio.gather(
            b.submit(["boom", "x"], "o"), b.submit(["fine"], "o"), return_exceptions=True
        )
        after = await b.submit(["later"], "o")
        await b.close()
        return results, after

    (failed, fine), after = run(main())
    assert isinstance(failed, RuntimeError) and fine == ["FINE/o"] and after == ["LATER/o"]


def test_an_idle_server_does_not_wait_for_company():
    """With nothing being read (``Arrivals`` at 0), one request is decoded at once."""
    decode = Recorder()

    async def main():
        b = MicroBatcher(decode, ThreadPoolExecutor(1), max_wait_ms=5000, arrivals=Arrivals())
        loop = asyncio.get_running_loop()
        start = loop.time()
        out = await b.submit(["solo"], "o")
        await b.close()
        return out, loop.time() - start

    out, seconds = run(main())
    assert out == ["SOLO/o"] and seconds < 2.5  # far below the 5 s wait bound


def _threaded(where: list[str], per_char: float = 0.0, **settings) -> MicroBatcher:
    """A batcher whose decode records the thread it ran on and takes ``per_char`` seconds
    per character of its batch; an item's cost is its length."""

    def decode(items: list[str], options: object) -> list[str]:
        where.append(threading.current_thread().name)
        threading.Event().wait(per_char * sum(len(x) for x in items))
        return [x.upper() for x in items]

    executor = ThreadPoolExecutor(1, thread_name_prefix="decode")
    cost = lambda item, options: len(item)  # noqa: E731
    return MicroBatcher(decode, executor, arrivals=Arrivals(), cost=cost, **settings)


def test_a_batch_predicted_short_decodes_on_the_loop_and_a_long_one_on_the_thread():
    """With ``inline_seconds``, the seconds per unit of work of the batches seen so far
    predict the next batch's time: within the bound it decodes on the event loop's thread,
    beyond it on the decode thread; before any batch was seen, on the decode thread."""
    where: list[str] = []

    async def main():
        b = _threaded(where, 0.002, inline_seconds=0.05)  # 2 ms per character
        first = await b.submit(["abcde"], "o")  # unseen rate: the decode thread
        short = await b.submit(["abc", "de"], "o")  # ~10 ms predicted: the loop
        long = await b.submit(["x" * 60], "o")  # ~120 ms predicted: the decode thread
        await b.close()
        return first, short, long

    first, short, long = run(main())
    assert (first, short, long) == (["ABCDE"], ["ABC", "DE"], ["X" * 60])
    loop_thread = threading.current_thread().name
    assert where[0] != loop_thread and where[1] == loop_thread and where[2] != loop_thread


def test_options_that_raise_the_worst_case_decode_on_the_decode_thread():
    """A lone short item whose options raise the worst case (a long ``max_len``) decodes on
    the decode thread even though its cost is within ``inline_cost``."""
    where: list[str] = []

    async def main():
        b = _threaded(where, inline_cost=100, inline_options=lambda o: o != "long")
        out = [await b.submit(["ab"], "short"), await b.submit(["ab"], "long")]
        await b.close()
        return out

    assert run(main()) == [["AB"], ["AB"]]
    assert where[0] == threading.current_thread().name and where[1].startswith("decode")


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        MicroBatcher(Recorder(), ThreadPoolExecutor(1), max_batch_size=0)
