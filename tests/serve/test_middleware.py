"""The request gate: bodies over the size limit are refused before they are read, and past
``--max-inflight-kb`` of bodies being handled at once a request gets a 503 with
``Retry-After`` at once (a lone body is always admitted)."""

from __future__ import annotations

import asyncio
import json

from transduce.serve.batcher import Arrivals
from transduce.serve.middleware import Gate


def _scope(size: int) -> dict:
    headers = [(b"content-length", str(size).encode()), (b"content-type", b"application/json")]
    return {"type": "http", "path": "/v1/forecast", "method": "POST", "headers": headers}


async def _call(gate: Gate, size: int, sent_bytes: int | None = None) -> tuple[int, dict, dict]:
    """A request declaring ``size`` bytes that sends ``sent_bytes`` of them (all)."""
    sent: list[dict] = []
    body = b" " * (size if sent_bytes is None else sent_bytes)

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await gate(_scope(size), receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], json.loads(body), headers


def test_bodies_past_the_inflight_budget_get_503_with_retry_after():
    release = asyncio.Event()

    async def app(scope, receive, send) -> None:  # holds each admitted request
        await receive()  # its body arrives
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def main():
        gate = Gate(app, Arrivals(), max_body=1000, max_inflight=1500)
        first = asyncio.create_task(_call(gate, 1000))
        await asyncio.sleep(0.01)
        small = asyncio.create_task(_call(gate, 400))  # 1,400 of 1,500: admitted
        await asyncio.sleep(0.01)
        shed = await _call(gate, 200)  # 1,600: refused at once
        release.set()
        done = [await first, await small]
        alone = await _call(gate, 1000)  # nothing in flight any more
        return shed, done, alone, gate.inflight

    shed, done, alone, left = asyncio.run(main())
    assert (
        shed[0] == 503 and shed[2]["retry-after"] == "1" and "--max-inflight-kb" in shed[1]["error"]
    )
    assert [d[0] for d in done] == [200, 200] and alone[0] == 200 and left == 0


def test_a_lone_body_is_admitted_whatever_the_budget():
    async def app(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    gate = Gate(app, Arrivals(), max_body=1000, max_inflight=10)
    assert asyncio.run(_call(gate, 1000))[0] == 200
    assert asyncio.run(_call(gate, 1001))[0] == 413


def test_a_declared_length_reserves_nothing_until_its_bytes_arrive():
    """Four connections that declared 4 MB and sent one byte had every other request
    refused with 503 until they timed out (and again when they came back)."""
    release = asyncio.Event()

    async def app(scope, receive, send) -> None:
        await receive()
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def main():
        gate = Gate(app, Arrivals(), max_body=1000, max_inflight=1500)
        slow = [asyncio.create_task(_call(gate, 1000, sent_bytes=1)) for _ in range(4)]
        await asyncio.sleep(0.01)
        late = asyncio.create_task(_call(gate, 1000))  # 4 bytes + 1,000 of 1,500
        await asyncio.sleep(0.01)
        held = gate.inflight
        release.set()
        return [(await t)[0] for t in [*slow, late]], held, gate.inflight

    statuses, held, left = asyncio.run(main())
    assert statuses == [200] * 5 and held == 1004 and left == 0


def test_bodies_that_arrive_past_the_budget_are_shed_before_they_are_parsed():
    """Admitted on their headers (nothing had arrived), two bodies whose bytes together
    pass the budget: the one completed last gets the 503, before the app parses it."""
    arrived, release = asyncio.Event(), asyncio.Event()
    parsed = []

    async def app(scope, receive, send) -> None:
        parsed.append((await receive())["body"])
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def call_late(gate):  # its body comes once the other's has
        sent: list[dict] = []

        async def receive() -> dict:
            await arrived.wait()
            return {"type": "http.request", "body": b"b" * 1000, "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await gate(_scope(1000), receive, send)
        return next(m for m in sent if m["type"] == "http.response.start")["status"]

    async def main():
        gate = Gate(app, Arrivals(), max_body=1000, max_inflight=1500)
        late = asyncio.create_task(call_late(gate))
        await asyncio.sleep(0.01)  # admitted: nothing in flight yet
        first = asyncio.create_task(_call(gate, 1000))
        await asyncio.sleep(0.01)
        arrived.set()
        status = await late
        release.set()
        return status, (await first)[0], gate.inflight

    late, first, left = asyncio.run(main())
    assert (late, first, left) == (503, 200, 0) and parsed == [b" " * 1000]
