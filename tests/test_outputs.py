"""The output layer: folders vgem owns a part of (vgem.outputs.OwnedFolder).

vgem may write into a folder that holds a user's files; it replaces or
deletes only files it wrote there (and nobody changed since), never writes
onto an input, locks the folder while it writes, and sweeps only its own
staging leftovers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vgem.errors import InputError
from vgem.outputs import META_FOLDER, FolderBusy, FolderRecord, OwnedFolder


def _write(folder: OwnedFolder, name: str, text: str) -> None:
    folder.write(name, lambda path: path.write_text(text))


def test_vgem_replaces_the_files_it_wrote_and_no_other(tmp_path):
    (tmp_path / "theirs.txt").write_text("the user's")
    with OwnedFolder(tmp_path, setting="out_dir") as folder:
        _write(folder, "ours.json", "1")
        _write(folder, "ours.json", "2")  # vgem's own: replaced
        with pytest.raises(InputError, match="vgem did not write it") as refused:
            _write(folder, "theirs.txt", "vgem's")
    assert (tmp_path / "ours.json").read_text() == "2"
    assert (tmp_path / "theirs.txt").read_text() == "the user's"
    assert "`out_dir`" in str(refused.value) and refused.value.settings == ("out_dir",)


def test_a_file_the_user_changed_after_vgem_wrote_it_is_theirs(tmp_path):
    with OwnedFolder(tmp_path, setting="out_dir") as folder:
        _write(folder, "a.json", "vgem's")
    (tmp_path / "a.json").write_text("edited by hand, longer")
    again = OwnedFolder(tmp_path, setting="out_dir")
    with pytest.raises(InputError, match="vgem did not write it"):
        again.check(["a.json"])
    with again, pytest.raises(InputError):
        _write(again, "a.json", "vgem's again")
    assert (tmp_path / "a.json").read_text() == "edited by hand, longer"


def test_the_record_survives_a_copy_that_keeps_times(tmp_path):
    with OwnedFolder(tmp_path / "run", setting="run_dir") as folder:
        _write(folder, "results.json", "{}")
    subprocess.run(["cp", "-a", str(tmp_path / "run"), str(tmp_path / "copy")], check=True)
    with OwnedFolder(tmp_path / "copy", setting="run_dir") as copied:
        _write(copied, "results.json", "{ }")  # still vgem's file: replaced
    assert (tmp_path / "copy" / "results.json").read_text() == "{ }"


def test_remove_deletes_only_vgem_files(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"user")
    with OwnedFolder(tmp_path, setting="run_dir") as folder:
        _write(folder, "old.jpg", "vgem")
        assert folder.remove(tmp_path / "old.jpg")
        assert not folder.remove(tmp_path / "photo.jpg")
    assert not (tmp_path / "old.jpg").exists()
    assert (tmp_path / "photo.jpg").read_bytes() == b"user"


def test_check_refuses_an_input_by_identity_not_name(tmp_path):
    video = tmp_path / "in" / "a.mp4"
    video.parent.mkdir()
    video.write_bytes(b"video")
    os.link(video, tmp_path / "a.mp4")  # the same file under another name
    folder = OwnedFolder(tmp_path, setting="out_dir", inputs=[video])
    with pytest.raises(InputError, match="input of this run"):
        folder.check(["a.mp4"])
    assert not (tmp_path / META_FOLDER).exists()  # a check creates nothing


def test_a_second_run_on_a_locked_folder_is_refused_in_one_line(tmp_path):
    with OwnedFolder(tmp_path, setting="out_dir"):
        with pytest.raises(FolderBusy) as busy, OwnedFolder(tmp_path, setting="out_dir"):
            pass
        message = str(busy.value)
        assert f"pid {os.getpid()}" in message and "\n" not in message
        assert busy.value.exit_code == 2
    with OwnedFolder(tmp_path, setting="out_dir"):  # free again
        pass


def test_the_lock_holds_across_processes(tmp_path):
    script = (
        "import sys, time\n"
        "from vgem.outputs import OwnedFolder\n"
        "with OwnedFolder(sys.argv[1], setting='out_dir'):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(30)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with (
            pytest.raises(FolderBusy, match=f"pid {holder.pid}"),
            OwnedFolder(tmp_path, setting="out_dir"),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_a_run_sweeps_its_own_leftovers_and_a_killed_runs_but_no_one_elses(tmp_path):
    killed = OwnedFolder(tmp_path, setting="out_dir")
    killed.__enter__()  # a run that never ends: its lock is dropped as a kill would
    killed_leftover = tmp_path / f".a.json.{killed.token}.x1.part"
    killed_leftover.write_text("half")
    assert killed._lock is not None
    killed._lock.close()
    killed._lock = None
    other_process = tmp_path / ".a.json.feedbeef.x2.part"  # someone else's staging
    other_process.write_text("theirs")
    with OwnedFolder(tmp_path, setting="out_dir") as run:
        mine = tmp_path / f".b.json.{run.token}.x3.part"
        mine.write_text("half")
        assert not killed_leftover.exists()  # the killed run's: swept on entry
    assert not mine.exists()  # its own: swept on exit
    assert other_process.read_text() == "theirs"


def test_the_record_is_appended_line_by_line_and_survives_a_torn_line(tmp_path):
    with OwnedFolder(tmp_path, setting="out_dir") as folder:
        _write(folder, "a.json", "1")
    record = tmp_path / META_FOLDER / "owned.jsonl"
    with record.open("a") as handle:
        handle.write('{"file": "b.json", "si')  # a torn last line
    lines = [json.loads(line) for line in record.read_text().splitlines()[:-1]]
    assert {"file": "a.json"}.items() <= next(line for line in lines if "file" in line).items()
    reread = FolderRecord(tmp_path)
    reread.reload()
    assert reread.owns("a.json", os.stat(tmp_path / "a.json"))
    assert not reread.owns("b.json", None)


def test_recognised_files_of_an_earlier_version_count_as_vgem_files(tmp_path):
    (tmp_path / "a.json").write_text('{"schema": "vgem.grounding/1"}')
    (tmp_path / "b.json").write_text('{"schema": "something else"}')

    def recognise(path):
        return json.loads(path.read_text()).get("schema") == "vgem.grounding/1"

    folder = OwnedFolder(tmp_path, setting="out_dir", recognise=recognise)
    folder.check(["a.json"])
    with pytest.raises(InputError):
        folder.check(["b.json"])
