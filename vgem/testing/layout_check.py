"""The token-layout check: a planted patch must come out at its place in the heatmap."""

from __future__ import annotations

from vgem.backbones.base import BackboneAdapter, TokenLayout, TokenOrder
from vgem.testing.common import (
    ConformanceError,
    evaluating,
    gem_settings,
    sample_clip,
)


def check_token_layout(adapter: BackboneAdapter, *, seed: int = 0) -> str:
    """A planted patch ends up where ``token_layout()`` says, and in the heatmap.

    Noise is planted in one patch of one frame at a time. Right after
    ``embed()`` (before attention mixes tokens), the token that changes most
    must be the one ``token_layout().patch_token_indices(frame)`` names for
    that patch; this fails for a wrong token order (frame-major vs
    patch-major), a transposed grid or a wrong prefix count. Then, through
    ``gem_forward``, the target frame's GEM features must change most at that
    grid cell, i.e. where the heatmap reads it.
    """
    import torch

    layout = adapter.token_layout()
    preprocessing = adapter.preprocessing
    rows, columns = layout.grid
    size = preprocessing.input_size
    if size % rows or size % columns:
        raise ConformanceError(
            f"token_layout() grid {rows}x{columns} does not tile the {size}-pixel input"
        )
    cells = _probe_cells(rows, columns)
    probes = [(frame, row, column) for frame in range(layout.frames) for row, column in cells]
    with evaluating(adapter):
        clean = sample_clip(adapter, batch=1, seed=seed)
        planted = torch.cat([_plant(clean, probe, layout, size, seed) for probe in probes])
        change = (adapter.embed(planted) - adapter.embed(clean)).norm(dim=-1)
    problems = []
    for probe, token_change in zip(probes, change, strict=True):
        found = int(token_change.argmax())
        frame, row, column = probe
        expected = layout.patch_token_indices(frame)[row * columns + column]
        if found != expected:
            problems.append(_layout_problem(layout, probe, found, expected))
    if problems:
        raise ConformanceError(problems[:3])
    _check_planted_heatmap(adapter, clean, cells, layout, size, seed)
    return f"{len(probes)} planted patches found at their tokens and heatmap cells"


def _probe_cells(rows: int, columns: int) -> list[tuple[int, int]]:
    """Cells whose index changes under a transposed grid or another token order."""
    cells = [(0, columns - 1), (rows - 1, min(1, columns - 1))]
    return list(dict.fromkeys(cells))


def _plant(clean, probe, layout: TokenLayout, size: int, seed: int):
    import torch

    frame, row, column = probe
    height, width = size // layout.grid[0], size // layout.grid[1]
    generator = torch.Generator().manual_seed(seed + 1 + row * 1000 + column)
    noise = 3.0 * torch.randn((3, height, width), generator=generator)
    planted = clean.clone()
    planted[
        0, frame, :, row * height : (row + 1) * height, column * width : (column + 1) * width
    ] = noise.to(clean)
    return planted


def _layout_problem(layout: TokenLayout, probe, found: int, expected: int) -> str:
    frame, row, column = probe
    where = f"frame {frame}, patch row {row}, column {column}"
    head = (
        f"token layout: changing the pixels of {where} changed token {found} most, but "
        f"token_layout() ({layout.order}) places that patch at token {expected}"
    )
    if found < layout.prefix_tokens:
        return f"{head}; a prefix token changed: check prefix_tokens"
    other: TokenOrder = "patch-major" if layout.order == "frame-major" else "frame-major"
    alternative = TokenLayout(layout.frames, layout.grid, layout.prefix_tokens, other)
    rows, columns = layout.grid
    transposed = TokenLayout(layout.frames, (columns, rows), layout.prefix_tokens, layout.order)
    if found == _token_of(alternative, frame, row, column):
        return f"{head}; embed() gives {other} tokens but token_layout() says {layout.order}"
    if found == _token_of(transposed, frame, column, row):
        return f"{head}; the patch grid is transposed (embed() orders patches column by column)"
    return f"{head}; check token_layout() (order, grid, prefix tokens) against embed()"


def _token_of(layout: TokenLayout, frame: int, row: int, column: int) -> int | None:
    rows, columns = layout.grid
    if not (0 <= row < rows and 0 <= column < columns):
        return None
    return layout.patch_token_indices(frame)[row * columns + column]


def _check_planted_heatmap(adapter, clean, cells, layout: TokenLayout, size: int, seed: int):
    """The target frame's GEM features change most at the planted cell."""
    import torch

    from vgem.gem import gem_forward

    target = adapter.preprocessing.target_index
    probes = [(target, row, column) for row, column in cells]
    clips = torch.cat([clean, *(_plant(clean, probe, layout, size, seed) for probe in probes)])
    with evaluating(adapter):
        gem_pass = gem_forward(adapter, clips, gem_settings(adapter, 0), target)
        features = adapter.head(gem_pass.terms.sum(dim=0))  # plain GEM: every term weighs 1
    change = (features[1:] - features[:1]).norm(dim=-1)
    columns = layout.grid[1]
    for (_, row, column), cell_change in zip(probes, change, strict=True):
        found = int(cell_change.argmax())
        if found != row * columns + column:
            raise ConformanceError(
                f"token layout: noise planted in target frame {target} at patch row {row}, "
                f"column {column} changed the GEM features most at row {found // columns}, "
                f"column {found % columns} of the heatmap grid: check token_layout() against "
                "embed()"
            )
