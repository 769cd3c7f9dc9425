"""Grounding results as plain data, and their JSON / .npz forms.

The result classes hold numbers only; converters to files live beside them
as functions, so the classes stay small. JSON is the schema
``vgem.grounding/1`` documented in the README; the ``.npz`` holds the raw
cosine maps for anyone who wants to post-process them elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from vgem.errors import InputError, VgemError, os_error_text
from vgem.plain import plain_json
from vgem.temporal.segments import Timeline
from vgem.video import VideoInfo

SCHEMA = "vgem.grounding/1"


@dataclass(frozen=True)
class CandidateScore:
    """A verb or object candidate and its cosine with the clip embedding."""

    text: str
    similarity: float


@dataclass(frozen=True)
class GroundedTime:
    """One query at one grounded time.

    ``point`` and ``prompt_points`` are (x, y) in original-video pixels, the centre of
    the chosen model-input pixel mapped back: they lie in the frame's area
    [-0.5, width - 0.5] x [-0.5, height - 0.5] (pixel centres at integers), so a video
    smaller than the model input can give a point up to 0.5 px beyond the outermost
    pixel centre (x = -0.36); round and clamp to [0, width - 1] to index a pixel;
    ``model_point`` is the integer point in the S × S model input that the
    authors' evaluation tests. ``score`` is the cosine of the original path's
    clip embedding with the action prompt.
    """

    time: float
    frame: int
    point: tuple[float, float]
    model_point: tuple[int, int]
    prompt_points: dict[str, tuple[float, float]]
    score: float
    chosen: dict[str, str] = field(default_factory=dict)
    candidates: dict[str, list[CandidateScore]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not all(math.isfinite(value) for value in self.point):
            raise ValueError(f"point {self.point} is not finite")


@dataclass(frozen=True)
class QueryResult:
    """Everything grounded for one query, in time order."""

    query: str
    prompts: dict[str, str]
    extractor: str
    times: list[GroundedTime]
    verb_candidates: list[str] = field(default_factory=list)
    object_candidates: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class GroundingResult:
    """The answer to ``Grounder.ground``.

    ``similarity`` is float32 ``[times, queries, 3, grid_h, grid_w]``: the raw
    cosine maps of the verb, object and action prompts (chosen candidates)
    before upsampling and normalization. ``times`` / ``frames`` are parallel to
    its first axis, as are ``clip_embeddings`` ``[times, D]`` (the original
    path's normalized clip embeddings). ``timeline`` says when each query
    happens, when temporal localization was asked for.
    """

    video: VideoInfo
    backbone: str
    weights: str
    input_size: int
    settings: dict[str, Any]
    queries: list[QueryResult]
    times: np.ndarray
    frames: np.ndarray
    similarity: np.ndarray
    clip_embeddings: np.ndarray | None = None
    timeline: Timeline | None = None
    #: The fingerprint of a many-video batch's request (:mod:`vgem.batch`), so that
    #: a resumed batch keeps only the outputs made for the same request.
    batch_request: str | None = None

    def __post_init__(self) -> None:
        count = len(self.times)
        if len(self.frames) != count or self.similarity.shape[:2] != (count, len(self.queries)):
            raise ValueError("times, frames, similarity and queries disagree in length")
        if any(len(query.times) != count for query in self.queries):
            raise ValueError("every query needs one entry per grounded time")

    @property
    def points(self) -> np.ndarray:
        """``[times, queries, 2]`` final points in original-video pixels."""
        return np.array(
            [[query.times[i].point for query in self.queries] for i in range(len(self.times))],
            dtype=np.float64,
        ).reshape(len(self.times), len(self.queries), 2)


def to_json_dict(result: GroundingResult) -> dict[str, Any]:
    """The ``vgem.grounding/1`` document."""
    from vgem import __version__

    return {
        "schema": SCHEMA,
        "vgem_version": __version__,
        "video": asdict(result.video),
        "backbone": {"name": result.backbone, "weights": result.weights},
        "input_size": result.input_size,
        "settings": plain_json(result.settings),
        "queries": [_query_dict(query) for query in result.queries],
        **(_temporal_dict(result) if result.timeline is not None else {}),
        **({"batch_request": result.batch_request} if result.batch_request else {}),
    }


#: How a timeline's labels follow from its numbers (written into the JSON beside them).
LABEL_RULE = (
    "normalized = min-max of each query's scores over the grounded times (a constant "
    "query is 0); label = the query with the highest normalized score (the first on a "
    "tie) when that score >= threshold_used, else null (no action)"
)


def _temporal_dict(result: GroundingResult) -> dict[str, Any]:
    """Segments and the per-time label of a temporal run: for every grounded time the
    raw scores (cosines, rounded) and the normalized ones the label is cut from."""
    timeline = result.timeline
    assert timeline is not None  # called for temporal results only
    queries = [query.query for query in result.queries]
    return {
        "temporal": {
            **(asdict(timeline.settings) if timeline.settings else {}),
            # the threshold the labels were cut at (Otsu's, for threshold "auto"), exactly
            "threshold_used": float(timeline.threshold),
            "label_rule": LABEL_RULE,
        },
        "segments": [
            {
                "query": segment.query,
                "start": round(segment.start, 3),
                "end": round(segment.end, 3),
                "score": round(segment.score, 6),
            }
            for segment in timeline.segments
        ],
        "timeline": [
            {
                "time": float(time),
                "label": None if label is None else queries[label],
                "scores": {
                    query: round(float(score), 6)
                    for query, score in zip(queries, timeline.relevance[index], strict=True)
                },
                # not rounded: the label is re-derived from exactly these numbers
                "normalized": {
                    query: float(score)
                    for query, score in zip(queries, timeline.normalized[index], strict=True)
                },
            }
            for index, (time, label) in enumerate(zip(timeline.times, timeline.labels, strict=True))
        ],
    }


def _query_dict(query: QueryResult) -> dict[str, Any]:
    document: dict[str, Any] = {
        "query": query.query,
        "prompts": dict(query.prompts),
        "extractor": query.extractor,
        "warnings": list(query.warnings),
    }
    if len(query.verb_candidates) > 1 or len(query.object_candidates) > 1:
        document["candidates"] = {
            "verb": list(query.verb_candidates),
            "object": list(query.object_candidates),
        }
    document["times"] = [_time_dict(entry) for entry in query.times]
    return document


def _time_dict(entry: GroundedTime) -> dict[str, Any]:
    document: dict[str, Any] = {
        "time": entry.time,
        "frame": entry.frame,
        "point": [round(entry.point[0], 3), round(entry.point[1], 3)],
        "model_point": list(entry.model_point),
        "prompt_points": {
            role: [round(x, 3), round(y, 3)] for role, (x, y) in entry.prompt_points.items()
        },
        "score": round(entry.score, 6),
    }
    if entry.chosen:
        document["chosen"] = dict(entry.chosen)
    if entry.candidates:
        document["candidates"] = {
            role: [{"text": c.text, "similarity": round(c.similarity, 6)} for c in scores]
            for role, scores in entry.candidates.items()
        }
    return document


# --------------------------------------------------------------------------- JSON text


def json_text(document: Any) -> str:
    """``document`` as indented JSON that any parser reads: a number that is not finite
    (NaN, ±infinity: JSON has no words for them) is written as ``null``."""
    return json.dumps(_finite_numbers(document), indent=2, allow_nan=False) + "\n"


def _finite_numbers(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_numbers(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_numbers(item) for item in value]
    return value


# --------------------------------------------------------------------------- outputs

#: The output path that means standard output.
STDOUT = "-"

_NOT_REGULAR = {
    stat.S_IFDIR: "a folder",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
}


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
    """

    def __init__(
        self, inputs: Iterable[str | os.PathLike[str] | None] = (), *, stdout: Any = None
    ) -> None:
        self._inputs = [
            Path(os.path.realpath(Path(path).expanduser()))
            for path in inputs
            if path is not None and os.fspath(path) not in ("", STDOUT)
        ]
        self._stdout = stdout
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
                        _move_into_place(staged)
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
                prefix=f".{target.name[:64]}.", suffix=".part", dir=folder
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
        for source in self._inputs:
            try:
                source_status: os.stat_result | None = os.stat(source)
            except OSError:
                source_status = None
            same = target == source or (
                status is not None
                and source_status is not None
                and os.path.samestat(status, source_status)
            )
            if same:
                raise InputError(
                    f"{name}: it is an input of this run ({source}); vgem does not write over "
                    "its inputs.",
                    settings=settings,
                )
            inside = source_status is not None and stat.S_ISDIR(source_status.st_mode)
            if inside and status is not None and target.is_relative_to(source):
                raise InputError(
                    f"{name}: it is a file of the input folder {source}; vgem does not write "
                    "over its inputs.",
                    settings=settings,
                )

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


def _move_into_place(staged: StagedOutput) -> None:
    assert staged.target is not None  # files only
    with staged.temporary.open("rb") as handle:
        os.fsync(handle.fileno())  # whole on disk before it takes the name
    os.chmod(staged.temporary, staged.mode if staged.mode is not None else 0o666 & ~_umask())
    for folder in staged.missing_folders:
        folder.mkdir(exist_ok=True)
    if staged.target.is_dir():  # made a folder since it was checked
        raise IsADirectoryError(21, "it has become a folder")
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
      (pixel centres at integers; see :class:`GroundedTime` for their range);
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
) -> None:
    """Every asked-for output of one grounding, the JSON last.

    With staged destinations (an :class:`OutputSet`'s), nothing appears until
    the set commits; the JSON comes last so that, where it stands, the other
    outputs of the video are complete (the rule batch resumption relies on).
    """
    if heatmaps is not None:
        write_npz(result, heatmaps)
    if video is not None:
        from vgem.annotate import write_annotated_video  # decode -> draw -> encode

        write_annotated_video(result, video, progress=video_progress)
    write_json(result, json_output)
