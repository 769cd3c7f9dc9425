"""Files that appear whole or not at all: vgem's one way of writing an output.

Every output goes to a hidden temporary file beside its target and is renamed
onto it only when complete, so bad input or a kill never destroys earlier
output. This is the ground floor of writing (the video encoder uses it too);
which folders a run may write into, and which files there it may replace, is
the output layer's (:mod:`vgem.outputs`), which hands an :class:`OutputSet` a
:class:`FileOwner` to ask.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from vgem.errors import InputError, VgemError, os_error_text

#: The output path that means standard output.
STDOUT = "-"

_NOT_REGULAR = {
    stat.S_IFDIR: "a folder",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
}


class InputFiles:
    """The inputs of a run (videos, frame folders, list files, weights), by file identity.

    vgem never writes over what it reads: an output that is one of these files
    (the same file by device and inode, whatever its name: a symlink, a hard
    link, another spelling of the path) or an existing file inside one of these
    folders is refused. Identities are read once, on first use, in the process
    that checks (a worker builds its own after unpickling), so checking many
    outputs against many inputs costs one lookup each.
    """

    def __init__(self, paths: Iterable[str | os.PathLike[str] | None] = ()) -> None:
        self.paths = tuple(
            Path(os.path.realpath(Path(path).expanduser()))
            for path in paths
            if path is not None and os.fspath(path) not in ("", STDOUT)
        )
        self._named = frozenset(self.paths)
        self._files: dict[tuple[int, int], Path] | None = None
        self._folders: dict[tuple[int, int], Path] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_files": None, "_folders": {}}

    def _identities(self) -> dict[tuple[int, int], Path]:
        if self._files is None:
            self._files = {}
            for path in self.paths:
                try:
                    status = os.stat(path)
                except OSError:
                    continue
                key = (status.st_dev, status.st_ino)
                if stat.S_ISDIR(status.st_mode):
                    self._folders[key] = path
                else:
                    self._files[key] = path
        return self._files

    def refusal(self, target: Path, status: os.stat_result | None) -> str | None:
        """Why ``target`` (whose status is ``status``, None when absent) must not be
        written, or None."""
        files = self._identities()
        if status is None:  # an input that is not there (yet) is still an input
            if target in self._named:
                return (
                    f"it is an input of this run ({target}); vgem does not write over its inputs."
                )
            return None
        found = files.get((status.st_dev, status.st_ino))
        if found is not None:
            return f"it is an input of this run ({found}); vgem does not write over its inputs."
        if self._folders:
            for parent in target.parents:
                try:
                    parent_status = os.stat(parent)
                except OSError:
                    continue
                folder = self._folders.get((parent_status.st_dev, parent_status.st_ino))
                if folder is not None:
                    return (
                        f"it is a file of the input folder {folder}; vgem does not write "
                        "over its inputs."
                    )
        return None


class FileOwner(Protocol):
    """Who decides, in a folder vgem writes into, which existing files may be replaced
    (:class:`vgem.outputs.OwnedFolder` keeps the record of what vgem made there)."""

    def refusal(self, target: Path, status: os.stat_result) -> str | None:
        """None when the existing file ``target`` may be replaced, else why not (a
        sentence that follows the output's name)."""

    def placing(self, target: Path, temporary: Path) -> None:
        """``temporary``, complete, is about to be renamed onto ``target``."""


@dataclass(frozen=True)
class StagedOutput:
    """One output of an :class:`OutputSet`: write it at ``temporary``; it appears at
    ``target`` (standard output when ``target`` is None) when the set commits.

    ``path`` is the path as given (for messages), ``target`` the file it names
    with symlinks resolved, so that a link is written through, not replaced.
    """

    path: str
    target: Path | None
    temporary: Path
    setting: str | None = None
    missing_folders: tuple[Path, ...] = ()
    mode: int | None = None  # the permissions of the file it replaces, kept

    @property
    def is_stdout(self) -> bool:
        return self.target is None


class OutputSet:
    """A run's outputs, committed together at the end, or none of them.

    ``add(path)`` checks one output at once, before any long work, and
    reserves a hidden temporary file beside it (on the same file system, so
    the final rename is atomic); ``path`` ``-`` is standard output. Writers
    write the temporaries. Leaving the ``with`` block normally commits: every
    temporary is renamed onto its target, missing folders are created and
    standard output gets its text last; leaving it by an exception (an error,
    Ctrl-C, a termination signal turned into one) deletes the temporaries, so
    every target stays as it was and nothing else is left behind.

    ``add`` refuses, with one clear :class:`vgem.errors.InputError`: a path
    that is a folder, a device, a named pipe or a socket (vgem replaces only
    regular files), a read-only file, a path under a file or in a folder that
    cannot be written, one of ``inputs`` (or an existing file inside an input
    folder: vgem never writes over what it reads), and a file — or standard
    output — named twice. A symlink is written through to the file it points at.
    ``setting`` names the setting the path came from (``json_path``), so that
    messages name it (see :mod:`vgem.errors`).

    ``owner`` (a :class:`FileOwner`) is asked before an existing file is
    replaced and told before each rename; ``tag`` goes into the temporaries'
    names (``.NAME.TAG.xxxx.part``), so that a run can find its own leftovers
    without touching another process's.
    """

    def __init__(
        self,
        inputs: InputFiles | Iterable[str | os.PathLike[str] | None] = (),
        *,
        stdout: Any = None,
        owner: FileOwner | None = None,
        tag: str | None = None,
    ) -> None:
        self._inputs = inputs if isinstance(inputs, InputFiles) else InputFiles(inputs)
        self._stdout = stdout
        self._owner = owner
        self._prefix_tag = f"{tag}." if tag else ""
        self._staged: list[StagedOutput] = []
        self._closed = False

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exception_type is None:
            self.commit()
        else:
            self.discard()

    @property
    def staged(self) -> list[StagedOutput]:
        return list(self._staged)

    def add(self, path: str | os.PathLike[str], *, setting: str | None = None) -> StagedOutput:
        """Check ``path`` as an output and reserve its temporary (see the class)."""
        if self._closed:
            raise RuntimeError("OutputSet.add() after the set was committed or discarded")
        text = os.fspath(path)
        try:
            staged = (
                self._stage_stdout(setting) if text == STDOUT else self._stage_file(text, setting)
            )
        except BaseException:
            self.discard()
            raise
        self._staged.append(staged)
        return staged

    def commit(self) -> list[Path | None]:
        """Move every output into place (files first, then standard output)."""
        if self._closed:
            return [staged.target for staged in self._staged]
        self._closed = True
        files_first = sorted(self._staged, key=lambda staged: staged.is_stdout)
        try:
            for staged in files_first:
                try:
                    if staged.is_stdout:
                        self._copy_to_stdout(staged)
                    else:
                        _move_into_place(staged, self._owner)
                except OSError as error:
                    raise VgemError(
                        f"{_named(staged.path, staged.setting)}: cannot be written "
                        f"({os_error_text(error)}).",
                        settings=_settings(staged.setting),
                    ) from error
        finally:
            self._remove_temporaries()
        return [staged.target for staged in self._staged]

    def discard(self) -> None:
        """Delete every temporary; every target stays as it was."""
        self._closed = True
        self._remove_temporaries()

    # -- checks ----------------------------------------------------------------

    def _stage_stdout(self, setting: str | None) -> StagedOutput:
        for other in self._staged:
            if other.is_stdout:
                raise InputError(
                    f"{_both(setting, other.setting)} go to standard output ('-'); "
                    "only one output can.",
                    settings=_settings(setting, other.setting),
                )
        handle, temporary = tempfile.mkstemp(prefix="vgem-stdout-", suffix=".part")
        os.close(handle)
        return StagedOutput(STDOUT, None, Path(temporary), setting)

    def _stage_file(self, text: str, setting: str | None) -> StagedOutput:
        name = _named(text, setting)
        settings = _settings(setting)
        if not text.strip():
            raise InputError(f"{name}: the output path is empty.", settings=settings)
        if text.endswith(("/", os.sep)):
            raise InputError(
                f"{name}: names a folder; give a file name (a path inside it).", settings=settings
            )
        target = Path(os.path.realpath(Path(text).expanduser()))
        try:
            status: os.stat_result | None = os.stat(target)
        except (FileNotFoundError, NotADirectoryError):
            status = None
        except OSError as error:
            raise InputError(f"{name}: {os_error_text(error)}.", settings=settings) from None
        mode = None
        if status is not None:
            kind = _NOT_REGULAR.get(stat.S_IFMT(status.st_mode))
            if kind == "a folder":
                raise InputError(
                    f"{name}: it is a folder; give a file name (a path inside it).",
                    settings=settings,
                )
            if kind is not None or not stat.S_ISREG(status.st_mode):
                raise InputError(
                    f"{name}: it is {kind or 'not a regular file'}, which vgem does not write "
                    "over; give a file ('-' for standard output).",
                    settings=settings,
                )
            if not os.access(target, os.W_OK):
                raise InputError(f"{name}: the file is read-only.", settings=settings)
            mode = stat.S_IMODE(status.st_mode)
        self._refuse_inputs(target, status, name, settings)
        if status is not None and self._owner is not None:
            refusal = self._owner.refusal(target, status)
            if refusal:
                raise InputError(f"{name}: {refusal}", settings=settings)
        for other in self._staged:
            if other.target == target:
                raise InputError(
                    f"{name}: the same file is given twice ({_both(setting, other.setting)}).",
                    settings=_settings(setting, other.setting),
                )
        folder, missing = _existing_folder(target.parent, name, settings)
        _check_name_lengths(folder, [*missing, target], name, settings)
        try:
            handle, temporary = tempfile.mkstemp(
                prefix=f".{target.name[:64]}.{self._prefix_tag}", suffix=".part", dir=folder
            )
        except OSError as error:
            raise InputError(
                f"{name}: cannot write in the folder {folder} ({os_error_text(error)}).",
                settings=settings,
            ) from None
        os.close(handle)
        return StagedOutput(text, target, Path(temporary), setting, tuple(missing), mode)

    def _refuse_inputs(
        self, target: Path, status: os.stat_result | None, name: str, settings: list[str]
    ) -> None:
        refusal = self._inputs.refusal(target, status)
        if refusal is not None:
            raise InputError(f"{name}: {refusal}", settings=settings)

    # -- moving ------------------------------------------------------------------

    def _copy_to_stdout(self, staged: StagedOutput) -> None:
        stream = self._stdout if self._stdout is not None else sys.stdout
        stream.flush()
        data = staged.temporary.read_bytes()
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:
            stream.write(data.decode("utf-8", errors="replace"))
        stream.flush()

    def _remove_temporaries(self) -> None:
        for staged in self._staged:
            with contextlib.suppress(OSError):
                staged.temporary.unlink(missing_ok=True)


def _move_into_place(staged: StagedOutput, owner: FileOwner | None = None) -> None:
    assert staged.target is not None  # files only
    with staged.temporary.open("rb") as handle:
        os.fsync(handle.fileno())  # whole on disk before it takes the name
    os.chmod(staged.temporary, staged.mode if staged.mode is not None else 0o666 & ~_umask())
    for folder in staged.missing_folders:
        folder.mkdir(exist_ok=True)
    if staged.target.is_dir():  # made a folder since it was checked
        raise IsADirectoryError(21, "it has become a folder")
    if owner is not None:
        owner.placing(staged.target, staged.temporary)
    os.replace(staged.temporary, staged.target)


def _existing_folder(folder: Path, name: str, settings: list[str]) -> tuple[Path, list[Path]]:
    """The nearest existing folder at or above ``folder``, and the missing ones below it."""
    missing: list[Path] = []
    while True:
        try:
            status = os.stat(folder)
        except (FileNotFoundError, NotADirectoryError):
            if folder.parent == folder:
                raise InputError(f"{name}: no folder of it exists.", settings=settings) from None
            missing.insert(0, folder)
            folder = folder.parent
            continue
        except OSError as error:
            raise InputError(
                f"{name}: {folder}: {os_error_text(error)}.", settings=settings
            ) from None
        if not stat.S_ISDIR(status.st_mode):
            raise InputError(
                f"{name}: {folder} is a file, not a folder, so nothing can be written under it.",
                settings=settings,
            )
        return folder, missing


def _check_name_lengths(folder: Path, paths: list[Path], name: str, settings: list[str]) -> None:
    try:
        longest = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        longest = 255
    for path in paths:
        if len(os.fsencode(path.name)) > longest:
            raise InputError(
                f"{name}: the name {path.name[:40]}… is longer than the file system allows "
                f"({longest} bytes).",
                settings=settings,
            )


def _named(path: str, setting: str | None) -> str:
    return f"`{setting}` {path}" if setting else path


def _settings(*settings: str | None) -> list[str]:
    return [setting for setting in settings if setting]


def _both(first: str | None, second: str | None) -> str:
    if first and second:
        return f"`{first}` and `{second}`"
    return "two outputs"


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def check_output(
    path: str | os.PathLike[str],
    *,
    setting: str | None = None,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> Path | None:
    """Check ``path`` as an :class:`OutputSet` would (for an output written later, by
    another writer), leaving nothing behind; its target (None: standard output)."""
    outputs = OutputSet(inputs)
    try:
        return outputs.add(path, setting=setting).target
    finally:
        outputs.discard()


#: Where one output goes: a path (``-``: standard output), or an output staged in an OutputSet.
Destination = str | os.PathLike[str] | StagedOutput


def atomic_write(
    destination: Destination,
    write: Callable[[Path], object],
    *,
    setting: str | None = None,
    inputs: Iterable[str | os.PathLike[str] | None] = (),
) -> Path:
    """Call ``write(temporary_path)``; the output appears at ``destination`` only if it succeeds.

    A path is staged in an :class:`OutputSet` of its own (checked, written
    through a symlink, ``-`` for standard output) and committed at once; an
    output already staged in a caller's set is written and left for that set
    to commit with the others. Bad input must never destroy earlier output, so
    a failed write leaves whatever was at the destination untouched.
    """
    if isinstance(destination, StagedOutput):
        _write_reporting(destination, write)
        return destination.target or Path(STDOUT)
    with OutputSet(inputs) as outputs:
        staged = outputs.add(destination, setting=setting)
        _write_reporting(staged, write)
    return staged.target or Path(STDOUT)


def _write_reporting(staged: StagedOutput, write: Callable[[Path], object]) -> None:
    """``write(staged.temporary)``, a failure of the file system told in one line."""
    try:
        write(staged.temporary)
    except OSError as error:
        raise VgemError(
            f"{_named(staged.path, staged.setting)}: writing failed ({os_error_text(error)}).",
            settings=_settings(staged.setting),
        ) from error
