from __future__ import annotations

import json

import numpy as np
import pytest

from vgem.eval.metrics import (
    PointingGame,
    SpatialAP,
    WWWSpatial,
    box_arithmetic,
    boxes_mask,
    format_percent,
    heatmap_box_iou,
    heatmap_mask,
    point_in_box,
    pointing_hit,
    scale_box_to_model,
    www_iou,
)


@pytest.mark.parametrize(
    ("box", "frame_size", "input_size", "expected"),
    [
        # 100*224/640 = 35, 50*224/360 = 31.11, 300*224/640 = 105, 200*224/360 = 124.44
        ((100, 50, 300, 200), (640, 360), 224, (35, 31, 105, 124)),
        # ratio 0.5: 2.5 -> 2, 3.5 -> 4, 4.5 -> 4, 5.5 -> 6 (halves to even, Python's round)
        ((5, 7, 9, 11), (448, 448), 224, (2, 4, 4, 6)),
        # DALY: fractions of the frame, frame (1, 1): round(fraction * S)
        ((0.25, 0.5, 0.75, 1.0), (1, 1), 224, (56, 112, 168, 224)),
        # 640 x 360 at 448: x * 0.7, y * 1.2444
        ((10, 10, 20, 20), (640, 360), 448, (7, 12, 14, 25)),
    ],
)
def test_boxes_scale_to_model_space_with_the_authors_rounding(
    box, frame_size, input_size, expected
):
    assert scale_box_to_model(box, frame_size, input_size) == expected


@pytest.mark.parametrize(
    ("point", "inside"),
    [
        ((10, 20), True),  # top-left corner
        ((30, 40), True),  # bottom-right corner
        ((10, 40), True),
        ((30, 20), True),
        ((20, 30), True),
        ((9, 20), False),
        ((31, 40), False),
        ((10, 19), False),
        ((30, 41), False),
    ],
)
def test_box_borders_count_as_inside(point, inside):
    assert point_in_box(point, (10, 20, 30, 40)) is inside


def test_a_point_hits_when_it_is_in_any_box():
    boxes = [(0, 0, 5, 5), (50, 50, 60, 60)]
    assert pointing_hit((55, 60), boxes)
    assert not pointing_hit((30, 30), boxes)
    assert not pointing_hit((30, 30), [])


def test_seven_of_ten_points_inside_is_seventy_percent():
    box = (10, 10, 20, 20)
    inside = [(10, 10), (20, 20), (15, 15), (10, 20), (20, 10), (12, 18), (19, 11)]
    outside = [(9, 10), (21, 20), (15, 25)]
    game = PointingGame()
    for point in inside + outside:
        game.add_point("cut onion", point, [box])

    result = game.result()

    assert (result.samples, result.hits) == (10, 7)
    assert result.accuracy == pytest.approx(0.7)
    assert format_percent(result.accuracy) == "70.00 %"


def test_class_mean_differs_from_overall_accuracy_when_classes_are_unbalanced():
    game = PointingGame()
    for _ in range(8):
        game.add("BrushingTeeth", True)
    game.add("Drinking", True)
    game.add("Drinking", False)
    game.add("Drinking", False)
    game.add("Drinking", False)
    game.add_error("Drinking")

    result = game.result()

    # overall 9 hits of 12 scored; per class 8/8 = 1 and 1/4 = 0.25, mean 0.625
    assert (result.samples, result.hits, result.errors) == (12, 9, 1)
    assert result.accuracy == pytest.approx(0.75)
    assert result.classes["BrushingTeeth"].accuracy == pytest.approx(1.0)
    assert result.classes["Drinking"].accuracy == pytest.approx(0.25)
    assert result.classes["Drinking"].errors == 1
    assert result.class_mean_accuracy == pytest.approx(0.625)


def test_errors_enter_no_rate_and_an_error_only_class_has_no_accuracy():
    game = PointingGame()
    game.add("a", True)
    game.add_error("b")
    game.add_error("b")

    result = game.result()

    assert result.accuracy == 1.0
    assert result.errors == 2
    assert result.classes["b"].accuracy is None
    assert result.class_mean_accuracy == 1.0


def test_empty_game_has_no_rates_and_serialises_to_json():
    result = PointingGame().result()
    assert result.accuracy is None and result.class_mean_accuracy is None
    assert json.loads(json.dumps(result.to_dict()))["accuracy"] is None
    assert format_percent(None) == "n/a"


def test_box_mask_excludes_the_right_and_bottom_edges():
    mask = boxes_mask([(1, 2, 4, 5)], (10, 10))
    assert mask.sum() == 3 * 3
    assert mask[2, 1] and mask[4, 3]
    assert not mask[5, 3] and not mask[4, 4]


def test_heatmap_mask_keeps_only_values_strictly_above_half_after_normalizing():
    heatmap = np.array([[10.0, 15.0, 20.0, 17.5]])  # normalized: 0, 0.5, 1, 0.75
    assert heatmap_mask(heatmap).tolist() == [[False, False, True, True]]
    assert not heatmap_mask(np.full((3, 3), 4.0)).any()


def _planted(rows: slice, columns: slice, shape=(10, 10)) -> np.ndarray:
    heatmap = np.zeros(shape)
    heatmap[rows, columns] = 1.0
    return heatmap


def test_planted_heatmap_has_the_hand_computed_iou():
    # mask: rows 0-3, columns 0-4 = 20 pixels; box (0, 0, 4, 4) paints 4 x 4 = 16 inside it
    heatmap = _planted(slice(0, 4), slice(0, 5))
    assert heatmap_box_iou(heatmap, [(0, 0, 4, 4)]) == pytest.approx(16 / 20)
    # union of two boxes: 16 + 4 pixels (rows 0-3, column 9) -> intersection 16, union 24
    assert heatmap_box_iou(heatmap, [(0, 0, 4, 4), (9, 0, 10, 4)]) == pytest.approx(16 / 24)


def test_spatial_map_averages_per_class_then_over_classes():
    scores = SpatialAP()
    good = _planted(slice(0, 4), slice(0, 5))  # IoU 0.8 with box (0, 0, 4, 4)
    poor = _planted(slice(0, 2), slice(0, 10))  # 20 px inside a 100 px box: IoU 0.2
    tie = _planted(slice(0, 3), slice(0, 10))  # 30 px inside a 100 px box: IoU exactly 0.3

    assert scores.add_heatmap("cut onion", good, [(0, 0, 4, 4)]) == pytest.approx(0.8)
    assert scores.add_heatmap("cut onion", poor, [(0, 0, 10, 10)]) == pytest.approx(0.2)
    assert scores.add_heatmap("fold omelette", good, [(0, 0, 4, 4)]) == pytest.approx(0.8)
    assert scores.add_heatmap("fold omelette", tie, [(0, 0, 10, 10)]) == pytest.approx(0.3)
    scores.add_iou("pour milk", 0.9)

    result = scores.result()

    # per class: cut onion 1/2, fold omelette 1/2 (0.3 is not above 0.3), pour milk 1/1
    assert result.classes["cut onion"].precision == pytest.approx(0.5)
    assert result.classes["fold omelette"].precision == pytest.approx(0.5)
    assert result.classes["pour milk"].precision == pytest.approx(1.0)
    assert result.mean_ap == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert result.accuracy == pytest.approx(3 / 5)
    assert result.mean_iou == pytest.approx((0.8 + 0.2 + 0.8 + 0.3 + 0.9) / 5)
    assert json.loads(json.dumps(result.to_dict()))["classes"]["pour milk"]["correct"] == 1


def test_empty_masks_score_zero_rather_than_nan():
    flat = np.ones((4, 4))
    assert heatmap_box_iou(flat, [(2, 2, 2, 2)]) == 0.0


# ------------------------------------------------------------------- authors' arithmetic


def test_vhico_boxes_are_scaled_in_float32_as_the_authors_torch_tensors():
    assert scale_box_to_model((90, 0, 90, 0), (640, 360), 224, arithmetic="float32")[0] == 32
    assert scale_box_to_model((90, 0, 90, 0), (640, 360), 224)[0] == 31
    assert box_arithmetic("vhico") == "float32" and box_arithmetic("gyt") == "float64"


@pytest.mark.parametrize("dtype", ["int", "float32"])
def test_float32_scaling_equals_torch_on_random_rows(dtype):
    torch = pytest.importorskip("torch")
    generator = np.random.default_rng(0)
    for _ in range(300):
        width, height = (int(value) for value in generator.integers(100, 2000, size=2))
        if dtype == "int":
            row = generator.integers(0, 2000, size=4)
            tensor = torch.tensor([int(value) for value in row])
        else:
            row = (generator.random(4) * 2000).astype(np.float32)
            tensor = torch.tensor(list(row))
        authors = [
            int((tensor[index] * (224 / (width if index % 2 == 0 else height))).round())
            for index in range(4)
        ]
        ours = scale_box_to_model(row, (width, height), 224, arithmetic="float32")
        assert list(ours) == authors


def _www_reference(heatmap: np.ndarray, box, threshold: float) -> float | None:
    """The GroundingYouTube evaluation's loop, transcribed (frame-major arrays)."""
    height, width = heatmap.shape
    frame = heatmap.copy()
    frame[frame < threshold] = 0
    frame[frame >= threshold] = 1
    xtl, ytl, xbr, ybr = (int(value) for value in box)
    box_arr = np.zeros((width, height))
    for column in range(width):
        if xtl < column <= xbr + 1:
            box_arr[column][ytl : ybr + 1] = 1
    if np.count_nonzero(box_arr) == 0:
        return None
    frame_t = np.transpose(frame)
    union = frame_t + box_arr
    union[union > 0] = 1
    return np.count_nonzero(frame_t * box_arr) / float(np.count_nonzero(union))


def test_the_www_measure_follows_the_groundingyoutube_code_on_random_inputs():
    generator = np.random.default_rng(1)
    for _ in range(200):
        heatmap = generator.random((48, 64)) * generator.choice([1e-3, 1.0])
        x1, x2 = sorted(generator.integers(0, 70, size=2))
        y1, y2 = sorted(generator.integers(0, 52, size=2))
        box = (x1, y1, x2, y2) if generator.random() > 0.1 else (x2 + 2, y1, x2, y2)
        assert www_iou(heatmap, box) == _www_reference(heatmap, box, 1e-4)


def test_www_map_is_the_fraction_of_samples_above_the_bar():
    tally = WWWSpatial()
    for iou in (0.5, 0.31, 0.3, None):
        tally.add_iou(iou)
    result = tally.result()
    assert (result.samples, result.correct, result.map) == (4, 2, 0.5)
    assert result.mean_iou == pytest.approx((0.5 + 0.31 + 0.3) / 4)


def test_the_mask_threshold_is_a_setting_that_changes_the_identity():
    from vgem.errors import SettingsError
    from vgem.eval.tasks import SpatialTask, make_task

    assert SpatialTask().identity() == {}
    assert make_task("spatial", mask_threshold=0.4).identity() == {"mask_threshold": 0.4}
    with pytest.raises(SettingsError, match="`mask_threshold`"):
        make_task("temporal", mask_threshold=0.4)
    heatmap = np.array([[0.0, 0.45], [0.45, 1.0]])
    assert heatmap_box_iou(heatmap, [(0, 0, 2, 2)], 0.4) == 0.75
    assert heatmap_box_iou(heatmap, [(0, 0, 2, 2)], 0.5) == 0.25
