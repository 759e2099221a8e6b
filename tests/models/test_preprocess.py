"""The model's input normalisation: (x - mean) / std per channel on BGR pixel values, 0 in the
padding, bit for bit what the data loader computed before normalisation moved into the model."""

import pytest
import torch

from crowdet.config import load_config
from crowdet.errors import ConfigError
from crowdet.models.build import build_detector
from crowdet.models.preprocess import InputNorm

MEAN, STD = (103.53, 116.28, 123.675), (57.375, 57.12, 58.395)


def test_hand_made_pixels():
    images = torch.zeros(1, 3, 2, 2, dtype=torch.uint8)
    images[0, :, 0, 0] = torch.tensor([255, 0, 10], dtype=torch.uint8)
    out = InputNorm(MEAN, STD)(images)
    assert out.dtype == torch.float32
    want = [(255 - 103.53) / 57.375, (0 - 116.28) / 57.12, (10 - 123.675) / 58.395]
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor(want), rtol=1e-6, atol=0)
    torch.testing.assert_close(out[0, 0, 1, 1], torch.tensor(-103.53 / 57.375), rtol=1e-6, atol=0)
    rgb = InputNorm(MEAN, STD, rgb=True)(images)
    torch.testing.assert_close(rgb[0, :, 0, 0], torch.tensor(want[::-1]), rtol=1e-6, atol=0)


def test_padding_is_zero_and_the_image_equals_the_old_loader_formula():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 8, 12), generator=g, dtype=torch.uint8)
    sizes = torch.tensor([[8, 12], [5, 7]])
    out = InputNorm(MEAN, STD)(images, sizes)
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    for i, (h, w) in enumerate(sizes.tolist()):
        old = (images[i, :, :h, :w].float() - mean) / std  # what collate computed before
        assert torch.equal(out[i, :, :h, :w], old)
    assert torch.equal(out[1, :, 5:], torch.zeros(3, 3, 12))
    assert torch.equal(out[1, :, :, 7:], torch.zeros(3, 8, 5))
    assert not torch.signbit(out[1, :, 5:]).any()  # +0, as the zeros the loader padded with


def test_the_config_sets_the_buffers_which_checkpoints_do_not_hold():
    cfg = load_config("configs/tiny.yaml", ["model.pixel_mean=[1, 2, 3]"])
    model = build_detector(cfg)
    assert model.input_norm.mean.flatten().tolist() == [1.0, 2.0, 3.0]
    assert model.input_norm.std.flatten().tolist() == torch.tensor(STD).tolist()
    assert not any(k.startswith("input_norm") for k in model.state_dict())
    with pytest.raises(ConfigError, match="model.pixel_std"):
        load_config("configs/tiny.yaml", ["model.pixel_std=[0, 1, 1]"])
