"""The Grounder: video + queries in, points in original-video pixels out.

It ties the stages together and owns nothing they compute: clips come from
vgem.video, the visual pass from vgem.gem, layer weights from
vgem.weighting, heatmaps and points from vgem.heatmaps, the final point from
an aggregator plugin. Each batch of clips gets exactly one visual pass, and
every prompt of every query is read off it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from vgem.errors import InputError
from vgem.precision import (
    autocast_factory,
    prepare_blocks,
    refuse_lowered,
    resolve_device,
    resolve_precision,
    slow_precision_warning,
)
from vgem.prompts import PROMPT_ROLES, QueryPrompts, build_prompts
from vgem.results import (
    CandidateScore,
    GroundedTime,
    GroundingResult,
    QueryResult,
)
from vgem.settings import Settings

if TYPE_CHECKING:
    import torch

    from vgem.backbones.base import BackboneAdapter
    from vgem.gem import GemPass
    from vgem.temporal.segments import TemporalSettings, Timeline
    from vgem.video import VideoInfo

Progress = Callable[[int, int], None]
OnGrounded = Callable[[int, "list[GroundedTime]", np.ndarray], None]


@dataclass
class PixelGrounding:
    """Model-space results for a batch of clips and Q queries.

    ``similarity`` ``[B, Q, 3, h, w]`` raw cosine maps; ``heatmaps``
    ``[B, Q, 3, S, S]`` upsampled and min-max normalized; ``prompt_points``
    ``[B, Q, 3, 2]`` their arg-max (x, y); ``points`` the final (x, y) per
    clip and query; ``scores`` ``[B, Q]`` clip-embedding cosine with the action
    prompt; ``clip_embeddings`` ``[B, D]`` the normalized original-path clip
    embeddings. Roles are ordered verb, object, action.
    """

    similarity: torch.Tensor
    heatmaps: torch.Tensor
    prompt_points: torch.Tensor
    points: list[list[tuple[int, int]]]
    scores: torch.Tensor
    chosen_rows: torch.Tensor
    clip_text_cosine: torch.Tensor
    clip_embeddings: torch.Tensor


@dataclass
class _ClipBatch:
    positions: list[int]
    pixels: torch.Tensor


@dataclass
class _PromptTable:
    """All prompt texts of a run, embedded once, and where each query's live."""

    texts: list[str]
    embeddings: torch.Tensor
    verb_rows: list[list[int]]
    object_rows: list[list[int]]
    action_rows: list[int]


class Grounder:
    """Ground action queries in videos with VideoGEM.

    ``backbone`` names a ``vgem.backbones`` plugin (``clip-b16``,
    ``openclip:ARCH@TAG``, …) loaded from ``weights`` or the hub cache;
    ``adapter`` passes an already-built backbone instead. ``settings`` is a
    :class:`vgem.settings.Settings`; keyword ``options`` (its field names,
    e.g. ``depth=5``) change single settings on top of it. What the user left
    unset takes the backbone plugin's declared defaults, then the method's.
    ``nlp_dir`` is vgem's model cache (the folder ``vgem fetch`` fills), where
    the stanza extractor finds its models; by default ``VGEM_CACHE``.

    Plugins are built before the backbone, so an unknown extractor or
    aggregator fails before a large model is loaded.

    With ``precision`` bf16 (or fp16) the backbone's block weights are lowered
    to 16 bits once, in place (see :mod:`vgem.precision`): the maps are those
    of autocast, the block weights take half the memory, and an ``adapter`` handed in
    serves reduced precision from then on (an fp32 Grounder refuses it).
    """

    def __init__(
        self,
        backbone: str | None = None,
        weights: str | None = None,
        *,
        settings: Settings | None = None,
        adapter: BackboneAdapter | None = None,
        nlp_dir: str | Path | None = None,
        **options: Any,
    ) -> None:
        from vgem import plugins
        from vgem.backbones import DEFAULT_BACKBONE, backbone_spec

        chosen = settings if settings is not None else Settings()
        if options:
            Settings.from_options(**options)  # refuses names that are not settings
            chosen = chosen.replace(**options)
        defaults: Mapping[str, Any] = {}
        if adapter is None:
            spec, variant = backbone_spec(backbone or DEFAULT_BACKBONE)
            defaults = spec.defaults
            if weights is not None:
                from vgem.checkpoints import local_checkpoint

                local_checkpoint(weights)  # a missing file fails before any model is built
        self.extractor = plugins.create("vgem.extractors", chosen.extractor, cache_dir=nlp_dir)
        self.aggregator = plugins.create("vgem.aggregators", chosen.aggregator)
        self.device = resolve_device(chosen.device)
        if chosen.precision == "auto":
            chosen = chosen.replace(precision=resolve_precision("auto", self.device))
        self._autocast = autocast_factory(self.device, chosen.precision)
        slow = slow_precision_warning(chosen.precision, self.device)
        #: Said beside every query's own warnings in the JSON (the CLI says them on stderr).
        self.warnings: list[str] = [slow] if slow else []
        if adapter is None:
            adapter = spec.load(variant, weights)
        self.adapter = adapter
        self.settings = chosen.for_adapter(self.adapter, defaults)
        self.adapter.to(self.device)
        self.adapter.module.eval()
        self._block_weights = prepare_blocks(self.adapter.blocks, chosen.precision)
        self._text_cache: dict[str, torch.Tensor] = {}

    @property
    def input_size(self) -> int:
        """The side S of the square model input, in pixels."""
        return self.adapter.preprocessing.input_size

    @property
    def effective_settings(self) -> dict[str, Any]:
        """The settings with 'auto' choices resolved, as recorded in results."""
        recorded = self.settings.to_dict()
        recorded["device"] = str(self.device)
        return recorded

    # -- prompts ---------------------------------------------------------------

    def prompts_for(self, queries: Sequence[str]) -> list[QueryPrompts]:
        """Extract and template each query's prompts (no model work)."""
        if isinstance(queries, str):
            queries = [queries]
        if not queries:
            raise InputError("Give at least one query, e.g. 'cut onion'.")
        built = []
        for query in queries:
            if not isinstance(query, str) or not query.strip():
                raise InputError("A query is empty; give the action to find, e.g. 'cut onion'.")
            extraction = self.extractor.extract(query)
            built.append(build_prompts(query, extraction, self.settings.templates))
        return built

    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Normalized text embeddings ``[P, D]``, each prompt encoded once per Grounder."""
        import torch
        import torch.nn.functional as F

        missing = [text for text in dict.fromkeys(texts) if text not in self._text_cache]
        if missing:
            # fp32 at every precision (see vgem.precision.full_precision): once per prompt
            with torch.inference_mode():
                encoded = self.adapter.encode_text(missing).float()
            for text, embedding in zip(missing, F.normalize(encoded, dim=-1), strict=True):
                self._text_cache[text] = embedding
        return torch.stack([self._text_cache[text] for text in texts])

    def _prompt_table(self, prompts: list[QueryPrompts]) -> _PromptTable:
        texts: list[str] = []
        row_of: dict[str, int] = {}

        def row(text: str) -> int:
            if text not in row_of:
                row_of[text] = len(texts)
                texts.append(text)
            return row_of[text]

        verb_rows = [[row(text) for text in query.verb_candidates] for query in prompts]
        object_rows = [[row(text) for text in query.object_candidates] for query in prompts]
        action_rows = [row(query.action) for query in prompts]
        return _PromptTable(texts, self.embed_texts(texts), verb_rows, object_rows, action_rows)

    def _truncation_warnings(self, query: QueryPrompts) -> list[str]:
        limit = self.adapter.context_length
        return [
            f"prompt truncated to {limit} tokens: {text!r}"
            for text in query.texts
            if self.adapter.count_tokens(text) > limit
        ]

    # -- grounding ---------------------------------------------------------------

    def ground(
        self,
        video: str | Path | VideoInfo,
        queries: str | Sequence[str],
        *,
        fps: float | None = None,
        at: Sequence[float] | None = None,
        every_frame: bool = False,
        source_fps: float = 1.0,
        progress: Progress | None = None,
        temporal: TemporalSettings | None = None,
        on_grounded: OnGrounded | None = None,
        box_threshold: float | None = None,
        smooth: float | None = None,
        masks: bool = False,
    ) -> GroundingResult:
        """Where each query happens at each grounded time of ``video``.

        ``video``: a file, a frame folder, or an already probed ``VideoInfo``.
        Grounded times: ``at`` (seconds), every frame, or ``fps`` per second
        (default 1). ``source_fps`` is the frame rate of a frame folder.
        ``progress(done, total)`` is called as clips are grounded.
        ``temporal`` also says when each query happens: a label per grounded
        time and segments (untrimmed videos). ``on_grounded(position, entries,
        similarity)`` hands over each grounded time as soon as it is done — its
        entries per query and its raw maps ``[queries, 3, h, w]`` — so a caller
        can save work before the whole video is through.

        Each entry also has the ``box`` of the query's region around its point
        (:mod:`vgem.regions`; ``box_threshold``: the fraction of the heatmap's
        maximum it keeps, 0.5 by default); ``masks`` keeps the regions
        themselves (``result.masks``). ``smooth`` (seconds): each query's maps
        are averaged over the neighbouring grounded times (:func:`smooth_maps`)
        before its points and boxes are taken, for steadier tracks; the raw maps
        (``similarity``) stay as they were, and ``on_grounded`` is then called
        once every time is smoothed.

        Work never grows past the video's frames: an ``fps`` above the video's
        frame rate grounds every frame once (see ``grounded_times``), and
        times whose clips show exactly the same frames (several times within
        one frame) share one visual pass; both are said in ``warnings``.
        """
        from vgem import plugins
        from vgem import video as video_io
        from vgem.regions import DEFAULT_REGION_THRESHOLD

        threshold = _region_threshold(box_threshold)
        smoothing = _smoothing(smooth)
        prompts = self.prompts_for([queries] if isinstance(queries, str) else list(queries))
        info = (
            video
            if isinstance(video, video_io.VideoInfo)
            else video_io.probe_video(video, source_fps=source_fps)
        )
        times = video_io.grounded_times(
            info, fps=fps, at=list(at) if at is not None else None, every_frame=every_frame
        )
        sampling_warnings = [*getattr(at, "warnings", ()), *times.warnings]
        # Times whose clips show the same frames give the same answer: ground each clip once.
        distinct_times, copies = self._distinct_clips(info, times)
        if len(distinct_times) < len(times):
            sampling_warnings.append(
                f"{len(times) - len(distinct_times)} of the {len(times)} grounded times show "
                "the same frames as another; each distinct clip was grounded once"
            )
        # The temporal scorer is built first: an unknown one fails before the video is read.
        scorer = None if temporal is None else plugins.create("vgem.temporal", temporal.scorer)
        table = self._prompt_table(prompts)
        per_query: list[list[GroundedTime | None]] = [[None] * len(times) for _ in prompts]
        grid = self.adapter.token_layout().grid
        similarity = np.zeros((len(times), len(prompts), len(PROMPT_ROLES), *grid), np.float32)
        clip_embeddings = np.zeros((len(times), table.embeddings.shape[-1]), np.float32)
        size = self.adapter.preprocessing.input_size
        packed = None
        if masks:
            packed = np.zeros((len(times), len(prompts), (size * size + 7) // 8), np.uint8)
        done = 0
        if progress:
            progress(0, len(times))
        for batch in self._batches(info, distinct_times):
            grounded, maps, embeddings, regions = self._ground_batch(
                batch, info, distinct_times, prompts, table, threshold
            )
            for slot, distinct_position in enumerate(batch.positions):
                if packed is not None:  # one packing serves every copy of the clip
                    packed[list(copies[distinct_position])] = _packed(regions[slot])
                for position in copies[distinct_position]:
                    entries = [
                        replace(entry, time=float(times[position])) for entry in grounded[slot]
                    ]
                    similarity[position] = maps[slot]
                    clip_embeddings[position] = embeddings[slot].numpy()
                    for query_index, entry in enumerate(entries):
                        per_query[query_index][position] = entry
                    if on_grounded is not None and not smoothing:
                        on_grounded(position, entries, similarity[position])
                    done += 1
            if progress:
                progress(done, len(times))
        if smoothing:
            self._smoothed(info, times, similarity, per_query, packed, threshold, smoothing)
            if on_grounded is not None:
                for position in range(len(times)):
                    entries = [cast("GroundedTime", query[position]) for query in per_query]
                    on_grounded(position, entries, similarity[position])
        recorded = self.effective_settings
        if threshold != DEFAULT_REGION_THRESHOLD:
            recorded["box_threshold"] = threshold
        if smoothing:
            recorded["smooth"] = smoothing
        timeline = self._timeline(temporal, scorer, times, clip_embeddings, prompts, table)
        return GroundingResult(
            video=info,
            backbone=self.adapter.name,
            weights=self.adapter.weights_source,
            input_size=self.adapter.preprocessing.input_size,
            settings=recorded,
            queries=[
                QueryResult(
                    query=query.query,
                    prompts=_chosen_prompts(query, entries),
                    extractor=query.extraction.extractor,
                    # iter_clips yields every time (past_end="error"), so none is left None
                    times=cast("list[GroundedTime]", list(entries)),
                    verb_candidates=list(query.verb_candidates),
                    object_candidates=list(query.object_candidates),
                    warnings=[
                        *self.warnings,
                        *query.extraction.warnings,
                        *self._truncation_warnings(query),
                        *sampling_warnings,
                        *_contrast_warnings(timeline, position),
                    ],
                )
                for position, (query, entries) in enumerate(zip(prompts, per_query, strict=True))
            ],
            times=np.asarray(times, dtype=np.float64),
            frames=np.asarray([video_io.frame_index_at(info, t) for t in times], dtype=np.int64),
            similarity=similarity,
            clip_embeddings=clip_embeddings,
            timeline=timeline,
            masks=packed,
        )

    def _timeline(self, temporal, scorer, times, clip_embeddings, prompts, table):
        """When each query happens (``temporal`` settings, ``scorer`` built from them),
        from the clip embeddings."""
        if temporal is None:
            return None
        import torch

        from vgem.temporal.segments import localize

        embeddings = {"action": table.embeddings[table.action_rows]}
        extra = [scorer.prompts(query.extraction.action) for query in prompts]
        for role in sorted({role for roles in extra for role in roles}):
            embeddings[role] = self.embed_texts([roles[role] for roles in extra])
        scores = scorer.score(torch.from_numpy(clip_embeddings), embeddings)

        def as_array(values):
            return None if values is None else values.float().numpy()

        return localize(
            np.asarray(times),
            as_array(scores.relevance),
            [query.query for query in prompts],
            temporal,
            start_scores=as_array(scores.start),
            end_scores=as_array(scores.end),
        )

    def _distinct_clips(
        self, info: VideoInfo, times: list[float]
    ) -> tuple[list[float], list[list[int]]]:
        """The times whose clips differ (the first of each), and for each the positions
        in ``times`` whose clips show exactly its frames."""
        from vgem import video as video_io

        preprocessing = self.adapter.preprocessing
        first_with_clip: dict[tuple[int, ...], int] = {}
        distinct_times: list[float] = []
        copies: list[list[int]] = []
        for position, time in enumerate(times):
            clip = tuple(
                video_io.clip_frame_indices(
                    info,
                    time,
                    frames_per_clip=preprocessing.frames_per_clip,
                    target_index=preprocessing.target_index,
                    step=self.settings.clip_step,
                    image_mode=self.settings.image_mode,
                )
            )
            distinct_position = first_with_clip.setdefault(clip, len(distinct_times))
            if distinct_position == len(distinct_times):
                distinct_times.append(time)
                copies.append([])
            copies[distinct_position].append(position)
        return distinct_times, copies

    def _batches(self, info, times: list[float]):
        """Clips of ``batch_size`` grounded times, decoded at model resolution."""
        import torch

        from vgem import video as video_io

        preprocessing = self.adapter.preprocessing
        size = preprocessing.input_size
        clips = video_io.iter_clips(
            info,
            times,
            size=(size, size),
            frames_per_clip=preprocessing.frames_per_clip,
            target_index=preprocessing.target_index,
            step=self.settings.clip_step,
            image_mode=self.settings.image_mode,
        )
        positions: list[int] = []
        pixels: list[torch.Tensor] = []
        for position, clip in clips:
            positions.append(position)
            pixels.append(video_io.clip_to_tensor(clip, preprocessing.mean, preprocessing.std))
            if len(positions) == self.settings.batch_size:
                yield _ClipBatch(positions, torch.stack(pixels).to(self.device))
                positions, pixels = [], []
        if positions:
            yield _ClipBatch(positions, torch.stack(pixels).to(self.device))

    def forward(self, pixels: torch.Tensor) -> GemPass:
        """The single visual pass for a batch of normalized clips ``[B, T, 3, S, S]``."""
        import torch

        from vgem.gem import gem_forward

        if self.settings.precision == "fp32":  # a bf16 Grounder may share and lower them
            refuse_lowered(self._block_weights)
        with torch.inference_mode(), self._autocast():
            gem_pass = gem_forward(
                self.adapter, pixels, self.settings, self.adapter.preprocessing.target_index
            )
        # what every prompt reads afterwards, in fp32 (see prompt_heatmaps)
        return replace(
            gem_pass,
            terms=gem_pass.terms.float(),
            class_embedding=gem_pass.class_embedding.float(),
            removal_embeddings=gem_pass.removal_embeddings.float(),
        )

    def prompt_heatmaps(self, gem_pass: GemPass, text_embeddings: torch.Tensor):
        """Similarity maps ``[B, P, h, w]``, heatmaps ``[B, P, S, S]`` and points
        ``[B, P, 2]`` for per-clip prompt embeddings ``[B, P, D]``."""
        import torch

        from vgem.gem import similarity_maps
        from vgem.heatmaps import heatmaps_and_points
        from vgem.weighting import layer_weights

        # fp32 whatever the precision: a few small products per prompt, and 16-bit
        # cosines would round neighbouring patches to ties and move the points
        with torch.inference_mode():
            weights = layer_weights(
                self.settings.weighting,
                terms=gem_pass.terms.shape[0],
                removal_embeddings=gem_pass.removal_embeddings,
                text_embeddings=text_embeddings,
                static_weights=self.settings.static_weights or (),
                dynamic_layers=self.settings.removal_layers,
                dynamic_temperature=self.settings.dynamic_temperature,
            )
            maps = similarity_maps(self.adapter, gem_pass, weights, text_embeddings).float()
        heatmaps, points = heatmaps_and_points(maps, self.adapter.preprocessing.input_size)
        return maps, heatmaps, points

    def ground_pixels(
        self, pixels: torch.Tensor, queries: str | Sequence[str] | list[QueryPrompts]
    ) -> PixelGrounding:
        """Ground queries in a batch of already-normalized clips, in model space.

        ``pixels``: ``[B, T, 3, S, S]`` (see ``adapter.preprocessing``). For
        users who hold tensors rather than videos; :meth:`ground` is this plus
        decoding and the mapping back to original-video pixels.
        """
        if isinstance(queries, str):
            queries = [queries]
        # A list is either all QueryPrompts or all query strings.
        prompts = (
            cast("list[QueryPrompts]", list(queries))
            if queries and isinstance(queries[0], QueryPrompts)
            else self.prompts_for(cast("list[str]", list(queries)))
        )
        return self._ground_prompts(pixels.to(self.device), prompts, self._prompt_table(prompts))

    def _ground_prompts(
        self, pixels: torch.Tensor, prompts: list[QueryPrompts], table: _PromptTable
    ) -> PixelGrounding:
        import torch
        import torch.nn.functional as F

        gem_pass = self.forward(pixels)
        clip_embedding = F.normalize(gem_pass.class_embedding, dim=-1)  # fp32: forward
        text = table.embeddings.to(clip_embedding.device)
        clip_text_cosine = clip_embedding @ text.T  # [B, all prompt texts]
        batch, roles = pixels.shape[0], len(PROMPT_ROLES)
        chosen_rows = torch.tensor(
            [
                [
                    row
                    for q in range(len(prompts))
                    for row in (
                        _best(table.verb_rows[q], clip_text_cosine[b]),
                        _best(table.object_rows[q], clip_text_cosine[b]),
                        table.action_rows[q],
                    )
                ]
                for b in range(batch)
            ],
            device=text.device,
        )
        maps, heatmaps, points = self.prompt_heatmaps(gem_pass, text[chosen_rows])
        shape = (batch, len(prompts), roles)
        heatmaps = heatmaps.reshape(*shape, *heatmaps.shape[-2:])
        points = points.reshape(*shape, 2)
        final = [
            [self._final_point(heatmaps[b, q], points[b, q]) for q in range(len(prompts))]
            for b in range(batch)
        ]
        return PixelGrounding(
            similarity=maps.reshape(*shape, *gem_pass.grid),
            heatmaps=heatmaps,
            prompt_points=points,
            points=final,
            scores=clip_text_cosine[:, table.action_rows],
            chosen_rows=chosen_rows.reshape(shape),
            clip_text_cosine=clip_text_cosine,
            clip_embeddings=clip_embedding,
        )

    def _ground_batch(
        self, batch: _ClipBatch, info, times, prompts, table: _PromptTable, threshold: float
    ):
        from vgem import video as video_io

        grounding = self._ground_prompts(batch.pixels, prompts, table)
        frame_size = (info.width, info.height)
        grounded, regions = [], []
        for slot, position in enumerate(batch.positions):
            time = times[position]
            frame = video_io.frame_index_at(info, time)
            cosine = grounding.clip_text_cosine[slot].tolist()
            entries, slot_regions = [], []
            for q in range(len(prompts)):
                located, region = self._located(
                    grounding.heatmaps[slot, q],
                    grounding.prompt_points[slot, q],
                    grounding.points[slot][q],
                    threshold,
                    frame_size,
                )
                slot_regions.append(region)
                candidates = _candidate_scores(table, q, cosine)
                verb_row, object_row, _ = grounding.chosen_rows[slot, q].tolist()
                entries.append(
                    GroundedTime(
                        time=float(time),
                        frame=frame,
                        score=float(grounding.scores[slot, q]),
                        chosen=(
                            {"verb": table.texts[verb_row], "object": table.texts[object_row]}
                            if candidates
                            else {}
                        ),
                        candidates=candidates,
                        **located,
                    )
                )
            grounded.append(entries)
            regions.append(slot_regions)
        similarity = grounding.similarity.cpu().numpy()
        return grounded, similarity, grounding.clip_embeddings.cpu(), regions

    def _located(
        self,
        heatmaps: torch.Tensor,
        prompt_points: torch.Tensor,
        model_point: tuple[int, int],
        threshold: float,
        frame_size: tuple[int, int],
    ) -> tuple[dict[str, Any], Any]:
        """Where a query is at one time, from its three heatmaps ``[3, S, S]``, their
        points ``[3, 2]`` and its final point (model pixels): the entry's point, prompt
        point and box fields (original pixels), and its region. Both the plain and the
        smoothed maps are placed by this one path, so their entries agree in form."""
        from vgem.heatmaps import to_original_pixels
        from vgem.regions import box_in_original_pixels, combined_heatmap, region_around

        size = self.adapter.preprocessing.input_size
        combined = combined_heatmap(heatmaps.float().cpu().numpy(), self.settings.prompts)
        region = region_around(combined, model_point, threshold)
        point = to_original_pixels(model_point, size, frame_size)
        located = {
            "point": point,
            "model_point": model_point,
            "prompt_points": {
                role: to_original_pixels(tuple(role_point), size, frame_size)
                for role, role_point in zip(PROMPT_ROLES, prompt_points.tolist(), strict=True)
            },
            "box": box_in_original_pixels(region.box, size, frame_size, point),
            "box_score": region.score,
            "model_box": region.box,
        }
        return located, region

    def _smoothed(self, info, times, similarity, per_query, packed, threshold, seconds) -> None:
        """Points, prompt points and boxes again, from maps smoothed over time
        (:func:`smooth_maps`); the entries are replaced in ``per_query``."""
        import torch

        from vgem.heatmaps import heatmaps_and_points

        size = self.adapter.preprocessing.input_size
        frame_size = (info.width, info.height)
        for position, maps in smooth_maps(np.asarray(times), similarity, seconds):
            heatmaps, points = heatmaps_and_points(torch.from_numpy(maps), size)  # [Q, 3, ...]
            regions = []
            for q, entries in enumerate(per_query):
                model_point = self._final_point(heatmaps[q], points[q])
                located, region = self._located(
                    heatmaps[q], points[q], model_point, threshold, frame_size
                )
                regions.append(region)
                entries[position] = replace(cast("GroundedTime", entries[position]), **located)
            if packed is not None:
                packed[position] = _packed(regions)

    def _final_point(self, heatmaps: torch.Tensor, points: torch.Tensor) -> tuple[int, int]:
        mode = self.settings.prompts
        if mode == "decomposed":
            x, y = self.aggregator(heatmaps, points)
            return int(x), int(y)
        x, y = points[PROMPT_ROLES.index(mode)].tolist()
        return int(x), int(y)


def _best(rows: list[int], cosine: torch.Tensor) -> int:
    """The candidate row whose prompt matches the clip best (first on ties)."""
    if len(rows) == 1:
        return rows[0]
    scores = cosine[rows]
    return rows[int(scores.argmax())]


def _candidate_scores(table: _PromptTable, query: int, cosine: list[float]):
    """Per-role candidate similarities, kept only where there was a choice."""
    scores = {}
    for role, rows in (("verb", table.verb_rows[query]), ("object", table.object_rows[query])):
        if len(rows) > 1:
            scores[role] = [CandidateScore(table.texts[row], cosine[row]) for row in rows]
    return scores


def _chosen_prompts(query: QueryPrompts, entries) -> dict[str, str]:
    """The prompts of a query: the single candidates, or the first time's choice."""
    verb = query.verb_candidates[0]
    obj = query.object_candidates[0]
    if entries and entries[0] is not None and entries[0].chosen:
        verb = entries[0].chosen["verb"]
        obj = entries[0].chosen["object"]
    return {"verb": verb, "object": obj, "action": query.action}


def _contrast_warnings(timeline: Timeline | None, query: int) -> list[str]:
    """The warning of a query whose timeline has no time that stands out of its noise."""
    from vgem.temporal.segments import LOW_CONTRAST

    contrast = None if timeline is None else timeline.low_contrast(query)
    if contrast is None:
        return []
    return [
        f"no time stands out: the scores' contrast is {contrast:.1f} (below {LOW_CONTRAST:g}, "
        "their best time is within their own jitter), so this query's labels and segments "
        "may say it happens where it does not"
    ]


def _packed(regions: list[Any]) -> np.ndarray:
    from vgem.regions import pack_masks

    return pack_masks(np.stack([region.mask for region in regions]))


def _region_threshold(value: float | None) -> float:
    from vgem.errors import SettingsError
    from vgem.regions import DEFAULT_REGION_THRESHOLD

    if value is None:
        return DEFAULT_REGION_THRESHOLD
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise SettingsError(
            f"`box_threshold` is a fraction of the heatmap's maximum in (0, 1], not {value!r}.",
            settings=("box_threshold",),
        )
    return float(value)


#: The longest smoothing window, in seconds (a window is read around every time).
MAX_SMOOTH_SECONDS = 600.0


def _smoothing(value: float | None) -> float:
    from vgem.errors import SettingsError

    if value is None or value == 0:
        return 0.0
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= MAX_SMOOTH_SECONDS
    ):
        raise SettingsError(
            f"`smooth` is a number of seconds from 0 to {MAX_SMOOTH_SECONDS:g}, not {value!r}.",
            settings=("smooth",),
        )
    return float(value)


def smooth_maps(times: np.ndarray, similarity: np.ndarray, seconds: float):
    """Each grounded time's raw maps ``[queries, 3, h, w]`` averaged with its neighbours',
    yielded as ``(position, maps)`` one time after another.

    The filter: a Gaussian in time with sigma = ``seconds`` / 2, over the grounded
    times within ``seconds`` of each one (weights normalized over that window),
    applied to the raw cosine maps before they are upsampled and normalized.
    Memory stays flat: one window of small maps at a time.
    """
    times = np.asarray(times, dtype=np.float64)
    order = np.argsort(times, kind="stable")
    ordered = times[order]
    sigma = seconds / 2
    for rank, position in enumerate(order):
        low = int(np.searchsorted(ordered, ordered[rank] - seconds, side="left"))
        high = int(np.searchsorted(ordered, ordered[rank] + seconds, side="right"))
        neighbours = order[low:high]
        weights = np.exp(-0.5 * ((times[neighbours] - times[position]) / sigma) ** 2)
        weights = (weights / weights.sum()).astype(np.float32)
        maps = np.tensordot(weights, similarity[neighbours], axes=(0, 0))
        yield int(position), maps.astype(np.float32)
