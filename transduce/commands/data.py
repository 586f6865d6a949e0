"""``transduce data list`` and ``transduce data get NAME``: the corpora the recipes read."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from transduce.errors import DataError

log = logging.getLogger("transduce")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


def list_command(args: argparse.Namespace) -> None:
    from transduce.config import data_root
    from transduce.data.catalogue import CATALOGUE, MANYTHINGS

    root = Path(args.dir) if args.dir else data_root()  # where the commands read them
    for d in CATALOGUE.values():
        here = all((root / f.dest).is_file() for f in d.files)
        print(
            f"{d.name:<12} {_size(d.size):>8}  {len(d.files):>2} files"
            f"{'  [in ' + str(root) + ']' if here else ''}"
        )
        print(f"    {d.description}")
        print(f"    recipes: {', '.join(f'configs/{r}' for r in d.recipes) or '-'}")
        print(f"    license: {d.license}")
        print(f"    source:  {d.source}")
    print(
        "tatoeba-<code>  any other language: manythings.org's current "
        f"{MANYTHINGS}/<code>-eng.zip, no pinned checksum\n"
        "    (manythings.org may refuse non-browser downloads: fetch the zip in a browser "
        "and use --from FILE)"
    )


def get_command(args: argparse.Namespace) -> None:
    from transduce.config import data_root
    from transduce.data.catalogue import CATALOGUE
    from transduce.data.download import get

    names = list(CATALOGUE) if args.names == ["all"] else args.names
    if _already_read(names, args):
        return
    result = get(names, args.dir, args.source, progress=not args.no_progress)
    log.info(
        "%s: %d files verified in %s (%d installed now, %d already there)",
        ", ".join(names),
        len(result.installed) + len(result.present),
        result.root,
        len(result.installed),
        len(result.present),
    )
    for dest, sha in result.unpinned.items():
        log.warning("%s: no pinned checksum; its sha256 is %s (keep it to check copies)", dest, sha)
    if data_root().resolve() != result.root.resolve():
        log.info("to use it: export TRANSDUCE_DATA=%s", result.root)
    print(result.root)
    sys.stdout.flush()


def _already_read(names: list[str], args: argparse.Namespace) -> bool:
    """Without --dir, --from or $TRANSDUCE_DATA, the folder the commands read by default
    (``../shared/data``, :func:`transduce.config.data_root`) when it already holds every
    file of ``names`` with its checksum: printed, and nothing downloaded or written there.
    (``export TRANSDUCE_DATA=$(transduce data get NAME)`` had gone to the network for
    corpora at hand and, offline, left the variable empty.)"""
    from transduce.config import data_root, default_data_dir
    from transduce.data.catalogue import lookup
    from transduce.data.download import is_installed

    if args.dir or args.source or os.environ.get("TRANSDUCE_DATA"):
        return False
    root = data_root()
    if root.resolve() == default_data_dir().resolve():
        return False
    try:
        files = {name: lookup(name).files for name in names}
    except KeyError:
        return False  # get names it in one line
    here = [n for n in names if all(is_installed(root, f) for f in files[n])]
    if not here:
        return False
    if len(here) < len(names):  # one TRANSDUCE_DATA cannot name two folders
        missing = ", ".join(n for n in names if n not in here)
        raise DataError(
            root.resolve(),
            None,
            f"holds {', '.join(here)} but not {missing}: get {missing} on its own, "
            "or all of them into one folder with --dir",
        )
    count = sum(len(f) for f in files.values())
    log.info("%s: %d files verified in %s (already there)", ", ".join(names), count, root.resolve())
    print(root.resolve())  # absolute: the variable holds wherever the shell goes next
    sys.stdout.flush()
    return True


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``transduce data {list,get}``."""
    p = sub.add_parser("data", help="list the corpora the recipes use; download and verify one")
    dsub = p.add_subparsers(dest="data_command", required=True)
    where = (
        "folder (default: $TRANSDUCE_DATA if set; else ../shared/data where it holds them "
        "already, as the commands read it; else ~/.cache/transduce/data)"
    )
    q = dsub.add_parser("list", help="name, size, license, source and recipes of each corpus")
    q.add_argument("--dir", help=f"mark the corpora installed in this {where}")
    q.set_defaults(func=list_command)
    q = dsub.add_parser(
        "get",
        help="download, verify (SHA-256) and unpack corpora; prints the folder to use as "
        "TRANSDUCE_DATA",
    )
    q.add_argument(
        "names",
        nargs="+",
        metavar="NAME",
        help="a name from `transduce data list`, tatoeba-<code>, or all",
    )
    q.add_argument("--dir", help=f"install into this {where}")
    q.add_argument(
        "--from",
        dest="source",
        metavar="URL_OR_FILE",
        help="install offline from a local file or folder (e.g. a zip fetched in a browser, or "
        "a copy of a data folder), or from a mirror: a file URL, or the base URL of a copy "
        "laid out like the data folder",
    )
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.set_defaults(func=get_command)
