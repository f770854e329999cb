import numpy as np
import pytest

from fmtbench import accuracy


def test_identical_logits_agree_fully():
    logits = np.random.default_rng(0).normal(size=(8, 1000))
    result = accuracy.compare(logits, logits)
    assert result["max_rel_error"] == 0.0 and result["max_abs_diff"] == 0.0
    assert result["top1_agreement_pct"] == 100.0 and result["non_finite_images"] == 0 and result["within_limit"]


def test_limits_follow_the_arithmetic_not_the_format():
    fp16, tf32, fp32 = (accuracy.relative_error_limit("fp16"), accuracy.relative_error_limit("fp32", "tf32"),
                        accuracy.relative_error_limit("fp32"))
    assert fp16 == tf32
    assert 1.5e-3 < fp16 < 3e-3    # fp16 and TF32 rows measured 5.6-6.7e-4 on the H100; bf16 reads 5.7e-3
    assert 1e-5 < fp32 < 2e-4      # strict fp32 rows measured at most 9.5e-7
    assert fp16 < 0.25 / 10        # the old absolute limit was 0.25 logits


def test_an_fp16_sized_error_passes_fp16_and_fails_strict_fp32():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(16, 1000))
    logits = reference * (1 + rng.normal(scale=1e-3, size=reference.shape))  # ~1e-3 relative, as fp16 gives
    assert accuracy.compare(logits, reference, "fp16")["within_limit"]
    assert not accuracy.compare(logits, reference, "fp32")["within_limit"]
    assert accuracy.compare(logits, reference, "fp32", "tf32")["within_limit"]


def test_old_absolute_limit_passed_a_ten_percent_error_the_relative_one_does_not():
    reference = np.full((4, 1000), 0.5)
    logits = reference * 1.1   # 10 % off everywhere, |Δ| = 0.05 < 0.25
    assert np.abs(logits - reference).max() < 0.25
    assert not accuracy.compare(logits, reference, "fp16")["within_limit"]


def test_non_finite_logits_are_outliers_and_counted():
    reference = np.ones((3, 4))
    logits = reference.copy()
    logits[1, 2] = np.nan
    result = accuracy.compare(logits, reference, "fp16")
    assert result["non_finite_images"] == 1 and not result["within_limit"]
    assert result["max_rel_error"] == 0.0  # the finite images agree
    with pytest.raises(ValueError):
        accuracy.compare(np.zeros((2, 3)), np.zeros((3, 3)))


def test_class_concentration_of_the_reference_is_reported():
    reference = np.zeros((4, 3))
    reference[:, 0] = 1.0
    reference[3] = [0.0, 1.0, 0.0]
    assert accuracy.compare(reference, reference)["reference_top1_share"] == 0.75


@pytest.fixture(scope="module")
def resnet_and_reference():
    import torch
    import torchvision
    torch.manual_seed(0)
    net = torchvision.models.resnet18().eval()
    images = torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return net, images, net(images).numpy()


def test_the_fp16_limit_catches_a_bf16_computation(resnet_and_reference):
    """The old limit (8.9e-3, 13x what fp16 measures) passed the model run in bf16; the limit must not."""
    import copy

    import torch
    net, images, reference = resnet_and_reference
    with torch.no_grad():
        bf16 = copy.deepcopy(net).to(torch.bfloat16)(images.to(torch.bfloat16)).float().numpy()
    result = accuracy.compare(bf16, reference, "fp16")
    assert 3e-3 < result["max_rel_error"] and not result["within_limit"], result


def test_the_fp16_limit_catches_one_layer_off_by_one_percent(resnet_and_reference):
    import copy

    import torch
    net, images, reference = resnet_and_reference
    perturbed = copy.deepcopy(net)
    weight = perturbed.layer3[0].conv1.weight
    with torch.no_grad():
        weight.mul_(1 + 1e-2 * torch.randn(weight.shape, generator=torch.Generator().manual_seed(2)))
        logits = perturbed(images).numpy()
    assert not accuracy.compare(logits, reference, "fp16")["within_limit"]
    assert not accuracy.compare(logits, reference, "fp32", "tf32")["within_limit"]


def test_a_strict_fp32_recomputation_passes_its_limit(resnet_and_reference):
    import torch
    net, images, reference = resnet_and_reference
    with torch.no_grad():
        again = torch.cat([net(images[i:i + 1]) for i in range(len(images))]).numpy()  # another summation order
    assert accuracy.compare(again, reference, "fp32")["within_limit"]
