"""One validated Settings, backbone-declared defaults, and the one plugin factory."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import pytest

from tests.synth import write_video
from vgem import plugins
from vgem.errors import PluginError, SettingsError
from vgem.settings import METHOD_DEFAULTS, Settings, settings_for_backbone

PACKAGE = Path(__file__).resolve().parents[1] / "vgem"

# A 4-block backbone written the way docs/plugins.md says: a module holding only
# the spec, the model built in ``load``. DEFAULTS is filled in per test.
FOUR_BLOCK_BACKBONE = """
    from vgem.backbones.base import BackboneSpec


    def _load(variant, weights):
        from tests.tiny_models import tiny_openclip_adapter

        return tiny_openclip_adapter(input_size=64)


    SPEC = BackboneSpec(summary="four blocks (tests)", load=_load, defaults={defaults})
"""


def _install_four_block(plugin_site, defaults: str) -> None:
    plugin_site.install(
        "vgem-four",
        {"vgem.backbones": {"four": "vgem_four_blocks:SPEC"}},
        {"vgem_four_blocks": FOUR_BLOCK_BACKBONE.replace("{defaults}", defaults)},
    )


# --------------------------------------------------------------------------- Settings


@pytest.mark.parametrize(
    ("options", "setting"),
    [
        ({"depth": 0}, "depth"),
        ({"depth": 2.5}, "depth"),
        ({"iterations": -1}, "iterations"),
        ({"iterations": 99999999999999999999}, "iterations"),  # would never end
        ({"batch_size": 10**9}, "batch_size"),
        ({"depth": 10**6}, "depth"),
        ({"temperature": 1e300}, "temperature"),
        ({"clip_step": 1e300}, "clip_step"),
        ({"temperature": math.nan}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"dynamic_temperature": math.inf}, "dynamic_temperature"),
        ({"clip_step": 0.0}, "clip_step"),
        ({"outside_weight": -0.5}, "outside_weight"),
        ({"static_weights": ()}, "static_weights"),
        ({"static_weights": (0.3, math.nan)}, "static_weights"),
        ({"batch_size": 0}, "batch_size"),
        ({"weighting": "sometimes"}, "weighting"),
        ({"video_attention": "sideways"}, "video_attention"),
    ],
)
def test_bad_settings_are_refused_by_name_never_by_flag(options, setting):
    with pytest.raises(SettingsError) as refusal:
        Settings(**options)
    assert refusal.value.settings == (setting,)
    assert f"`{setting}`" in str(refusal.value)
    assert "--" not in str(refusal.value)


def test_a_grounder_from_python_names_the_setting(tiny_adapter):
    from vgem.grounder import Grounder

    with pytest.raises(SettingsError, match=r"^`depth` must be at least 1") as refusal:
        Grounder(adapter=tiny_adapter, depth=0)
    assert refusal.value.settings == ("depth",)


def test_dynamic_layers_are_checked_against_depth(tiny_adapter):
    with pytest.raises(SettingsError, match="`dynamic_layers` must be between 1 and `depth`"):
        Settings(depth=2, dynamic_layers=3).for_adapter(tiny_adapter)
    # with no dynamic weighting, the number of dynamic layers does not matter
    resolved = Settings(depth=2, dynamic_layers=3, weighting="static").for_adapter(tiny_adapter)
    assert resolved.removal_layers == 0


def test_unset_settings_take_the_method_constants():
    resolved = Settings().with_defaults()
    assert resolved.depth == METHOD_DEFAULTS["depth"] == 7
    assert resolved.dynamic_layers == 3
    assert resolved.static_weights == (0.3, 0.4, 0.5, 0.6, 0.7, 0.9, 0.9, 0.9)
    assert Settings(depth=5).with_defaults({"depth": 3}).depth == 5  # given values win


def test_a_grounder_accepts_a_settings_object(tiny_adapter):
    from vgem.grounder import Grounder

    grounder = Grounder(adapter=tiny_adapter, settings=Settings(depth=4, extractor="label"))
    assert grounder.settings.depth == 4
    assert grounder.settings.video_attention == "joint"  # "auto" made concrete
    with pytest.raises(SettingsError, match="Unknown setting: colour"):
        Grounder(adapter=tiny_adapter, colour="red")


# --------------------------------------------------------------------------- backbone defaults


def test_a_four_block_backbone_from_the_docs_grounds_with_no_method_options(plugin_site, tmp_path):
    from vgem.grounder import Grounder

    _install_four_block(plugin_site, '{"depth": 3, "dynamic_layers": 2}')
    assert settings_for_backbone("four").depth == 3
    grounder = Grounder("four", extractor="label")
    assert (grounder.settings.depth, grounder.settings.dynamic_layers) == (3, 2)
    video = write_video(tmp_path / "clip.mp4", 4, fps=2.0, size=(64, 48))
    result = grounder.ground(video, ["cut onion"], at=[0.5])
    assert result.settings["depth"] == 3 and len(result.queries[0].times) == 1


def test_without_declared_defaults_the_paper_depth_does_not_fit(plugin_site):
    from vgem.grounder import Grounder

    _install_four_block(plugin_site, "{}")
    with pytest.raises(SettingsError, match=r"`depth` must be between 1 and 4 for tiny-openclip"):
        Grounder("four", extractor="label")


def test_a_spec_cannot_declare_defaults_for_other_settings():
    from vgem.backbones.base import BackboneSpec

    with pytest.raises(ValueError, match="not precision"):
        BackboneSpec(summary="x", load=lambda variant, weights: None, defaults={"precision": 1})


# --------------------------------------------------------------------------- the factory


def test_create_passes_only_the_options_a_plugin_takes():
    auto = plugins.create("vgem.extractors", "auto", cache_dir="/somewhere/cache")
    assert auto._stanza.model_dir == Path("/somewhere/cache/stanza")
    label = plugins.create("vgem.extractors", "label", cache_dir="/somewhere/cache")
    assert label.extract("cut_onion").verbs == ("cut",)


def test_a_plugin_that_does_not_fit_its_group_is_named(plugin_site):
    plugin_site.install(
        "vgem-misfit",
        {"vgem.extractors": {"misfit": "vgem_misfit:Misfit"}},
        {"vgem_misfit": "class Misfit:\n    name = 'misfit'\n"},
    )
    with pytest.raises(PluginError, match=r"extractor plugin 'misfit' \(from vgem-misfit 1.2.3\)"):
        plugins.create("vgem.extractors", "misfit")


def test_a_plugin_that_fails_to_start_is_named_with_its_package(plugin_site):
    plugin_site.install(
        "vgem-crashy",
        {"vgem.aggregators": {"crashy": "vgem_crashy:Crashy"}},
        {
            "vgem_crashy": """
                class Crashy:
                    def __init__(self):
                        raise RuntimeError("no licence file")
            """
        },
    )
    with pytest.raises(PluginError, match=r"'crashy' \(from vgem-crashy 1.2.3\).*no licence file"):
        plugins.create("vgem.aggregators", "crashy")


# --------------------------------------------------------------------------- layering


def _string_constants_outside_docstrings(tree: ast.AST):
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
        if is_text and id(node) not in docstrings:
            yield node


def test_no_core_message_names_a_flag():
    """The library speaks in setting names; only vgem/cli knows flags."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("cli/") or relative.endswith("__main__.py"):
            continue  # command lines: the vgem CLI, and `python -m vgem.testing`'s argparse
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _string_constants_outside_docstrings(tree):
            if re.search(r"(?<![\w-])--[a-z]", node.value):
                offenders.append(f"{relative}:{node.lineno}: {node.value[:60]!r}")
    assert offenders == []
