"""The transfer probe's parts: the linear probe (separable data reaches 100%, same seed gives
the same classifier bit for bit), embeddings from a frozen network (weights and BatchNorm
statistics unchanged, the source's normalisation), the embedding cache, the held-out digits
variants, settings and target checks."""

import pytest
import torch

import models
from benchmark.data import ArrayData, dataset_info, load_splits
from benchmark.errors import UserError
from benchmark.probe.cache import (Embeddings, cached_embeddings, data_digest, fingerprint,
                                   read_entry)
from benchmark.probe.digits_variants import load_digits_variant, shift_images
from benchmark.probe.embeddings import assert_unchanged, extract_embeddings, snapshot_state
from benchmark.probe.linear import cosine_lr, standardization, train_linear_probe
from benchmark.probe.settings import ProbeSettings
from benchmark.probe.sources import freeze
from benchmark.probe.targets import check_target, load_target
from benchmark.store import Store

FAST = ProbeSettings(epochs=20, batch_size=16)


def blobs(per_class=30, classes=3, dim=8, seed=0, spread=0.3):
    """Gaussian blobs around well-separated centres: linearly separable."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.eye(classes, dim) * 10.0 + 3.0
    labels = torch.arange(classes).repeat_interleave(per_class)
    features = centres[labels] + spread * torch.randn(len(labels), dim, generator=generator)
    return features, labels


# ---- the linear probe ---------------------------------------------------------------------

def test_linearly_separable_features_reach_100_percent():
    train_x, train_y = blobs(seed=0)
    test_x, test_y = blobs(seed=1)
    probe = train_linear_probe(train_x, train_y, 3, FAST)
    assert probe.accuracy(train_x, train_y) == 100.0
    assert probe.accuracy(test_x, test_y) == 100.0


def test_xor_labels_are_not_linearly_separable():
    """The probe is linear: XOR of two signs cannot be learned (so 100% above means something)."""
    points = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]]).repeat(10, 1)
    labels = torch.tensor([0, 0, 1, 1]).repeat(10)
    probe = train_linear_probe(points, labels, 2, FAST)
    assert probe.accuracy(points, labels) <= 75.0


def test_same_seed_gives_identical_classifier_and_accuracy():
    features, labels = blobs(spread=4.0)  # overlapping: the result depends on the batch order
    first = train_linear_probe(features, labels, 3, FAST)
    second = train_linear_probe(features, labels, 3, FAST)
    other = train_linear_probe(features, labels, 3, ProbeSettings(epochs=20, batch_size=16,
                                                                  seed=1))
    assert torch.equal(first.classifier.weight, second.classifier.weight)
    assert torch.equal(first.classifier.bias, second.classifier.bias)
    assert first.accuracy(features, labels) == second.accuracy(features, labels)
    assert first.final_loss == second.final_loss
    assert not torch.equal(first.classifier.weight, other.classifier.weight)


def test_probe_has_no_weight_decay_by_default_and_records_its_optimiser():
    params = ProbeSettings().params()
    assert params["probe.weight_decay"] == "0.0"
    assert params["probe.optimizer"] == "sgd" and params["probe.momentum"] == "0.9"
    assert params["probe.schedule"] == "cosine-per-step-to-0"
    assert (params["probe.epochs"], params["probe.lr"]) == ("30", "0.1")
    assert ProbeSettings().for_target(256).batch_size == 256
    assert ProbeSettings(batch_size=8).for_target(256).batch_size == 8
    assert ProbeSettings().key() != ProbeSettings(epochs=29).key()


def test_probe_trains_on_one_thread_and_restores_the_thread_count():
    features, labels = blobs()
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train_linear_probe(features, labels, 3, FAST)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    with pytest.raises(ValueError, match="for_target"):
        train_linear_probe(features, labels, 3, ProbeSettings())


def test_cosine_schedule_runs_from_lr_to_zero():
    assert cosine_lr(0.1, 0, 100) == 0.1
    assert cosine_lr(0.1, 50, 100) == pytest.approx(0.05)
    assert cosine_lr(0.1, 100, 100) == pytest.approx(0.0, abs=1e-12)


def test_standardization_uses_train_statistics_and_keeps_dead_units():
    features = torch.tensor([[1.0, 5.0], [3.0, 5.0]])
    shift, scale = standardization(features, enabled=True)
    assert shift.tolist() == [2.0, 5.0] and scale.tolist() == [1.0, 1.0]
    shift, scale = standardization(torch.tensor([[0.0, 5.0], [4.0, 5.0]]), enabled=True)
    assert scale.tolist() == [2.0, 1.0]
    assert standardization(features, enabled=False)[1].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("field, value", [("epochs", 0), ("lr", 0.0), ("batch_size", 0),
                                          ("weight_decay", -1.0), ("seed", -1)])
def test_bad_settings_are_user_errors(field, value):
    with pytest.raises(UserError, match=field.replace("_", "-") if field != "lr" else "--lr"):
        ProbeSettings(**{field: value})


# ---- embeddings of a frozen network -------------------------------------------------------

def trained_looking_model():
    """A small RGB network whose BatchNorm statistics are not the defaults."""
    model = models.create_model("digits_cnn_small", num_classes=100, in_chans=3)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, 32, 32) * 2 + 1)
    return model


def test_embeddings_come_from_the_frozen_network_with_the_source_normalisation():
    model = trained_looking_model()  # left in train mode on purpose
    before = snapshot_state(model)
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    data = ArrayData(images, torch.arange(10) % 2)
    source = dataset_info("cifar100")
    embeddings = extract_embeddings(model, data, source.mean, source.std, batch_size=4)
    assert embeddings.shape == (10, 32)
    assert not model.training
    assert_unchanged(model, before)  # weights and BN running statistics, bit for bit
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    mean = torch.tensor(source.mean).view(1, 3, 1, 1)
    std = torch.tensor(source.std).view(1, 3, 1, 1)
    inputs = (images.float() / 255 - mean) / std
    with torch.no_grad():
        pooled = model.flatten(model.avgpool(model.layer2(model.layer1(model.stem(inputs)))))
    assert torch.allclose(embeddings, pooled, atol=1e-5)
    stl = dataset_info("stl10_32")  # the target's own statistics give other embeddings
    assert not torch.allclose(extract_embeddings(model, data, stl.mean, stl.std), embeddings,
                              atol=1e-3)


def test_a_changed_network_is_detected():
    model = trained_looking_model()
    before = snapshot_state(model)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32))  # BN statistics move
    with pytest.raises(RuntimeError, match="changed"):
        assert_unchanged(model, before)


def test_freeze_switches_off_gradients_and_training_mode():
    model = freeze(trained_looking_model())
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert all(not m.training for m in model.modules())


# ---- the embedding cache ------------------------------------------------------------------

def _embeddings(value):
    return Embeddings(torch.full((4, 3), float(value)), torch.arange(4),
                      torch.full((2, 3), float(value)), torch.arange(2))


def test_cache_returns_stored_embeddings_and_recomputes_stale_or_damaged(tmp_path):
    path = Store(tmp_path).embeddings("run", "stl10")
    calls = []

    def compute(value):
        def run():
            calls.append(value)
            return _embeddings(value)
        return run
    first, cached = cached_embeddings(path, "stamp-a", compute(1))
    assert not cached and calls == [1]
    again, cached = cached_embeddings(path, "stamp-a", compute(2))
    assert cached and calls == [1] and torch.equal(again.train, first.train)
    fresh, cached = cached_embeddings(path, "stamp-b", compute(3))  # e.g. new weights
    assert not cached and calls == [1, 3] and float(fresh.train[0, 0]) == 3.0
    path.write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="run-stl10.pt is unreadable"):
        assert read_entry(path, "stamp-b") is None  # moved aside, named in the warning
    _, cached = cached_embeddings(path, "stamp-b", compute(4))
    assert not cached and calls == [1, 3, 4]
    names = sorted(p.name for p in path.parent.iterdir())
    assert names[0] == "run-stl10.pt" and len(names) == 2  # no temporary files
    assert names[1].startswith("run-stl10.pt.corrupt-")


def test_fingerprint_depends_on_weights_normalisation_and_data():
    digest = data_digest(torch.zeros(2, 3, dtype=torch.uint8))
    base = fingerprint("sha-a", "resnet8x4", (0.5,), (0.2,), digest)
    assert base != fingerprint("sha-b", "resnet8x4", (0.5,), (0.2,), digest)
    assert base != fingerprint("sha-a", "resnet8x4", (0.4,), (0.2,), digest)
    other = data_digest(torch.ones(2, 3, dtype=torch.uint8))
    assert base != fingerprint("sha-a", "resnet8x4", (0.5,), (0.2,), other)
    assert base == fingerprint("sha-a", "resnet8x4", (0.5,), (0.2,), digest)


# ---- targets ------------------------------------------------------------------------------

def test_shift_moves_pixels_with_zero_fill():
    images = torch.arange(1, 17, dtype=torch.uint8).view(1, 1, 4, 4)
    shifted = shift_images(images, 1, 1)
    assert torch.equal(shifted[..., 1:, 1:], images[..., :3, :3])
    assert shifted[..., 0, :].sum() == 0 and shifted[..., :, 0].sum() == 0


@pytest.mark.parametrize("name, transform", [
    ("digits-shifted", lambda x: shift_images(x, 1, 1)),
    ("digits-inverted", lambda x: 255 - x),
    ("digits-shifted-inverted", lambda x: 255 - shift_images(x, 1, 1))])
def test_digits_variants_are_stratified_halves_of_the_transformed_test_split(name, transform):
    held_out = load_splits("digits", None, val_fraction=0).test
    train, test = load_digits_variant(name)
    assert len(train) + len(test) == len(held_out) == 359 and abs(len(train) - len(test)) <= 1
    halves = torch.bincount(train.labels, minlength=10) - torch.bincount(test.labels, minlength=10)
    assert halves.abs().max() <= 1  # each class split in two
    rows = lambda images, labels: sorted(zip(map(tuple, images.flatten(1).tolist()),
                                             labels.tolist()))
    expected = rows(transform(held_out.images), held_out.labels)
    assert rows(torch.cat([train.images, test.images]), torch.cat([train.labels, test.labels])) \
        == expected  # exactly the transformed held-out split, split in two
    originals = set(map(tuple, held_out.images.flatten(1).tolist()))
    assert not any(image in originals for image in map(tuple, train.images.flatten(1).tolist()))
    again = load_digits_variant(name)
    assert torch.equal(again[0].images, train.images) and torch.equal(again[1].labels,
                                                                      test.labels)


def test_unknown_target_and_channel_mismatch_are_user_errors():
    with pytest.raises(UserError, match="stl10"):
        check_target("stl-10")
    with pytest.raises(UserError, match="digits-shifted"):
        load_target("digits-shifted", None, dataset_info("cifar100"))
