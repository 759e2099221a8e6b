import torch

from crowdet.postprocess.tta import boxes_to_input, mirror_images, resize_images


def test_mirror_images_within_each_width():
    images = torch.arange(2 * 1 * 2 * 5, dtype=torch.float32).view(2, 1, 2, 5)
    sizes = torch.tensor([[2, 3], [1, 5]])  # image 0 is 3 px wide (2 px of padding)
    out = mirror_images(images, sizes)
    assert out[0, 0].tolist() == [[2.0, 1, 0, 3, 4], [7.0, 6, 5, 8, 9]]
    assert out[1, 0].tolist() == [[14.0, 13, 12, 11, 10], [19.0, 18, 17, 16, 15]]
    assert torch.equal(mirror_images(out, sizes), images)


def test_resize_images_keeps_the_content_and_pads():
    images = torch.zeros(2, 1, 64, 96)
    images[0, :, :40, :60] = 1.0  # image 0: 40 x 60 of content, the rest padding
    images[1] = 2.0
    sizes = torch.tensor([[40, 60], [64, 96]])
    out, new_sizes, (fy, fx) = resize_images(images, sizes, 1.5, size_divisor=32)
    assert out.shape == (2, 1, 96, 160) and (fy, fx) == (1.5, 1.5)  # 144 padded to 160
    assert new_sizes.tolist() == [[60, 90], [96, 144]]
    torch.testing.assert_close(out[0, :, :59, :89], torch.ones(1, 59, 89))
    assert torch.all(out[0, :, 61:, 91:] == 0.0)
    torch.testing.assert_close(out[1, :, :, :144], torch.full((1, 96, 144), 2.0))
    assert torch.all(out[1, :, :, 144:] == 0.0)
    same, same_sizes, factors = resize_images(images, sizes, 1.0)
    assert same is images and same_sizes is sizes and factors == (1.0, 1.0)
    small, small_sizes, (fy, fx) = resize_images(images, sizes, 0.7)
    assert small_sizes.tolist() == [[28, 42], [45, 67]] and (fy, fx) == (45 / 64, 67 / 96)


def test_boxes_go_back_to_the_input_unmirrored_then_unresized():
    boxes = torch.tensor([[10.0, 20, 30, 60], [0.0, 0, 150, 90]])
    widths = torch.tensor([150, 150])  # a 100-px-wide input enlarged 1.5x
    same = boxes_to_input(boxes, widths, (1.0, 1.0), mirrored=False)
    assert torch.equal(same, boxes)
    # mirrored within 150 px: x 10..30 -> 120..140; then / (fx 1.5, fy 2.0)
    back = boxes_to_input(boxes, widths, (2.0, 1.5), mirrored=True)
    expected = torch.tensor([[120 / 1.5, 20 / 2, 140 / 1.5, 60 / 2], [0.0, 0, 100, 45]])
    torch.testing.assert_close(back, expected)
