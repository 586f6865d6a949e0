"""Where an export goes: a temporary sibling renamed into place when complete; --out the
run itself (or inside it), or a foreign folder, refused; a missing package one line."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from transduce.atomic import pid_space
from transduce.commands.cli import main
from transduce.config import ConfigError
from transduce.data.corpus import DataError
from transduce.export.destination import export_into


@pytest.fixture
def run(tmp_path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: {}\n")
    return run


OURS = '{"format": "transduce-onnx"}'  # the manifest of an export, as far as the folder goes


def _build(files: dict[str, str], fail: BaseException | None = None):
    def build(tmp: Path) -> Path:
        tmp.mkdir()
        for name, text in files.items():
            (tmp / name).write_text(text)
        if fail is not None:
            raise fail
        return tmp

    return build


@pytest.mark.parametrize(
    "fail",
    [
        ModuleNotFoundError("No module named 'ctranslate2'", name="ctranslate2"),
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EROFS, "Read-only file system"),
        ValueError("half way"),
    ],
)
def test_a_failed_export_leaves_no_folder_and_the_previous_one(run, tmp_path, fail):
    out = tmp_path / "exported"
    export_into(out, run, _build({"manifest.json": OURS, "a.onnx": "v1"}))
    with pytest.raises((ConfigError, DataError, ValueError)) as caught:
        export_into(out, run, _build({"manifest.json": OURS, "a.onnx": "half"}, fail))
    assert (out / "a.onnx").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported", "run"]
    message = str(caught.value)
    assert "\n" not in message
    if isinstance(fail, ModuleNotFoundError):
        assert "pip install 'transduce[export]'" in message and "ctranslate2" in message
    elif isinstance(fail, OSError):
        assert ("no space left" if fail.errno == errno.ENOSPC else "read-only") in message


@pytest.mark.parametrize("where", ["run", "inside", "parent"])
def test_export_out_the_run_or_around_it_is_refused(run, where):
    out = {"run": run, "inside": run / "onnx", "parent": run.parent}[where]
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(DataError, match="is the run"):
        export_into(out, run, _build({"manifest.json": OURS}))
    assert sorted(p.name for p in run.iterdir()) == before


def test_export_out_a_foreign_folder_is_refused(run, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(DataError, match="not empty and not an export"):
        export_into(tmp_path / "mine", run, _build({"manifest.json": OURS}))
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_the_cli_refuses_exporting_into_the_run(run, capsys):
    assert main(["export", "onnx", "--model", str(run), "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is the run" in err


def test_re_exporting_keeps_the_files_it_did_not_write(run, tmp_path):
    out = tmp_path / "exported"
    export_into(out, run, _build({"manifest.json": OURS, "a.onnx": "v1", "old.onnx": "v1"}))
    (out / "NOTES.md").write_text("mine")
    (out / "d").mkdir()
    (out / "d" / "x.txt").write_text("mine too")
    export_into(out, run, _build({"manifest.json": OURS, "a.onnx": "v2"}))
    assert (out / "a.onnx").read_text() == "v2" and not (out / "old.onnx").exists()
    assert (out / "NOTES.md").read_text() == "mine" and (
        out / "d" / "x.txt"
    ).read_text() == "mine too"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported", "run"]
    export_into(out, run, _build({"manifest.json": OURS, "a.onnx": "v3"}))  # and again
    assert (out / "NOTES.md").read_text() == "mine" and (out / "a.onnx").read_text() == "v3"


def test_a_users_file_under_a_name_the_export_writes_is_refused(run, tmp_path):
    out = tmp_path / "exported"
    export_into(out, run, _build({"manifest.json": OURS, "a.onnx": "v1"}))
    (out / "b.onnx").write_text("mine")
    with pytest.raises(DataError, match=r"b\.onnx: was not written by the export"):
        export_into(out, run, _build({"manifest.json": OURS, "a.onnx": "v2", "b.onnx": "x"}))
    assert (out / "b.onnx").read_text() == "mine" and (out / "a.onnx").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported", "run"]


def test_an_export_without_a_file_list_keeps_what_the_new_one_does_not_write(run, tmp_path):
    out = tmp_path / "exported"  # as an export written before manifests listed their files
    out.mkdir()
    (out / "manifest.json").write_text(OURS)
    (out / "a.onnx").write_text("v1")
    (out / "NOTES.md").write_text("mine")
    export_into(out, run, _build({"manifest.json": OURS, "a.onnx": "v2"}))
    assert (out / "a.onnx").read_text() == "v2" and (out / "NOTES.md").read_text() == "mine"


def test_a_linked_out_is_refused_and_left_as_it_was(run, tmp_path):
    real = tmp_path / "real"
    export_into(real, run, _build({"manifest.json": OURS, "a.onnx": "v1"}))
    link = tmp_path / "cur"
    link.symlink_to(real)
    with pytest.raises(DataError, match="cur: is a symbolic link"):
        export_into(link, run, _build({"manifest.json": OURS, "a.onnx": "v2"}))
    assert link.is_symlink() and (real / "a.onnx").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cur", "real", "run"]


KILLED_EXPORT = """
import os, signal, sys
from pathlib import Path
from transduce.export.destination import export_into

def build(tmp):
    tmp.mkdir()
    (tmp / "manifest.json").write_text("{}")
    os.kill(os.getpid(), signal.SIGKILL)

export_into(Path(sys.argv[1]), Path(sys.argv[2]), build)
"""


def test_the_next_export_removes_what_a_killed_one_left(run, tmp_path):
    out = tmp_path / "exported"
    export_into(out, run, _build({"manifest.json": OURS, "a.onnx": "v1"}))
    killed = subprocess.Popen([sys.executable, "-c", KILLED_EXPORT, str(out), str(run)])
    assert killed.wait(60) == -signal.SIGKILL
    (left,) = tmp_path.glob(f".exported.{killed.pid}@{pid_space()}.*.tmp")
    assert (left / "manifest.json").is_file() and (out / "a.onnx").read_text() == "v1"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not ours")
    # named as ours, but a link
    link = tmp_path / f".exported.{killed.pid}@{pid_space()}.0123abcd.tmp"
    link.symlink_to(elsewhere, target_is_directory=True)
    export_into(out, run, _build({"manifest.json": OURS, "a.onnx": "v2"}))
    assert (out / "a.onnx").read_text() == "v2" and not left.exists()
    assert not link.is_symlink() and (elsewhere / "keep.txt").read_text() == "not ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "exported", "run"]


@pytest.mark.parametrize("text", ['{"name": "my web app", "start_url": "/"}', "not json", "[]"])
def test_a_folder_with_someone_elses_manifest_json_is_refused(run, tmp_path, text):
    """A web app's or a dataset's manifest.json made the folder pass as an older export,
    whose files a new export replaces: the user's manifest.json was overwritten."""
    mine = tmp_path / "site"
    mine.mkdir()
    (mine / "manifest.json").write_text(text)
    (mine / "index.html").write_text("<html>app</html>")
    with pytest.raises(DataError, match="not empty and not an export"):
        export_into(mine, run, _build({"manifest.json": OURS, "index.html": "x"}))
    assert (mine / "manifest.json").read_text() == text
    assert (mine / "index.html").read_text() == "<html>app</html>"


KILLED_AT_RENAME = """
import os, signal, sys
from pathlib import Path
from transduce import folderswap
from transduce.export.destination import export_into

if sys.argv[4] == "fallback":  # a system or file system that cannot exchange names
    folderswap.exchange = lambda a, b: False
real, count = os.replace, [0]

def replace(src, dst):
    count[0] += 1
    if count[0] == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)

folderswap.os.replace = replace

def build(tmp):
    tmp.mkdir()
    (tmp / "manifest.json").write_text('{"format": "transduce-onnx"}')
    (tmp / "a.onnx").write_text("v2")
    return tmp

export_into(Path(sys.argv[1]), Path(sys.argv[2]), build)
"""


@pytest.mark.parametrize("way", ["exchange", "fallback"])
@pytest.mark.parametrize("at", [1, 2])
def test_a_kill_at_any_rename_of_the_swap_loses_no_export(run, tmp_path, way, at):
    """Killed between setting the old export aside and renaming the new one in, the
    folder was gone, and the next export deleted the set-aside one, the only copy left."""
    out = tmp_path / "exported"
    export_into(out, run, _build({"manifest.json": OURS, "a.onnx": "v1"}))
    args = [sys.executable, "-c", KILLED_AT_RENAME, str(out), str(run), str(at), way]
    subprocess.run(args, timeout=120)  # killed (or, exchanging: no second rename)
    if (out / "a.onnx").exists():
        assert (out / "a.onnx").read_text() in ("v1", "v2")
    else:
        assert way == "fallback" and at == 2  # between the two renames
    with pytest.raises(ValueError):
        export_into(out, run, _build({"manifest.json": OURS, "a.onnx": "v3"}, ValueError("x")))
    assert (out / "a.onnx").read_text() in ("v1", "v2")  # failed: the export before it
    export_into(out, run, _build({"manifest.json": OURS, "a.onnx": "v3"}))
    assert (out / "a.onnx").read_text() == "v3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported", "run"]


def test_a_missing_model_or_an_export_as_model_is_named(run, tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        export_into(tmp_path / "e1", tmp_path / "nowhere", _build({"manifest.json": OURS}))
    export_into(tmp_path / "e1", run, _build({"manifest.json": OURS}))
    with pytest.raises(DataError, match="is an export, not a training run"):
        export_into(tmp_path / "e2", tmp_path / "e1", _build({"manifest.json": OURS}))
