"""Check a Containerfile where no container can run: build a Debian rootfs with
``debootstrap --variant=minbase``, replay the file's FROM/ARG/RUN/COPY/ENV/USER/WORKDIR steps in
it with ``chroot``, start its CMD from the chroot on loopback with an exported model in
``/models/model``, and check ``/health/ready`` (through the file's own HEALTHCHECK command)
and one translation. Prints one JSON line: sizes, cold start, the translation.

Run as root through ``deploy/check_image.sh`` (it builds the wheelhouse first). Needs
``debootstrap`` and a Debian mirror (taken from this host's apt sources unless
``DEBIAN_MIRROR`` is set). Takes minutes; not part of ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITES = {"bookworm": "bookworm", "trixie": "trixie"}


def host_mirror() -> str:
    """The Debian mirror this host's apt uses (deb822 ``URIs:`` or a one-line ``deb``)."""
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"]
    for src in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        if m := re.search(r"^URIs:\s*(\S+/debian)\s*$", src.read_text(), flags=re.M):
            return m.group(1)
    lists = Path("/etc/apt/sources.list")
    if lists.is_file() and (m := re.search(r"^deb\s+(\S+/debian)\s", lists.read_text(), re.M)):
        return m.group(1)
    sys.exit("check_image: no Debian mirror in /etc/apt; set DEBIAN_MIRROR")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, argument) pairs of a Containerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            steps.append((word.upper(), rest.strip()))
    return steps


def parse_env(arg: str, env: dict[str, str]) -> dict[str, str]:
    """``ENV A=1 B=$A:x`` -> updates, ``$NAME`` expanded from what is set so far."""
    out = dict(env)
    for item in shlex.split(arg):
        name, _, value = item.partition("=")
        out[name] = re.sub(r"\$(\w+)|\$\{(\w+)\}", lambda m: out.get(m[1] or m[2], ""), value)
    return out


class Rootfs:
    """A debootstrapped tree with /proc and /dev mounted while steps run in it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "HOME": "/root", "LANG": "C.UTF-8"}  # fmt: skip
        self.user: str | None = None
        self.workdir = "/"
        self.mounted: list[Path] = []

    def mount(self) -> None:
        for kind, target in (("proc", "proc"), ("dev", "dev")):
            where = self.path / target
            where.mkdir(exist_ok=True)
            args = ["-t", "proc", "proc"] if kind == "proc" else ["--bind", "/dev"]
            subprocess.run(["mount", *args, str(where)], check=True)
            self.mounted.append(where)
        shutil.copy("/etc/resolv.conf", self.path / "etc/resolv.conf")

    def unmount(self) -> None:
        for where in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(where)], check=False)
        self.mounted.clear()

    def command(self, shell: str, env: dict[str, str] | None = None) -> list[str]:
        user = [f"--userspec={self.user}:{self.user}"] if self.user else []
        pairs = [f"{k}={v}" for k, v in {**self.env, **(env or {})}.items()]
        inner = f"cd {shlex.quote(self.workdir)} && {shell}"
        return ["chroot", *user, str(self.path), "/usr/bin/env", "-i", *pairs,
                "/bin/sh", "-c", inner]  # fmt: skip

    def run(self, shell: str) -> None:
        print(f"check_image: RUN {shell[:120]}", file=sys.stderr, flush=True)
        subprocess.run(self.command(shell), check=True)

    def copy(self, arg: str, context: Path) -> None:
        *sources, dest = shlex.split(arg)
        target = self.path / dest.lstrip("/")
        for src in sources:
            src_path = context / src
            if src_path.is_dir():
                shutil.copytree(src_path, target, dirs_exist_ok=True)
                continue
            if dest.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src_path, target)


def replay(rootfs: Rootfs, steps: list[tuple[str, str]], context: Path) -> dict[str, str]:
    """Run the build steps; return what the image would run (CMD, HEALTHCHECK)."""
    runtime: dict[str, str] = {}
    for word, arg in steps:
        if word == "FROM":
            runtime["from"] = arg
        elif word == "RUN":
            rootfs.run(arg)
        elif word == "COPY":
            rootfs.copy(arg, context)
        elif word in ("ENV", "ARG"):  # ARG: its default, seen by the RUN steps after it
            rootfs.env = parse_env(arg, rootfs.env)
        elif word == "USER":
            rootfs.user = arg
        elif word == "WORKDIR":
            rootfs.workdir = arg
        elif word == "CMD":
            runtime["cmd"] = " ".join(shlex.quote(w) for w in json.loads(arg))
        elif word == "HEALTHCHECK":
            runtime["healthcheck"] = arg.split(" CMD ", 1)[1]
    return runtime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_and_check(rootfs: Rootfs, runtime: dict[str, str], text: str) -> dict:
    port = free_port()
    env = {"TRANSDUCE_SERVE_HOST": "127.0.0.1", "TRANSDUCE_SERVE_PORT": str(port)}
    start = time.monotonic()
    server = subprocess.Popen(rootfs.command("exec " + runtime["cmd"], env))
    try:
        ready = None
        while time.monotonic() - start < 120 and server.poll() is None:
            probe = subprocess.run(rootfs.command(runtime["healthcheck"], env),
                                   capture_output=True)  # fmt: skip
            if probe.returncode == 0:
                ready = time.monotonic() - start
                break
            time.sleep(0.2)
        if ready is None:
            sys.exit(f"check_image: the server never became ready (exit {server.poll()})")
        body = json.dumps({"texts": [text]}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/translate", data=body,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as reply:
            answer = json.loads(reply.read())
        best = answer["results"][0]["hypotheses"][0]["text"]
        return {"ready_s": round(ready, 2), "translation": best}
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=30)
        if server.poll() is None:
            server.kill()


def du(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True,
                              check=True).stdout.split()[0])  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--containerfile", type=Path, default=ROOT / "deploy/Containerfile.serve")
    ap.add_argument("--export", type=Path, required=True, help="an exported model folder")
    ap.add_argument("--text", default="hello .", help="the sentence to translate")
    ap.add_argument("--base", type=Path, help="reuse this debootstrapped tree (copied)")
    ap.add_argument("--keep", action="store_true", help="keep the rootfs (path printed)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("check_image: run as root (debootstrap, chroot, mount)")
    steps = instructions(args.containerfile)
    suite = next((s for k, s in SUITES.items() if any(k in a for w, a in steps if w == "FROM")),
                 "bookworm")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="transduce-image-", dir="/var/tmp"))
    rootfs = Rootfs(work / "rootfs")
    try:
        t0 = time.monotonic()
        if args.base:
            subprocess.run(["cp", "-a", str(args.base), str(rootfs.path)], check=True)
        else:
            subprocess.run(["debootstrap", "--variant=minbase", suite, str(rootfs.path),
                            host_mirror()], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        base_size = du(rootfs.path)
        rootfs.mount()
        runtime = replay(rootfs, steps, ROOT)
        build_s = time.monotonic() - t0
        shutil.copytree(args.export, rootfs.path / "models/model")
        torch = subprocess.run(rootfs.command("python3 -c 'import torch'"), capture_output=True)
        checked = serve_and_check(rootfs, runtime, args.text)
        rootfs.unmount()
        report = {
            "containerfile": str(args.containerfile.relative_to(ROOT)),
            "suite": suite,
            "torch_importable": torch.returncode == 0,
            "build_s": round(build_s, 1),
            "base_rootfs_mb": round(base_size / 2**20, 1),
            "image_rootfs_mb": round(du(rootfs.path) / 2**20, 1),
            "venv_mb": round(du(rootfs.path / "opt/transduce") / 2**20, 1),
            **checked,
        }
        print(json.dumps(report))
    finally:
        rootfs.unmount()
        mounts = Path("/proc/self/mounts").read_text().split()
        if args.keep or any(m.startswith(str(work)) for m in mounts):
            # never delete through a mount still in place (it would reach the host's /dev)
            print(f"check_image: rootfs kept at {rootfs.path}", file=sys.stderr)
        else:
            shutil.rmtree(work)


if __name__ == "__main__":
    main()
