"""TensorLoader: seeded permutation and augmentation, full coverage per epoch, normalisation."""

import pytest
import torch
from torchvision import transforms

from benchmark.data import ArrayData, Augment, TensorLoader, dataset_info, load_splits, make_loader

MEAN, STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)


def random_data(count=50, size=8, channels=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, channels, size, size), generator=generator,
                           dtype=torch.uint8)
    return ArrayData(images, torch.randint(0, 10, (count,), generator=generator))


def make(data, seed=0, augment=Augment(2, True), batch_size=16, **kw):
    return TensorLoader(data, batch_size, shuffle=kw.pop("shuffle", True), seed=seed,
                        augment=augment, mean=kw.pop("mean", MEAN), std=kw.pop("std", STD),
                        **kw)


def collect(loader):
    return list(loader)


def assert_same_stream(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x.images, y.images)
        assert torch.equal(x.labels, y.labels)
        assert torch.equal(x.indices, y.indices)


def test_same_seed_same_batches():
    data = random_data()
    assert_same_stream(collect(make(data, seed=1)), collect(make(data, seed=1)))


def test_other_seed_other_batches():
    data = random_data()
    a, b = collect(make(data, seed=1)), collect(make(data, seed=2))
    assert not torch.equal(a[0].indices, b[0].indices)


def test_epochs_differ_and_set_epoch_reproduces_a_past_epoch():
    data = random_data()
    loader = make(data)
    epoch0 = collect(loader)
    loader.set_epoch(1)
    epoch1 = collect(loader)
    assert not torch.equal(epoch0[0].indices, epoch1[0].indices)
    resumed = make(data)
    resumed.set_epoch(1)
    assert_same_stream(epoch1, collect(resumed))
    loader.set_epoch(0)
    assert_same_stream(epoch0, collect(loader))


def test_every_sample_once_per_epoch_with_its_label():
    data = random_data(count=50)
    loader = make(data, batch_size=16)
    batches = collect(loader)
    assert len(loader) == len(batches) == 4
    assert [len(b.indices) for b in batches] == [16, 16, 16, 2]
    indices = torch.cat([b.indices for b in batches])
    assert sorted(indices.tolist()) == list(range(50))
    assert torch.equal(torch.cat([b.labels for b in batches]), data.labels[indices])
    for batch in batches:
        assert batch.images.dtype == torch.float32 and batch.labels.dtype == torch.int64
        assert batch.indices.dtype == torch.int64


def test_drop_last_drops_the_partial_batch():
    loader = make(random_data(count=50), batch_size=16, drop_last=True)
    batches = collect(loader)
    assert len(loader) == len(batches) == 3
    assert all(len(b.indices) == 16 for b in batches)


def test_unshuffled_loader_without_augmentation_equals_torchvision_normalize():
    data = random_data(count=20)
    loader = make(data, augment=None, shuffle=False, batch_size=8)
    images = torch.cat([b.images for b in loader])
    assert torch.equal(torch.cat([b.indices for b in loader]), torch.arange(20))
    normalize = transforms.Normalize(MEAN, STD)
    expected = torch.stack([normalize(img.float() / 255) for img in data.images])
    assert torch.allclose(images, expected, atol=1e-5)


def test_augmentation_draws_cover_every_offset_and_flip_about_half():
    loader = make(random_data(count=2000), augment=Augment(4, True))
    _, draw = loader.epoch_plan()
    assert set(draw.offsets.flatten().tolist()) == set(range(9))
    assert 0.45 < draw.flips.float().mean().item() < 0.55


def test_augmentation_without_flip_never_flips():
    loader = make(random_data(count=200), augment=Augment(2, False))
    assert not loader.epoch_plan()[1].flips.any()


def test_identity_augmentation_is_none():
    loader = make(random_data(count=20), augment=Augment(0, False), shuffle=False)
    assert loader.epoch_plan()[1] is None


def test_make_loader_trains_shuffled_and_evaluates_in_order():
    splits = load_splits("digits", None)
    info = dataset_info("digits")
    train = make_loader(splits.train, info, 32, train=True, seed=0, augment=Augment(1, True))
    test = make_loader(splits.test, info, 32, train=False, seed=0, augment=Augment(1, True))
    assert isinstance(train, TensorLoader) and train.augment == Augment(1, True)
    assert test.augment is None
    assert torch.equal(next(iter(test)).indices, torch.arange(32))
    assert not torch.equal(next(iter(train)).indices, torch.arange(32))
    batch = next(iter(test))
    assert batch.images.shape == (32, 1, 8, 8)
    # normalised with the data set's own statistics: about zero mean, unit std overall
    full = torch.cat([b.images for b in test])
    assert abs(full.mean().item()) < 0.1 and abs(full.std().item() - 1) < 0.1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_equal_cpu_batches():
    data = random_data()
    cpu = collect(make(data, device="cpu"))
    gpu = collect(make(data, device="cuda"))
    for a, b in zip(cpu, gpu):
        assert b.images.is_cuda and b.labels.is_cuda and b.indices.is_cuda
        assert torch.allclose(a.images, b.images.cpu(), atol=1e-6)
        assert torch.equal(a.indices, b.indices.cpu())


@pytest.mark.parametrize("drop_last", [False, True])
def test_block_size_does_not_change_the_batches(monkeypatch, drop_last):
    import benchmark.data.loader as loader_module

    data = random_data(count=75)
    whole = collect(make(data, batch_size=8, drop_last=drop_last))
    # 8 images of 3x8x8 per batch: blocks of 2 batches, the last block partial
    monkeypatch.setattr(loader_module, "BLOCK_VALUES", 2 * 8 * 3 * 8 * 8)
    blocked = make(data, batch_size=8, drop_last=drop_last)
    assert blocked._batches_per_block() == 2
    assert_same_stream(whole, collect(blocked))
    assert len(whole) == (9 if drop_last else 10)
