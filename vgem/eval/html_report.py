"""``report.html``: a run's figures, per-class results, samples and errors, for a browser.

Written beside ``results.json`` at the end of every run (:func:`vgem.eval.run`)
and again by ``vgem eval --show``. The page is self-contained and opens from
disk with no network: CSS, JavaScript and the charts (SVG drawn here) are
inline, and the gallery's pictures are small JPEGs in the ``report/`` folder
beside it (:mod:`vgem.eval.gallery`: at most ``GALLERY_LIMIT`` of them, about
10 KB each). Every figure comes from the results document, so the page says
what ``results.json`` says; the gallery and the timelines read the run's
predictions file. The page is rendered from a Jinja2 template
(``templates/report.html.j2``) with autoescaping, so texts from annotations
(queries, class names, error messages) are shown, never interpreted.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgem.eval.paper import DATASET_TITLES, paper_comparison
from vgem.eval.run_folder import REPORT_FILE, REPORT_FOLDER, run_folder
from vgem.eval.tasks import Task, task_of_document

if TYPE_CHECKING:
    from vgem.outputs import OwnedFolder

__all__ = ["REPORT_FILE", "REPORT_FOLDER", "render_report", "write_report"]
TIMELINES_LIMIT = 40  # videos with a timeline, worst first
ERRORS_SHOWN = 500
# One colour per query in timelines (Okabe-Ito, told apart by colour-blind readers too).
QUERY_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")


@dataclass(frozen=True)
class Figure:
    """A figure as the page shows it, with where results.json holds it (``path``)."""

    title: str
    path: str
    value: float | None

    @property
    def text(self) -> str:
        return "—" if self.value is None else f"{100 * self.value:.2f}"


def write_report(
    run_dir: str | os.PathLike[str],
    document: Mapping[str, Any] | None = None,
    *,
    folder: OwnedFolder | None = None,
) -> Path:
    """Write ``report.html`` (and its pictures) into ``run_dir``; returns its path.

    ``document`` is the run's results document (read from ``results.json``
    when not given). The gallery shows the samples of the worst classes first.
    ``folder``: the run folder, entered by the caller (a run); without one it
    is entered (locked) here, so a report is never rewritten under a running
    evaluation, and a ``report.html`` vgem did not write is never replaced.
    """
    import contextlib

    from vgem.eval.gallery import current_lines
    from vgem.eval.report import load_results
    from vgem.eval.run_log import PredictionLog

    directory = Path(run_dir).expanduser()
    document = document if document is not None else load_results(directory)
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = run_folder(directory, setting="show")
            folder.check([REPORT_FILE], folders=[REPORT_FOLDER])
            stack.enter_context(folder)
        task = task_of_document(document)
        records = PredictionLog(directory).records()
        usable = [record for record in records if task.line_problem(record) is None]
        lines = current_lines(usable, str(document.get("settings_hash")))
        page = render_report(document, list(lines.values()), directory, folder)
        return folder.write(REPORT_FILE, lambda path: path.write_text(page, encoding="utf-8"))


def render_report(
    document: Mapping[str, Any],
    lines: Sequence[Mapping[str, Any]],
    run_dir: Path,
    folder: OwnedFolder,
) -> str:
    """The page's HTML for a results document and its current prediction lines; the
    gallery's pictures are written into the run folder ``folder`` (entered)."""
    import jinja2

    task = task_of_document(document)
    overall = document["overall"]
    columns = task.figure_columns([overall])
    paths = _figure_paths(task, overall)
    headline = [
        Figure(column.title, f"overall.{path}", column.rate(overall))
        for column, path in zip(columns, paths, strict=True)
    ]
    datasets = [
        {
            "key": name,
            "title": DATASET_TITLES.get(name, name),
            "counts": scores["counts"],
            "figures": [
                Figure(column.title, f"datasets.{name}.{path}", column.rate(scores))
                for column, path in zip(columns, _figure_paths(task, scores), strict=True)
            ],
        }
        for name, scores in document["datasets"].items()
    ]
    context: dict[str, Any] = {
        "document": document,
        "task": task,
        "run_name": Path(str(document.get("run_dir") or run_dir)).name,
        "headline": headline,
        "counts": overall["counts"],
        "datasets": datasets,
        "paper": _paper_part(document, task),
        "errors": list(document.get("errors") or [])[:ERRORS_SHOWN],
        "errors_total": len(document.get("errors") or []),
        "settings": setting_rows(document),
        "versions": document.get("versions") or {"vgem": document.get("vgem_version")},
        "about": _about(document),
        "class_chart": None,
        "gallery": [],
        "gallery_classes": [],
        "timelines": [],
    }
    if task.whole_video:
        context["timelines"] = _timelines(lines)
    else:
        classes = ((overall.get("pointing") or {}).get("classes")) or {}
        order = _worst_first(classes)
        context["class_chart"] = class_chart(classes, order)
        context["gallery"], context["gallery_classes"] = _gallery(
            lines, order, classes, Path(str(document.get("root") or ".")), folder
        )
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("vgem.eval", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return environment.get_template("report.html.j2").render(**context)


# --------------------------------------------------------------------------- figures


def _figure_paths(task: Task, scores: Mapping[str, Any]) -> list[str]:
    """Where results.json holds each of the task's figure columns (in their order)."""
    if not task.whole_video:
        paths = ["pointing.accuracy", "pointing.class_mean_accuracy"]
        if scores.get("map"):
            paths.append("map.mean_ap")
        if scores.get("www"):
            paths.append("www.map")
        return paths
    from vgem.eval.tasks import VIDEO_TASK_FIGURES

    ratios, map_name = VIDEO_TASK_FIGURES[task.name]
    paths = [f"{name}.video_mean" for _title, name in ratios]
    paths += [f"{map_name}.map.{key}" for key in scores[map_name]["map"]]
    return [*paths, f"{map_name}.mean"]


def _paper_part(document: Mapping[str, Any], task: Task) -> dict[str, Any] | None:
    """The paper's figures beside ours where the comparison is valid, else the reason."""
    if not task.compares_with_paper:
        return None
    match = paper_comparison(document)
    if match.row is None:
        return {"row": None, "reason": match.reason, "rows": []}
    published = (document.get("paper") or {}).get("accuracy") or {}
    rows = []
    for name, scores in document["datasets"].items():
        ours = scores["pointing"]["accuracy"]
        theirs = published.get(name)
        delta = None if ours is None or theirs is None else 100 * ours - theirs
        rows.append(
            {
                "title": DATASET_TITLES.get(name, name),
                "ours": Figure("accuracy %", f"datasets.{name}.pointing.accuracy", ours),
                "published": "—" if theirs is None else f"{theirs:.2f}",
                "delta": "" if delta is None else f"{delta:+.2f}",
            }
        )
    return {"row": match.row, "reason": None, "rows": rows}


def _about(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The run's description, as label and text: what ran, as a person reads it."""
    selection = document.get("selection") or {}
    execution = document.get("execution") or {}
    ran = document.get("ran") or {}
    items = [
        ("task", str(document.get("task") or "spatial")),
        ("dataset", str(document.get("dataset") or document.get("manifest") or "—")),
        ("root", str(document.get("root"))),
        ("backbone", str(document.get("backbone"))),
        ("weights", weights_text(document)),
        ("weights sha256", str(document.get("weights_sha256") or "—")),
        ("device", str(ran.get("device") or "— (no model was loaded by this run)")),
        ("settings hash", str(document.get("settings_hash"))),
        ("selection", ", ".join(f"{k} {v}" for k, v in selection.items() if v is not None)),
        ("complete", "yes" if document.get("complete") else "no"),
        ("started", str(document.get("started_at"))),
        ("finished", str(document.get("finished_at"))),
        ("executor", _executor_text(execution)),
        ("run directory", str(document.get("run_dir"))),
    ]
    return [(label, text) for label, text in items if text]


def weights_text(document: Mapping[str, Any]) -> str:
    """The weights as the backbone that ran described them (``random (seed 0)``, a hub
    file, a path), else the ``--weights`` file given, else what is known: never a
    claim the run cannot back (random weights are not "the published weights")."""
    described = (document.get("ran") or {}).get("weights")
    given = document.get("weights")
    if described:
        return str(described)
    if given:
        return str(given)
    return "the backbone's default (not recorded: no model was loaded by this run)"


def _executor_text(execution: Mapping[str, Any]) -> str:
    executor = execution.get("executor")
    if not executor:
        return "—"
    workers = execution.get("workers")
    sittings = len(execution.get("sittings") or [])
    parts = [str(executor)]
    if workers is not None:
        parts.append(f"{workers} worker(s)")
    if sittings > 1:
        parts.append(f"{sittings} sittings")
    return ", ".join(parts)


#: What a setting's absent value means (None is "not set": the default applies).
UNSET_MEANS = {
    "temperature": "adaptive (per clip)",
    "depth": "the backbone's",
    "dynamic_layers": "the backbone's",
    "static_weights": "the backbone's",
}


def setting_rows(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The method settings as the report shows them: what ran for the settings a
    grounder resolves where it runs (``auto`` device, precision, video attention),
    yes/no, —, numbers without Python's punctuation, a mapping (the prompt
    templates) as a small table of its own."""
    settings = dict(document.get("settings") or {})
    ran = document.get("ran") or {}
    rows = []
    for name in sorted(settings):
        value = settings[name]
        asked = None
        if name in ran and ran[name] != value:
            asked, value = value, ran[name]
        if isinstance(value, Mapping):
            rows.append(
                {"name": name, "text": "", "table": [(str(k), _shown(v)) for k, v in value.items()]}
            )
            continue
        text = UNSET_MEANS.get(name, "—") if value is None else _shown(value)
        if asked is not None:
            text += f" (asked: {_shown(asked)})"
        rows.append({"name": name, "text": text, "table": None})
    return rows


def _shown(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(_shown(item) for item in value)
    return str(value)


# --------------------------------------------------------------------------- per class


def _worst_first(classes: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Class keys by accuracy, lowest first (classes with no scored sample last)."""

    def key(name: str) -> tuple[float, str]:
        accuracy = classes[name].get("accuracy")
        return (math.inf if accuracy is None else float(accuracy), name)

    return sorted(classes, key=key)


def class_chart(
    classes: Mapping[str, Mapping[str, Any]], order: Sequence[str], width: int = 720
) -> str:
    """A horizontal bar per class in ``order``: its pointing accuracy and sample count."""
    row, label_width, bar_width = 18, 260, width - 260 - 170
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{row * len(order) + 24}" role="img" aria-label="accuracy per class" '
        'class="chart" font-family="sans-serif" font-size="12">'
    ]
    for index in range(0, 101, 25):
        x = label_width + bar_width * index / 100
        parts.append(
            f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{row * len(order)}" stroke="#ddd"/>'
            f'<text x="{x:.1f}" y="{row * len(order) + 16}" text-anchor="middle" '
            f'fill="#666">{index}%</text>'
        )
    for position, name in enumerate(order):
        figures = classes[name]
        accuracy = figures.get("accuracy")
        y = position * row
        shown = name if len(name) <= 40 else name[:39] + "…"
        length = 0.0 if accuracy is None else bar_width * float(accuracy)
        colour = _accuracy_colour(accuracy)
        value = "—" if accuracy is None else f"{100 * float(accuracy):.1f} %"
        count = f"n={figures.get('samples', 0)}" + (
            f", {figures['errors']} failed" if figures.get("errors") else ""
        )
        parts.append(
            f'<g data-class="{escape(name)}"><title>{escape(name)}: {value} ({count})</title>'
            f'<text x="{label_width - 6}" y="{y + 13}" text-anchor="end">{escape(shown)}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" height="{row - 6}" '
            f'fill="{colour}"/>'
            f'<text x="{label_width + length + 4:.1f}" y="{y + 13}" fill="#333">'
            f"{value} · {count}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _accuracy_colour(accuracy: float | None) -> str:
    if accuracy is None:
        return "#bbb"
    red, green = (215, 48, 39), (26, 152, 80)
    mixed = [round(r + (g - r) * float(accuracy)) for r, g in zip(red, green, strict=True)]
    return "#{:02x}{:02x}{:02x}".format(*mixed)


# --------------------------------------------------------------------------- gallery


def _gallery(
    lines: Sequence[Mapping[str, Any]],
    order: Sequence[str],
    classes: Mapping[str, Mapping[str, Any]],
    root: Path,
    folder: OwnedFolder,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The gallery's cards (worst classes first) and its class filter's choices."""
    from vgem.eval.gallery import choose_samples, write_pictures

    chosen = choose_samples(lines, order)
    pictures = write_pictures(chosen, root, folder, REPORT_FOLDER)
    cards = []
    for line in chosen:
        picture = pictures[str(line["id"])]
        cards.append(
            {
                "id": str(line["id"]),
                "class": str(line.get("class")),
                "query": str(line.get("query", "")),
                "video": str(line.get("video", "")),
                "time": float(line.get("time", 0.0)),
                "hit": bool(line["hit"]),
                "picture": f"{REPORT_FOLDER}/{picture.name}",
                "has_frame": picture.has_frame,
                "point": line.get("point"),
            }
        )
    shown = list(dict.fromkeys(str(card["class"]) for card in cards))
    choices = [
        {
            "key": name,
            "accuracy": classes.get(name, {}).get("accuracy"),
            "cards": sum(card["class"] == name for card in cards),
        }
        for name in shown
    ]
    return cards, choices


# --------------------------------------------------------------------------- timelines


def _timelines(lines: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A timeline per scored video (worst frame IoU first): truth against prediction."""
    scored = [line for line in lines if "segments" in line]
    rated = [(video_iou(line), line) for line in scored]
    rated.sort(key=lambda pair: (math.inf if pair[0] is None else pair[0], str(pair[1]["id"])))
    return [
        {
            "id": str(line["id"]),
            "video": str(line.get("video", "")),
            "iou": None if iou is None else f"{100 * iou:.1f}",
            "svg": timeline_chart(line),
        }
        for iou, line in rated[:TIMELINES_LIMIT]
    ]


def _seconds(segments: Sequence[Sequence[Any]], query: int) -> set[int]:
    from vgem.eval.temporal_metrics import seconds_in

    found: set[int] = set()
    for segment in segments:
        if int(segment[0]) == query:
            found.update(seconds_in(float(segment[1]), float(segment[2])))
    return found


def video_iou(line: Mapping[str, Any]) -> float | None:
    """The frame-wise IoU of a video's predicted and true seconds, over its steps."""
    truth = line.get("truth")
    if truth is None:
        return None
    inter = union = 0
    for query in range(len(line.get("queries") or [])):
        predicted = _seconds(line["segments"], query)
        true = _seconds(truth, query)
        inter += len(predicted & true)
        union += len(predicted | true)
    return inter / union if union else None


def timeline_chart(line: Mapping[str, Any], width: int = 720) -> str:
    """Per step: the true segments (grey) over the predicted ones (the step's colour)."""
    queries = [str(query) for query in line.get("queries") or []]
    truth = line.get("truth") or []
    ends = [float(segment[2]) for segment in [*line["segments"], *truth]]
    duration = max([float(line.get("times") or 0), *ends, 1.0])
    label_width, row = 200, 26
    span = width - label_width - 10

    def x(seconds: float) -> float:
        return label_width + span * seconds / duration

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{row * len(queries) + 20}" class="chart" font-family="sans-serif" '
        'font-size="12" role="img" aria-label="true and predicted segments">'
    ]
    for index, query in enumerate(queries):
        y = index * row
        colour = QUERY_COLOURS[index % len(QUERY_COLOURS)]
        shown = query if len(query) <= 30 else query[:29] + "…"
        parts.append(
            f'<text x="{label_width - 6}" y="{y + 16}" text-anchor="end">'
            f"<title>{escape(query)}</title>{escape(shown)}</text>"
            f'<rect x="{label_width}" y="{y + 2}" width="{span}" height="{row - 4}" '
            'fill="#f3f3f3"/>'
        )
        for segment in truth:
            if int(segment[0]) == index:
                parts.append(_bar(x(float(segment[1])), x(float(segment[2])), y + 3, 9, "#888"))
        for segment in line["segments"]:
            if int(segment[0]) == index:
                parts.append(_bar(x(float(segment[1])), x(float(segment[2])), y + 13, 9, colour))
    bottom = row * len(queries)
    parts.append(
        f'<text x="{label_width}" y="{bottom + 14}" fill="#666">0 s</text>'
        f'<text x="{width - 10}" y="{bottom + 14}" text-anchor="end" fill="#666">'
        f"{duration:.0f} s · grey: truth · colour: predicted</text></svg>"
    )
    return "".join(parts)


def _bar(left: float, right: float, y: float, height: float, colour: str) -> str:
    return (
        f'<rect x="{left:.1f}" y="{y}" width="{max(1.0, right - left):.1f}" '
        f'height="{height}" fill="{colour}"/>'
    )
