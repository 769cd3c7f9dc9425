"""Check vgem against the authors' released VideoGEM code, on random weights.

The authors' code (GitHub felixVogel02/VideoGEM) and InternVid's ViCLIP
(OpenGVLab/InternVideo, ``Data/InternVid``) need an old stack (open_clip 2.23,
whose transformer is sequence-first) and must never be installed beside vgem.
So this script runs in two interpreters:

* the *reference* phase runs in a throwaway environment that has torch,
  torchvision, ``open_clip_torch==2.23.0``, timm, einops, ftfy, regex and
  opencv. It builds random-weight models, saves their weights and inputs, and
  runs the authors' documented call, ``applyGEMPipeline(gem_model, frames,
  [label], mode=1, prompt_mode=1, stackWeightsAutoOne=True)`` on a GEMWrapper
  made by ``create_gem_model(gem_depth=7, ss_attn_iter=1, get_sims=True,
  stackWeights=False, stackWeightsAuto=False, img_attn_only=…)``;
* the *vgem* phase runs here, loads the same weights through vgem's own
  loaders, grounds the same pixels with ``Grounder.ground_pixels`` and
  compares.

Usage (from the repository root, vgem's environment active)::

    python -m venv /tmp/gemenv
    /tmp/gemenv/bin/pip install torch torchvision "open_clip_torch==2.23.0" \
        timm einops ftfy regex opencv-python
    python benchmarks/compare_videogem.py \
        --videogem-src /path/to/VideoGEM \
        --internvid-src /path/to/InternVideo/Data/InternVid \
        --reference-python /tmp/gemenv/bin/python

``--phase reference`` or ``--phase vgem`` runs one half alone (both take
``--work-dir``, where the weights, inputs and reference outputs live). The
exit code is non-zero when any heatmap differs by more than 1e-4 or any point
differs.

Rows: OpenCLIP-architecture ViT-B-16 at 448 px (the authors' CLIP branch,
``img_attn_only`` has no effect there) against vgem's ``joint`` attention, and
ViCLIP-B/16 and ViCLIP-L/14 with ``img_attn_only=4`` against vgem's
``released`` variant and ``img_attn_only=0`` against ``joint``.

What the reference phase leaves out of the authors' code, because it cannot
run outside their machines and does not touch the computation:
``application/testGEMViCLIP.py`` is not imported; only its functions
``frame2tensor_adapted`` and ``applyGEMPipeline`` are compiled from its source
(its module level loads spaCy, their data loaders and a JSON file under
``/data1``). Where the environment lacks them, ``pkg_resources`` (used by
InternVid's text tower only for a torch version check) is replaced by the
``packaging`` package and ``matplotlib`` by an empty module (used only by the
authors' ``visualize``), and a missing ``bpe_simple_vocab_16e6.txt.gz`` in
the ``viclip`` package is taken from open_clip (the same file).

Models are CLIP-style random initialisations, with biases and LayerNorm
affines also randomized so that every parameter matters; ViCLIP's tensors that
InternVid leaves uninitialised (``torch.empty``) are filled from the seed.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TOLERANCE = 1e-4
QUERY = "cut onion"
SEED = 0


@dataclass(frozen=True)
class Case:
    """One backbone: how each side builds it and what its inputs look like."""

    name: str
    family: str  # "clip" or "viclip"
    size: str  # InternVid's size letter ("b", "l") or the open_clip architecture
    vgem_config: str  # vgem's ViCLIP config name (unused for CLIP)
    input_size: int
    frames: int
    target: int


CASES = {
    "clip-b16": Case("clip-b16", "clip", "ViT-B-16", "", 448, 1, 0),
    "viclip-b16": Case("viclip-b16", "viclip", "b", "viclip-b16", 224, 8, 4),
    "viclip-l14": Case("viclip-l14", "viclip", "l", "viclip-l14", 224, 8, 4),
}
# vgem's video attention and the authors' img_attn_only that it must reproduce.
VARIANTS = {"released": 4, "joint": 0}


def rows_for(case_names: list[str]) -> list[tuple[Case, str]]:
    rows = []
    for name in case_names:
        case = CASES[name]
        variants = ["joint"] if case.family == "clip" else ["released", "joint"]
        rows.extend((case, variant) for variant in variants)
    return rows


def weights_path(work: Path, case: Case) -> Path:
    return work / (f"{case.name}.pt" if case.family == "clip" else f"{case.name}.pth")


def pixels_path(work: Path, case: Case) -> Path:
    return work / f"{case.name}-pixels.npy"


def reference_path(work: Path, case: Case, variant: str) -> Path:
    return work / f"{case.name}-{variant}-reference.npz"


# -- reference phase (the throwaway environment) -----------------------------


def _stub_missing_modules() -> list[str]:
    """Stand-ins for imports that only matter outside the computation."""
    stubbed = []
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        import packaging.version

        stand_in = types.ModuleType("pkg_resources")
        stand_in.packaging = packaging
        sys.modules["pkg_resources"] = stand_in
        stubbed.append("pkg_resources -> packaging")
    try:
        import matplotlib.pyplot
    except ImportError:
        matplotlib = types.ModuleType("matplotlib")
        matplotlib.pyplot = types.ModuleType("matplotlib.pyplot")
        sys.modules["matplotlib"] = matplotlib
        sys.modules["matplotlib.pyplot"] = matplotlib.pyplot
        stubbed.append("matplotlib (empty)")
    return stubbed


def _import_reference(videogem_src: Path, internvid_src: Path):
    """The authors' ``videogem`` package and their pipeline function."""
    import cv2
    import torch

    sys.path[:0] = [str(videogem_src), str(internvid_src)]
    stubbed = _stub_missing_modules()
    import viclip.simple_tokenizer as simple_tokenizer

    if not Path(simple_tokenizer.default_bpe()).exists():
        import open_clip

        vocabulary = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
        simple_tokenizer.SimpleTokenizer.__init__.__defaults__ = (str(vocabulary),)
        stubbed.append(f"BPE vocabulary from {vocabulary}")
    import videogem

    script = videogem_src / "application" / "testGEMViCLIP.py"
    tree = ast.parse(script.read_text(encoding="utf-8"), filename=str(script))
    wanted = {"frame2tensor_adapted", "applyGEMPipeline"}
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted]
    if {f.name for f in functions} != wanted:
        raise SystemExit(f"{script} lacks {sorted(wanted)}")
    namespace = {"torch": torch, "np": np, "cv2": cv2}
    exec(compile(ast.Module(body=functions, type_ignores=[]), str(script), "exec"), namespace)
    print(f"reference: stubbed {stubbed or 'nothing'}")
    return videogem, namespace["applyGEMPipeline"]


def _randomize_extras(model, generator) -> None:
    """Random biases and LayerNorm affines (CLIP inits leave them 0 and 1)."""
    import torch

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.normal_(1.0, 0.1, generator=generator)
                module.bias.normal_(0.0, 0.02, generator=generator)
        for name, parameter in model.named_parameters():
            if name.endswith("bias") and parameter.ndim == 1 and ".ln_" not in name:
                parameter.normal_(0.0, 0.02, generator=generator)


def _build_weights(case: Case, work: Path) -> None:
    """Seeded random weights and input, saved once per backbone."""
    import torch

    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED + 1)
    if case.family == "clip":
        import open_clip

        model = open_clip.create_model(case.size, pretrained=None)
        _randomize_extras(model, generator)
        torch.save(model.state_dict(), weights_path(work, case))
    else:
        from viclip.viclip import ViCLIP

        model = ViCLIP(size=case.size, pretrain=None)
        vision, text = model.vision_encoder, model.text_encoder
        with torch.no_grad():
            # InternVid creates these with torch.empty; give them CLIP's init.
            vision.proj.normal_(0.0, vision.proj.shape[0] ** -0.5, generator=generator)
            text.text_projection.normal_(
                0.0, text.text_projection.shape[0] ** -0.5, generator=generator
            )
            text.positional_embedding.normal_(0.0, 0.01, generator=generator)
            text.token_embedding.weight.normal_(0.0, 0.02, generator=generator)
            # Zero in InternVid's init; random so the frame order matters.
            vision.temporal_positional_embedding.normal_(0.0, 0.02, generator=generator)
        _randomize_extras(model, generator)
        torch.save({"model": model.state_dict()}, weights_path(work, case))
    shape = (1, case.frames, 3, case.input_size, case.input_size)
    pixels = torch.randn(shape, generator=torch.Generator().manual_seed(SEED + 2))
    np.save(pixels_path(work, case), pixels.numpy())


class _ImageModelAsVideo:
    """Lets applyGEMPipeline (written for ViCLIP's 5-D output) drive the CLIP
    branch: it feeds frame 0 to the GEMWrapper and adds the frame axis back."""

    def __init__(self, gem_model) -> None:
        self.gem_model = gem_model

    def __call__(self, clip, text, **options):
        heatmaps, label_probs = self.gem_model(clip[:, 0], text, **options)
        return heatmaps.unsqueeze(2), label_probs


def _reference_row(case: Case, variant: str, work: Path, videogem, pipeline) -> None:
    import torch

    gem_model = videogem.create_gem_model(
        model_name=case.size if case.family == "clip" else [case.family, case.size],
        pretrained=str(weights_path(work, case)),
        gem_depth=7,
        ss_attn_iter=1,
        get_sims=True,
        addBef=False,
        useStack=False,
        stackWeights=False,
        stackWeightsAuto=False,
        img_attn_only=VARIANTS[variant],
        device="cpu",
    )
    calls = []
    gem_model.register_forward_hook(
        lambda module, args, kwargs, output: calls.append((args, kwargs, output)),
        with_kwargs=True,
    )
    weights = []
    get_sim_list = gem_model.get_sim_list

    def recording_get_sim_list(*args, **kwargs):
        result = get_sim_list(*args, **kwargs)
        weights.append(result.detach().clone())
        return result

    gem_model.get_sim_list = recording_get_sim_list

    pixels = torch.from_numpy(np.load(pixels_path(work, case)))
    # applyGEMPipeline takes data-loader frames ([1, 3, S, S] each, BGR order)
    # and flips them back to RGB; flip here so the model sees `pixels` exactly.
    frames = [pixels[:, t].flip(1) for t in range(case.frames)]
    model = _ImageModelAsVideo(gem_model) if case.family == "clip" else gem_model
    final, _, _, prompt_points, _ = pipeline(
        model,
        frames,
        [QUERY],
        device="cpu",
        normalize=True,
        mainWeight=3,
        takeImg=case.target,
        singleFrameInput=False,
        mode=1,
        prompt_mode=1,
        stackWeightsAutoOne=True,
    )
    ((args, kwargs, output),) = calls
    fed = args[0]
    expected_input = pixels[:, 0] if case.family == "clip" else pixels
    if not torch.equal(fed, expected_input):
        raise SystemExit("the pipeline did not feed the model the saved pixels")
    heatmaps = output[0][0] if case.family == "clip" else output[0][0, :, case.target]
    dynamic = torch.stack(weights)
    with torch.no_grad():
        raw = gem_model(*args, **{**kwargs, "normalize": False})[0]
    raw = raw[0] if case.family == "clip" else raw[0, :, case.target]
    np.savez(
        reference_path(work, case, variant),
        heatmaps=heatmaps.numpy(),
        similarity=raw.numpy(),
        prompt_points=np.array(prompt_points, dtype=np.int64),
        point=np.array(final, dtype=np.int64),
        weights=dynamic.numpy(),
        texts=np.array(args[1]),
    )
    print(f"reference: {case.name} {variant} done")


def reference_phase(args) -> None:
    videogem, pipeline = _import_reference(args.videogem_src, args.internvid_src)
    for case, variant in rows_for(args.cases):
        if not weights_path(args.work_dir, case).exists():
            _build_weights(case, args.work_dir)
        _reference_row(case, variant, args.work_dir, videogem, pipeline)


# -- vgem phase (this environment) --------------------------------------------


@dataclass
class Row:
    case: Case
    variant: str
    heatmap_error: float
    similarity_error: float
    weight_error: float
    prompt_points_equal: bool
    point_equal: bool
    texts_equal: bool

    @property
    def ok(self) -> bool:
        return (
            self.heatmap_error <= TOLERANCE
            and self.prompt_points_equal
            and self.point_equal
            and self.texts_equal
        )


def _load_adapter(case: Case, work: Path):
    if case.family == "clip":
        from vgem.backbones.openclip import load_openclip

        return load_openclip(
            case.size, None, str(weights_path(work, case)), name=f"openclip:{case.size}"
        )
    from vgem.backbones.viclip.adapter import load_viclip

    return load_viclip(case.vgem_config, weights=str(weights_path(work, case)))


def _max_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    error = np.abs(ours.astype(np.float64) - theirs.astype(np.float64)).max()
    return float("nan") if not np.all(np.isfinite(theirs)) else float(error)


def _vgem_row(case: Case, variant: str, work: Path) -> Row:
    import torch

    from vgem.grounder import Grounder
    from vgem.heatmaps import upsample
    from vgem.weighting import layer_weights

    reference = np.load(reference_path(work, case, variant))
    grounder = Grounder(
        adapter=_load_adapter(case, work), extractor="label", device="cpu", video_attention=variant
    )
    pixels = torch.from_numpy(np.load(pixels_path(work, case)))
    grounding = grounder.ground_pixels(pixels, [QUERY])
    heatmaps = grounding.heatmaps[0, 0].numpy()
    similarity = upsample(grounding.similarity[0, 0], case.input_size).numpy()
    prompt_points = grounding.prompt_points[0, 0].tolist()
    point = list(grounding.points[0][0])

    prompts = grounder.prompts_for([QUERY])[0]
    texts = [prompts.verb_candidates[0], prompts.object_candidates[0], prompts.action]
    settings = grounder.settings
    gem_pass = grounder.forward(pixels)
    weights = layer_weights(
        settings.weighting,
        terms=gem_pass.terms.shape[0],
        removal_embeddings=gem_pass.removal_embeddings,
        text_embeddings=grounder.embed_texts(texts),
        static_weights=settings.static_weights,
        dynamic_layers=settings.dynamic_layers,
        dynamic_temperature=settings.dynamic_temperature,
    )[0].numpy()

    theirs_texts = [str(t) for t in reference["texts"]]
    print(f"\n== {case.name} / {variant} (img_attn_only={VARIANTS[variant]})")
    print(f"  prompts vgem    {texts}")
    print(f"  prompts authors {theirs_texts}")
    for role, ours, theirs in zip(
        ("verb", "object", "action"), weights, reference["weights"], strict=True
    ):
        print(f"  weights {role:6s} vgem    {np.array2string(ours, precision=6)}")
        print(f"  weights {role:6s} authors {np.array2string(theirs, precision=6)}")
    print(f"  prompt points vgem {prompt_points} authors {reference['prompt_points'].tolist()}")
    print(f"  final point   vgem {point} authors {reference['point'].tolist()}")
    return Row(
        case=case,
        variant=variant,
        heatmap_error=_max_error(heatmaps, reference["heatmaps"]),
        similarity_error=_max_error(similarity, reference["similarity"]),
        weight_error=_max_error(weights, reference["weights"]),
        prompt_points_equal=prompt_points == reference["prompt_points"].tolist(),
        point_equal=point == reference["point"].tolist(),
        texts_equal=texts == theirs_texts,
    )


def vgem_phase(args) -> int:
    rows = [_vgem_row(case, variant, args.work_dir) for case, variant in rows_for(args.cases)]
    header = (
        f"{'backbone':<11} {'variant':<9} {'max|Δheatmap|':>13} {'max|Δsim|':>10} "
        f"{'max|Δweight|':>12} {'prompt pts':>10} {'final pt':>8}  result"
    )
    print(f"\n{header}\n{'-' * len(header)}")
    for row in rows:
        print(
            f"{row.case.name:<11} {row.variant:<9} {row.heatmap_error:>13.3g} "
            f"{row.similarity_error:>10.3g} {row.weight_error:>12.3g} "
            f"{'equal' if row.prompt_points_equal else 'DIFFER':>10} "
            f"{'equal' if row.point_equal else 'DIFFER':>8}  "
            f"{'OK' if row.ok else 'MISMATCH'}{'' if row.texts_equal else ' (prompts differ)'}"
        )
    ok = all(row.ok for row in rows)
    print(f"\n{'ALL OK' if ok else 'MISMATCH'} (heatmap tolerance {TOLERANCE:g})")
    return 0 if ok else 1


# -- driver --------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videogem-src", type=Path, help="checkout of felixVogel02/VideoGEM")
    parser.add_argument(
        "--internvid-src", type=Path, help="InternVideo's Data/InternVid (holds viclip/)"
    )
    parser.add_argument(
        "--reference-python", help="interpreter of the throwaway environment (phase all)"
    )
    parser.add_argument("--phase", choices=("all", "reference", "vgem"), default="all")
    parser.add_argument("--work-dir", type=Path, help="weights, inputs and reference outputs")
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        type=lambda text: [name for name in text.split(",") if name],
        help=f"comma-separated subset of {', '.join(CASES)}",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases: {', '.join(unknown)}")
    if args.phase in ("all", "reference") and not (args.videogem_src and args.internvid_src):
        parser.error("--videogem-src and --internvid-src are needed to run the reference")
    if args.phase == "all" and not args.reference_python:
        parser.error("--reference-python is needed with --phase all")
    if args.work_dir is None:
        if args.phase != "all":
            parser.error("--work-dir is needed to run one phase alone")
        args.work_dir = Path(tempfile.mkdtemp(prefix="compare_videogem_"))
    args.work_dir.mkdir(parents=True, exist_ok=True)

    if args.phase == "reference":
        reference_phase(args)
        return 0
    if args.phase == "all":
        command = [
            args.reference_python,
            str(Path(__file__).resolve()),
            "--phase=reference",
            f"--videogem-src={args.videogem_src.resolve()}",
            f"--internvid-src={args.internvid_src.resolve()}",
            f"--work-dir={args.work_dir.resolve()}",
            f"--cases={','.join(args.cases)}",
        ]
        print(f"running the reference in {args.reference_python} (work dir {args.work_dir})")
        completed = subprocess.run(command, check=False)
        if completed.returncode:
            print(f"reference phase failed with exit code {completed.returncode}")
            return 2
    return vgem_phase(args)


if __name__ == "__main__":
    sys.exit(main())
