"""Where a run's samples come from: a dataset adapter, a manifest, or any samples at hand.

A :class:`SampleSource` reads its samples once, when first asked, so opening
one checks only what is cheap (the root is a folder, the adapter exists) and a
run that refuses its options never reads an annotation file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from vgem.errors import DatasetError
from vgem.eval.datasets.base import dataset_root
from vgem.eval.samples import ManifestProblem, Sample, VideoSample
from vgem.eval.selection import Selection, select_samples

Item = Sample | VideoSample | ManifestProblem


class SampleSource:
    """Samples (or whole-video samples) and the problems met reading them, with what a
    run records about where they came from.

    ``items``: the samples, or a function that reads them (called once, on first
    use). ``label`` names the runs made from them (the default run directory),
    ``root`` is the folder their videos are relative to. ``whole_videos`` says
    whether the items are :class:`VideoSample` objects (None: look at them).
    """

    def __init__(
        self,
        items: Iterable[Item] | Callable[[], Iterable[Item]],
        *,
        label: str,
        root: str | os.PathLike[str],
        dataset: str | None = None,
        manifest: str | os.PathLike[str] | None = None,
        whole_videos: bool | None = None,
    ) -> None:
        self._read = items if callable(items) else (lambda: items)
        self._items: list[Item] | None = None
        self.label = label
        self.root = Path(root).expanduser()
        self.dataset = dataset
        self.manifest = None if manifest is None else Path(manifest)
        self.whole_videos = whole_videos

    @property
    def items(self) -> list[Item]:
        if self._items is None:
            self._items = list(self._read())
        return self._items

    def select(self, *, limit: int | None = None, shuffle_seed: int | None = None) -> Selection:
        """The samples a run evaluates: all, or ``limit`` of them in (seeded) random order."""
        return select_samples(self.items, limit=limit, shuffle_seed=shuffle_seed)

    def holds_whole_videos(self) -> bool:
        if self.whole_videos is not None:
            return self.whole_videos
        return any(isinstance(item, VideoSample) for item in self.items)


def open_dataset(
    name: str, root: str | os.PathLike[str], *, whole_videos: bool = False
) -> SampleSource:
    """The samples of a ``vgem.datasets`` plugin (gyt, yc, daly, vhico) unpacked in ``root``.

    ``whole_videos``: read whole untrimmed videos (the spatiotemporal and
    temporal tasks) with the adapter's ``read_videos``, which not every
    dataset has.
    """
    adapter = dataset_adapter(name)
    folder = dataset_root(root).resolve()
    if not whole_videos:
        return SampleSource(lambda: adapter.read(folder), label=name, root=folder, dataset=name)
    if not callable(getattr(adapter, "read_videos", None)):
        raise DatasetError(
            f"The {name} dataset does not provide whole-video annotations "
            "(the spatiotemporal and temporal tasks need them; gyt does)."
        )
    return SampleSource(
        lambda: adapter.read_videos(folder),
        label=name,
        root=folder,
        dataset=name,
        whole_videos=True,
    )


def open_manifest(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> SampleSource:
    """The samples of a manifest file; videos are relative to ``root`` (default: its folder)."""
    from vgem.eval.manifest import read_manifest

    manifest_path = Path(path).expanduser().resolve()
    folder = dataset_root(root if root is not None else manifest_path.parent).resolve()
    return SampleSource(
        lambda: read_manifest(manifest_path, folder),
        label=manifest_path.stem,
        root=folder,
        manifest=manifest_path,
        whole_videos=False,
    )


def describe_dataset(name: str) -> list[str]:
    """What a dataset plugin needs, in words: its files, where they are published and go
    under the root, its videos, the counts a full read gives (its ``guide``)."""
    from vgem.eval.datasets.base import describe

    return describe(dataset_adapter(name))


def dataset_adapter(name: str) -> Any:
    """The adapter object of a ``vgem.datasets`` plugin."""
    from vgem import plugins

    create = getattr(plugins, "create", None)
    if create is not None:
        return create("vgem.datasets", name)
    adapter = plugins.load("vgem.datasets", name)
    return adapter() if isinstance(adapter, type) else adapter
