"""A loss that owns the evaluated head (SimKD): its label trains with CE 0, the engine's train
and test accuracy are the head's, the saved weights carry the head (the probe loads the
student's own network from the same file), and the head alone reproduces the test accuracy."""

from __future__ import annotations

import textwrap

import pytest
import torch

from benchmark.config import load_suite
from benchmark.engine import RunEnv, topk_accuracy, train_cohort
from benchmark.plan import PlanOptions, expand_suite
from losses import expand_loss_label
from losses.registry import HEAD_PREFIX

pytestmark = pytest.mark.slow

SUITE = textwrap.dedent("""
    name: head
    recipe: digits
    datasets: [digits]
    pairs:
      - {teacher: digits_cnn_large, student: digits_cnn_small}
    losses: [simkd]
    seeds: [0]
""")


def test_simkd_label_is_the_official_ce_zero():
    assert expand_loss_label("simkd") == {"ce": 0.0, "simkd": "default"}
    assert expand_loss_label("simkd+kd")["ce"] == 1.0  # combined labels keep PROTOCOL's CE


def test_simkd_is_evaluated_and_saved_through_its_head(tmp_path):
    import models
    from safetensors.torch import load_file

    from benchmark.data import load_splits, make_loader
    from benchmark.probe.sources import load_frozen_network
    from benchmark.teachers import TeacherStore
    from losses import LossContext, create_loss

    (tmp_path / "head.yaml").write_text(SUITE)
    [spec] = expand_suite(load_suite(str(tmp_path / "head.yaml")), PlanOptions(epochs=2))
    assert dict(spec.terms) == {"ce": 0.0, "simkd": 1.0}
    env = RunEnv(device=torch.device("cpu"), store=tmp_path / "store")
    [teacher_result] = train_cohort([spec.teacher_spec()], env)
    [result] = train_cohort([spec], env)
    assert result.status == "FINISHED"

    state = load_file(result.weights_path)
    head = {k[len(HEAD_PREFIX):]: v for k, v in state.items() if k.startswith(HEAD_PREFIX)}
    assert "projector.0.weight" in head and "teacher_classifier.weight" in head
    teacher, _ = TeacherStore(env.store).load(spec.teacher_spec(), 10, 1, torch.device("cpu"))
    assert torch.equal(head["teacher_classifier.weight"], teacher.fc.weight)

    # The bare student (what the probe embeds) loads from the same file, head left out.
    source = type("Source", (), {"arch": spec.student})()
    student = load_frozen_network(source, result.weights_path, 10, 1)
    shapes = lambda m: {k: v.shape for k, v in models.tap_info(m, (1, 8, 8)).items()}
    loss = create_loss("simkd", shapes(student), shapes(teacher),
                       LossContext(1, 10, torch.zeros(1), teacher=teacher))
    loss.load_state_dict(head)
    splits = load_splits("digits", None, val_fraction=spec.val_fraction)
    loader = make_loader(splits.test, splits.info, 512, train=False, seed=0,
                         device=torch.device("cpu"), augment=None)

    class Headed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.student, self.loss = student, loss
            self.extract = models.FeatureExtractor(student, ["last"])

        def forward(self, x):
            return self.loss.head_logits(self.extract(x))

    head_acc, _ = topk_accuracy(Headed(), loader, torch.device("cpu"))
    own_acc, _ = topk_accuracy(student, loader, torch.device("cpu"))
    assert head_acc == pytest.approx(result.test_acc_last, abs=1e-9)
    assert own_acc != head_acc  # the student's own classifier is not what was evaluated
