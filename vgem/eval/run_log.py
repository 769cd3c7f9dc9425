"""A run's predictions file: what identifies a run and a sample, the locked
append-only log, and the rule for which lines a resumed run may keep.

Lines are written, flushed and fsynced one by one; a torn last line (a kill
in the middle of a write) is cut off when the file is opened again, and a
lock file keeps two runs from appending to one directory at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from vgem.errors import VgemError, os_error_text
from vgem.eval.manifest import sample_to_record
from vgem.plain import plain_json

if TYPE_CHECKING:
    from vgem.eval.samples import Sample, VideoSample
    from vgem.settings import Settings


PREDICTIONS_FILE = "predictions.jsonl"
LOCK_FILE = ".lock"

# Options that change speed, never the numbers, so a run may be resumed with others.
THROUGHPUT_SETTINGS = frozenset({"batch_size", "device"})


class RunError(VgemError):
    """The run directory cannot be used (another run holds it, or it cannot be written)."""


# --------------------------------------------------------------------------- identities


def fingerprint(value: Any) -> str:
    """A short, stable hash of a JSON-able value (key order does not matter)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def sample_fingerprint(sample: Sample) -> str:
    """Changes whenever anything about the sample changes (a corrected box, a new time)."""
    return fingerprint(sample_to_record(sample))


def video_fingerprint(sample: VideoSample) -> str:
    """Changes whenever a video's annotation changes (a moved boundary, a new box)."""
    return fingerprint(sample.to_record())


def run_identity(
    backbone: str, weights: str | None, settings: Settings, source_fps: float
) -> dict[str, Any]:
    """Everything that decides a prediction, as JSON: what the settings hash covers.

    Batch size and device are left out, so a run started on one machine can be
    finished on another; precision stays in, as bf16 moves points.
    """
    method = {
        name: value for name, value in settings.to_dict().items() if name not in THROUGHPUT_SETTINGS
    }
    return {
        "backbone": backbone.strip(),
        "weights": _weights_identity(weights),
        "source_fps": float(source_fps),
        # As JSON reads it back (tuples as lists), so that the hash is that of the file.
        "settings": plain_json(method),
    }


def _weights_identity(weights: str | None) -> str | None:
    """A local checkpoint by absolute path, so a run resumes from another folder."""
    if weights is None:
        return None
    path = Path(weights).expanduser()
    return str(path.resolve()) if path.exists() else weights


# --------------------------------------------------------------------------- predictions file


class PredictionLog:
    """``predictions.jsonl``: append-only, each line on disk before the next sample starts.

    Reading tolerates what a kill can leave behind: a last line without its
    newline (a torn write) is ignored, and cut off before the next append so
    it cannot swallow the line written after it. While open, the run
    directory is locked, so two runs cannot evaluate the same samples twice.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / PREDICTIONS_FILE
        self._lock: BinaryIO | None = None
        self._handle: BinaryIO | None = None

    def records(self) -> list[dict[str, Any]]:
        """Every complete, valid line, in file order."""
        if not self.path.is_file():
            return []
        records = []
        with self.path.open("rb") as handle:
            for raw_line in handle:
                if not raw_line.endswith(b"\n"):
                    break
                try:
                    record = json.loads(raw_line)
                except ValueError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("id"), str):
                    records.append(record)
        return records

    @contextlib.contextmanager
    def open(self, *, fresh: bool = False) -> Iterator[PredictionLog]:
        """Lock the run directory and open the file for appending.

        ``fresh`` starts an empty file; the previous one is kept beside it as
        ``predictions-<UTC time>.jsonl`` rather than deleted.
        """
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            lock = (self.run_dir / LOCK_FILE).open("a+b")
        except OSError as error:
            reason = os_error_text(error)
            raise RunError(f"Cannot use the run directory {self.run_dir}: {reason}.") from error
        try:
            _lock_exclusively(lock, self.run_dir)
            if fresh and self.path.exists():
                stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
                self.path.replace(self.run_dir / f"predictions-{stamp}.jsonl")
            try:
                # Unbuffered: a failed write leaves nothing waiting in a buffer that
                # a later flush could complete behind our back.
                handle = self.path.open("a+b", buffering=0)
            except OSError as error:
                raise RunError(f"Cannot write {self.path}: {os_error_text(error)}.") from error
            with handle:
                _cut_torn_tail(handle)
                self._lock, self._handle = lock, handle
                try:
                    yield self
                finally:
                    self._lock = self._handle = None
        finally:
            lock.close()

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


def _lock_exclusively(lock: BinaryIO, run_dir: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; runs must not share a directory
        return
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RunError(
            f"Another vgem eval is running in {run_dir}; wait for it or choose another `run_dir`.",
            settings=("run_dir",),
        ) from None


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
