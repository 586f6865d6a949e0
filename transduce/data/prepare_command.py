"""``transduce prepare CONFIG [--out DIR] [--workers N]``: build a config's corpus store."""

from __future__ import annotations

import argparse
import json
import os
import sys


def prepare_command(args: argparse.Namespace) -> None:
    from transduce.commands.recipes import recipe_path
    from transduce.config import ConfigError, data_path, load_config
    from transduce.data.cache import cache_dir
    from transduce.data.prepare import describe_inputs, prepare
    from transduce.data.store import settings, store_key

    full = load_config(recipe_path(args.config), args.overrides)
    if full.series is not None:  # it said "data.train: not set"
        raise ConfigError(
            f"{args.config}: a forecasting config (series:): prepare builds stores of text "
            "corpora; train it directly (series files are read in seconds)"
        )
    cfg = full.data
    inputs = describe_inputs(cfg)
    # By default the folder data.prepared names, or where data.prepared: auto looks.
    named = data_path(cfg.prepared) if cfg.prepared not in ("", "auto") else None
    out = args.out or named or cache_dir() / store_key(settings(cfg), inputs)[:16]
    store = prepare(cfg, out, args.workers, progress=not args.no_progress, inputs=inputs)
    for split, info in store.manifest["splits"].items():
        print(
            f"{split}: {info['pairs']:,} pairs, {info['src_tokens']:,} source and "
            f"{info['tgt_tokens']:,} target tokens; {info['too_long']:,} too long; read "
            f"{json.dumps(info['corpora'], ensure_ascii=False)}",
            file=sys.stderr,
        )
    print(store.path)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from transduce.commands.options import int_at_least

    """Register ``transduce prepare``."""
    p = sub.add_parser(
        "prepare",
        help="read a config's corpora once into a memory-mapped store (data.prepared)",
    )
    p.add_argument("config", help="YAML config or recipe name")
    p.add_argument(
        "--out",
        help="the new store folder (default: the folder data.prepared "
        "names, else the data cache, where data.prepared: auto finds it); "
        "prints its path",
    )
    p.add_argument(
        "--workers",
        type=int_at_least(1, 1024),
        default=min(os.cpu_count() or 1, 8),
        help="encoding processes (the store is the same for any number)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a data setting, e.g. data.vocab_size=16000",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=prepare_command)
