"""``transduce serve``: bad --model specs fail with one line; the server starts, says where
it listens, answers on loopback and keeps serving after bad requests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from transduce.commands.cli import main


def post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--model", "no/such/dir"], "not a transduce run"),
        (["--model", "RUN", "--model", "RUN"], "given twice"),
        (["--model", "RUN", "--max-texts", "0"], "--max-texts must be positive"),
        (["--model", "e=RUN+no/such"], "no/such is not a transduce run"),
        # port 0: the check must not depend on 8000 being free on this machine
        (["--model", "RUN", "--engine", "onnx", "--port", "0"], "training run; export it first"),
        (["--model", "RUN", "--port", "70000"], "--port 70000: give 0"),
        (["--model", "RUN", "--port", "-5"], "--port -5: give 0"),
        (["--model", "RUN", "--workers", "0"], "--workers must be positive"),
        (["--model", "RUN", "--workers", "100000"], "--workers 100000: at most"),
        (["--model", "RUN", "--host", ""], "--host: give an address"),
        (["--model", "RUN", "--read-timeout-s", "1e-300"], "at least 0.01 seconds"),
        (["--model", "RUN", "--decode-timeout-s", "0"], "--decode-timeout-s must be positive"),
        ([], "give at least one --model"),
    ],
)
def test_bad_flags_fail_with_one_line(text_run, capsys, args, problem):
    args = [a.replace("RUN", str(text_run)) for a in args]
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert problem in err and err.count("\n") == 1 and "Traceback" not in err


def test_serves_on_loopback_and_survives_bad_requests(server, text_run):
    ensemble = f"e={text_run}+{text_run}"
    with server("--model", f"g={text_run}", "--model", ensemble, "--max-batch-size", "8") as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/health", timeout=60) as reply:
            assert json.loads(reply.read())["models"] == ["g", "e"]
        for bad in (b'{"texts": ["\xff"]}', b'{"texts": [1]}', b"[" * 100000, b""):
            status, body = post(url + "/v1/translate", bad)
            assert 400 <= status < 500 and body["field"]
        status, body = post(url + "/v1/translate", json.dumps({"texts": ["αβγ"]}).encode())
        assert status == 200 and body["model"] == "g" and body["results"][0]["hypotheses"]
        status, ens = post(
            url + "/v1/translate", json.dumps({"model": "e", "texts": ["αβγ"]}).encode()
        )
        assert (
            status == 200
            and ens["results"][0]["hypotheses"][0]["text"]
            == (body["results"][0]["hypotheses"][0]["text"])
        )


def test_accepted_connections_send_small_replies_without_delay():
    """TCP_NODELAY on the server side: otherwise each reply waits for a delayed ACK."""
    import asyncio
    import socket

    from transduce.serve.sockets import listening_socket

    async def main() -> int:
        seen: list[int] = []

        async def handle(reader, writer) -> None:
            sock = writer.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=listening_socket("127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        while not seen:
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        return seen[0]

    assert asyncio.run(main()) != 0


def test_a_checkpoint_choice_for_an_export_is_refused_not_ignored(exports, capsys):
    """An export holds the weights exported: ``--checkpoint last`` served them silently."""
    assert main(["serve", "--model", f"m={exports['onnx']}", "--checkpoint", "last"]) == 2
    err = capsys.readouterr().err
    assert "model 'm' is an export of one checkpoint" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("MAX_TEXTS", "abc", "TRANSDUCE_SERVE_MAX_TEXTS='abc': not a valid int (--max-texts)"),
        ("THREADS", "-3", "TRANSDUCE_SERVE_THREADS='-3': must be an integer >= 0"),
        ("LOG_FORMAT", "xml", "TRANSDUCE_SERVE_LOG_FORMAT='xml': choose from text, json"),
    ],
)
def test_a_bad_environment_value_is_one_line_naming_it(monkeypatch, capsys, variable, value, words):
    """A bad number printed argparse's whole usage and blamed a flag never given."""
    monkeypatch.setenv(f"TRANSDUCE_SERVE_{variable}", value)
    assert main(["serve", "--model", "no/such/dir"]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
