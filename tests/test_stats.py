"""Clip-level bootstrap intervals against cases with known answers."""

import numpy as np
import pytest

from hilight_train.stats import bootstrap_ci, paired_bootstrap_diff


def test_iid_bernoulli_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(1)
    scores = rng.random(2000) < 0.7
    mean, low, high = bootstrap_ci(scores, range(2000), n_boot=4000, seed=3)
    half = 1.96 * np.sqrt(mean * (1 - mean) / 2000)  # Wald half-width, ~0.020
    assert mean == pytest.approx(scores.mean())
    assert low == pytest.approx(mean - half, abs=0.004)
    assert high == pytest.approx(mean + half, abs=0.004)


def test_perfect_and_all_wrong_have_degenerate_intervals():
    assert bootstrap_ci([1, 1, 1, 1], ["a", "a", "b", "c"]) == (1.0, 1.0, 1.0)
    assert bootstrap_ci([0, 0, 0], ["a", "b", "c"]) == (0.0, 0.0, 0.0)


def test_clips_are_the_resampling_unit():
    """Two items per clip, always equal: the interval is that of 100 clips, wider than 200 iid items."""
    rng = np.random.default_rng(0)
    per_clip = rng.random(100) < 0.5
    scores = np.repeat(per_clip, 2)
    clips = np.repeat(np.arange(100), 2)
    _, low_c, high_c = bootstrap_ci(scores, clips, n_boot=4000)
    _, low_i, high_i = bootstrap_ci(scores, np.arange(200), n_boot=4000)
    assert (high_c - low_c) > 1.25 * (high_i - low_i)  # ~sqrt(2) wider


def test_paired_difference_of_identical_models_is_zero_and_of_a_fixed_gain_is_exact():
    scores = [1, 0, 1, 1, 0]
    assert paired_bootstrap_diff(scores, scores, range(5)) == (0.0, 0.0, 0.0)
    better = [1, 1, 1, 1, 1]
    diff, low, high = paired_bootstrap_diff(scores, better, range(5), n_boot=2000)
    assert diff == pytest.approx(0.4)
    assert 0.0 <= low <= diff <= high <= 1.0


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="3 scores but 2 clip ids"):
        bootstrap_ci([1, 0, 1], ["a", "b"])
