"""``vgem fetch``: what a configuration needs, checked without network, and one
clear line whenever it cannot download.

Nothing here reaches the network: the Hugging Face cache and stanza's model
folder are built by hand in the layouts huggingface_hub and stanza 1.15 read,
and downloads are either refused (HF_HUB_OFFLINE), pointed at a closed local
port, or replaced by fakes that write those same layouts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vgem import checkpoints, fetch
from vgem.backbones.base import HubFile
from vgem.errors import WeightsError
from vgem.extractors.stanza import LANGUAGE, PROCESSORS

REPOSITORY = Path(__file__).resolve().parents[1]
VICLIP_B16_FILE = ("OpenGVLab/ViCLIP-B-16-hf", "model.safetensors")
CLOSED_PORT_URL = "http://127.0.0.1:9"

_PRETRAIN_AND_CHARLMS = [
    {"model": "pretrain", "package": "conll17"},
    {"model": "forward_charlm", "package": "1billion"},
    {"model": "backward_charlm", "package": "1billion"},
]
# The shape of stanza 1.15's resources.json, cut down to what the English
# tokenize/pos/lemma/depparse pipeline resolves: the default package names a
# model per processor (mwt included, which English tokenization implies), and
# models name their pretrain / charlm dependencies.
FAKE_RESOURCES = {
    "url": "https://huggingface.co/stanfordnlp/stanza-{lang}/resolve/v{resources_version}/models/{filename}",
    "en": {
        "lang_name": "English",
        "packages": {
            "default": {
                "tokenize": "combined",
                "mwt": "combined",
                "pos": "combined_charlm",
                "lemma": "combined_nocharlm",
                "depparse": "combined_charlm",
            }
        },
        "tokenize": {"combined": {"md5": "0"}},
        "mwt": {"combined": {"md5": "0"}},
        "pos": {"combined_charlm": {"md5": "0", "dependencies": _PRETRAIN_AND_CHARLMS}},
        "lemma": {"combined_nocharlm": {"md5": "0"}},
        "depparse": {"combined_charlm": {"md5": "0", "dependencies": _PRETRAIN_AND_CHARLMS}},
        "pretrain": {"conll17": {"md5": "0"}},
        "forward_charlm": {"1billion": {"md5": "0"}},
        "backward_charlm": {"1billion": {"md5": "0"}},
    },
}
# What the pipeline loads from that index: processors in pipeline order, then
# the shared dependencies once each.
EXPECTED_STANZA_FILES = [
    "en/tokenize/combined.pt",
    "en/mwt/combined.pt",
    "en/pos/combined_charlm.pt",
    "en/lemma/combined_nocharlm.pt",
    "en/depparse/combined_charlm.pt",
    "en/backward_charlm/1billion.pt",
    "en/forward_charlm/1billion.pt",
    "en/pretrain/conll17.pt",
]


def build_hub_cache(hub_cache: Path, repo_id: str, filename: str) -> Path:
    """A file in the layout huggingface_hub's cache uses (snapshot + refs/main)."""
    repo_folder = hub_cache / f"models--{repo_id.replace('/', '--')}"
    revision = "0" * 40
    snapshot = repo_folder / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / filename).write_bytes(b"weights")
    (repo_folder / "refs").mkdir()
    (repo_folder / "refs" / "main").write_text(revision)
    return snapshot / filename


def build_stanza_dir(model_dir: Path, *, leave_out: tuple[str, ...] = ()) -> Path:
    """stanza's index and (fake, non-empty) English model files, less ``leave_out``."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "resources.json").write_text(json.dumps(FAKE_RESOURCES))
    for relative in EXPECTED_STANZA_FILES:
        if relative not in leave_out:
            (model_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            (model_dir / relative).write_bytes(b"model")
    return model_dir


def _one_error_line(completed: Any, *fragments: str) -> str:
    """The one line a user error prints, from a subprocess or a CliRunner result."""
    stderr = completed.stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------------------ the command


@pytest.fixture
def vgem_fetch_process(tmp_path):
    """``vgem fetch ARGS`` in a fresh process with its own caches, offline."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "STANZA_", "VGEM_"))
    }
    environment.update(
        PYTHONPATH=str(REPOSITORY),
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_OFFLINE="1",
        VGEM_CACHE=str(tmp_path / "vgem-cache"),
        STANZA_RESOURCES_DIR=str(tmp_path / "stanza-default"),
        COLUMNS="250",
    )

    def run(*arguments: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "vgem.cli", "fetch", *arguments],
            capture_output=True,
            text=True,
            env=environment,
            cwd=tmp_path,
            timeout=180,
            check=False,
        )

    return run


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty hub cache of this test's own; huggingface_hub read its env at import."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-home" / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return cache


@pytest.fixture
def vgem_fetch(hub_cache, tmp_path, monkeypatch):
    """``vgem fetch ARGS`` in this process, with the caches of ``vgem_fetch_process``, offline."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("VGEM_CACHE", str(tmp_path / "vgem-cache"))
    monkeypatch.chdir(tmp_path)

    def run(*arguments: str):
        from vgem.cli import app

        return CliRunner().invoke(app, ["fetch", *arguments], env={"COLUMNS": "250"})

    return run


def test_check_with_empty_caches_lists_what_is_missing_and_exits_2(vgem_fetch_process):
    completed = vgem_fetch_process("--check")
    assert completed.returncode == 2, completed.stderr
    table = completed.stdout
    assert "viclip-b16" in table
    assert "/".join(VICLIP_B16_FILE) in table
    assert "resources.json" in table
    assert "present" not in table
    _one_error_line(completed, "missing", "vgem fetch")


def test_check_with_everything_present_exits_0(vgem_fetch, hub_cache, tmp_path):
    build_hub_cache(hub_cache, *VICLIP_B16_FILE)
    build_stanza_dir(tmp_path / "vgem-cache" / "stanza")
    result = vgem_fetch("--check")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 1 + 1 + len(EXPECTED_STANZA_FILES)  # weights, index, models
    assert all("present" in row and "missing" not in row for row in rows)
    for relative in EXPECTED_STANZA_FILES:
        assert relative in result.stdout


def test_check_covers_only_what_is_asked_for(vgem_fetch, hub_cache):
    build_hub_cache(hub_cache, *VICLIP_B16_FILE)
    result = vgem_fetch("--check", "--backbone", "viclip-b16")  # stanza's models absent
    assert result.exit_code == 0, result.output
    assert "stanza" not in result.stdout


def test_cache_dir_says_where_stanza_models_go_and_how_ground_finds_them(vgem_fetch, tmp_path):
    result = vgem_fetch("--check", "--nlp", "--cache-dir", str(tmp_path / "elsewhere"))
    assert result.exit_code == 2
    assert f"stanza models: {tmp_path / 'elsewhere' / 'stanza'}" in result.stdout
    assert f"export VGEM_CACHE={tmp_path / 'elsewhere'}" in result.stderr
    assert os.environ["VGEM_CACHE"] == str(tmp_path / "vgem-cache")  # left alone


def test_fetch_with_hub_offline_refuses_in_one_line(vgem_fetch):
    result = vgem_fetch()
    assert result.exit_code == 2
    assert result.stdout == ""
    _one_error_line(result, "HF_HUB_OFFLINE is set: unset it to download", "--check")


@pytest.mark.parametrize("mode", [(), ("--check",)])
def test_unknown_backbone_is_one_line(vgem_fetch, mode):
    result = vgem_fetch(*mode, "--backbone", "nonsense")
    assert result.exit_code == 2
    _one_error_line(result, "Unknown backbone 'nonsense'", "viclip-b16")


def test_unreachable_stanza_server_is_one_line(vgem_fetch, monkeypatch):
    """stanza's own download, from a server that refuses connections."""
    import functools

    import stanza
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(
        stanza, "download", functools.partial(stanza.download, resources_url=CLOSED_PORT_URL)
    )
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    result = vgem_fetch("--nlp")
    assert result.exit_code == 2
    _one_error_line(result, "stanza's English models could not be downloaded", "network")


def test_a_backbone_without_a_hub_release_names_the_flag(vgem_fetch, test_backbones):
    result = vgem_fetch("--check", "--backbone", "local-only")
    assert result.exit_code == 0, result.output
    assert "--weights" in result.stdout


# --------------------------------------------------------------------------- what is needed


def test_neither_backbone_nor_nlp_means_the_default_configuration(monkeypatch, tmp_path):
    monkeypatch.setenv("VGEM_CACHE", str(tmp_path))
    plan = fetch.make_plan()
    assert [name for name, _ in plan.backbones] == ["viclip-b16"]
    assert plan.hub_files == [("viclip-b16", HubFile(*VICLIP_B16_FILE))]
    assert plan.nlp
    assert plan.stanza_dir == tmp_path / "stanza"


def test_nlp_alone_fetches_no_backbone(monkeypatch, tmp_path):
    monkeypatch.setenv("VGEM_CACHE", str(tmp_path))
    plan = fetch.make_plan(nlp=True)
    assert plan.backbones == ()
    assert plan.nlp


def test_a_backbone_named_twice_is_fetched_once():
    plan = fetch.make_plan(["viclip-b16", "viclip-b16"])
    assert len(plan.backbones) == 1
    assert not plan.nlp
    assert plan.stanza_dir is None


def test_stanza_files_are_those_its_pipeline_loads(tmp_path):
    model_dir = build_stanza_dir(tmp_path)
    files = fetch.stanza_model_files(model_dir)
    assert [path.relative_to(model_dir).as_posix() for _, _, path in files] == (
        EXPECTED_STANZA_FILES
    )
    assert files[0][:2] == ("tokenize", "combined")


def test_one_missing_stanza_model_is_named(tmp_path):
    model_dir = build_stanza_dir(tmp_path, leave_out=("en/pretrain/conll17.pt",))
    rows = fetch.check_stanza(model_dir)
    assert [row.location for row in rows if row.missing] == ["en/pretrain/conll17.pt"]


def test_an_empty_model_file_counts_as_missing(tmp_path):
    model_dir = build_stanza_dir(tmp_path)
    (model_dir / "en/pos/combined_charlm.pt").write_bytes(b"")
    rows = fetch.check_stanza(model_dir)
    assert [row.location for row in rows if row.missing] == ["en/pos/combined_charlm.pt"]


@pytest.mark.parametrize("index", ["{not json", json.dumps({"fr": {}}), json.dumps({"en": {}})])
def test_a_damaged_stanza_index_is_reported_not_raised(tmp_path, index):
    (tmp_path / "resources.json").write_text(index)
    rows = fetch.check_stanza(tmp_path)
    assert len(rows) == 1
    assert rows[0].missing
    assert "damaged" in rows[0].note


def test_stanza_not_installed_is_a_missing_package(monkeypatch, tmp_path):
    monkeypatch.setattr(fetch, "stanza_installed", lambda: False)
    (row,) = fetch.check_stanza(tmp_path)
    assert (row.item, row.state) == ("stanza", "missing")
    assert "vgem[nlp]" in row.note


TEST_BACKBONES = """
    from vgem.backbones.base import BackboneSpec, HubFile


    def _refuse(variant, weights):
        raise AssertionError("fetch must not load a backbone")


    GATED = BackboneSpec(
        summary="gated (tests)",
        load=_refuse,
        hub_files=lambda variant: [HubFile("vgem-test/gated", "model.safetensors", gated=True)],
    )
    LOCAL_ONLY = BackboneSpec(summary="no hub release (tests)", load=_refuse)
"""


@pytest.fixture
def test_backbones(plugin_site):
    plugin_site.install(
        "vgem-fetch-test-backbones",
        {
            "vgem.backbones": {
                "gated": "vgem_fetch_test_backbones:GATED",
                "local-only": "vgem_fetch_test_backbones:LOCAL_ONLY",
            }
        },
        {"vgem_fetch_test_backbones": TEST_BACKBONES},
    )


def test_a_gated_repository_says_so(hub_cache, test_backbones):
    (row,) = fetch.check(fetch.make_plan(["gated"]))
    assert row.missing
    assert "gated" in row.note
    assert "https://huggingface.co/vgem-test/gated" in row.note


def test_a_backbone_without_hub_files_needs_nothing(hub_cache, test_backbones):
    (row,) = fetch.check(fetch.make_plan(["local-only"]))
    assert row.state == "nothing to fetch"
    assert not row.missing
    assert "`weights`" in row.note and row.settings == ("weights",)


def test_cached_weights_are_found_without_network(hub_cache):
    build_hub_cache(hub_cache, *VICLIP_B16_FILE)
    (row,) = fetch.check(fetch.make_plan(["viclip-b16"]))
    assert row.state == "present"


# --------------------------------------------------------------------------- downloading, faked


@pytest.fixture
def fake_network(hub_cache, monkeypatch):
    """Downloads that write what the real ones would, recording what was asked."""
    import huggingface_hub
    import stanza

    asked: dict[str, list] = {"hub": [], "stanza": []}

    def hf_hub_download(repo_id: str, filename: str, **options) -> str:
        asked["hub"].append((repo_id, filename))
        return str(build_hub_cache(hub_cache, repo_id, filename))

    def download(language, model_dir, processors, **options):
        asked["stanza"].append((language, Path(model_dir), processors))
        build_stanza_dir(Path(model_dir))

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(checkpoints, "hub_reachable", lambda: True)
    monkeypatch.setattr(stanza, "download", download)
    monkeypatch.setenv("COLUMNS", "250")
    return asked


def _invoke(*arguments: str):
    from vgem.cli import app

    return CliRunner().invoke(app, ["fetch", *arguments], env={"COLUMNS": "250"})


def test_fetch_downloads_what_check_lists(fake_network, monkeypatch, tmp_path):
    monkeypatch.setenv("VGEM_CACHE", str(tmp_path / "exported"))  # restored afterwards
    result = _invoke("--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 0, result.output
    assert fake_network["hub"] == [VICLIP_B16_FILE]
    assert fake_network["stanza"] == [(LANGUAGE, tmp_path / "cache" / "stanza", PROCESSORS)]
    assert "missing" not in result.stdout
    assert f"export VGEM_CACHE={tmp_path / 'cache'}" in result.stderr


def test_fetch_with_everything_present_succeeds_offline(hub_cache, monkeypatch, tmp_path):
    from huggingface_hub import constants

    build_hub_cache(hub_cache, *VICLIP_B16_FILE)
    build_stanza_dir(tmp_path / "cache" / "stanza")
    monkeypatch.setenv("VGEM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    result = _invoke()
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_unreachable_hub_is_one_line(hub_cache, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def hf_hub_download(**options):
        raise LocalEntryNotFoundError("Cannot reach the hub, and no cached copy.")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    result = _invoke("--backbone", "viclip-b16")
    assert result.exit_code == 2
    _one_error_line(result, "viclip-b16 weights", "the hub cannot be reached", "HF_HOME")


def test_the_listed_files_are_the_paths_stanzas_pipeline_is_configured_with(tmp_path):
    from stanza.pipeline.core import build_default_config
    from stanza.resources.common import (
        add_dependencies,
        maintain_processor_list,
        process_pipeline_parameters,
    )

    model_dir = build_stanza_dir(tmp_path)
    language, _, package, processors = process_pipeline_parameters(
        LANGUAGE, str(model_dir), "default", PROCESSORS
    )
    load_list = maintain_processor_list(FAKE_RESOURCES, language, package, processors)
    load_list = add_dependencies(FAKE_RESOURCES, language, load_list)
    config = build_default_config(FAKE_RESOURCES, language, str(model_dir), load_list)
    configured = {Path(value) for key, value in config.items() if key.endswith("_path")}
    assert {path for _, _, path in fetch.stanza_model_files(model_dir)} == configured


# ------------------------------------------------------------------ the hub, without network


def _no_download(**options):
    raise AssertionError("hf_hub_download must not be called")


def _no_name_resolution(*arguments, **options):
    raise OSError("Name or service not known")


def test_cached_weights_are_used_without_asking_the_hub(hub_cache, monkeypatch):
    import huggingface_hub

    cached = build_hub_cache(hub_cache, *VICLIP_B16_FILE)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _no_download)
    monkeypatch.setattr("socket.getaddrinfo", _no_name_resolution)
    found = checkpoints.hub_download(*VICLIP_B16_FILE, what="ViCLIP-B/16", fetch_hint="fetch")
    assert found == cached


def test_an_unresolvable_hub_fails_at_once_without_downloading(hub_cache, monkeypatch):
    import huggingface_hub

    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _no_download)
    monkeypatch.setattr("socket.getaddrinfo", _no_name_resolution)
    with pytest.raises(WeightsError) as refused:
        checkpoints.hub_download(*VICLIP_B16_FILE, what="ViCLIP-B/16", fetch_hint="run X")
    assert str(refused.value) == (
        "ViCLIP-B/16 weights are not in the Hugging Face cache and the hub cannot be reached: "
        "run X."
    )


def test_behind_a_proxy_the_hub_counts_as_reachable(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("socket.getaddrinfo", _no_name_resolution)
    assert not checkpoints.hub_reachable()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert checkpoints.hub_reachable()


def test_retry_warnings_do_not_bury_the_error_line(hub_cache, monkeypatch, caplog):
    import logging

    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def hf_hub_download(**options):
        logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry 1/5].")
        raise LocalEntryNotFoundError("Cannot reach the hub, and no cached copy.")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(checkpoints, "hub_reachable", lambda: True)
    hub_logger = logging.getLogger("huggingface_hub")
    monkeypatch.setattr(hub_logger, "level", logging.NOTSET)
    with caplog.at_level(logging.WARNING), pytest.raises(WeightsError):
        checkpoints.hub_download(*VICLIP_B16_FILE, what="ViCLIP-B/16", fetch_hint="run X")
    assert not [record for record in caplog.records if record.name.startswith("huggingface_hub")]
    assert hub_logger.level == logging.NOTSET  # restored afterwards


# --------------------------------------------------------------- weights under several names

SAFE_AND_BIN = HubFile(
    "vgem-test/two-names", "model.safetensors", alternatives=("pytorch_model.bin",)
)


def test_a_cached_alternative_is_used_without_network(hub_cache, monkeypatch):
    import huggingface_hub

    cached = build_hub_cache(hub_cache, SAFE_AND_BIN.repo_id, "pytorch_model.bin")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _no_download)
    monkeypatch.setattr("socket.getaddrinfo", _no_name_resolution)
    found = checkpoints.hub_download_first(
        SAFE_AND_BIN.repo_id, SAFE_AND_BIN.candidates, what="two names", fetch_hint="fetch"
    )
    assert found == cached


def test_the_hub_is_asked_for_each_name_in_order_of_preference(hub_cache, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError

    asked = []

    def hf_hub_download(repo_id: str, filename: str, **options) -> str:
        asked.append(filename)
        if filename == "model.safetensors":
            raise EntryNotFoundError(f"{repo_id} has no {filename}")
        return str(build_hub_cache(hub_cache, repo_id, filename))

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(checkpoints, "hub_reachable", lambda: True)
    found = checkpoints.hub_download_first(
        SAFE_AND_BIN.repo_id, SAFE_AND_BIN.candidates, what="two names", fetch_hint="fetch"
    )
    assert asked == ["model.safetensors", "pytorch_model.bin"]
    assert found.name == "pytorch_model.bin"


def test_check_counts_weights_cached_under_another_name(hub_cache):
    (missing,) = fetch.check_backbones([("two-names", [SAFE_AND_BIN])])
    assert missing.missing
    build_hub_cache(hub_cache, SAFE_AND_BIN.repo_id, "pytorch_model.bin")
    (present,) = fetch.check_backbones([("two-names", [SAFE_AND_BIN])])
    assert present.state == "present"
    assert present.location == "vgem-test/two-names/pytorch_model.bin"


def test_openclip_releases_list_both_file_names():
    from vgem.backbones.openclip import OPENCLIP_B16

    (hub_file,) = OPENCLIP_B16.hub_files(None)
    assert hub_file.filename.endswith(".safetensors")
    assert [name.rsplit(".", 1)[-1] for name in hub_file.alternatives] == ["bin"]
