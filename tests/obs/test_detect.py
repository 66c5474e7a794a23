"""The EWMA + MAD detector on synthetic series with known anomalies, and PSI against hand sums."""

from __future__ import annotations

import math
import random

import pytest

from polycloud.obs.detect import RobustDetector, mad, median, psi


def _series(seed: int, length: int, spikes: set[int], base: float, noise: float, jump: float) -> list[float]:
    rng = random.Random(seed)
    return [base + rng.gauss(0, noise) + (jump if i in spikes else 0.0) for i in range(length)]


def _precision_recall(found: set[int], truth: set[int]) -> tuple[float, float]:
    hits = len(found & truth)
    return (hits / len(found) if found else 1.0), (hits / len(truth) if truth else 1.0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_latency_spikes_are_found_with_high_precision_and_recall(seed: int) -> None:
    rng = random.Random(seed)
    truth = set(rng.sample(range(40, 600), 12))
    values = _series(seed, 600, truth, base=20.0, noise=1.0, jump=25.0)
    detector = RobustDetector(direction="up", min_scale=0.5, relative_scale=0.0)
    found = {i for i, v in enumerate(values) if detector.update(v).anomalous}
    precision, recall = _precision_recall(found, truth)
    print(
        f"seed {seed}: precision {precision:.2f}, recall {recall:.2f} "
        f"({len(found)} flagged, {len(truth)} true)"
    )
    assert precision >= 0.9 and recall >= 0.9


def test_a_level_shift_is_flagged_and_then_learned() -> None:
    values = [100.0 + (i % 3) for i in range(60)] + [40.0 + (i % 3) for i in range(200)]
    detector = RobustDetector(direction="both", min_scale=1.0, relative_scale=0.1)
    flags = [detector.update(v).anomalous for v in values]
    assert not any(flags[:60])
    assert flags[60]  # the drop is seen at once
    assert not any(flags[-50:])  # and becomes the new normal


def test_outliers_do_not_drag_the_baseline() -> None:
    detector = RobustDetector(direction="up", min_scale=0.5, relative_scale=0.0, alpha=0.2)
    for i in range(50):
        detector.update(10.0 + (i % 2))
    before = detector.ewma
    for _ in range(3):
        assert detector.update(1000.0).anomalous
    assert before is not None and detector.ewma is not None
    assert detector.ewma - before < 10  # clipped to a few scales, not pulled towards 1000


def test_a_direction_only_flags_its_side() -> None:
    detector = RobustDetector(direction="up", min_scale=0.5, relative_scale=0.0)
    for _ in range(30):
        detector.update(10.0)
    assert not detector.update(0.0).anomalous
    assert detector.update(30.0).anomalous


def test_median_and_mad() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0 and median([1.0, 2.0, 3.0, 4.0]) == 2.5
    assert mad([1.0, 1.0, 2.0, 2.0, 4.0, 6.0, 9.0]) == 1.0


def test_psi_of_class_labels_matches_the_hand_sum() -> None:
    reference = [0.0] * 50 + [1.0] * 50
    current = [0.0] * 80 + [1.0] * 20
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)  # 0.4159
    assert psi(reference, current) == pytest.approx(expected)
    assert psi(reference, reference) == 0.0


def test_psi_of_continuous_values_uses_the_reference_deciles() -> None:
    reference = [i / 1000 for i in range(1000)]
    shifted = [i / 10_000 for i in range(1000)]  # everything in the first decile
    expected = (1 - 0.1) * math.log(1 / 0.1) + 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)  # 8.28
    assert psi(reference, shifted) == pytest.approx(expected)
    same_shape = [i / 1000 + 0.0001 for i in range(0, 1000, 2)]
    assert psi(reference, same_shape) < 0.01


def test_psi_needs_both_samples() -> None:
    with pytest.raises(ValueError, match="both"):
        psi([], [1.0])
