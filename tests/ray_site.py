"""Fixtures for the tests that run vgem on Ray (registered in tests/conftest.py).

The test backbones are installed once per test module in a site folder that
the test process and Ray's workers both see (the workers through
PYTHONPATH), the way a user's cluster finds an installed plugin. The planted
backbone dies on request: with a marker file in the folder named by
VGEM_TEST_DEATHS (set for the Ray workers only), a worker process ends itself
with ``os._exit`` in the middle of a video, like a process killed by the OOM
killer; with a "slow" marker it takes its time, so that a run can be stopped
half way.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import PluginSite

REPOSITORY = Path(__file__).resolve().parents[1]
DEATHS_VARIABLE = "VGEM_TEST_DEATHS"

TEST_BACKBONES = {
    "vgem_ray_test_backbones": """
        import os
        import time
        from pathlib import Path

        from tests.eval.test_spatiotemporal import PointingColourAdapter
        from tests.planted import PlantedAdapter
        from vgem.backbones.base import BackboneSpec

        CLIPS = 0


        def maybe_die():
            '''End this process when a marker file asks for it: "once" (on its second
            clip, the first worker to get there) or "always" (on every clip); with
            "slow", take its seconds (a third of one if empty) per clip first.'''
            global CLIPS
            CLIPS += 1
            folder = os.environ.get("VGEM_TEST_DEATHS")
            if not folder:
                return
            slow = Path(folder) / "slow"
            if slow.exists():
                time.sleep(float(slow.read_text() or 0.3))
            if (Path(folder) / "always").exists():
                os._exit(1)
            if CLIPS == 2 and (Path(folder) / "once").exists():
                try:
                    os.close(os.open(Path(folder) / "died", os.O_CREAT | os.O_EXCL))
                except FileExistsError:
                    return
                os._exit(1)


        class MortalPlantedAdapter(PlantedAdapter):
            def embed(self, clip):
                maybe_die()
                return super().embed(clip)


        PLANTED = BackboneSpec(
            summary="planted heatmaps; dies on request (tests)",
            load=lambda variant, weights: MortalPlantedAdapter(),
        )
        COLOURS = BackboneSpec(
            summary="colour-planted relevance and points (tests)",
            load=lambda variant, weights: PointingColourAdapter(),
        )
    """
}


@pytest.fixture(scope="module")
def backbone_site(tmp_path_factory):
    """The test backbones, installed in a site folder on this process's path."""
    root = tmp_path_factory.mktemp("site")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(root))
        PluginSite(root).install(
            "vgem-ray-test-backbones",
            {
                "vgem.backbones": {
                    "planted": "vgem_ray_test_backbones:PLANTED",
                    "colours": "vgem_ray_test_backbones:COLOURS",
                }
            },
            TEST_BACKBONES,
        )
        yield root
    from vgem import plugins

    sys.modules.pop("vgem_ray_test_backbones", None)
    plugins.refresh()


@pytest.fixture(scope="module")
def ray_instance(backbone_site, tmp_path_factory):
    """A small local Ray instance whose workers see the test backbones: those of this
    process's jobs, and those of a driver that joins it by address (its raylet, and
    so every worker, starts with the site on its PYTHONPATH)."""
    ray = pytest.importorskip("ray")
    deaths = tmp_path_factory.mktemp("deaths")
    variables = {
        "PYTHONPATH": os.pathsep.join([str(backbone_site), str(REPOSITORY)]),
        DEATHS_VARIABLE: str(deaths),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in variables.items():
            patch.setenv(name, value)
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=80 * 1024**2,
            logging_level=logging.WARNING,
            runtime_env={"env_vars": variables},
        )
    yield SimpleNamespace(ray=ray, deaths=deaths)
    ray.shutdown()


@pytest.fixture
def deaths(ray_instance):
    """The folder of death markers, emptied after the test."""
    yield ray_instance.deaths
    for marker in ray_instance.deaths.iterdir():
        marker.unlink()
