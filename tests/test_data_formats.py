"""Each file-based data set loads from a tiny fake copy written in its official on-disk format;
missing or corrupt copies raise UserError naming the path; decoded splits are cached."""

import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.data import load_splits
from benchmark.data.cache import cache_path
from benchmark.errors import UserError


# ---- fake writers: the official layouts, a few images per class ------------------------------

def _unique_images(count, seed, shape):
    """uint8 images whose first pixel bytes encode their index, so each one is unique."""
    images = np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)
    flat = images.reshape(count, -1)
    flat[:, 0] = np.arange(count) % 256
    flat[:, 1] = np.arange(count) // 256
    return images


def _write_pickle(path, data, label_key, labels):
    with open(path, "wb") as handle:
        pickle.dump({"data": data.reshape(len(data), -1), label_key: list(labels),
                     "batch_label": "fake"}, handle)


def write_cifar10(root, per_batch=20, test_count=30):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images = _unique_images(5 * per_batch + test_count, 0, (3, 32, 32))
    labels = np.arange(len(images)) % 10
    for i in range(5):
        part = slice(i * per_batch, (i + 1) * per_batch)
        _write_pickle(folder / f"data_batch_{i + 1}", images[part], "labels", labels[part])
    _write_pickle(folder / "test_batch", images[5 * per_batch:], "labels", labels[5 * per_batch:])
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, handle)
    return images, labels


def write_cifar100(root, train_count=200, test_count=100):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    images = _unique_images(train_count + test_count, 1, (3, 32, 32))
    labels = np.arange(len(images)) % 100
    _write_pickle(folder / "train", images[:train_count], "fine_labels", labels[:train_count])
    _write_pickle(folder / "test", images[train_count:], "fine_labels", labels[train_count:])
    return images, labels


def write_stl10(root, train_count=20, test_count=10):
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    images = _unique_images(train_count + test_count, 2, (3, 96, 96))
    labels = (np.arange(len(images)) % 10 + 1).astype(np.uint8)  # 1..10 on disk
    on_disk = np.ascontiguousarray(images.transpose(0, 1, 3, 2))  # column-major storage
    on_disk[:train_count].tofile(folder / "train_X.bin")
    labels[:train_count].tofile(folder / "train_y.bin")
    on_disk[train_count:].tofile(folder / "test_X.bin")
    labels[train_count:].tofile(folder / "test_y.bin")
    return images, labels


def _write_jpeg(path, seed, size=64, mode="RGB"):
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path, quality=90)


WNIDS = ["n03444034", "n01443537", "n02099601"]


def write_tinyimagenet(root, train_per_class=4, val_per_class=2):
    base = root / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    seed = 0
    for wnid in WNIDS:
        folder = base / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for k in range(train_per_class):
            _write_jpeg(folder / f"{wnid}_{k}.JPEG", seed, mode="L" if k == 0 else "RGB")
            seed += 1
    lines = []
    for k in range(val_per_class * len(WNIDS)):
        wnid = WNIDS[k % len(WNIDS)]
        _write_jpeg(base / "val" / "images" / f"val_{k}.JPEG", 1000 + k)
        lines.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return base


# ---- CIFAR --------------------------------------------------------------------------------

def test_cifar10_loads_pixels_labels_and_splits(tmp_path):
    images, labels = write_cifar10(tmp_path)
    splits = load_splits("cifar10", tmp_path, val_fraction=0)
    assert torch.equal(splits.train.images, torch.from_numpy(images[:100]))
    assert torch.equal(splits.train.labels, torch.from_numpy(labels[:100]).long())
    assert torch.equal(splits.test.images, torch.from_numpy(images[100:]))
    assert splits.info.num_classes == 10


def test_val_is_seeded_disjoint_and_leaves_test_untouched(tmp_path):
    write_cifar10(tmp_path)
    a = load_splits("cifar10", tmp_path, val_fraction=0.2, split_seed=0)
    b = load_splits("cifar10", tmp_path, val_fraction=0.2, split_seed=0)
    c = load_splits("cifar10", tmp_path, val_fraction=0.2, split_seed=1)
    assert (len(a.train), len(a.val), len(a.test)) == (80, 20, 30)
    assert torch.bincount(a.val.labels).tolist() == [2] * 10  # stratified
    ids = lambda data: set((data.images[:, 0, 0, 0].long() + 256 * data.images[:, 0, 0, 1].long()).tolist())
    assert not ids(a.train) & ids(a.val)
    assert ids(a.train) | ids(a.val) == set(range(100))
    assert torch.equal(a.val.images, b.val.images)
    assert ids(a.val) != ids(c.val)
    assert torch.equal(a.test.images, c.test.images) and torch.equal(a.test.labels, c.test.labels)


def test_cifar100_reads_fine_labels(tmp_path):
    images, labels = write_cifar100(tmp_path)
    splits = load_splits("cifar100", tmp_path, val_fraction=0.5, split_seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (100, 100, 100)
    assert torch.equal(splits.test.images, torch.from_numpy(images[200:]))
    assert torch.equal(splits.test.labels, torch.from_numpy(labels[200:]).long())
    assert torch.bincount(splits.val.labels, minlength=100).tolist() == [1] * 100


@pytest.mark.parametrize("name, expected", [
    ("cifar10", "cifar-10-batches-py/data_batch_1"), ("cifar100", "cifar-100-python/train"),
    ("stl10", "stl10_binary/train_X.bin"), ("stl10_32", "stl10_binary/test_y.bin"),
    ("tinyimagenet", "tiny-imagenet-200/wnids.txt"), ("imagenet", "imagenet/train")])
def test_missing_dataset_names_the_path_and_how_to_get_it(tmp_path, name, expected):
    with pytest.raises(UserError) as err:
        load_splits(name, tmp_path)
    message = str(err.value)
    assert str(tmp_path / expected) in message
    assert name.split("_")[0] in message and "http" in message


def test_missing_data_dir_is_a_user_error():
    with pytest.raises(UserError, match="--data-dir"):
        load_splits("cifar10", None)


def test_garbage_cifar_pickle_is_corrupt(tmp_path):
    write_cifar10(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(b"not a pickle at all")
    with pytest.raises(UserError, match="corrupt") as err:
        load_splits("cifar10", tmp_path)
    assert str(bad) in str(err.value)


def test_cifar_pickle_with_wrong_shape_is_corrupt(tmp_path):
    write_cifar100(tmp_path)
    with open(tmp_path / "cifar-100-python" / "test", "wb") as handle:
        pickle.dump({"data": np.zeros((4, 100), np.uint8), "fine_labels": [0, 1, 2, 3]}, handle)
    with pytest.raises(UserError, match="corrupt.*cifar-100-python/test"):
        load_splits("cifar100", tmp_path)


def test_cache_hit_returns_identical_tensors_without_decoding(tmp_path, monkeypatch):
    write_cifar10(tmp_path)
    first = load_splits("cifar10", tmp_path, val_fraction=0)
    assert cache_path(tmp_path, "cifar10-train-32").is_file()
    import benchmark.data.cifar10 as cifar10_module

    def must_not_decode(*args, **kwargs):
        raise AssertionError("decoded although the cache is fresh")
    monkeypatch.setattr(cifar10_module, "read_cifar_batches", must_not_decode)
    second = load_splits("cifar10", tmp_path, val_fraction=0)
    assert torch.equal(first.train.images, second.train.images)
    assert torch.equal(first.test.labels, second.test.labels)
    # a changed source invalidates the cache: decoding is attempted again
    source = tmp_path / "cifar-10-batches-py" / "test_batch"
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded"):
        load_splits("cifar10", tmp_path, val_fraction=0)


def test_damaged_cache_is_rebuilt(tmp_path):
    images, _ = write_cifar10(tmp_path)
    load_splits("cifar10", tmp_path)
    cache_path(tmp_path, "cifar10-test-32").write_bytes(b"truncated")
    splits = load_splits("cifar10", tmp_path)
    assert torch.equal(splits.test.images, torch.from_numpy(images[100:]))
    leftovers = [p.name for p in cache_path(tmp_path, "x").parent.iterdir() if ".tmp" in p.name]
    assert leftovers == []


# ---- STL-10 -------------------------------------------------------------------------------

def test_stl10_reads_column_major_binaries_and_shifts_labels(tmp_path):
    images, labels = write_stl10(tmp_path)
    splits = load_splits("stl10", tmp_path, val_fraction=0)
    assert torch.equal(splits.train.images, torch.from_numpy(images[:20]))
    assert torch.equal(splits.test.images, torch.from_numpy(images[20:]))
    assert torch.equal(splits.train.labels, torch.from_numpy(labels[:20]).long() - 1)
    assert splits.info.image_size == 96


def test_stl10_32_is_the_resized_native_split_and_is_cached(tmp_path):
    write_stl10(tmp_path)
    native = load_splits("stl10", tmp_path, val_fraction=0)
    small = load_splits("stl10_32", tmp_path, val_fraction=0)
    assert small.train.images.shape == (20, 3, 32, 32) and small.info.image_size == 32
    expected = torch.nn.functional.interpolate(native.test.images.float(), size=(32, 32),
                                               mode="bilinear", antialias=True)
    assert (small.test.images.float() - expected).abs().max() <= 0.5 + 1e-4
    assert torch.equal(small.train.labels, native.train.labels)
    assert cache_path(tmp_path, "stl10-train-32").is_file()


def test_stl10_binary_of_wrong_size_is_corrupt(tmp_path):
    write_stl10(tmp_path)
    bad = tmp_path / "stl10_binary" / "test_X.bin"
    bad.write_bytes(bad.read_bytes()[:-7])
    with pytest.raises(UserError, match="corrupt") as err:
        load_splits("stl10", tmp_path)
    assert str(bad) in str(err.value)


def test_stl10_label_count_mismatch_is_corrupt(tmp_path):
    write_stl10(tmp_path)
    np.ones(3, np.uint8).tofile(tmp_path / "stl10_binary" / "train_y.bin")
    with pytest.raises(UserError, match="train_y.bin"):
        load_splits("stl10", tmp_path)


# ---- TinyImageNet -------------------------------------------------------------------------

def _pil_rgb(path):
    with Image.open(path) as image:
        return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)


def test_tinyimagenet_decodes_train_folders_and_labelled_val(tmp_path):
    base = write_tinyimagenet(tmp_path)
    splits = load_splits("tinyimagenet", tmp_path, val_fraction=0)
    assert splits.train.images.shape == (12, 3, 64, 64)
    assert splits.test.images.shape == (6, 3, 64, 64)
    order = sorted(WNIDS)
    assert splits.train.labels.tolist() == [i for i in range(3) for _ in range(4)]
    first = base / "train" / order[0] / "images" / f"{order[0]}_0.JPEG"  # a grayscale JPEG
    assert torch.equal(splits.train.images[0], _pil_rgb(first))
    assert splits.test.labels.tolist() == [order.index(WNIDS[k % 3]) for k in range(6)]
    assert torch.equal(splits.test.images[4], _pil_rgb(base / "val" / "images" / "val_4.JPEG"))


def test_tinyimagenet_32_and_val_split(tmp_path):
    write_tinyimagenet(tmp_path)
    splits = load_splits("tinyimagenet_32", tmp_path, val_fraction=0.25, split_seed=0)
    assert splits.train.images.shape == (9, 3, 32, 32)
    assert torch.bincount(splits.val.labels).tolist() == [1, 1, 1]
    assert splits.test.images.shape == (6, 3, 32, 32)


def test_tinyimagenet_broken_jpeg_is_corrupt(tmp_path):
    base = write_tinyimagenet(tmp_path)
    bad = base / "val" / "images" / "val_1.JPEG"
    bad.write_bytes(b"\xff\xd8 broken")
    with pytest.raises(UserError, match="corrupt") as err:
        load_splits("tinyimagenet", tmp_path)
    assert str(bad) in str(err.value)


def test_tinyimagenet_missing_class_folder_is_named(tmp_path):
    base = write_tinyimagenet(tmp_path)
    (base / "wnids.txt").write_text("\n".join(WNIDS + ["n09999999"]))
    with pytest.raises(UserError, match="n09999999"):
        load_splits("tinyimagenet", tmp_path)


def test_tinyimagenet_annotation_with_unknown_class_is_corrupt(tmp_path):
    base = write_tinyimagenet(tmp_path)
    with open(base / "val" / "val_annotations.txt", "a") as handle:
        handle.write("val_0.JPEG\tn00000000\t0\t0\t1\t1\n")
    with pytest.raises(UserError, match="val_annotations.txt"):
        load_splits("tinyimagenet", tmp_path)
