"""The loader's batched crop/flip equals torchvision's RandomCrop(32, padding=4) +
RandomHorizontalFlip for the same crop corners and flip decisions."""

import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import functional as TF

from benchmark.data import ArrayData, Augment, TensorLoader, crop_flip

MEAN, STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)


def torchvision_crop_flip(image, top, left, flip, padding=4):
    """torchvision's RandomCrop(size, padding) + RandomHorizontalFlip with fixed choices."""
    size = image.shape[-1] if isinstance(image, torch.Tensor) else image.size[0]
    out = TF.crop(TF.pad(image, [padding]), top, left, size, size)
    return TF.hflip(out) if flip else out


def random_batch(count, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, 3, size, size), generator=generator, dtype=torch.uint8)
    offsets = torch.randint(0, 9, (count, 2), generator=generator)
    flips = torch.rand(count, generator=generator) < 0.5
    return images, offsets, flips


def test_crop_flip_equals_torchvision_on_tensors():
    images, offsets, flips = random_batch(24)
    ours = crop_flip(images, offsets, flips, padding=4)
    for i in range(len(images)):
        expected = torchvision_crop_flip(images[i], int(offsets[i, 0]), int(offsets[i, 1]),
                                         bool(flips[i]))
        assert torch.equal(ours[i], expected), f"image {i}"


def test_crop_flip_equals_torchvision_on_pil_images():
    images, offsets, flips = random_batch(6, seed=1)
    ours = crop_flip(images, offsets, flips, padding=4)
    for i in range(len(images)):
        pil = Image.fromarray(images[i].permute(1, 2, 0).numpy())
        expected = TF.pil_to_tensor(torchvision_crop_flip(pil, int(offsets[i, 0]),
                                                          int(offsets[i, 1]), bool(flips[i])))
        assert torch.equal(ours[i], expected), f"image {i}"


def test_extreme_corners_show_the_zero_padding():
    images = torch.full((2, 1, 8, 8), 200, dtype=torch.uint8)
    out = crop_flip(images, torch.tensor([[0, 0], [4, 4]]), torch.tensor([False, False]), 2)
    assert out[0, 0, :2].eq(0).all() and out[0, 0, :, :2].eq(0).all()
    assert out[0, 0, 2:, 2:].eq(200).all()
    assert out[1, 0, -2:].eq(0).all() and out[1, 0, :-2, :-2].eq(200).all()


def test_loader_batches_equal_torchvision_pipeline_with_the_same_draws():
    images, _, _ = random_batch(40, seed=2)
    data = ArrayData(images, torch.arange(40) % 10)
    loader = TensorLoader(data, 16, shuffle=True, seed=7, augment=Augment(4, True), mean=MEAN,
                          std=STD, device="cpu")
    loader.set_epoch(3)
    order, draw = loader.epoch_plan()
    normalize = transforms.Normalize(MEAN, STD)
    position = 0
    for batch in loader:
        for row in range(len(batch.indices)):
            index = int(order[position])
            assert int(batch.indices[row]) == index
            cropped = torchvision_crop_flip(images[index], int(draw.offsets[position, 0]),
                                            int(draw.offsets[position, 1]),
                                            bool(draw.flips[position]))
            expected = normalize(cropped.float() / 255)
            assert torch.allclose(batch.images[row], expected, atol=1e-5)
            position += 1
    assert position == 40
    assert draw.flips.any() and not draw.flips.all()
    assert (draw.offsets != 4).any()
