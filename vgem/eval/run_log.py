"""A run's predictions file: what identifies a run and a sample, the append-only
log, and the rule for which lines a resumed run may keep.

Lines are written, flushed and fsynced one by one; a torn last line (a kill
in the middle of a write) is cut off when the file is opened again. The run
folder is locked while the log is open (:class:`vgem.outputs.OwnedFolder`), so
two runs cannot append to one folder at once.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from vgem.errors import VgemError, os_error_text
from vgem.eval.manifest import sample_to_record
from vgem.eval.run_folder import PREDICTIONS_FILE, SITTINGS_FILE, run_folder
from vgem.execution.recipe import THROUGHPUT_SETTINGS, run_identity
from vgem.plain import fingerprint

if TYPE_CHECKING:
    from vgem.eval.samples import Sample, VideoSample
    from vgem.outputs import OwnedFolder

__all__ = [
    "PREDICTIONS_FILE",
    "THROUGHPUT_SETTINGS",
    "PredictionLog",
    "RunError",
    "current_records",
    "fingerprint",
    "run_identity",
    "sample_fingerprint",
    "video_fingerprint",
]


class RunError(VgemError):
    """The run directory cannot be used (it cannot be written)."""


# --------------------------------------------------------------------------- identities


def sample_fingerprint(sample: Sample) -> str:
    """Changes whenever anything about the sample changes (a corrected box, a new time)."""
    return fingerprint(sample_to_record(sample))


def video_fingerprint(sample: VideoSample) -> str:
    """Changes whenever a video's annotation changes (a moved boundary, a new box)."""
    return fingerprint(sample.to_record())


# --------------------------------------------------------------------------- predictions file


class PredictionLog:
    """``predictions.jsonl``: append-only, each line on disk before the next sample starts.

    Reading tolerates what a kill can leave behind: a last line without its
    newline (a torn write) is ignored, and cut off before the next append so
    it cannot swallow the line written after it. A complete line that is not
    a JSON object with a string ``id`` (an edit gone wrong) is skipped and
    counted in ``damaged`` (its sample is grounded again). While open, the run
    folder is locked, so two runs cannot evaluate the same samples twice.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / PREDICTIONS_FILE
        self._handle: BinaryIO | None = None
        self.damaged = 0  # complete lines of the last records() that were not records

    def records(self) -> list[dict[str, Any]]:
        """Every complete, valid line, in file order."""
        self.damaged = 0
        if not self.path.is_file():
            return []
        records = []
        with self.path.open("rb") as handle:
            for raw_line in handle:
                if not raw_line.endswith(b"\n"):
                    break
                if not raw_line.strip():
                    continue
                try:
                    record = json.loads(raw_line)
                except ValueError:
                    self.damaged += 1
                    continue
                if isinstance(record, dict) and isinstance(record.get("id"), str):
                    records.append(record)
                else:
                    self.damaged += 1
        return records

    @contextlib.contextmanager
    def open(
        self, *, fresh: bool = False, folder: OwnedFolder | None = None
    ) -> Iterator[PredictionLog]:
        """Open the file for appending, in the run folder ``folder`` (entered: locked);
        without one, the run folder is entered (created and locked) for the while.

        ``fresh`` starts an empty file; the previous one (and its sittings) is kept
        beside it as ``predictions-<UTC time>.jsonl`` rather than deleted.
        """
        with contextlib.ExitStack() as stack:
            if folder is None:
                folder = stack.enter_context(run_folder(self.run_dir))
            try:
                if fresh and self.path.exists():
                    _set_aside(folder, self.run_dir)
                # Unbuffered: a failed write leaves nothing waiting in a buffer that
                # a later flush could complete behind our back.
                handle = self.path.open("a+b", buffering=0)
            except OSError as error:
                raise RunError(f"Cannot write {self.path}: {os_error_text(error)}.") from error
            with handle:
                try:
                    folder.note_log(PREDICTIONS_FILE)
                    folder.note_log(SITTINGS_FILE)
                except OSError as error:
                    raise RunError(
                        f"Cannot write in the run folder {self.run_dir}: {os_error_text(error)}. "
                        "The run stopped before grounding; every sample stays pending."
                    ) from error
                _cut_torn_tail(handle)
                self._handle = handle
                try:
                    yield self
                finally:
                    self._handle = None

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one line and wait until it is on disk.

        A write that fails (a full disk, an I/O error) is a fault of the run,
        not of the sample: what was written of the line is cut off again and
        :class:`RunError` is raised (not an ``OSError``, which a task records
        as the sample's error), so the run stops with one line and the sample
        stays pending for the next sitting.
        """
        if self._handle is None:
            raise RuntimeError("PredictionLog.append needs the log to be open")
        line = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        data = line.encode("utf-8") + b"\n"
        descriptor = self._handle.fileno()
        start = os.lseek(descriptor, 0, os.SEEK_END)
        try:
            written = 0
            while written < len(data):
                written += os.write(descriptor, data[written:])
            os.fsync(descriptor)
        except OSError as error:
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, start)
            raise RunError(
                f"Cannot write the predictions log {self.path}: {os_error_text(error)}. "
                "The run stopped; the samples not yet written stay pending and are "
                "grounded when the run is resumed."
            ) from error


def _set_aside(folder: OwnedFolder, run_dir: Path) -> None:
    """Move the log and its sittings aside (``NAME-<UTC time>.jsonl``), never onto a file."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    for name in (PREDICTIONS_FILE, SITTINGS_FILE):
        source = run_dir / name
        if not source.exists():
            continue
        stem = Path(name).stem
        number = 0
        while True:
            aside = f"{stem}-{stamp}{'' if not number else f'-{number}'}.jsonl"
            if not (run_dir / aside).exists():
                break
            number += 1
        folder.note_log(aside)
        source.replace(run_dir / aside)


def _cut_torn_tail(handle: BinaryIO) -> None:
    """Truncate the file after its last newline (a killed write leaves half a line)."""
    end = handle.seek(0, os.SEEK_END)
    position = end
    chunk_size = 1 << 16
    while position > 0:
        start = max(0, position - chunk_size)
        handle.seek(start)
        chunk = handle.read(position - start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        position = start
    else:
        keep = 0
    if keep != end:
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())


# --------------------------------------------------------------------------- resume rule


def current_records(
    records: Iterable[Mapping[str, Any]],
    samples: Iterable[Any],
    settings_hash: str,
    *,
    fingerprint_of: Callable[[Any], str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The latest line of each selected sample made with these settings for this very sample.

    Lines from other settings, of samples outside the selection, or of a
    sample whose manifest entry has changed since are ignored.
    ``fingerprint_of`` identifies a sample's annotation (default
    :func:`sample_fingerprint`; whole-video runs pass :func:`video_fingerprint`).
    """
    identify = fingerprint_of or sample_fingerprint
    wanted = {sample.id: identify(sample) for sample in samples}
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        sample_id = record.get("id")
        if (
            record.get("settings") == settings_hash
            and isinstance(sample_id, str)  # sample ids are strings
            and sample_id in wanted
            and record.get("sample") == wanted[sample_id]
        ):
            latest[sample_id] = dict(record)
    return latest


# --------------------------------------------------------------------------- sittings


def append_sitting(run_dir: str | os.PathLike[str], sitting: Mapping[str, Any]) -> None:
    """Add one sitting's account (how it was executed) to ``sittings.jsonl``."""
    line = json.dumps(dict(sitting), ensure_ascii=False, separators=(",", ":"), default=str)
    path = Path(run_dir) / SITTINGS_FILE
    try:
        with path.open("ab") as handle:
            handle.write(line.encode("utf-8") + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        raise RunError(f"Cannot write {path}: {os_error_text(error)}.") from error


def read_sittings(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every sitting's account in ``sittings.jsonl``, oldest first (damaged lines skipped)."""
    path = Path(run_dir) / SITTINGS_FILE
    sittings: list[dict[str, Any]] = []
    with contextlib.suppress(OSError):
        for raw_line in path.read_bytes().split(b"\n")[:-1]:
            with contextlib.suppress(ValueError):
                sitting = json.loads(raw_line)
                if isinstance(sitting, dict):
                    sittings.append(sitting)
    return sittings
