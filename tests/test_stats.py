import numpy as np
import pytest

from fmtbench import stats


def test_summary_of_known_values_in_milliseconds():
    summary = stats.summarize([0.001, 0.002, 0.003, 0.004, 0.005])
    assert summary["unit"] == "ms"
    assert summary["count"] == 5
    assert summary["median"] == pytest.approx(3.0)
    assert summary["mean"] == pytest.approx(3.0)
    assert summary["min"] == pytest.approx(1.0)
    assert summary["max"] == pytest.approx(5.0)
    assert summary["std"] == pytest.approx(np.std([1, 2, 3, 4, 5], ddof=1))
    assert summary["p90"] == pytest.approx(np.percentile([1, 2, 3, 4, 5], 90))


def test_median_ci_brackets_the_median_and_narrows_with_more_samples():
    rng = np.random.default_rng(0)
    small = stats.summarize(rng.normal(10e-3, 1e-3, 20))
    large = stats.summarize(rng.normal(10e-3, 1e-3, 2000))
    for summary in (small, large):
        low, high = summary["ci95_median"]
        assert low <= summary["median"] <= high
    assert (large["ci95_median"][1] - large["ci95_median"][0]) < (small["ci95_median"][1] - small["ci95_median"][0])


def test_median_ci_covers_the_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(400):
        low, high = stats.median_ci95(np.sort(rng.exponential(1.0, 60)))
        hits += low <= np.log(2) <= high
    assert 0.90 <= hits / 400 <= 0.99


def test_few_samples_span_the_whole_sample():
    assert stats.median_ci95(np.array([1.0, 2.0, 3.0])) == (1.0, 3.0)


def test_noisy_flag_follows_iqr_over_median():
    steady = stats.summarize([0.010, 0.0101, 0.0099, 0.0100, 0.0100], noisy_iqr_ratio=0.10)
    spread = stats.summarize([0.010, 0.015, 0.005, 0.020, 0.010], noisy_iqr_ratio=0.10)
    assert not steady["noisy"]
    assert spread["noisy"]


def test_no_samples_is_an_error():
    with pytest.raises(ValueError):
        stats.summarize([])
