"""ImageNet class folders: file-list splits and the DataLoader path yielding the same Batch."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from benchmark.data import Batch, FolderData, imagenet_loader, load_splits, make_loader
from benchmark.errors import UserError

CLASSES = ["n01440764", "n01443537", "n01484850"]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def write_imagenet(root, train_per_class=4, val_per_class=2):
    seed = 0
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for wnid in CLASSES:
            folder = root / "imagenet" / split / wnid
            folder.mkdir(parents=True)
            for k in range(count):
                rng = np.random.default_rng(seed)
                seed += 1
                height, width = int(rng.integers(40, 70)), int(rng.integers(40, 70))
                pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{wnid}_{k}.JPEG")
    return root / "imagenet"


def test_imagenet_splits_are_file_lists_with_a_seeded_val(tmp_path):
    write_imagenet(tmp_path)
    splits = load_splits("imagenet", tmp_path, val_fraction=0.25, split_seed=0)
    assert isinstance(splits.train, FolderData)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (9, 3, 6)
    assert torch.bincount(splits.val.labels).tolist() == [1, 1, 1]
    train_files = {path for path, _ in splits.train.samples}
    assert not train_files & {path for path, _ in splits.val.samples}
    assert splits.train.labels.tolist() == [label for _, label in splits.train.samples]
    other = load_splits("imagenet", tmp_path, val_fraction=0.25, split_seed=1)
    assert other.test.samples == splits.test.samples
    assert splits.info.num_classes == 1000


def test_imagenet_val_with_other_classes_is_corrupt(tmp_path):
    base = write_imagenet(tmp_path)
    (base / "val" / CLASSES[0]).rename(base / "val" / "n99999999")
    with pytest.raises(UserError, match="corrupt"):
        load_splits("imagenet", tmp_path)


def test_empty_imagenet_folder_is_missing(tmp_path):
    (tmp_path / "imagenet" / "train").mkdir(parents=True)
    (tmp_path / "imagenet" / "val").mkdir(parents=True)
    with pytest.raises(UserError, match="not found"):
        load_splits("imagenet", tmp_path)


def _batches(loader):
    return [tuple(t.clone() for t in batch) for batch in loader]


def test_train_loader_yields_normalised_batches_deterministically(tmp_path):
    write_imagenet(tmp_path)
    train = load_splits("imagenet", tmp_path, val_fraction=0).train
    make = lambda: imagenet_loader(train, 5, train=True, seed=3, mean=MEAN, std=STD,
                                   num_workers=0, image_size=32)
    first, second = _batches(make()), _batches(make())
    assert len(first) == len(make()) == 3
    images, labels, indices = first[0]
    assert images.shape == (5, 3, 32, 32) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and indices.dtype == torch.int64
    for a, b in zip(first, second):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    all_indices = torch.cat([b[2] for b in first])
    assert sorted(all_indices.tolist()) == list(range(12))
    assert torch.equal(torch.cat([b[1] for b in first]), train.labels[all_indices])
    other_seed = imagenet_loader(train, 12, train=True, seed=4, shuffle=False, mean=MEAN,
                                 std=STD, num_workers=0, image_size=32)
    same_seed = imagenet_loader(train, 12, train=True, seed=3, shuffle=False, mean=MEAN,
                                std=STD, num_workers=0, image_size=32)
    assert not torch.equal(next(iter(other_seed)).images, next(iter(same_seed)).images)
    loader = make()
    loader.set_epoch(1)
    assert not torch.equal(torch.cat([b[2] for b in _batches(loader)]), all_indices)


def test_loader_does_not_touch_the_global_rng(tmp_path):
    write_imagenet(tmp_path)
    train = load_splits("imagenet", tmp_path, val_fraction=0).train
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _batches(imagenet_loader(train, 4, train=True, seed=0, mean=MEAN, std=STD, num_workers=0,
                             image_size=32))
    assert torch.equal(torch.rand(3), expected)


def test_eval_loader_matches_torchvision_resize_center_crop_normalize(tmp_path):
    write_imagenet(tmp_path)
    test = load_splits("imagenet", tmp_path, val_fraction=0).test
    loader = make_loader(test, load_splits("imagenet", tmp_path).info, 4, train=False, seed=0,
                         num_workers=0)
    batch = next(iter(loader))
    assert isinstance(batch, Batch) and batch.indices.tolist() == [0, 1, 2, 3]
    reference = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                                    transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    for row, index in enumerate(batch.indices.tolist()):
        with Image.open(test.samples[index][0]) as image:
            expected = reference(image.convert("RGB"))
        assert torch.allclose(batch.images[row], expected, atol=1e-5)


def test_worker_count_does_not_change_the_batches(tmp_path):
    write_imagenet(tmp_path, train_per_class=2, val_per_class=1)
    train = load_splits("imagenet", tmp_path, val_fraction=0).train
    make = lambda workers: imagenet_loader(train, 3, train=True, seed=5, mean=MEAN, std=STD,
                                           num_workers=workers, image_size=32)
    for a, b in zip(_batches(make(0)), _batches(make(2))):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
