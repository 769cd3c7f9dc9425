"""Untrimmed-video metrics against values worked out by hand, and segment mAP against a
from-scratch re-implementation on random cases."""

from __future__ import annotations

import random

import pytest

from vgem.eval.temporal_metrics import (
    Detection,
    RatioAverager,
    TruthTube,
    average_precision,
    iou_pointing_counts,
    mean_average_precision,
    overlap_counts,
    seconds_in,
    temporal_iou,
    tube_iou,
)

# --------------------------------------------------------------------------- time


@pytest.mark.parametrize(
    ("start", "end", "seconds"),
    [
        (5, 12, range(5, 12)),
        (5.2, 11.9, range(5, 12)),  # boundaries a little off the grid
        (5.6, 11.4, range(6, 11)),
        (3, 3, range(3, 3)),
        (0, 1, range(0, 1)),
        (-2, 1, range(0, 1)),
    ],
)
def test_seconds_in_holds_seconds_whose_middle_is_inside(start, end, seconds):
    assert list(seconds_in(start, end)) == list(seconds)


@pytest.mark.parametrize(
    ("predicted", "truth", "iou"),
    [
        ((0, 10), (0, 10), 1.0),
        ((0, 10), (5, 15), 5 / 15),
        ((2, 4), (0, 10), 2 / 10),  # nested
        ((0, 5), (5, 10), 0.0),  # touching
        ((0, 5), (7, 10), 0.0),
    ],
)
def test_temporal_iou_by_hand(predicted, truth, iou):
    assert temporal_iou(predicted, truth) == pytest.approx(iou)
    assert temporal_iou(truth, predicted) == pytest.approx(iou)


@pytest.mark.parametrize(
    ("predicted", "judged", "expected"),
    [
        ((20, 26), {22: True, 23: True, 24: True, 25: True}, 0.5),  # tIoU 4/8, all hit
        ((20, 26), {22: True, 23: True, 24: False, 25: False}, 0.25),  # half of them hit
        ((20, 26), {22: True, 23: False, 26: False, 27: False}, 0.25),  # only 22, 23 overlap
        ((20, 26), {26: True, 27: True}, 0.5),  # no boxed second in the overlap: time alone
        ((20, 26), {}, 0.5),
        ((10, 14), {22: True}, 0.0),  # no overlap at all
    ],
)
def test_tube_iou_is_temporal_iou_times_the_hit_fraction_of_the_overlap(
    predicted, judged, expected
):
    assert tube_iou(predicted, TruthTube(22, 28, judged)) == pytest.approx(expected)


# --------------------------------------------------------------------------- frame-wise


def test_overlap_and_iou_pointing_counts_by_hand():
    predicted, truth = set(range(20, 26)), set(range(22, 28))
    assert overlap_counts(predicted, truth) == (4, 8, 6)
    assert overlap_counts(set(), truth) == (0, 6, 0)  # empty prediction
    assert overlap_counts(predicted, set()) == (0, 6, 6)  # no ground truth
    hits = {22, 23, 26}  # 26 hits but was not predicted: it does not count
    assert iou_pointing_counts(predicted, truth, hits) == (2, 8)
    # seconds 26, 27 of the segment have no box: left out of P and G alike
    assert iou_pointing_counts(predicted, {22, 23, 24, 25}, hits, ignored={26, 27}) == (2, 6)
    assert iou_pointing_counts(set(range(20, 28)), {22, 23}, hits, ignored={24, 25}) == (2, 6)


def test_ratios_average_per_video_then_over_videos_and_pool_per_class():
    averager = RatioAverager()
    # video 1: a 3/4, b 0/2, c has nothing predicted nor true (0/0: left out)
    assert averager.add_video({"a": (3, 4), "b": (0, 2), "c": (0, 0)}) == pytest.approx(3 / 8)
    # video 2: a 1/1 only
    assert averager.add_video({"a": (1, 1)}) == pytest.approx(1.0)
    # video 3: nothing can be counted, so the video is left out of the video mean
    assert averager.add_video({"b": (0, 0)}) is None
    result = averager.result()
    assert result.videos == 2
    assert result.video_mean == pytest.approx((3 / 8 + 1) / 2)
    # pooled: a 4/5, b 0/2, c 0/0 (no value)
    assert result.classes["a"].value == pytest.approx(4 / 5)
    assert result.classes["c"].value is None
    assert result.class_mean == pytest.approx((4 / 5 + 0) / 2)


def test_iod_of_a_video_without_predictions_is_left_out_and_iou_is_zero():
    iou, iod = RatioAverager(), RatioAverager()
    for averager, position in ((iou, 1), (iod, 2)):
        counts = overlap_counts(set(), {3, 4})
        averager.add_video({"a": (counts[0], counts[position])})
    assert iou.result().video_mean == 0.0
    assert iod.result().video_mean is None and iod.result().videos == 0


def test_a_ratio_averager_refuses_impossible_counts():
    with pytest.raises(ValueError, match="bad counts"):
        RatioAverager().add_video({"a": (3, 2)})


# --------------------------------------------------------------------------- average precision


@pytest.mark.parametrize(
    ("hits", "truths", "ap"),
    [
        ([True, True], 2, 1.0),
        ([True, False, True], 3, 1 / 3 * 1 + 1 / 3 * 2 / 3),
        ([False, True], 1, 0.5),
        # the envelope: precision 1/2 at rank 2 is lifted to 3/4 (rank 4)
        ([True, False, True, True], 4, 0.25 * 1 + 0.25 * 0.75 + 0.25 * 0.75),
        ([], 2, 0.0),  # no detections
        ([False, False], 1, 0.0),
    ],
)
def test_average_precision_by_hand(hits, truths, ap):
    assert average_precision(hits, truths) == pytest.approx(ap)


def test_average_precision_needs_ground_truth():
    with pytest.raises(ValueError, match="ground-truth"):
        average_precision([True], 0)


def _detect(video, label, score, start, end):
    return Detection(video, label, score, (start, end))


def test_segment_map_by_hand_with_duplicates_and_classes_without_ground_truth():
    truths = {
        ("v1", "crack eggs"): [(10, 20), (40, 50)],
        ("v2", "crack eggs"): [(0, 10)],
        ("v1", "stir"): [(60, 70)],
        ("v2", "pour milk"): [],  # a class without ground truth: no AP, not in the mean
    }
    detections = [
        _detect("v1", "crack eggs", 0.9, 10, 20),  # TP (IoU 1)
        _detect("v1", "crack eggs", 0.8, 11, 20),  # duplicate of a matched instance: FP
        _detect("v2", "crack eggs", 0.7, 2, 10),  # IoU 0.8: TP at 0.5, FP at 0.9
        _detect("v1", "crack eggs", 0.6, 40, 60),  # IoU 0.5: TP at 0.5 exactly
        _detect("v2", "pour milk", 0.95, 0, 5),  # no ground truth for the class: ignored
        # "stir" has ground truth but no detection: AP 0
    ]
    result = mean_average_precision(detections, truths, temporal_iou, (0.5, 0.9))
    # crack eggs at 0.5: T F T T of 3 -> 1/3 * 1 + 1/3 * 3/4 + 1/3 * 3/4
    crack_at_half = (1 + 0.75 + 0.75) / 3
    # at 0.9: T F F F of 3 -> 1/3
    assert result.classes["crack eggs"] == pytest.approx([crack_at_half, 1 / 3])
    assert result.classes["stir"] == [0.0, 0.0]
    assert "pour milk" not in result.classes
    assert result.map["0.5"] == pytest.approx(crack_at_half / 2)
    assert result.map["0.9"] == pytest.approx(1 / 6)
    assert result.mean == pytest.approx((crack_at_half / 2 + 1 / 6) / 2)
    assert (result.detections, result.truths) == (4, 4)


def test_overlapping_ground_truth_goes_to_the_best_unmatched_instance():
    truths = {("v", "a"): [(0, 10), (5, 15)]}  # two overlapping instances
    detections = [
        _detect("v", "a", 0.9, 5, 15),  # matches (5, 15) exactly, not (0, 10) (IoU 1/3)
        _detect("v", "a", 0.8, 0, 9),  # (5, 15) is taken; (0, 10) has IoU 0.9
    ]
    result = mean_average_precision(detections, truths, temporal_iou, (0.5,))
    assert result.map["0.5"] == pytest.approx(1.0)
    # greedy: the higher score takes the instance the later one would have liked best
    greedy = [_detect("v", "a", 0.9, 0, 12), _detect("v", "a", 0.8, 0, 10)]
    result = mean_average_precision(greedy, {("v", "a"): [(0, 10)]}, temporal_iou, (0.5,))
    assert result.classes["a"] == pytest.approx([1.0])  # rank 1 TP, rank 2 FP: AP 1
    result = mean_average_precision(greedy, {("v", "a"): [(0, 10)]}, temporal_iou, (0.9,))
    assert result.classes["a"] == pytest.approx([0.5])  # [0, 12) misses at 0.9; rank 2 TP


def test_empty_predictions_and_empty_ground_truth():
    truths = {("v", "a"): [(0, 10)]}
    empty = mean_average_precision([], truths, temporal_iou, (0.3, 0.5))
    assert empty.map == {"0.3": 0.0, "0.5": 0.0} and empty.mean == 0.0
    nothing = mean_average_precision([_detect("v", "a", 1.0, 0, 10)], {}, temporal_iou, (0.3,))
    assert nothing.map == {"0.3": None} and nothing.mean is None and nothing.classes == {}


def test_video_map_uses_tube_iou():
    truths = {("v", "a"): [TruthTube(22, 28, {22: True, 23: True, 24: False, 25: False})]}
    detections = [_detect("v", "a", 0.5, 20, 26)]  # tube IoU 0.5 x 0.5 = 0.25
    result = mean_average_precision(detections, truths, tube_iou, (0.1, 0.2, 0.3, 0.4, 0.5))
    assert list(result.map.values()) == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert result.mean == pytest.approx(0.4)


# --------------------------------------------------------------------------- random cases


def _reference_map(detections, truths, threshold):
    """mAP written from the definitions alone: brute-force matching, and AP as the sum,
    over each true positive, of the best precision at that rank or any later one."""

    def iou(a, b):
        inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
        return inter / (max(a[1], b[1]) - min(a[0], b[0])) if inter > 0 else 0.0

    labels = sorted({label for (_, label), items in truths.items() if items})
    aps = []
    for label in labels:
        instances = [(v, i) for (v, lab), items in truths.items() if lab == label for i in items]
        ranked = sorted(
            [d for d in detections if d[1] == label], key=lambda d: -d[2]
        )  # stable: ties keep input order
        used = set()
        outcome = []
        for video, _, _, extent in ranked:
            candidates = [
                (iou(extent, instance), position)
                for position, (v, instance) in enumerate(instances)
                if v == video and position not in used and iou(extent, instance) >= threshold
            ]
            if candidates:
                best = max(candidates, key=lambda c: (c[0], -c[1]))
                used.add(best[1])
            outcome.append(bool(candidates))
        precision = [sum(outcome[: k + 1]) / (k + 1) for k in range(len(outcome))]
        aps.append(
            sum(max(precision[k:]) for k in range(len(outcome)) if outcome[k]) / len(instances)
        )
    return sum(aps) / len(aps) if aps else None


def _random_case(generator: random.Random):
    videos, labels = ["v0", "v1", "v2"], ["a", "b", "c", "d"]
    truths = {}
    for video in videos:
        for label in labels:
            instances = []
            for _ in range(generator.randint(0, 3)):
                start = generator.randint(0, 40)
                instances.append((start, start + generator.randint(1, 12)))
            truths[(video, label)] = instances
    detections = []
    for _ in range(generator.randint(0, 30)):
        video, label = generator.choice(videos), generator.choice(labels)
        if truths[(video, label)] and generator.random() < 0.6:  # near an instance
            start, end = generator.choice(truths[(video, label)])
            start, end = start + generator.randint(-3, 3), end + generator.randint(-3, 3)
            start, end = min(start, end - 1), max(end, start + 1)
        else:
            start = generator.randint(0, 40)
            end = start + generator.randint(1, 12)
        score = round(generator.random(), 1)  # one decimal: ties happen
        detections.append((video, label, score, (start, end)))
    return detections, truths


@pytest.mark.parametrize("seed", range(50))
def test_segment_map_agrees_with_a_from_scratch_reimplementation(seed):
    generator = random.Random(seed)
    detections, truths = _random_case(generator)
    thresholds = (0.3, 0.4, 0.5, 0.6, 0.7)
    result = mean_average_precision(
        [Detection(*detection) for detection in detections], truths, temporal_iou, thresholds
    )
    for threshold in thresholds:
        expected = _reference_map(detections, truths, threshold)
        got = result.map[f"{threshold:g}"]
        assert (got is None) == (expected is None)
        if expected is not None:
            assert got == pytest.approx(expected, abs=1e-12)
