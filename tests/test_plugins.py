"""Loss plugins: files, entry points, their error messages, and the example plugin."""

from __future__ import annotations

import math
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch

import losses.plugins as plugins
from benchmark.errors import UserError
from losses import create_loss, functional, loss_class
from losses.registry import registry_source, unregister_loss

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "cosine_sp.py"
TAPS = {"last": (4, 2, 2), "stage2": (3, 4, 4), "logits": (5,)}
TEACHER_TAPS = {"last": (9, 2, 2), "stage2": (6, 4, 4), "logits": (5,)}


@pytest.fixture
def registered():
    """Names registered during a test, removed afterwards (and the plugin cache cleared)."""
    names: list[str] = []
    yield names
    for name in names:
        unregister_loss(name)
    plugins._LOADED.clear()


def plugin_source(name: str, tap: str, decorated: bool = True) -> str:
    decorator = f'@register_loss("{name}")' if decorated else "# registered by name"
    return PLUGIN_TEMPLATE.format(name=name, tap=tap, decorator=decorator)


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


PLUGIN_TEMPLATE = """
    import torch
    from losses import DistillLoss, register_loss

    {decorator}
    class Plugged(DistillLoss):
        name = "{name}"
        default_weight = 3.0

        def __init__(self, student_taps, teacher_taps, context=None, **config):
            super().__init__(student_taps, teacher_taps, context, **config)
            self.use_student_tap("{tap}")
            self.use_teacher_tap("{tap}")

        def forward(self, student_feats, teacher_feats, labels=None, indices=None):
            return (student_feats["{tap}"].mean() - teacher_feats["{tap}"].mean()) ** 2
"""


def test_load_plugin_registers_its_loss(tmp_path, registered):
    path = write(tmp_path, "my_loss.py", plugin_source("plug_ok", "logits"))
    assert plugins.load_plugin(str(path)) == ["plug_ok"]
    registered.append("plug_ok")
    assert loss_class("plug_ok").default_weight == 3.0
    assert registry_source("plug_ok") == f"plugin {path}"
    loss = create_loss("plug_ok", TAPS, TEACHER_TAPS)
    s, t = {"logits": torch.ones(2, 5)}, {"logits": torch.zeros(2, 5)}
    assert float(loss(s, t)) == 1.0
    assert plugins.load_plugin(str(path), if_needed=True) == ["plug_ok"]
    assert plugins.load_plugin(str(path)) == ["plug_ok"]  # loading again is harmless


def test_plugin_that_fails_to_import_names_plugin_and_error(tmp_path):
    path = write(tmp_path, "broken.py", "import kdbench_no_such_module_xyz\n")
    with pytest.raises(UserError) as err:
        plugins.load_plugin(str(path))
    message = str(err.value)
    assert f"plugin {path} failed to import" in message
    assert "ModuleNotFoundError: No module named 'kdbench_no_such_module_xyz'" in message


def test_plugin_with_a_syntax_error(tmp_path):
    path = write(tmp_path, "syntax.py", "def broken(:\n")
    with pytest.raises(UserError, match=r"broken|syntax.py failed to import: SyntaxError"):
        plugins.load_plugin(str(path))


def test_plugin_registering_a_taken_name(tmp_path):
    path = write(tmp_path, "dupe.py", plugin_source("sp", "last"))
    with pytest.raises(UserError) as err:
        plugins.load_plugin(str(path))
    message = str(err.value)
    assert "'sp' is already registered by kdbench built-in" in message
    assert f"plugin {path}" in message
    assert loss_class("sp").__name__ == "SPLoss"


def test_plugin_asking_for_a_missing_tap(tmp_path, registered):
    path = write(tmp_path, "taps.py", plugin_source("plug_tap", "stage9"))
    plugins.load_plugin(str(path))
    registered.append("plug_tap")
    with pytest.raises(UserError) as err:
        create_loss("plug_tap", TAPS, TEACHER_TAPS)
    message = str(err.value)
    assert f"'plug_tap' (from plugin {path}) reads tap 'stage9'" in message
    assert "last, logits, stage2" in message


def test_plugin_constructor_bug_is_reported_with_the_plugin(tmp_path, registered):
    body = plugin_source("plug_bug", "last").replace(
        "super().__init__(", "raise RuntimeError('bad shapes'); super().__init__(")
    plugins.load_plugin(str(write(tmp_path, "bug.py", body)))
    registered.append("plug_bug")
    with pytest.raises(UserError, match=r"'plug_bug' from plugin .*bug.py failed to build: "
                                        r"RuntimeError: bad shapes"):
        create_loss("plug_bug", TAPS, TEACHER_TAPS)


def test_plugin_registering_nothing_and_missing_files(tmp_path):
    with pytest.raises(UserError, match="registered no loss"):
        plugins.load_plugin(str(write(tmp_path, "empty.py", "X = 1\n")))
    with pytest.raises(UserError, match="does not exist"):
        plugins.load_plugin(str(tmp_path / "nope.py"))
    with pytest.raises(UserError, match="is not a .py file"):
        plugins.load_plugin(str(write(tmp_path, "loss.txt", "")))


def test_plugin_class_spec_registers_an_undecorated_class(tmp_path, registered):
    body = plugin_source("plug_cls", "logits", decorated=False)
    path = write(tmp_path, "cls.py", body)
    assert plugins.load_plugin(f"{path}:Plugged") == ["plug_cls"]
    registered.append("plug_cls")
    with pytest.raises(UserError, match="no DistillLoss subclass named 'Missing'.*Plugged"):
        plugins.load_plugin(f"{path}:Missing")


def fake_entry_points(monkeypatch, *points):
    monkeypatch.setattr(plugins, "entry_points", lambda group: [
        p for p in points if p.group == group])


def test_entry_point_plugins_load_modules_and_classes(tmp_path, monkeypatch, registered):
    write(tmp_path, "ep_module_plug.py", plugin_source("plug_ep", "logits"))
    write(tmp_path, "ep_class_plug.py", plugin_source("plug_ep_cls", "logits", decorated=False))
    monkeypatch.syspath_prepend(str(tmp_path))
    fake_entry_points(monkeypatch,
                      EntryPoint("mine", "ep_module_plug", "kdbench.losses"),
                      EntryPoint("cls", "ep_class_plug:Plugged", "kdbench.losses"),
                      EntryPoint("other", "ep_module_plug", "other.group"))
    names = plugins.load_entry_point_plugins()
    registered.extend(names)
    assert sorted(names) == ["plug_ep", "plug_ep_cls"]
    assert registry_source("plug_ep") == "plugin entry point 'mine = ep_module_plug'"
    assert plugins.load_entry_point_plugins() == names  # loaded once


def test_broken_entry_point_names_the_plugin(monkeypatch):
    fake_entry_points(monkeypatch, EntryPoint("bad", "kdbench_missing_pkg_q:Loss",
                                              "kdbench.losses"))
    with pytest.raises(UserError, match=r"entry point 'bad = kdbench_missing_pkg_q:Loss' "
                                        r"failed to import: ModuleNotFoundError"):
        plugins.load_entry_point_plugins()


def test_cli_reports_a_broken_plugin_with_exit_code_2(tmp_path, capsys):
    from benchmark.cli import main

    path = write(tmp_path, "broken_cli.py", "raise ValueError('nope')\n")
    assert main(["run", "--plugin", str(path)]) == 2
    err = capsys.readouterr().err
    assert "failed to import: ValueError: nope" in err and "Traceback" not in err


# ----- the example plugin: docs/examples/cosine_sp.py -----

@pytest.fixture
def cosine_sp(registered):
    names = plugins.load_plugin(str(EXAMPLE))
    registered.extend(names)
    assert names == ["cosine_sp"]
    return loss_class("cosine_sp")


def naive_cosine_sp(f_s, f_t):
    b = f_s.shape[0]

    def cosines(f):
        rows = [f[i].reshape(-1).tolist() for i in range(b)]
        norms = [math.sqrt(sum(x * x for x in r)) for r in rows]
        return [[sum(x * y for x, y in zip(rows[i], rows[j])) / (norms[i] * norms[j])
                 for j in range(b)] for i in range(b)]

    c_s, c_t = cosines(f_s), cosines(f_t)
    return sum((c_t[i][j] - c_s[i][j]) ** 2 for i in range(b) for j in range(b)) / b ** 2


def test_example_plugin_matches_naive_loops(cosine_sp):
    f_s, f_t = torch.randn(5, 4, 2, 2, dtype=torch.float64), torch.randn(5, 9, 2, 2,
                                                                          dtype=torch.float64)
    loss = create_loss("cosine_sp", TAPS, TEACHER_TAPS)
    value = loss({"last": f_s}, {"last": f_t})
    assert float(value) == pytest.approx(naive_cosine_sp(f_s, f_t), rel=1e-10)


def test_example_plugin_properties(cosine_sp):
    f = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    loss = create_loss("cosine_sp", TAPS, TEACHER_TAPS)
    assert float(loss({"last": f}, {"last": f.clone()})) == pytest.approx(0.0, abs=1e-14)
    other = torch.randn(4, 7, 2, 2, dtype=torch.float64)
    scaled = float(loss({"last": 10 * f}, {"last": other}))
    assert scaled == pytest.approx(float(loss({"last": f}, {"last": other})), rel=1e-10)
    assert float(loss({"last": f}, {"last": other})) != pytest.approx(
        float(functional.sp(f, other)))  # a different loss from SP
    x = torch.randn(3, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 5, 2, 2, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: loss({"last": a}, {"last": y}), [x])


def test_example_plugin_declarations_and_options(cosine_sp):
    assert cosine_sp.default_weight == 5.0 and cosine_sp.search_weight_range() == (0.5, 100.0)
    loss = create_loss("cosine_sp", TAPS, TEACHER_TAPS, layer="stage2", sharpness=2.0)
    assert loss.student_tap_names == ["stage2"] and loss.teacher_tap_names == ["stage2"]
    s, t = {"stage2": torch.randn(3, 3, 4, 4)}, {"stage2": torch.randn(3, 6, 4, 4)}
    assert torch.isfinite(loss(s, t))
    with pytest.raises(UserError, match=r"'cosine_sp' \(from plugin .*cosine_sp.py\) reads tap"):
        create_loss("cosine_sp", TAPS, TEACHER_TAPS, layer="stage7")
