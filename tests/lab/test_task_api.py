"""``optimlab.lab.Task``: the public task class, tasks by reference and by entry point."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from optimlab.lab import Task
from optimlab.lab.errors import UserError
from optimlab.lab.tasks import DataOptions, get_task, registry, task_names

#: a task module as a user writes one (the README's example)
MODULE = '''
import torch
from torch import nn
from torch.utils.data import TensorDataset
from optimlab.lab import Task

g = torch.Generator().manual_seed(0)
x = torch.randn(96, 2, generator=g)
y = (x[:, 0] * x[:, 1] > 0).long()

def model(seed):
    return nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))

TASK = Task(name="{name}", model=model, loss=nn.functional.cross_entropy,
            train=TensorDataset(x[:64], y[:64]), test=TensorDataset(x[64:], y[64:]),
            description="xor-like quadrants", batch_size=16, epochs=2, optimizers=("sgd", "adam"))

def make():
    return TASK

NOT_A_TASK = 3

def broken():
    raise RuntimeError("no data")
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A task module ``user_tasks_mod`` on sys.path, forgotten again after the test."""
    (tmp_path / "user_tasks_mod.py").write_text(MODULE.format(name="user-quadrants"))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "user_tasks_mod"
    sys.modules.pop("user_tasks_mod", None)
    for key in [k for k in registry._REFERENCED if "user" in k]:
        registry._REFERENCED.pop(key)


def _model(seed: int) -> nn.Module:
    return nn.Linear(2, 2)


class _Pairs(Dataset):
    """A map-style Dataset that is not a TensorDataset: items built on access."""

    def __len__(self) -> int:
        return 5

    def __getitem__(self, i: int):
        return [float(i), 2.0 * i], i % 2


def test_a_task_from_datasets_gives_tensors():
    x, y = torch.randn(8, 2), torch.arange(8) % 2
    task = Task(name="t", model=_model, loss=nn.functional.cross_entropy,
                train=TensorDataset(x, y), test=_Pairs())
    data = task.dataset(DataOptions())
    assert data.x_train is x and data.y_train is y  # a TensorDataset is used without copying
    assert data.x_test.tolist() == [[float(i), 2.0 * i] for i in range(5)]
    assert data.y_test.tolist() == [0, 1, 0, 1, 0] and data.y_test.dtype == torch.int64
    assert task.metric(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([1, 1])) == 0.5
    assert task.optimizers and task.target is None


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"name": "a b"}, ValueError, "Invalid task name 'a b'"),
    ({"name": "../x"}, ValueError, "Invalid task name '../x'"),
    ({"model": 3}, TypeError, "Task 't': model must be callable, got int"),
    ({"train": None}, ValueError, "Task 't': train is missing (a torch Dataset)"),
    ({"test": [1, 2]}, None, None),  # a list is a map-style dataset
    ({"test": 5}, TypeError, "Task 't': test must be a map-style torch Dataset"),
    ({"load": lambda options: None}, ValueError, "give either train and test, or load, not both"),
    ({"batch_size": 0}, ValueError, "Task 't': invalid batch_size 0"),
    ({"epochs": True}, ValueError, "Task 't': invalid epochs True"),
    ({"target": "high"}, TypeError, "Task 't': target must be a number or None"),
    ({"optimizers": "adam"}, TypeError, "optimizers must be a sequence of spec strings"),
])
def test_bad_task_fields_name_the_field(kwargs, error, message):
    fields = {"name": "t", "model": _model, "loss": nn.functional.mse_loss,
              "train": TensorDataset(torch.zeros(2, 2), torch.zeros(2)),
              "test": TensorDataset(torch.zeros(2, 2), torch.zeros(2))} | kwargs
    if error is None:
        Task(**fields)
        return
    with pytest.raises(error) as info:
        Task(**fields)
    assert message in str(info.value)


def test_builtin_tasks_are_tasks_with_a_seeded_model_factory():
    task = get_task("iris-softmax")
    assert isinstance(task, Task) and task.load is not None and task.train is None
    torch.manual_seed(0)
    a = task.model(0).weight.detach().clone()
    torch.manual_seed(0)
    assert torch.equal(a, task.model(0).weight)


def test_a_task_by_reference_is_imported_and_kept(user_module):
    task = get_task(f"{user_module}:TASK")
    assert isinstance(task, Task) and task.name == "user-quadrants"
    assert get_task(f"{user_module}:TASK") is task
    assert get_task(f"{user_module}:make") is task  # a function of no arguments returning one


@pytest.mark.parametrize(("attr", "message"), [
    ("NOT_A_TASK", "user_tasks_mod:NOT_A_TASK is int, not an optimlab.lab.Task or a function"),
    ("model", "is function, not an optimlab.lab.Task or a function of no arguments"),
    ("broken", "Building task 'user_tasks_mod:broken' failed: RuntimeError: no data"),
    ("missing", "Module 'user_tasks_mod' has no attribute 'missing' (in task 'user_tasks_mod:missing')"),
])
def test_a_reference_to_something_else_is_one_line(user_module, attr, message):
    with pytest.raises(UserError) as info:
        get_task(f"{user_module}:{attr}")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_modules_and_bad_references_are_one_line():
    with pytest.raises(UserError, match="^No module named 'no_such_tasks_pkg'"):
        get_task("no_such_tasks_pkg.tasks:TASK")
    with pytest.raises(UserError, match="^Invalid task reference 'a.b:c d'"):
        get_task("a.b:c d")


def test_a_task_may_not_take_a_builtin_name(tmp_path, monkeypatch):
    (tmp_path / "user_clash_mod.py").write_text(MODULE.format(name="iris-softmax"))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserError, match="is named 'iris-softmax', which another task already uses"):
        get_task("user_clash_mod:TASK")
    sys.modules.pop("user_clash_mod", None)


def test_entry_point_tasks_are_listed_and_loaded(tmp_path, monkeypatch, run_cli):
    """A package that declares ``[optimlab.tasks]`` in its metadata adds a task by name."""
    (tmp_path / "user_ep_tasks.py").write_text(MODULE.format(name="user-ep-task"))
    info = tmp_path / "user_ep_tasks-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: user-ep-tasks\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""
        [optimlab.tasks]
        user-ep-task = user_ep_tasks:make
        user-ep-wrong = user_ep_tasks:TASK
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        names = task_names()
        assert names[:7] == ["mnist-mlp", "iris-softmax", "digits-mlp", "fashion-mlp",
                             "fashion-cnn", "cifar10-cnn", "sparse-logreg"]
        assert {"user-ep-task", "user-ep-wrong"} <= set(names)
        assert get_task("user-ep-task").description == "xor-like quadrants"
        with pytest.raises(UserError, match="names a task called 'user-ep-task' .expected 'user-ep-wrong'"):
            get_task("user-ep-wrong")

        monkeypatch.setenv("COLUMNS", "250")
        code, out, _ = run_cli("list", "tasks")
        assert code == 0
        assert "user-ep-task" in out and "xor-like quadrants" in out
        assert "user-ep-wrong" in out and "cannot load" in out
    finally:
        sys.modules.pop("user_ep_tasks", None)
        registry._REFERENCED.pop("user-ep-task", None)
