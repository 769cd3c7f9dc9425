"""Grounding many videos: a folder, a glob or a list of videos in, one JSON per video out.

    from vgem.batch import find_videos, ground_videos
    summary = ground_videos("videos/", ["cut onion"], "out/", backbone="viclip-b16")
    summary.counts()  # {"videos": 12, "succeeded": 10, "skipped": 1, "failed": 1, ...}

:func:`find_videos` turns a source into a list of :class:`BatchVideo`, each
with the name its outputs take in the output folder (its path relative to the
source, without the suffix: ``videos/kitchen/a.mp4`` → ``out/kitchen/a.json``).
:func:`ground_videos` grounds each of them with the same queries and settings,
writing ``NAME.json`` (and, when asked, ``NAME.npz`` heatmaps and ``NAME.mp4``
annotated video), and returns a :class:`BatchSummary`.

**Resumable.** A video whose JSON is complete (a ``vgem.grounding/1``
document made for the same request, with every other output asked for beside
it) is skipped, so running the same call again grounds only what is left: the
ones not reached, and the ones that failed. The request is everything that
decides a video's outputs — backbone, weights, method settings and precision,
queries, grounded times, temporal settings — and each JSON carries its
fingerprint (``batch_request``), so a changed setting redoes every video
rather than keeping answers to another question. The JSON is the completion
mark: every output of a video is written to a hidden temporary and renamed
into place, the JSON last (:class:`vgem.staging.OutputSet`).

**A record of the batch.** Each call ends by writing ``vgem-batch.json`` in
the output folder: the request, the counts, every failed video with its
reason, and how the work was executed — what a script reads instead of the
terminal.

**A bad video never stops the batch.** A missing, unreadable, truncated or
too short video (or one whose grounding fails for any reason of its own) is
recorded as failed, with the reason, and the batch goes on. Errors that are
the whole batch's (a bad setting, missing weights, an unknown plugin) stop it
before or at the first video, as they would for one.

**Executed by the execution layer** (:mod:`vgem.execution`): each video is a
:class:`~vgem.execution.units.WorkUnit` of one item, so the same local
executor and Ray workers that serve evaluations (each loading the model once,
a dead worker's video retried elsewhere a bounded number of times) run it.
The batch imports nothing of the evaluation.

**The output folder is vgem's only in part** (:class:`vgem.outputs.OwnedFolder`):
it may hold the user's files, which vgem never replaces or deletes. Before any
work, a batch whose output would land on a file vgem did not write there, or
on any input of the batch (any of its videos, its list file, the weights,
compared by file identity, not by name), is refused in one line. The folder
is locked while a batch writes into it, so a second batch on it is refused in
one line instead of breaking the first.

Who writes the outputs: **the workers**, each video's into the output folder
as soon as it is grounded; the driver receives one small line per video
(where its outputs are, or why it failed). The heatmaps of a long video are
hundreds of megabytes and an annotated video needs the source decoded again,
so shipping results back to the driver would push every heatmap through Ray's
object store and leave all the drawing and encoding to one process; workers
must read the videos anyway, so the output folder lives on the same shared
storage. Nothing is duplicated when a worker dies and its video is retried:
a video's outputs have fixed names and each appears only by an atomic rename
of a complete file (a retry renames a new complete file over it, never adds
a second one), the executor hands the driver one line per video at most, and
the hidden temporaries a killed worker leaves (named with this batch's token)
are swept at the end, never another process's.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vgem.errors import InputError, SettingsError, VgemError
from vgem.execution.units import error_reason, missing_video_reason
from vgem.staging import InputFiles
from vgem.video.probe import IMAGE_EXTENSIONS

if TYPE_CHECKING:
    from vgem.execution.executor import Executor
    from vgem.execution.units import Emit, Line, SupportsGround, WorkUnit
    from vgem.outputs import OwnedFolder, RecordKeeper
    from vgem.results import GroundingResult
    from vgem.settings import Settings
    from vgem.temporal import TemporalSettings

#: Files a folder or list is searched for (a folder of image frames is a video too).
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}
)
#: A source with one of these suffixes is a list of videos, one path a line.
LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})
#: What each output of a video is called: NAME + suffix.
OUTPUT_SUFFIXES = {
    "json": ".json",
    "heatmaps": ".npz",
    "video": ".mp4",
    "csv": ".csv",
    "coco": ".coco.json",
}

Status = Literal["succeeded", "skipped", "failed"]


# --------------------------------------------------------------------------- finding videos


@dataclass(frozen=True)
class BatchVideo:
    """One video of a batch: its path, and ``id``, the name its outputs take (a relative
    path without suffix, ``/``-separated: ``kitchen/a``)."""

    id: str
    path: Path


def is_glob(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` is a glob pattern (and not a file that happens to be named so)."""
    text = os.fspath(source)
    return glob.has_magic(text) and not Path(text).expanduser().exists()


def holds_many(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` names several videos (a glob, a list file, a folder that is not
    itself a folder of image frames) rather than one video."""
    if is_glob(source):
        return True
    path = Path(source).expanduser()
    if path.is_file():
        return path.suffix.lower() in LIST_EXTENSIONS
    return path.is_dir() and not _is_frame_folder(path)


def find_videos(
    source: str | os.PathLike[str], *, exclude: Iterable[str | os.PathLike[str]] = ()
) -> list[BatchVideo]:
    """The videos ``source`` names, in a stable order, each with its output name.

    - a **folder**: every video file under it, in subfolders too (hidden ones
      skipped), and every folder of image frames (a folder that directly holds
      images is one video); names are paths relative to the folder;
    - a **glob** (``'videos/*.mp4'``, ``**`` for any depth): every match; names
      are relative to the pattern's fixed leading folder;
    - a **list** (``.txt``, ``.lst``, ``.list``): one path a line, relative ones
      relative to the list's folder; blank lines and ``#`` comments skipped;
      names are relative to the list's folder (or to the listed videos' common
      folder when some lie outside it);
    - a **video file** or a frame folder: that one video.

    ``exclude``: folders never searched (the output folder). A listed path that
    does not exist is kept (grounding reports it as failed); two videos whose
    outputs would share a name are refused.
    """
    text = os.fspath(source)
    excluded = [Path(os.path.realpath(Path(folder).expanduser())) for folder in exclude]
    if is_glob(text):
        pattern = os.path.expanduser(text)
        matches = sorted(glob.glob(pattern, recursive=True))
        paths = [Path(match) for match in matches if not _under(Path(match), excluded)]
        if not paths:
            raise InputError(f"{text}: the pattern matches no file.")
        return _named(paths, _fixed_folder(pattern), source=text)
    path = Path(text).expanduser()
    if not path.exists():
        raise InputError(f"{text}: no such file or folder.")
    if path.is_dir():
        if _is_frame_folder(path):
            return [BatchVideo(path.resolve().name or "video", path)]
        paths = sorted(_walk(path, excluded))
        if not paths:
            extensions = ", ".join(sorted(VIDEO_EXTENSIONS))
            raise InputError(
                f"{text}: the folder holds no videos ({extensions}) and no folder of frames."
            )
        return _named(paths, path, source=text)
    if path.suffix.lower() in LIST_EXTENSIONS:
        paths = _listed(path)
        if not paths:
            raise InputError(f"{text}: the list names no video.")
        base = Path(os.path.abspath(path.parent))
        if not all(_is_relative(listed, base) for listed in paths):
            base = Path(os.path.commonpath([os.path.abspath(listed.parent) for listed in paths]))
        return _named(paths, base, source=text)
    return [BatchVideo(path.stem, path)]


def videos_from_paths(paths: Sequence[str | os.PathLike[str]]) -> list[BatchVideo]:
    """Given paths as videos, named relative to their common folder."""
    chosen = [Path(path).expanduser().absolute() for path in paths]
    if not chosen:
        return []
    base = Path(os.path.commonpath([path.parent for path in chosen]))
    return _named(chosen, base, source="the videos")


def _is_frame_folder(folder: Path) -> bool:
    try:
        return any(
            entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_EXTENSIONS
            for entry in os.scandir(folder)
        )
    except OSError:
        return False


def _walk(folder: Path, excluded: list[Path]) -> Iterable[Path]:
    """Video files and frame folders under ``folder`` (hidden entries and ``excluded`` skipped)."""
    for current, folders, files in os.walk(folder):
        here = Path(current)
        kept = []
        for name in sorted(folders):
            child = here / name
            if name.startswith(".") or _under(child, excluded):
                continue
            if _is_frame_folder(child):
                yield child
            else:
                kept.append(name)
        folders[:] = kept
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_EXTENSIONS:
                yield here / name


def _listed(list_file: Path) -> list[Path]:
    try:
        text = list_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{list_file}: cannot read the list ({error}).") from None
    paths = []
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        listed = Path(entry).expanduser()
        paths.append(listed if listed.is_absolute() else list_file.parent / listed)
    return paths


def _fixed_folder(pattern: str) -> Path:
    """The leading folders of a glob pattern that hold no wildcard."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _under(path: Path, folders: list[Path]) -> bool:
    real = Path(os.path.realpath(path))
    return any(real == folder or real.is_relative_to(folder) for folder in folders)


def _is_relative(path: Path, base: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(base))


def _named(paths: Sequence[Path], base: Path, *, source: str) -> list[BatchVideo]:
    """Each path with its output name; refuses two videos with the same name."""
    videos: list[BatchVideo] = []
    seen: dict[str, Path] = {}
    absolute_base = Path(os.path.abspath(base))
    for path in paths:
        absolute = Path(os.path.abspath(path))
        relative = (
            absolute.relative_to(absolute_base)
            if absolute.is_relative_to(absolute_base)
            else Path(absolute.name)
        )
        name = relative.with_suffix("").as_posix() if relative.suffix else relative.as_posix()
        if name in ("", "."):
            name = absolute.name or "video"
        if name in seen:
            if seen[name] == absolute:
                continue  # listed twice: grounded once
            raise InputError(
                f"{source}: {seen[name]} and {path} would both write {name}.json; "
                "rename one, or ground them in separate batches."
            )
        seen[name] = absolute
        videos.append(BatchVideo(name, path))
    return videos


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class VideoOutcome:
    """What became of one video: ``succeeded`` (its outputs written), ``skipped`` (complete
    from an earlier run) or ``failed`` (``error`` says why)."""

    id: str
    video: str
    status: Status
    outputs: tuple[str, ...] = ()
    error: str | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class BatchSummary:
    """What :func:`ground_videos` returns: an outcome per video reached, in input order.

    ``interrupted``: Ctrl-C stopped the batch; the videos not reached have no
    outcome (``pending``). ``execution``: how the work was executed (the
    executor, its workers and their throughput).
    """

    out_dir: Path
    total: int
    outcomes: tuple[VideoOutcome, ...]
    interrupted: bool = False
    execution: dict[str, Any] = field(default_factory=dict)

    def _with(self, status: Status) -> tuple[VideoOutcome, ...]:
        return tuple(outcome for outcome in self.outcomes if outcome.status == status)

    @property
    def succeeded(self) -> tuple[VideoOutcome, ...]:
        return self._with("succeeded")

    @property
    def skipped(self) -> tuple[VideoOutcome, ...]:
        return self._with("skipped")

    @property
    def failed(self) -> tuple[VideoOutcome, ...]:
        return self._with("failed")

    @property
    def pending(self) -> int:
        return self.total - len(self.outcomes)

    def counts(self) -> dict[str, int]:
        return {
            "videos": self.total,
            "succeeded": len(self.succeeded),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "pending": self.pending,
        }


# --------------------------------------------------------------------------- the work of a worker


@dataclass(frozen=True)
class BatchGrounding:
    """How each video of a batch is grounded and written (picklable: sent to workers).

    The ``ground_unit`` / ``error_record`` pair is what the execution layer's
    workers call (:class:`vgem.execution.units.UnitWork`); a unit holds one
    :class:`BatchVideo`, and its line says where the outputs went or why not.
    Outputs are written only over files the output folder's record says vgem
    wrote (``keeper``), never onto an input of the batch (``inputs``), and
    their temporaries carry the batch's ``token``.
    """

    queries: tuple[str, ...]
    out_dir: Path
    #: The fingerprint of the request (:func:`batch_request`), written into each JSON.
    request: str
    fps: float | None = None
    at: tuple[float, ...] | None = None
    every_frame: bool = False
    temporal: TemporalSettings | None = None
    save_heatmaps: bool = False
    save_video: bool = False
    save_csv: bool = False
    save_coco: bool = False
    box_threshold: float | None = None
    smooth: float | None = None
    source_fps: float = 1.0
    inputs: InputFiles = field(default_factory=InputFiles)
    keeper: RecordKeeper | None = None
    token: str | None = None

    def output_names(self, video: BatchVideo) -> list[str]:
        """The names of ``video``'s outputs in the output folder, the JSON last."""
        paths = self.output_paths(video).values()
        return [path.relative_to(self.out_dir).as_posix() for path in paths]

    def output_paths(self, video: BatchVideo) -> dict[str, Path]:
        """Where ``video``'s outputs go, the JSON last (it marks the video complete)."""
        kinds = [
            *(["heatmaps"] if self.save_heatmaps else []),
            *(["csv"] if self.save_csv else []),
            *(["coco"] if self.save_coco else []),
            *(["video"] if self.save_video else []),
            "json",
        ]
        return {kind: self.out_dir / f"{video.id}{OUTPUT_SUFFIXES[kind]}" for kind in kinds}

    def is_complete(self, video: BatchVideo) -> bool:
        """Whether an earlier run left this video's outputs: a JSON document made for
        this request, and every other output asked for."""
        from vgem.results import SCHEMA

        paths = self.output_paths(video)
        try:
            document = json.loads(paths["json"].read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return False
        if not isinstance(document, dict) or document.get("schema") != SCHEMA:
            return False
        if document.get("batch_request") != self.request:
            return False
        return all(path.is_file() for kind, path in paths.items() if kind != "json")

    # ----------------------------------------------------------------- UnitWork

    def ground_unit(
        self,
        unit: WorkUnit,
        context: Any,
        grounder: Callable[[], SupportsGround],
        emit: Emit,
    ) -> None:
        for video in unit.samples:
            emit(self._ground_one(video, grounder))

    def error_record(self, sample: BatchVideo, context: Any, reason: str, seconds: float) -> Line:
        return {
            "id": sample.id,
            "video": str(sample.path),
            "error": reason,
            "seconds": round(seconds, 4),
        }

    # ----------------------------------------------------------------- one video

    def _ground_one(self, video: BatchVideo, grounder: Callable[[], SupportsGround]) -> Line:
        from vgem.video import grounded_times, probe_video

        started = time.perf_counter()
        try:
            info = probe_video(video.path, source_fps=self.source_fps)
            times = grounded_times(
                info,
                fps=self.fps,
                at=None if self.at is None else list(self.at),
                every_frame=self.every_frame,
            )
        except (InputError, OSError) as error:
            return self.error_record(video, None, error_reason(error), _since(started))
        loading = time.perf_counter()
        model = grounder()  # a model that cannot load is the batch's error, not the video's
        started += time.perf_counter() - loading
        try:
            if self.box_threshold is None and self.smooth is None:
                result = model.ground(info, self.queries, at=times, temporal=self.temporal)
            else:  # only then: a grounder of the protocol's older shape still serves
                result = model.ground(
                    info,
                    self.queries,
                    at=times,
                    temporal=self.temporal,
                    box_threshold=self.box_threshold,
                    smooth=self.smooth,
                )
            written = self._write(result, video)
        except (InputError, OSError) as error:
            return self.error_record(video, None, error_reason(error), _since(started))
        except VgemError:
            raise  # a setting, weights or plugin problem: every video would fail the same way
        except Exception as error:  # a video that breaks the decoder or the model's code
            reason = f"{type(error).__name__}: {error}"
            return self.error_record(video, None, reason, _since(started))
        return {
            "id": video.id,
            "video": str(video.path),
            "outputs": [str(path) for path in written],
            "times": len(times),
            "seconds": round(_since(started), 4),
        }

    def _write(self, result: GroundingResult, video: BatchVideo) -> list[Path]:
        """Every output of ``video``, committed together, the JSON renamed last."""
        from vgem.outputs import write_outputs
        from vgem.staging import OutputSet

        result = replace(result, batch_request=self.request)
        paths = self.output_paths(video)
        with OutputSet(self.inputs, owner=self.keeper, tag=self.token) as outputs:
            staged = {kind: outputs.add(path, setting="out_dir") for kind, path in paths.items()}
            write_outputs(
                result,
                staged["json"],
                heatmaps=staged.get("heatmaps"),
                video=staged.get("video"),
                csv=staged.get("csv"),
                coco=staged.get("coco"),
            )
        return list(paths.values())


def _since(started: float) -> float:
    return time.perf_counter() - started


# --------------------------------------------------------------------------- the front door

#: The record each batch leaves in its output folder (never a video's output name).
BATCH_RECORD = "vgem-batch.json"
BATCH_SCHEMA = "vgem.batch/1"


def batch_request(
    *,
    backbone: str,
    weights: str | None,
    settings: Settings,
    source_fps: float,
    queries: Sequence[str],
    fps: float | None,
    at: Sequence[float] | None,
    every_frame: bool,
    temporal: TemporalSettings | None,
) -> dict[str, Any]:
    """Everything that decides a video's outputs, as JSON (batch size and device do
    not: they change how fast, not what)."""
    from vgem.execution.recipe import run_identity

    return {
        **run_identity(backbone, weights, settings, source_fps),
        "queries": list(queries),
        "times": {
            "fps": fps,
            "at": None if at is None else [float(time) for time in at],
            "every_frame": every_frame,
        },
        "temporal": None if temporal is None else asdict(temporal),
    }


def ground_videos(
    videos: str | os.PathLike[str] | Sequence[str | os.PathLike[str] | BatchVideo],
    queries: str | Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    backbone: str = "viclip-b16",
    weights: str | None = None,
    settings: Settings | None = None,
    fps: float | None = None,
    at: Sequence[float] | None = None,
    every_frame: bool = False,
    source_fps: float = 1.0,
    temporal: TemporalSettings | None = None,
    save_heatmaps: bool = False,
    save_video: bool = False,
    save_csv: bool = False,
    save_coco: bool = False,
    box_threshold: float | None = None,
    smooth: float | None = None,
    nlp_dir: str | os.PathLike[str] | None = None,
    executor: Executor | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_video: Callable[[VideoOutcome], None] | None = None,
    load_grounder: Callable[[], SupportsGround] | None = None,
) -> BatchSummary:
    """Ground ``queries`` in every video of ``videos``; one ``NAME.json`` each in ``out_dir``.

    ``videos``: a folder, a glob or a list file (see :func:`find_videos`), or a
    sequence of paths or :class:`BatchVideo`. The grounded times (``fps``,
    ``at``, ``every_frame``), ``temporal`` and the method settings are those of
    :meth:`vgem.grounder.Grounder.ground`, the same for every video.
    ``save_heatmaps`` / ``save_video`` / ``save_csv`` / ``save_coco`` also write
    ``NAME.npz`` / an annotated ``NAME.mp4`` / ``NAME.csv`` / ``NAME.coco.json``
    (:mod:`vgem.exports`); ``box_threshold`` and ``smooth`` are those of
    :meth:`vgem.grounder.Grounder.ground`. A video whose outputs are complete is skipped (see the
    module's docstring); a video that cannot be grounded is recorded as failed
    and the batch goes on. ``out_dir`` may hold other files: a batch that
    would replace one of them (or any of its inputs) is refused before any
    work, and so is a batch on an ``out_dir`` another batch is writing into.
    ``executor``: the local executor by default, or e.g.
    :class:`vgem.execution.RayExecutor`, started before anything is created.
    ``progress(done, total)`` counts videos (skipped ones from the start);
    ``on_video(outcome)`` is called as each video ends (skipped ones first).
    ``load_grounder`` replaces building the grounder from ``backbone``,
    ``weights`` and ``settings`` (tests, a grounder already in memory).
    Ctrl-C ends the batch with ``interrupted`` set: every video finished so
    far keeps its outputs, and calling again resumes.
    """
    from vgem.execution.executor import (
        WorkerError,
        execution_of,
        start_executor,
        stop_executor,
    )
    from vgem.execution.local import LocalExecutor
    from vgem.execution.recipe import GrounderRecipe
    from vgem.execution.units import GroundingJob, WorkUnit
    from vgem.extractors.base import normalize_sentence
    from vgem.outputs import OwnedFolder
    from vgem.plain import fingerprint, utc_timestamp
    from vgem.settings import Settings

    chosen_queries = (queries,) if isinstance(queries, str) else tuple(queries)
    if not chosen_queries:
        raise InputError("Give at least one query.")
    for query in chosen_queries:
        normalize_sentence(query)  # a bad query fails now, not once per video
    if sum([fps is not None, at is not None, every_frame]) > 1:
        raise SettingsError(
            "Choose one of `fps`, `at` and `every_frame`.", settings=("fps", "at", "every_frame")
        )
    if temporal is not None:
        from vgem import plugins

        plugins.load("vgem.temporal", temporal.scorer)  # an unknown scorer fails now
    directory = Path(out_dir).expanduser()
    if directory.exists() and not directory.is_dir():
        raise InputError(f"`out_dir` {out_dir}: it is a file, not a folder.", settings=("out_dir",))
    chosen = _videos(videos, directory)
    if not chosen:
        raise InputError("There are no videos to ground.")
    record_name = Path(BATCH_RECORD).stem
    if any(video.id == record_name for video in chosen):
        raise InputError(
            f"A video would write its outputs as {BATCH_RECORD}, the batch's own record in "
            "`out_dir`: rename that video.",
            settings=("out_dir",),
        )
    request = batch_request(
        backbone=backbone,
        weights=weights,
        settings=settings or Settings(),
        source_fps=source_fps,
        queries=chosen_queries,
        fps=fps,
        at=at,
        every_frame=every_frame,
        temporal=temporal,
    )
    # boxes and smoothing decide the outputs too; said only when given, so that the
    # fingerprint of a request that uses neither stays what it was
    request.update(
        {
            name: value
            for name, value in (("box_threshold", box_threshold), ("smooth", smooth))
            if value is not None
        }
    )
    inputs = InputFiles([*(video.path for video in chosen), *_source_files(videos), weights])
    folder = OwnedFolder(directory, setting="out_dir", inputs=inputs, recognise=is_batch_file)
    work = BatchGrounding(
        chosen_queries,
        directory.absolute(),
        request=fingerprint(request),
        fps=fps,
        at=None if at is None else tuple(float(time) for time in at),
        every_frame=every_frame,
        temporal=temporal,
        save_heatmaps=save_heatmaps,
        save_video=save_video,
        save_csv=save_csv,
        save_coco=save_coco,
        box_threshold=box_threshold,
        smooth=smooth,
        source_fps=source_fps,
        inputs=inputs,
        keeper=folder.keeper,
        token=folder.token,
    )
    names = [name for video in chosen for name in work.output_names(video)]
    clashes = sorted(name for name, count in Counter(names).items() if count > 1)
    if clashes:
        raise InputError(
            f"Two videos would both write {clashes[0]} in `out_dir` (a video named like "
            "another's output, e.g. x.coco and x with `save_coco`): rename one.",
            settings=("out_dir", "save_coco"),
        )
    # Before anything is created: no output may land on a file vgem did not write
    # there, nor on any input of the batch.
    folder.check([*names, BATCH_RECORD])
    outcomes: dict[str, VideoOutcome] = {}

    def record(outcome: VideoOutcome) -> None:
        outcomes[outcome.id] = outcome
        if on_video is not None:
            on_video(outcome)
        if progress is not None:
            progress(len(outcomes), len(chosen))

    units = []
    for video in chosen:
        if work.is_complete(video):
            outputs = tuple(str(path) for path in work.output_paths(video).values())
            record(VideoOutcome(video.id, str(video.path), "skipped", outputs))
        elif not video.path.exists():
            reason = missing_video_reason(video.path.name, video.path.parent)
            record(VideoOutcome(video.id, str(video.path), "failed", error=reason))
        else:  # absolute: a worker's current folder is not this one
            absolute = BatchVideo(video.id, video.path.absolute())
            units.append(WorkUnit(str(absolute.path), (absolute,)))
    if progress is not None:
        progress(len(outcomes), len(chosen))

    given_paths = {video.id: str(video.path) for video in chosen}

    def emit(line: Line) -> None:
        if line["id"] in outcomes:  # never twice, whatever an executor does
            return
        record(_outcome(line, given_paths[line["id"]]))

    recipe = load_grounder or GrounderRecipe(
        backbone, weights, settings or Settings(), None if nlp_dir is None else str(nlp_dir)
    )
    runner = executor or LocalExecutor()
    interrupted = False
    failure: WorkerError | None = None
    if units:
        start_executor(runner)  # a refused start leaves nothing behind
    try:
        with folder:
            started_at = utc_timestamp()
            try:
                if units:
                    runner.execute(GroundingJob(work, None, recipe), units, emit)
            except KeyboardInterrupt:
                interrupted = True
            except WorkerError as error:  # the executor gave up; what finished is kept
                failure = error
            sitting = None
            if units:
                sitting = {
                    **execution_of(runner),
                    "started_at": started_at,
                    "finished_at": utc_timestamp(),
                    "interrupted": interrupted,
                }
            ordered = tuple(outcomes[video.id] for video in chosen if video.id in outcomes)
            summary = BatchSummary(
                directory,
                len(chosen),
                ordered,
                interrupted,
                _execution(directory, work.request, sitting),
            )
            write_batch_record(summary, {"fingerprint": work.request, **request}, folder=folder)
    finally:
        stop_executor(runner)
    if failure is not None:
        raise failure  # said once the outputs and the record of what finished are written
    return summary


def write_batch_record(
    summary: BatchSummary, request: dict[str, Any], *, folder: OwnedFolder | None = None
) -> Path:
    """``vgem-batch.json`` in the output folder: the request, the counts, each failed
    video with its reason, and the execution over every sitting of this request
    (replaced whole by each call). ``folder``: the output folder, entered."""
    from vgem.plain import plain_json, utc_timestamp
    from vgem.results import json_text
    from vgem.staging import atomic_write

    document = {
        "schema": BATCH_SCHEMA,
        "finished": utc_timestamp(),
        "interrupted": summary.interrupted,
        "request": request,
        "counts": summary.counts(),
        "failed": [
            {"id": outcome.id, "video": outcome.video, "error": outcome.error}
            for outcome in summary.failed
        ],
        "execution": plain_json(summary.execution),
    }
    text = json_text(document)

    def write(temporary: Path) -> None:
        temporary.write_text(text, "utf-8")

    if folder is not None:
        return folder.write(BATCH_RECORD, write)
    path = summary.out_dir / BATCH_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, write, setting="out_dir")


def _execution(directory: Path, request: str, sitting: dict[str, Any] | None) -> dict[str, Any]:
    """The batch's execution over every sitting of the same request: the earlier ones
    from the record a previous call left, and this one."""
    from vgem.execution.sittings import combine_sittings

    sittings: list[dict[str, Any]] = []
    try:
        previous = json.loads((directory / BATCH_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = None
    if (
        isinstance(previous, dict)
        and isinstance(previous.get("request"), dict)
        and previous["request"].get("fingerprint") == request
    ):
        earlier = previous.get("execution") or {}
        if isinstance(earlier, dict):
            kept = earlier.get("sittings")
            if isinstance(kept, list):
                sittings += [item for item in kept if isinstance(item, dict)]
            elif earlier.get("per_worker") is not None:  # a record from before sittings
                sittings.append(earlier)
    if sitting is not None:
        sittings.append(sitting)
    return combine_sittings(sittings) if sittings else {"executor": "none: nothing to do"}


def is_batch_file(path: Path) -> bool:
    """Whether ``path`` is a batch output vgem wrote before it kept a record of its files
    (an earlier version's batch): a grounding JSON or a batch record, told by its
    schema."""
    from vgem.results import SCHEMA

    if path.suffix != ".json":
        return False
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(document, dict) and document.get("schema") in (SCHEMA, BATCH_SCHEMA)


def _source_files(
    videos: str | os.PathLike[str] | Sequence[str | os.PathLike[str] | BatchVideo],
) -> list[Path]:
    """The files a source names besides its videos: a list file is an input too."""
    if isinstance(videos, (str, os.PathLike)) and not is_glob(videos):
        path = Path(videos).expanduser()
        if path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
            return [path]
    return []


def _videos(
    videos: str | os.PathLike[str] | Sequence[str | os.PathLike[str] | BatchVideo],
    out_dir: Path,
) -> list[BatchVideo]:
    if isinstance(videos, (str, os.PathLike)):
        return find_videos(videos, exclude=[out_dir])
    given = list(videos)
    if all(isinstance(video, BatchVideo) for video in given):
        return [video for video in given if isinstance(video, BatchVideo)]
    if any(isinstance(video, BatchVideo) for video in given):
        raise TypeError("give paths or BatchVideo objects, not both")
    return videos_from_paths([video for video in given if not isinstance(video, BatchVideo)])


def _outcome(line: Line, video: str) -> VideoOutcome:
    """A worker's line as an outcome, the video named as it was given."""
    if "error" in line:
        return VideoOutcome(
            line["id"],
            video,
            "failed",
            error=str(line["error"]),
            seconds=float(line.get("seconds") or 0.0),
        )
    return VideoOutcome(
        line["id"],
        video,
        "succeeded",
        tuple(line.get("outputs") or ()),
        seconds=float(line.get("seconds") or 0.0),
    )
