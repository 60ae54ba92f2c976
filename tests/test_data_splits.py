"""The registry, the seeded val holdout and the digits data set (bundled, no files needed)."""

import pytest
import torch

from benchmark.data import dataset_info, list_datasets, load_splits
from benchmark.data.holdout import stratified_holdout
from benchmark.errors import UserError


def test_list_datasets_names_every_builtin():
    assert set(list_datasets()) >= {"digits", "cifar10", "cifar100", "stl10", "stl10_32",
                                    "tinyimagenet", "tinyimagenet_32", "imagenet"}


@pytest.mark.parametrize("name, classes, size, chans", [
    ("digits", 10, 8, 1), ("cifar10", 10, 32, 3), ("cifar100", 100, 32, 3),
    ("stl10", 10, 96, 3), ("stl10_32", 10, 32, 3), ("tinyimagenet", 200, 64, 3),
    ("tinyimagenet_32", 200, 32, 3), ("imagenet", 1000, 224, 3)])
def test_dataset_info_facts(name, classes, size, chans):
    info = dataset_info(name)
    assert (info.name, info.num_classes, info.image_size, info.in_chans) == (name, classes, size,
                                                                             chans)
    assert len(info.mean) == len(info.std) == chans


def test_cifar100_statistics_are_the_protocol_ones():
    info = dataset_info("cifar100")
    assert info.mean == (0.5071, 0.4867, 0.4408)
    assert info.std == (0.2675, 0.2565, 0.2761)


def test_unknown_dataset_suggests_close_names():
    with pytest.raises(UserError, match="cifar100"):
        dataset_info("cifar1000")


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_bad_val_fraction_is_a_user_error(fraction):
    with pytest.raises(UserError, match="val_fraction"):
        load_splits("digits", None, val_fraction=fraction)


def test_holdout_is_stratified_and_partitions_the_indices():
    labels = torch.arange(10).repeat_interleave(torch.tensor([50, 50, 50, 50, 50, 30, 30, 30, 30, 30]))
    kept, held = stratified_holdout(labels, 0.1, seed=3)
    assert len(held) == round(0.1 * len(labels)) == 40
    assert torch.equal(torch.sort(torch.cat([kept, held])).values, torch.arange(len(labels)))
    assert torch.bincount(labels[held]).tolist() == [5] * 5 + [3] * 5


def test_holdout_rounds_by_largest_remainder_to_the_exact_total():
    labels = torch.tensor([0] * 7 + [1] * 7 + [2] * 7)
    _, held = stratified_holdout(labels, 0.2, seed=0)  # 4.2 -> 4 held out
    assert len(held) == 4
    assert sorted(torch.bincount(labels[held], minlength=3).tolist()) == [1, 1, 2]


def test_holdout_depends_on_the_seed_only():
    labels = torch.randint(0, 5, (300,), generator=torch.Generator().manual_seed(1))
    assert torch.equal(stratified_holdout(labels, 0.2, 7)[1], stratified_holdout(labels, 0.2, 7)[1])
    assert not torch.equal(stratified_holdout(labels, 0.2, 7)[1],
                           stratified_holdout(labels, 0.2, 8)[1])


def test_digits_splits_sizes_types_and_scaling():
    splits = load_splits("digits", None)
    total = len(splits.train) + len(splits.val) + len(splits.test)
    assert total == 1797
    assert len(splits.test) == round(0.2 * 1797)
    assert len(splits.val) == round(0.1 * (1797 - len(splits.test)))
    assert splits.train.images.dtype == torch.uint8
    assert splits.train.images.shape[1:] == (1, 8, 8)
    assert splits.train.labels.dtype == torch.int64
    assert int(splits.train.images.max()) == 255 and int(splits.train.images.min()) == 0
    assert set(splits.test.labels.tolist()) == set(range(10))


def _sorted_rows(images):
    """Images as a sorted list of byte strings: a multiset that ignores order."""
    return sorted(x.numpy().tobytes() for x in images)


def test_digits_pixels_are_sklearn_values_scaled_to_uint8():
    from sklearn.datasets import load_digits

    expected = torch.round(torch.as_tensor(load_digits().images) * 255 / 16).to(torch.uint8)
    splits = load_splits("digits", None, val_fraction=0)
    everything = torch.cat([splits.train.images, splits.test.images]).squeeze(1)
    assert _sorted_rows(everything) == _sorted_rows(expected)


def test_digits_val_is_held_out_of_train_and_seeded():
    a = load_splits("digits", None, split_seed=0)
    b = load_splits("digits", None, split_seed=0)
    c = load_splits("digits", None, split_seed=1)
    assert torch.equal(a.val.images, b.val.images)
    assert not torch.equal(a.val.images, c.val.images)
    pool = load_splits("digits", None, val_fraction=0)
    assert pool.val is None
    # train and val partition the train pool
    assert _sorted_rows(torch.cat([a.train.images, a.val.images])) == _sorted_rows(pool.train.images)


def test_digits_test_split_never_depends_on_split_seed():
    a = load_splits("digits", None, split_seed=0)
    b = load_splits("digits", None, split_seed=5, val_fraction=0.3)
    assert torch.equal(a.test.images, b.test.images)
    assert torch.equal(a.test.labels, b.test.labels)


def test_digits_statistics_are_computed_from_its_train_pool():
    info = dataset_info("digits")
    pool = load_splits("digits", None, val_fraction=0).train.images.double() / 255
    assert info.mean[0] == pytest.approx(float(pool.mean()), abs=1e-9)
    assert info.std[0] == pytest.approx(float(pool.std()), abs=1e-9)
    assert 0.2 < info.mean[0] < 0.4
