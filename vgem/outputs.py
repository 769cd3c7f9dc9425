"""The output layer: the files of a grounding, and the folders vgem writes many files into.

Two jobs, both about what a run leaves on disk:

- **Writers** of one grounding's outputs (:func:`write_json`, :func:`write_npz`,
  :func:`write_outputs`): each file is staged (:mod:`vgem.staging`) and appears
  whole or not at all; the JSON comes last.
- **Folders vgem owns a part of** (:class:`OwnedFolder`): an evaluation's run
  folder and a many-video batch's output folder. vgem may be pointed at a
  folder that already holds the user's files; the rule is that of rsync or
  ``cp -n``: vgem creates files there, and replaces or deletes only files it
  wrote itself. What it wrote is kept in a record inside the folder
  (``.vgem/owned.jsonl``: each file's name, size and modification time as
  vgem left it), so a file that was there before, or that the user has
  changed or put in place since, is never touched: a run that would replace
  one is refused in one line, before any work. A folder is also **locked**
  while a run writes into it (``.vgem/lock``), so a second run on the same
  folder is refused in one line (:class:`FolderBusy`, exit 2) instead of
  racing the first; and a run deletes only its own staging leftovers (their
  names carry the run's token), never another process's.

The record is append-only and written line by line from whichever process
commits a file (Ray workers commit a batch's outputs), each line one small
append, so no process rewrites another's lines.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from vgem.errors import InputError, VgemError, os_error_text
from vgem.results import json_text, to_json_dict
from vgem.staging import Destination, InputFiles, OutputSet, atomic_write

if TYPE_CHECKING:
    from vgem.results import GroundingResult

#: The hidden folder vgem keeps in every folder it owns a part of.
META_FOLDER = ".vgem"
LOCK_NAME = "lock"
RECORD_NAME = "owned.jsonl"
RECORD_SCHEMA = "vgem.owned/1"


class FolderBusy(VgemError):
    """Another vgem run is writing into the folder (it holds the folder's lock)."""


# --------------------------------------------------------------------------- one grounding's files


def write_json(result: GroundingResult, destination: Destination) -> Path:
    """The ``vgem.grounding/1`` document at ``destination`` (``-``: standard output)."""
    text = json_text(to_json_dict(result))
    return atomic_write(destination, lambda temporary: temporary.write_text(text, "utf-8"))


def write_npz(result: GroundingResult, destination: Destination) -> Path:
    """The raw maps and what indexes them, as a compressed ``.npz``; every key:

    - ``similarity`` float32 ``[T, Q, 3, grid_h, grid_w]``: the raw cosine maps (before
      upsampling and normalization) of time t, query q and prompt p;
    - ``times`` float64 ``[T]``: the grounded times in seconds; ``frames`` int64 ``[T]``:
      the 0-based frame index each time decoded as its target frame;
    - ``points`` float64 ``[T, Q, 2]``: the final (x, y) points in original-video pixels
      (pixel centres at integers; see :class:`vgem.results.GroundedTime` for their range);
    - ``clip_embeddings`` float32 ``[T, D]``: the original path's normalized clip
      embeddings (``[T, 0]`` when the backbone gives none);
    - ``queries`` str ``[Q]``: the query texts, in the order of axis 1;
    - ``prompts`` str ``[3]``: ``verb``, ``object``, ``action``, the order of axis 2.
    """

    def write(temporary: Path) -> None:
        with temporary.open("wb") as handle:
            np.savez_compressed(
                handle,
                similarity=result.similarity.astype(np.float32),
                times=np.asarray(result.times, dtype=np.float64),
                frames=np.asarray(result.frames, dtype=np.int64),
                points=result.points,
                clip_embeddings=(
                    np.zeros((len(result.times), 0), np.float32)
                    if result.clip_embeddings is None
                    else result.clip_embeddings.astype(np.float32)
                ),
                queries=np.array([query.query for query in result.queries]),
                prompts=np.array(["verb", "object", "action"]),
            )

    return atomic_write(destination, write)


def write_outputs(
    result: GroundingResult,
    json_output: Destination,
    *,
    heatmaps: Destination | None = None,
    video: Destination | None = None,
    video_progress: Callable[[int, int], None] | None = None,
    csv: Destination | None = None,
    coco: Destination | None = None,
    masks: Destination | None = None,
    html: Destination | None = None,
) -> None:
    """Every asked-for output of one grounding, the JSON last.

    With staged destinations (an :class:`~vgem.staging.OutputSet`'s), nothing
    appears until the set commits; the JSON comes last so that, where it
    stands, the other outputs of the video are complete (the rule batch
    resumption relies on). ``csv``, ``coco``, ``masks``: :mod:`vgem.exports`;
    ``html``: the viewer page (:mod:`vgem.viewer`).
    """
    from vgem import exports

    if heatmaps is not None:
        write_npz(result, heatmaps)
    if masks is not None:
        exports.write_masks(result, masks)
    if csv is not None:
        exports.write_csv(result, csv)
    if coco is not None:
        exports.write_coco(result, coco)
    if html is not None:
        from vgem.viewer import write_viewer

        write_viewer(result, html)
    if video is not None:
        from vgem.annotate import write_annotated_video  # decode -> draw -> encode

        write_annotated_video(result, video, progress=video_progress)
    write_json(result, json_output)


# --------------------------------------------------------------------------- the record


def file_identity(status: os.stat_result) -> tuple[int, int]:
    """What identifies a file as vgem left it: its size and modification time.

    Both survive a rename, ``cp -a``, ``mv`` and ``rsync -a`` of the folder;
    any edit, or another file put in its place, changes them.
    """
    return (int(status.st_size), int(status.st_mtime_ns))


class FolderRecord:
    """``.vgem/owned.jsonl``: what vgem made in a folder, one JSON line per event.

    ``{"file": NAME, "size": …, "mtime_ns": …}`` when vgem places a file (a
    name may have several identities: a retried write, a kill between the
    line and the rename), ``{"log": NAME}`` for a file vgem appends to,
    ``{"folder": NAME}`` for a subfolder it made, ``{"removed": NAME}`` when it
    deletes one, and ``{"staging": TOKEN}`` / ``{"staged": TOKEN}`` around a
    run that stages files there (a token without its end is a run that was
    killed: its leftovers may be swept). Names are ``/``-separated and
    relative to the folder. Lines are appended, never rewritten, so any number
    of processes of one run may add to it; a torn last line is ignored.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(os.path.abspath(Path(folder).expanduser()))
        self.path = self.folder / META_FOLDER / RECORD_NAME
        self._files: dict[str, set[tuple[int, int]]] = {}
        self._logs: set[str] = set()
        self._folders: set[str] = set()
        self._open_tokens: dict[str, dict[str, Any]] = {}
        self._read_size = -1

    # ----------------------------------------------------------------- reading

    def exists(self) -> bool:
        return self.path.is_file()

    def reload(self) -> None:
        """Read the record again when it has grown (another process added to it)."""
        try:
            size = self.path.stat().st_size
        except OSError:
            size = 0
        if size == self._read_size:
            return
        self._files, self._logs, self._folders, self._open_tokens = {}, set(), set(), {}
        self._read_size = size
        if not size:
            return
        try:
            data = self.path.read_bytes()
        except OSError:
            return
        for raw in data.split(b"\n")[:-1]:  # the part after the last newline is torn
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict):
                self._apply(entry)

    def _apply(self, entry: dict[str, Any]) -> None:
        name = entry.get("file")
        if isinstance(name, str):
            size, mtime = entry.get("size"), entry.get("mtime_ns")
            if isinstance(size, int) and isinstance(mtime, int):
                self._files.setdefault(name, set()).add((size, mtime))
            return
        if isinstance(entry.get("log"), str):
            self._logs.add(entry["log"])
        elif isinstance(entry.get("folder"), str):
            self._folders.add(entry["folder"])
        elif isinstance(entry.get("removed"), str):
            removed = entry["removed"]
            self._files.pop(removed, None)
            self._logs.discard(removed)
        elif isinstance(entry.get("staging"), str):
            self._open_tokens[entry["staging"]] = entry
        elif isinstance(entry.get("staged"), str):
            self._open_tokens.pop(entry["staged"], None)

    def owns(self, name: str, status: os.stat_result | None = None) -> bool:
        """Whether vgem made ``name`` (relative) and it is still as vgem left it."""
        for attempt in range(2):
            if attempt:
                self.reload()
            if name in self._logs or name in self._folders:
                return True
            identities = self._files.get(name)
            if identities and status is not None and file_identity(status) in identities:
                return True
        return False

    def open_tokens(self) -> dict[str, dict[str, Any]]:
        """The staging tokens of runs that began and never ended (killed ones)."""
        self.reload()
        return dict(self._open_tokens)

    # ----------------------------------------------------------------- writing

    def _append(self, entry: dict[str, Any]) -> None:
        data = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(descriptor, data)  # one small write: whole lines, whoever appends
        finally:
            os.close(descriptor)
        self._apply(entry)

    def note_file(self, name: str, status: os.stat_result) -> None:
        size, mtime = file_identity(status)
        self._append({"file": name, "size": size, "mtime_ns": mtime})

    def note_log(self, name: str) -> None:
        if name not in self._logs:
            self._append({"log": name})

    def note_folder(self, name: str) -> None:
        if name not in self._folders:
            self._append({"folder": name})

    def note_removed(self, name: str) -> None:
        self._append({"removed": name})

    def note_staging(self, token: str, *, done: bool) -> None:
        """Best effort: a token whose line could not be written only means that its
        run's leftovers, if it is killed, are not swept."""
        entry: dict[str, Any] = {"staged": token}
        if not done:
            entry = {"staging": token, "host": socket.gethostname(), "pid": os.getpid()}
        with contextlib.suppress(OSError):
            self._append(entry)


class RecordKeeper:
    """The :class:`~vgem.staging.FileOwner` of an owned folder: lets an
    :class:`~vgem.staging.OutputSet` replace only files the record says vgem
    wrote, and records each file it places. Picklable (it holds paths only), so a
    worker process builds its own from the folder's path."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        setting: str | None = None,
        recognise: Callable[[Path], bool] | None = None,
    ) -> None:
        self.folder = Path(os.path.abspath(Path(folder).expanduser()))
        self.setting = setting
        self.recognise = recognise
        self._record: FolderRecord | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_record": None}

    @property
    def record(self) -> FolderRecord:
        if self._record is None:
            self._record = FolderRecord(self.folder)
            self._record.reload()
        return self._record

    def relative(self, target: Path) -> str | None:
        """``target``'s name in the folder (None: it lies outside it)."""
        real_folder = Path(os.path.realpath(self.folder))
        try:
            return Path(os.path.realpath(target)).relative_to(real_folder).as_posix()
        except ValueError:
            return None

    def owns(self, target: Path, status: os.stat_result | None = None) -> bool:
        name = self.relative(target)
        if name is None:
            return False
        if status is None:
            try:
                status = os.stat(target)
            except OSError:
                return False
        if self.record.owns(name, status):
            return True
        if self.recognise is not None and stat.S_ISREG(status.st_mode) and self.recognise(target):
            self.record.note_file(name, status)  # vgem's own document, from before the record
            return True
        return False

    # ----------------------------------------------------------------- FileOwner

    def refusal(self, target: Path, status: os.stat_result) -> str | None:
        if self.owns(target, status):
            return None
        where = f"`{self.setting}`" if self.setting else "the folder"
        return (
            f"the file is already there and vgem did not write it; vgem replaces only the "
            f"files it wrote in {where}: move it away, or choose another {where}."
        )

    def placing(self, target: Path, temporary: Path) -> None:
        name = self.relative(target)
        if name is not None:
            self.record.note_file(name, os.stat(temporary))


# --------------------------------------------------------------------------- the folder


class OwnedFolder:
    """A folder a run writes many files into: checked, locked, and written by the record.

    ``check(names)`` (before anything exists) refuses, in one line naming
    ``setting``, any of ``names`` that is already there and is not vgem's (or
    is one of ``inputs``, compared by file identity). Entering the ``with``
    block creates the folder, takes its lock (:class:`FolderBusy` when another
    run holds it), and sweeps the staging leftovers of killed runs; leaving it
    releases the lock. :meth:`output_set` gives an
    :class:`~vgem.staging.OutputSet` that may replace only vgem's own files
    and records what it places; :meth:`remove` deletes a file only if it is
    vgem's. ``recognise(path)`` tells vgem's own self-describing files from
    earlier versions (which kept no record), so that they count as vgem's.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        setting: str,
        inputs: InputFiles | Iterable[str | os.PathLike[str] | None] = (),
        recognise: Callable[[Path], bool] | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self.setting = setting
        self.inputs = inputs if isinstance(inputs, InputFiles) else InputFiles(inputs)
        self.keeper = RecordKeeper(self.path, setting=setting, recognise=recognise)
        self.token = secrets.token_hex(4)
        self._lock: BinaryIO | None = None

    @property
    def record(self) -> FolderRecord:
        return self.keeper.record

    # ----------------------------------------------------------------- before anything

    def check(self, names: Iterable[str], *, folders: Iterable[str] = ()) -> None:
        """Refuse now what the run would write over: a file of ``names`` (relative) that
        vgem did not write, or an input of the run; a name of ``folders`` that is a file."""
        self._check_folder()
        for name in folders:
            status = _status(self.path / name)
            if status is not None and not stat.S_ISDIR(status.st_mode):
                raise InputError(
                    f"`{self.setting}` {self.path / name}: vgem keeps a folder by that name "
                    "there, and it is a file; move it away, or choose another "
                    f"`{self.setting}`.",
                    settings=(self.setting,),
                )
        for name in names:
            target = self.path / name
            status = _status(target)
            if status is None:
                continue
            refusal = self.inputs.refusal(Path(os.path.realpath(target)), status)
            if refusal:
                raise InputError(
                    f"`{self.setting}` {target}: {refusal[:-1]}: choose another `{self.setting}`.",
                    settings=(self.setting,),
                )
            if stat.S_ISDIR(status.st_mode):
                raise InputError(
                    f"`{self.setting}` {target}: a folder is where vgem writes a file; move "
                    f"it away, or choose another `{self.setting}`.",
                    settings=(self.setting,),
                )
            refusal = self.keeper.refusal(target, status)
            if refusal:
                raise InputError(f"`{self.setting}` {target}: {refusal}", settings=(self.setting,))

    def _check_folder(self) -> None:
        status = _status(self.path)
        if status is not None and not stat.S_ISDIR(status.st_mode):
            raise InputError(
                f"`{self.setting}` {self.path}: it is a file, not a folder.",
                settings=(self.setting,),
            )
        meta = _status(self.path / META_FOLDER)
        if meta is not None and not stat.S_ISDIR(meta.st_mode):
            raise InputError(
                f"`{self.setting}` {self.path}: it holds a file named {META_FOLDER}, where vgem "
                f"keeps its record of the folder; choose another `{self.setting}`.",
                settings=(self.setting,),
            )

    # ----------------------------------------------------------------- while writing

    def __enter__(self) -> OwnedFolder:
        self._check_folder()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            (self.path / META_FOLDER).mkdir(exist_ok=True)
            lock = (self.path / META_FOLDER / LOCK_NAME).open("a+b")
        except OSError as error:
            raise InputError(
                f"`{self.setting}` {self.path}: cannot be written ({os_error_text(error)}).",
                settings=(self.setting,),
            ) from None
        try:
            _lock_exclusively(lock, self.path, self.setting)
            _say_who_holds(lock)
            self._lock = lock
            self._sweep_killed_runs()
            self.record.note_staging(self.token, done=False)
        except BaseException:
            self._lock = None
            lock.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        lock, self._lock = self._lock, None
        if lock is None:
            return
        try:
            self.sweep_staging(self.token)
            self.record.note_staging(self.token, done=True)
        finally:
            lock.close()

    def output_set(self) -> OutputSet:
        """An :class:`~vgem.staging.OutputSet` for files in this folder: vgem's own files
        only may be replaced, never an input; each placed file is recorded; temporaries
        carry the run's token."""
        return OutputSet(self.inputs, owner=self.keeper, tag=self.token)

    def write(self, name: str, write: Callable[[Path], object]) -> Path:
        """One file of the folder, staged and committed (``name`` relative)."""
        with self.output_set() as outputs:
            staged = outputs.add(self.path / name, setting=self.setting)
            atomic_write(staged, write)
        return self.path / name

    def make_folder(self, name: str) -> Path:
        """A subfolder vgem keeps (made and recorded when missing)."""
        folder = self.path / name
        if not folder.is_dir():
            folder.mkdir(parents=True)
            self.record.note_folder(name)
        return folder

    def owns(self, path: Path) -> bool:
        return self.keeper.owns(path)

    def remove(self, path: Path) -> bool:
        """Delete ``path`` if vgem wrote it (and it is unchanged); whether it did."""
        name = self.keeper.relative(path)
        if name is None or not self.keeper.owns(path):
            return False
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self.record.note_removed(name)
        return True

    def note_log(self, name: str) -> None:
        """``name`` is a file vgem appends to (the predictions log): vgem's by name."""
        self.record.note_log(name)

    # ----------------------------------------------------------------- staging leftovers

    def sweep_staging(self, token: str) -> None:
        """Delete the hidden temporaries that carry ``token`` (one run's own)."""
        for leftover in _tagged_temporaries(self.path, token):
            with contextlib.suppress(OSError):
                leftover.unlink()

    def _sweep_killed_runs(self) -> None:
        """Runs whose token began and never ended were killed: we hold the lock now, so
        none of them is alive, and their temporaries are theirs alone."""
        for token in self.record.open_tokens():
            self.sweep_staging(token)
            self.record.note_staging(token, done=True)


def _tagged_temporaries(folder: Path, token: str) -> Iterator[Path]:
    for current, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if name != META_FOLDER]
        for name in files:
            if name.startswith(".") and name.endswith(".part") and f".{token}." in name:
                yield Path(current) / name


def _status(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _lock_exclusively(lock: BinaryIO, folder: Path, setting: str) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; runs must not share a folder
        return
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(lock)
        raise FolderBusy(
            f"Another vgem run{holder} is writing in {folder}; wait for it to end, or "
            f"choose another `{setting}`.",
            settings=(setting,),
        ) from None


def _say_who_holds(lock: BinaryIO) -> None:
    """Leave the holder's host and pid in the lock file (for the next run's message)."""
    with contextlib.suppress(OSError):
        lock.seek(0)
        lock.truncate()
        lock.write(f"{socket.gethostname()} {os.getpid()}\n".encode())
        lock.flush()


def _holder(lock: BinaryIO) -> str:
    with contextlib.suppress(OSError, ValueError):
        lock.seek(0)
        host, pid = lock.read(200).decode().split()[:2]
        return f" (pid {int(pid)} on {host})"
    return ""
