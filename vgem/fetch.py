"""Putting what a configuration needs on disk ahead of time, and checking it offline.

``vgem ground`` never downloads stanza's models, and on a machine without
network it cannot download backbone weights either, so both must be fetched
beforehand where there is network. This module says what a configuration
needs (backbone weights in the Hugging Face cache, stanza's English models in
vgem's cache), which of it is on disk without touching the network, and
downloads what is missing.

Which stanza files are needed is worked out by stanza's own resolution
functions from its ``resources.json``, the ones its ``Pipeline`` calls, so
"present" here means the extractor's pipeline will find its files.

Heavy imports (stanza, and torch behind it) happen only when stanza's part of
a configuration is looked at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from vgem.backbones.base import HubFile
from vgem.errors import WeightsError
from vgem.extractors.stanza import LANGUAGE, PROCESSORS

State = Literal["present", "missing", "nothing to fetch"]

BACKBONE_KIND = "backbone weights"
STANZA_INDEX_KIND = "stanza index"
STANZA_MODEL_KIND = "stanza model"
PACKAGE_KIND = "python package"

RESOURCES_FILE = "resources.json"
NLP_INSTALL_HINT = "install it with `pip install 'vgem[nlp]'`"
UNREACHABLE_HINT = (
    "try again where there is network, or copy a Hugging Face cache that holds it from "
    "another machine and point HF_HOME at it"
)


@dataclass(frozen=True)
class Requirement:
    """One thing a configuration needs on disk (a file, or stanza itself), and whether it is there.

    ``location`` is relative to its store (the Hugging Face cache or the
    stanza model folder, see :class:`Plan`), which keeps the table readable.
    ``settings``: the setting names ``note`` mentions (as in
    :attr:`vgem.errors.VgemError.settings`).
    """

    item: str
    kind: str
    location: str
    state: State
    note: str = ""
    settings: tuple[str, ...] = ()

    @property
    def missing(self) -> bool:
        return self.state == "missing"


@dataclass(frozen=True)
class Plan:
    """What one ``vgem fetch`` covers: backbones with their hub files, and stanza's models.

    ``stanza_dir`` is None when stanza's models are not part of the plan, or
    when stanza (needed to know its default folder) is not installed.
    """

    backbones: tuple[tuple[str, tuple[HubFile, ...]], ...]
    nlp: bool
    stanza_dir: Path | None

    @property
    def hub_files(self) -> list[tuple[str, HubFile]]:
        return [(name, hub_file) for name, files in self.backbones for hub_file in files]


def make_plan(
    backbones: Sequence[str] = (), nlp: bool = False, *, cache_dir: str | Path | None = None
) -> Plan:
    """The plan for the named backbones and/or stanza's models.

    Asking for neither means the default configuration of ``vgem ground``:
    the default backbone and stanza's models, which its default ``auto``
    extractor uses for sentences. Unknown backbones fail here, before anything
    is downloaded. ``cache_dir``: vgem's model cache, whose ``stanza``
    folder receives stanza's models (default: see :func:`stanza_model_dir`).
    """
    from vgem.backbones import DEFAULT_BACKBONE, backbone_spec

    if not backbones and not nlp:
        backbones, nlp = (DEFAULT_BACKBONE,), True
    resolved = []
    for name in dict.fromkeys(backbones):
        spec, variant = backbone_spec(name)
        resolved.append((name, tuple(spec.hub_files(variant))))
    return Plan(tuple(resolved), nlp, stanza_model_dir(cache_dir) if nlp else None)


def stanza_model_dir(cache_dir: str | Path | None = None) -> Path | None:
    """Where the stanza extractor will look: ``cache_dir``'s (else VGEM_CACHE's)
    ``stanza`` folder, else stanza's default folder.

    None when neither names a cache and stanza is not installed, since only
    stanza knows its default folder.
    """
    from vgem.extractors.stanza import resolve_model_dir

    chosen = resolve_model_dir(cache_dir=cache_dir)
    if chosen is not None:
        return chosen
    try:
        from stanza.resources.common import DEFAULT_MODEL_DIR
    except ImportError:
        return None
    return Path(DEFAULT_MODEL_DIR)


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache in use (HF_HOME / HF_HUB_CACHE respected)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


# --------------------------------------------------------------------------- checking


def check(plan: Plan) -> list[Requirement]:
    """Every file ``plan`` needs and whether it is on disk; never uses the network."""
    rows = check_backbones(plan.backbones)
    if plan.nlp:
        rows += check_stanza(plan.stanza_dir)
    return rows


def check_backbones(
    backbones: Sequence[tuple[str, Sequence[HubFile]]],
) -> list[Requirement]:
    """Which backbone weight files the hub cache holds, looked up on disk only."""
    from vgem.checkpoints import is_cached

    rows = []
    for name, hub_files in backbones:
        if not hub_files:
            rows.append(
                Requirement(
                    name,
                    BACKBONE_KIND,
                    "-",
                    "nothing to fetch",
                    "no hub release: ground it with `weights` set to a local file",
                    settings=("weights",),
                )
            )
        for hub_file in hub_files:
            cached = next(
                (name for name in hub_file.candidates if is_cached(hub_file.repo_id, name)), None
            )
            present = cached is not None
            shown = cached or hub_file.filename
            note = ""
            if hub_file.gated and not present:
                note = (
                    f"gated: accept its terms at https://huggingface.co/{hub_file.repo_id} "
                    "and log in (`hf auth login`) before fetching"
                )
            rows.append(
                Requirement(
                    name,
                    BACKBONE_KIND,
                    f"{hub_file.repo_id}/{shown}",
                    "present" if present else "missing",
                    note,
                )
            )
    return rows


def check_stanza(model_dir: Path | None) -> list[Requirement]:
    """Whether ``model_dir`` holds stanza's index and every English model file it lists."""
    if model_dir is None or not stanza_installed():
        return [Requirement("stanza", PACKAGE_KIND, "-", "missing", NLP_INSTALL_HINT)]
    index = Requirement(RESOURCES_FILE, STANZA_INDEX_KIND, RESOURCES_FILE, "present")
    if not (model_dir / RESOURCES_FILE).is_file():
        return [
            replace(index, state="missing"),
            Requirement(
                "English models",
                STANZA_MODEL_KIND,
                f"{LANGUAGE}/…",
                "missing",
                f"the exact files are listed in {RESOURCES_FILE}",
            ),
        ]
    try:
        files = stanza_model_files(model_dir)
    except UnreadableIndex as error:
        return [replace(index, state="missing", note=f"{error}; fetch it again")]
    rows = [index]
    for processor, package, path in files:
        present = path.is_file() and path.stat().st_size > 0
        rows.append(
            Requirement(
                f"{processor}: {package}",
                STANZA_MODEL_KIND,
                path.relative_to(model_dir).as_posix(),
                "present" if present else "missing",
            )
        )
    return rows


def stanza_installed() -> bool:
    """Whether stanza can be imported, found without importing it (and torch)."""
    from importlib.util import find_spec

    return find_spec("stanza") is not None


class UnreadableIndex(WeightsError):
    """stanza's resources.json is damaged or does not describe the English models."""


def stanza_model_files(model_dir: Path) -> list[tuple[str, str, Path]]:
    """(processor, package, path) of every model file the English pipeline loads.

    Resolved with the functions stanza's ``Pipeline`` and ``download`` use
    (default package, the ``mwt`` that English tokenization implies, pretrain
    and charlm dependencies). Processors come in pipeline order, then the
    dependencies sorted by name, because stanza keeps those in a set.
    """
    from stanza.resources.common import (
        add_dependencies,
        flatten_processor_list,
        load_resources_json,
        logging_level_context,
        maintain_processor_list,
        process_pipeline_parameters,
    )

    index_path = model_dir / RESOURCES_FILE
    language, _, package, processors = process_pipeline_parameters(
        LANGUAGE, str(model_dir), "default", PROCESSORS
    )
    try:
        resources = load_resources_json(str(model_dir))
        language = resources[language].get("alias", language)
        with logging_level_context("ERROR", None):  # stanza's notes on mwt are not for users
            load_list = maintain_processor_list(
                resources, language, package, processors, allow_pretrain=True
            )
        load_list = add_dependencies(resources, language, load_list)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UnreadableIndex(
            f"{index_path} is damaged or lists no English models ({type(error).__name__}: {error})"
        ) from error
    requested = [processor for processor, _ in load_list]
    files = flatten_processor_list(load_list)
    files.sort(key=lambda pair: (_rank(requested, pair[0]), pair[0], pair[1]))
    return [
        (processor, package, model_dir / language / processor / f"{package}.pt")
        for processor, package in files
    ]


def _rank(requested: list[str], processor: str) -> int:
    return requested.index(processor) if processor in requested else len(requested)


# --------------------------------------------------------------------------- downloading

Report = Callable[[str], None]


def download(plan: Plan, *, verbose: bool = False, report: Report = lambda line: None) -> None:
    """Download everything ``plan`` needs that the network can give.

    With HF_HUB_OFFLINE set nothing is downloaded (stanza's models live on the
    hub too): that is fine when everything is already here, and one clear
    refusal otherwise.
    """
    from vgem.checkpoints import hub_offline

    if hub_offline():
        missing = [row for row in check(plan) if row.missing]
        if missing:
            raise WeightsError(
                f"HF_HUB_OFFLINE is set: unset it to download ({_count(missing)} missing; "
                "`check` lists them).",
                settings=["check"],
            )
        return
    if plan.nlp and (plan.stanza_dir is None or not stanza_installed()):
        from vgem.extractors.stanza import NlpUnavailable

        raise NlpUnavailable(
            f"Fetching stanza's models needs the stanza package; {NLP_INSTALL_HINT}."
        )
    download_backbones(plan, report)
    if plan.nlp and plan.stanza_dir is not None:
        download_stanza(plan.stanza_dir, verbose=verbose, report=report)


def download_backbones(plan: Plan, report: Report) -> None:
    """Backbone weights into the Hugging Face cache; one WeightsError line on failure."""
    from vgem.checkpoints import hub_download_first

    for name, hub_file in plan.hub_files:
        report(f"fetching {name}: {hub_file.repo_id}/{hub_file.filename}")
        hub_download_first(
            hub_file.repo_id, hub_file.candidates, what=name, fetch_hint=UNREACHABLE_HINT
        )


def download_stanza(model_dir: Path, *, verbose: bool, report: Report) -> None:
    """stanza's English models into ``model_dir``, the folder the extractor reads.

    stanza re-downloads its index and skips model files whose checksum
    already matches, so fetching again updates rather than duplicates.
    """
    import requests
    import stanza
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    from vgem.extractors.stanza import forget_pipelines

    report(f"fetching stanza's English models ({PROCESSORS}) into {model_dir}")
    try:
        stanza.download(
            LANGUAGE,
            model_dir=str(model_dir),
            processors=PROCESSORS,
            logging_level="INFO" if verbose else "ERROR",
        )
    except (requests.ConnectionError, requests.Timeout, LocalEntryNotFoundError) as error:
        raise WeightsError(
            f"stanza's English models could not be downloaded into {model_dir}: the network "
            f"cannot be reached ({type(error).__name__}); try again where there is network, "
            "or copy that folder from a machine that has it."
        ) from error
    except (requests.RequestException, HfHubHTTPError, OSError, ValueError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise WeightsError(
            f"Downloading stanza's English models into {model_dir} failed: {reason}"
        ) from error
    forget_pipelines()  # a pipeline that failed to load earlier in this process may now work


def _count(rows: Sequence[Requirement]) -> str:
    return f"{len(rows)} item{'' if len(rows) == 1 else 's'}"
