"""``vgem.eval`` as a library: the same figures from Python as from ``vgem eval``, one run
loop for both tasks, and an import graph that keeps adapters away from the runner."""

from __future__ import annotations

import ast
import json
import pickle
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import vgem.eval
from tests.eval.test_eval_command import EVAL_BACKBONES, PLANTED, _planted_dataset, _write_manifest
from tests.eval.test_spatiotemporal import (
    PERFECT_BOXES,
    PERFECT_SEGMENTS,
    TEMPORAL,
    PointingColourAdapter,
    _gyt_release,
    _planted_video,
)
from tests.planted import PlantedAdapter
from vgem.cli import app
from vgem.errors import VgemError
from vgem.eval.engine import GrounderRecipe, GroundingJob, LocalExecutor
from vgem.eval.tasks import RunContext, SpatialTask
from vgem.grounder import Grounder
from vgem.settings import Settings

PACKAGE = Path(vgem.eval.__file__).resolve().parents[1]
FIGURES = ("complete", "overall", "datasets", "errors", "problems", "selection", "settings_hash")


def _figures(document: dict) -> dict:
    return {key: document[key] for key in FIGURES}


# --------------------------------------------------------------------------- Python and CLI alike


def test_run_from_python_gives_the_figures_of_the_command(plugin_site, tmp_path, monkeypatch):
    plugin_site.install(
        "vgem-eval-test-backbones",
        {"vgem.backbones": {"planted": "vgem_eval_test_backbones:PLANTED"}},
        EVAL_BACKBONES,
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    records = _planted_dataset(tmp_path / "data", videos=3)
    records.append({**records[0], "id": "gone", "video": "gone.mp4"})  # an error line
    manifest = _write_manifest(tmp_path / "data" / "manifest.jsonl", [*records, "{broken"])

    cli = CliRunner().invoke(app, ["eval", "--manifest", str(manifest), *PLANTED])
    assert cli.exit_code == 0, cli.output
    (cli_run,) = (tmp_path / "runs").iterdir()  # the default run directory

    result = vgem.eval.run(
        vgem.eval.open_manifest(manifest),
        backbone="planted",
        settings=Settings(depth=4, extractor="label"),
        run_dir=tmp_path / "python",
    )
    document = json.loads((cli_run / "results.json").read_text())
    assert _figures(result.document) == _figures(document)
    assert result.document == json.loads(result.results_path.read_text())
    assert result.run_dir == tmp_path / "python" and not result.interrupted
    assert document["overall"]["counts"] == {"selected": 7, "scored": 6, "errors": 1, "pending": 0}
    assert document["errors"][0]["id"] == "gone"
    # the missing video (line 7) is an error line, not a reading problem
    assert [problem["line"] for problem in document["problems"]] == [8]
    # the same identity: the Python run resumes the command's run directory untouched
    again = vgem.eval.run(
        vgem.eval.open_manifest(manifest),
        backbone="planted",
        settings=Settings(depth=4, extractor="label"),
        run_dir=cli_run,
        load_grounder=_refuse,
    )
    assert again.document["this_sitting"] == {"resumed": 7, "evaluated": 0}


def _refuse():
    raise AssertionError("the model was loaded although every sample was done")


# --------------------------------------------------------------------------- one loop, two tasks


@pytest.fixture
def spatial_case(tmp_path):
    """Three planted videos with two samples each (one source, one grounder)."""
    root = tmp_path / "frames"
    records = _planted_dataset(root, videos=3)
    manifest = _write_manifest(root / "manifest.jsonl", records)
    grounder = Grounder(adapter=PlantedAdapter(), depth=4, extractor="label")
    return vgem.eval.open_manifest(manifest), "spatial", lambda: grounder, len(records)


@pytest.fixture
def video_case(tmp_path):
    """Three whole videos (one planted untrimmed video, three names) for spatiotemporal."""
    videos = ("one", "two", "three")
    planted = _planted_video(tmp_path / "video" / "planted.mp4")
    root = _gyt_release(
        tmp_path / "gyt",
        {video: PERFECT_SEGMENTS["planted"] for video in videos},
        {video: PERFECT_BOXES["planted"] for video in videos},
        videos=videos,
    )
    (root / "mining_resized_video").mkdir()
    for video in videos:
        (root / "mining_resized_video" / f"{video}.mp4").symlink_to(planted)
    grounder = Grounder(adapter=PointingColourAdapter(), depth=4, extractor="label")
    source = vgem.eval.open_dataset("gyt", root, whole_videos=True)
    return source, vgem.eval.WholeVideoTask("spatiotemporal", TEMPORAL), lambda: grounder, 3


class InterruptingExecutor:
    """The local executor, with a Ctrl-C once ``after`` lines are written."""

    def __init__(self, after: int) -> None:
        self.after = after

    def execute(self, job, units, emit):
        written = []

        def counting(line):
            emit(line)
            written.append(line)
            if len(written) == self.after:
                raise KeyboardInterrupt

        LocalExecutor().execute(job, units, counting)


class Listener:
    def __init__(self) -> None:
        self.total = None
        self.resumed: list[dict] = []
        self.recorded: list[dict] = []

    def start(self, total):
        self.total = total

    def resume(self, finished_lines):
        self.resumed += finished_lines

    def record(self, line):
        self.recorded.append(line)


@pytest.mark.parametrize("case", ["spatial_case", "video_case"])
def test_both_tasks_stop_resume_and_finish_through_one_loop(case, request, tmp_path):
    source, task, load_grounder, total = request.getfixturevalue(case)

    def run(run_dir, **options):
        return vgem.eval.run(source, task=task, run_dir=tmp_path / run_dir, **options)

    listener = Listener()
    stopped = run(
        "run", load_grounder=load_grounder, executor=InterruptingExecutor(2), progress=listener
    )
    assert stopped.interrupted and stopped.document["complete"] is False
    assert stopped.document["overall"]["counts"]["pending"] == total - 2
    assert (listener.total, len(listener.recorded)) == (total, 2)

    listener = Listener()
    resumed = run("run", load_grounder=load_grounder, progress=listener)
    assert not resumed.interrupted and resumed.document["complete"] is True
    assert resumed.document["this_sitting"] == {"resumed": 2, "evaluated": total - 2}
    assert (len(listener.resumed), len(listener.recorded)) == (2, total - 2)

    whole = run("whole", load_grounder=load_grounder)
    assert _figures(resumed.document) == _figures(whole.document)
    lines = (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == total  # every sample exactly once

    finished = run("run", load_grounder=_refuse)  # nothing left: no model is loaded
    assert finished.document["this_sitting"] == {"resumed": total, "evaluated": 0}


def test_a_job_travels_to_a_worker_process():
    """What an executor ships to its workers pickles, grounder recipe included."""
    job = GroundingJob(
        SpatialTask(("pointing",)),
        RunContext(Path("/data"), "hash"),
        GrounderRecipe("viclip-b16", None, Settings(depth=5), "/cache"),
    )
    assert pickle.loads(pickle.dumps(job)) == job
    video_task = vgem.eval.make_task("temporal")
    assert pickle.loads(pickle.dumps(video_task)) == video_task


@pytest.mark.parametrize(
    ("options", "settings"),
    [
        ({"task": "when"}, ("task",)),
        ({"task": "temporal", "metrics": ["map"]}, ("metrics", "task")),
        ({"metrics": ["recall"]}, ("metrics",)),
    ],
)
def test_refused_options_name_their_settings(options, settings, tmp_path):
    source = vgem.eval.SampleSource([], label="none", root=tmp_path)
    with pytest.raises(vgem.errors.SettingsError) as refused:
        vgem.eval.run(source, run_dir=tmp_path / "run", **options)
    assert refused.value.settings == settings
    assert "--" not in str(refused.value)


def test_importing_vgem_eval_needs_neither_torch_nor_typer():
    import subprocess

    code = (
        "import sys, vgem.eval; vgem.eval.run; vgem.eval.open_dataset; "
        "print('torch' in sys.modules, 'typer' in sys.modules)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.split() == ["False", "False"]


# --------------------------------------------------------------------------- imports


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in a file, relative imports resolved."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            found.append((module, [alias.name for alias in node.names]))
    return found


def test_dataset_adapters_import_no_runner():
    runner_modules = ("engine", "tasks", "runner", "spatiotemporal", "command", "report", "sources")
    for path in sorted((PACKAGE / "eval" / "datasets").glob("*.py")):
        for module, names in _imports(path):
            parts = module.split(".")
            imported = [".".join([module, name]) for name in names] or [module]
            for name in [module, *imported]:
                assert not (
                    name.startswith("vgem.eval.") and name.split(".")[2] in runner_modules
                ), f"{path.name} imports {name}"
            assert parts[:1] != ["vgem"] or "cli" not in parts, f"{path.name} imports {module}"


def test_no_module_imports_another_modules_private_names():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for module, names in _imports(path):
            if not module.startswith("vgem"):
                continue
            private = [name for name in names if name.startswith("_") and not name.startswith("__")]
            private += [part for part in module.split(".") if part.startswith("_")]
            if private:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}: {module} {private}")
    assert offenders == []


@pytest.mark.parametrize(("amx", "same_as"), [(False, "fp32"), (True, "bf16")])
def test_auto_precision_is_hashed_as_what_it_resolves_to(
    spatial_case, tmp_path, monkeypatch, amx, same_as
):
    import vgem.precision

    source, task, load_grounder, _ = spatial_case
    monkeypatch.setattr(vgem.precision, "cpu_has_amx_bf16", lambda: amx)

    def settings_hash(precision: str) -> str:
        settings = Settings(depth=4, extractor="label", device="cpu", precision=precision)
        result = vgem.eval.run(
            source, task=task, settings=settings, run_dir=tmp_path / precision,
            load_grounder=load_grounder, limit=1,
        )  # fmt: skip
        return result.document["settings_hash"]

    assert settings_hash("auto") == settings_hash(same_as)


def test_an_unusable_default_run_directory_fails_before_the_model_loads(
    spatial_case, tmp_path, monkeypatch
):
    source, task, _, _ = spatial_case
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("a file where the default run folder would go\n")
    with pytest.raises(VgemError, match="run_dir") as caught:
        vgem.eval.run(
            source, task=task, settings=Settings(depth=4, extractor="label"),
            load_grounder=_refuse, limit=1,
        )  # fmt: skip
    assert "runs" in str(caught.value)
