"""Each example plugin does its job, and is declared where vgem looks for it."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

import pytest
import tomllib
import torch
from vgem_example.aggregator import ActionOnly
from vgem_example.dataset import EXAMPLE_CSV
from vgem_example.extractor import KeywordExtractor

from vgem.errors import DatasetError, InputError
from vgem.eval.manifest import ManifestProblem, Sample
from vgem.extractors.base import Extractor

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
ENTRY_POINTS = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"]


@pytest.mark.parametrize(
    ("group", "name"),
    [(group, name) for group, names in ENTRY_POINTS.items() for name in names],
)
def test_each_entry_point_names_an_object_with_that_name(group, name):
    module, _, attribute = ENTRY_POINTS[group][name].partition(":")
    plugin = getattr(import_module(module), attribute)
    if group in ("vgem.extractors", "vgem.aggregators"):
        assert plugin().name == name  # classes built with no arguments
    elif group == "vgem.datasets":
        assert plugin.name == name
    else:
        from vgem.backbones.base import BackboneSpec

        assert isinstance(plugin, BackboneSpec)


@pytest.mark.parametrize(
    ("query", "verbs", "objects"),
    [
        ("pour water into the cup", ("pour",), ("cup",)),
        ("Cut the onion.", ("Cut",), ("onion",)),
        ("jump", ("jump",), ()),
    ],
)
def test_keywords_extractor(query, verbs, objects):
    extraction = KeywordExtractor().extract(query)
    assert isinstance(KeywordExtractor(), Extractor)
    assert (extraction.verbs, extraction.objects, extraction.extractor) == (
        verbs,
        objects,
        "keywords",
    )


def test_keywords_extractor_refuses_an_empty_query():
    with pytest.raises(InputError):
        KeywordExtractor().extract("  ")


def test_action_only_takes_the_action_point():
    points = torch.tensor([[1, 2], [3, 4], [5, 6]])
    assert ActionOnly()(torch.zeros(3, 8, 8), points) == (5, 6)


def test_the_csv_dataset(tmp_path):
    (tmp_path / "annotations.csv").write_text(
        "id,video,time,query,x1,y1,x2,y2\n"
        "a,videos/a.mp4,1.5,cut onion,10,20,30,40\n"
        "b,videos/b.mp4,soon,pour water,0,0,5,5\n"
        "a,videos/a.mp4,2.0,cut onion,30,20,10,40\n"
    )
    first, second, third = EXAMPLE_CSV.read(tmp_path)
    assert isinstance(first, Sample)
    assert (first.id, first.time, first.boxes) == ("a", 1.5, ((10.0, 20.0, 30.0, 40.0),))
    assert isinstance(second, ManifestProblem) and "line 3" in second.reason
    # an inverted box (x2 < x1) is kept, as vgem keeps the benchmarks' own: it is
    # counted in the run's data report and no point can hit it
    assert isinstance(third, Sample) and third.id == "a#2"
    assert third.boxes == ((30.0, 20.0, 10.0, 40.0),)


def test_the_csv_dataset_without_its_file(tmp_path):
    with pytest.raises(DatasetError, match=r"annotations\.csv"):
        list(EXAMPLE_CSV.read(tmp_path))


def test_vgem_finds_every_example_plugin_through_its_entry_points():
    """The package is installed (pip install -e plugins/vgem-example) to be tested."""
    from vgem import plugins

    plugins.refresh()
    rows = {(row.group, row.name): row for row in plugins.list_plugins()}
    for group, names in ENTRY_POINTS.items():
        for name in names:
            row = rows[(group, name)]
            assert row.package == "vgem-example" and row.error is None
