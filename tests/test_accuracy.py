import numpy as np
import pytest

from fmtbench import accuracy


def test_identical_logits_agree_fully():
    logits = np.random.default_rng(0).normal(size=(8, 1000))
    result = accuracy.compare(logits, logits)
    assert result == {"images": 8, "max_abs_diff": 0.0, "mean_abs_diff": 0.0, "top1_agreement_pct": 100.0,
                      "finite": True}


def test_disagreement_and_differences_are_counted():
    reference = np.zeros((4, 3))
    reference[:, 0] = 1.0
    logits = reference.copy()
    logits[0] = [0.0, 2.0, 0.0]  # one image changes its top-1 class
    result = accuracy.compare(logits, reference)
    assert result["top1_agreement_pct"] == 75.0
    assert result["max_abs_diff"] == 2.0


def test_non_finite_logits_are_flagged_and_shapes_must_match():
    logits = np.array([[np.nan, 1.0]])
    assert not accuracy.compare(logits, np.array([[0.0, 1.0]]))["finite"]
    with pytest.raises(ValueError):
        accuracy.compare(np.zeros((2, 3)), np.zeros((3, 3)))
