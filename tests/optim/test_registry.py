"""Registry meta-tests (RELIABILITY.md goal 5): every name under every convention builds and
steps, every exported optimizer class has an entry, and the convention tables only name
optimizers and keywords that exist."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.optim import Optimizer

from optimlab import optim
from optimlab.optim.registry import REGISTRY


@pytest.mark.parametrize("convention", optim.conventions())
@pytest.mark.parametrize("name", optim.available())
def test_every_name_builds_and_steps_under_every_convention(name, convention):
    p = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    opt = optim.create(name, [p], convention=convention)
    assert isinstance(opt, optim.entry(name).cls)
    for _ in range(3):
        p.grad = p.detach() * 2
        opt.step()
    assert torch.isfinite(p).all()
    assert (p.detach().abs() < torch.tensor([1.0, 2.0, 3.0])).all(), "3 steps did not descend"
    if optim.entry(name).cls.counts_steps:
        assert opt.state[p]["step"].item() == 3
    else:  # torch.optim.SGD keeps no counter
        assert "step" not in opt.state[p]
    # what the registry says without building one is what the built optimizer holds
    expected = optim.defaults(name, convention)
    assert set(expected) <= set(opt.defaults)
    for key, value in expected.items():
        held = opt.defaults[key]
        assert (tuple(held) if isinstance(held, (list, tuple)) else held) == (
            tuple(value) if isinstance(value, (list, tuple)) else value
        ), (name, convention, key)


#: (name, hyperparameters) the constructors reject, one per kind of check
_BAD = [
    ("sgd", {"lr": -1.0}),
    ("sgd", {"lr": float("nan")}),
    ("nag", {"momentum": 0.0}),
    ("momentum", {"form": "ema", "momentum": 1.5}),
    ("momentum", {"form": "sideways"}),
    ("adagrad", {"eps": -1e-3}),
    ("adagrad", {"lr_decay": -1.0}),
    ("adadelta", {"rho": 1.0}),
    ("rmsprop", {"alpha": -0.1}),
    ("rmsprop", {"centered": "yes"}),
    ("adam", {"betas": (0.9, 1.0)}),
    ("adam", {"betas": (0.9,)}),
    ("adam", {"amsgrad_max": "largest"}),
    ("adamw", {"weight_decay": -1.0}),
    ("nadam", {"momentum_schedule": "sometimes"}),
    ("adamax", {"eps": "small"}),
    ("adam", {"maximize": 1}),
]


@pytest.mark.parametrize(("name", "hyperparameters"), _BAD)
def test_check_rejects_what_the_constructor_rejects_without_building(
    name, hyperparameters, monkeypatch
):
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises((ValueError, TypeError)) as built:
        optim.create(name, [p], **hyperparameters)
    groups = []
    monkeypatch.setattr(Optimizer, "add_param_group", lambda self, g: groups.append(g))
    with pytest.raises(type(built.value)) as checked:
        optim.check(name, **hyperparameters)
    assert str(checked.value) == str(built.value)
    assert groups == []


@pytest.mark.parametrize("name", optim.available())
def test_check_accepts_every_default_and_builds_nothing(name, monkeypatch):
    groups = []
    monkeypatch.setattr(Optimizer, "add_param_group", lambda self, g: groups.append(g))
    for convention in optim.conventions():
        assert optim.check(name, convention) == optim.resolve(name, convention)
    assert groups == []


def test_every_exported_optimizer_class_has_an_entry():
    exported = {
        getattr(optim, n)
        for n in optim.__all__
        if inspect.isclass(getattr(optim, n)) and issubclass(getattr(optim, n), Optimizer)
    }
    registered = {e.cls for e in REGISTRY.values()}
    assert exported, "no optimizer class exported"
    assert exported <= registered, f"no registry entry for {exported - registered}"
    assert registered <= exported, f"registered but not exported: {registered - exported}"


def test_convention_tables_name_real_optimizers_and_keywords():
    for convention, table in optim.CONVENTIONS.items():
        for name, overrides in table.items():
            assert name in REGISTRY, f"{convention} sets defaults for unknown {name!r}"
            accepted = optim.entry(name).hyperparameters()
            for key in overrides:
                assert key in accepted, f"{convention}/{name}: {key!r} is not a hyperparameter"


def test_registry_defaults_name_real_keywords():
    for name, e in REGISTRY.items():
        for key in e.defaults:
            assert key in e.hyperparameters(), (name, key)


def test_resolve_layers_registry_convention_caller():
    # registry name defaults (rmsprop-tf1) survive a convention that has no entry for the name
    assert optim.resolve("rmsprop-tf1", "keras")["initial_accumulator_value"] == 1.0
    # the convention overrides the class default; the caller overrides the convention
    assert optim.resolve("adam", "keras")["eps"] == 1e-7
    assert optim.resolve("adam", "keras", eps=1e-3)["eps"] == 1e-3
    assert optim.resolve("amsgrad", "optax", amsgrad_max="raw")["amsgrad_max"] == "raw"
    # a caller's keyword never leaks into the tables
    assert optim.CONVENTIONS["keras"]["adam"]["eps"] == 1e-7


def test_tables_are_read_only():
    with pytest.raises(TypeError):
        optim.CONVENTIONS["keras"]["adam"]["eps"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        optim.CONVENTIONS["jax"] = {}  # type: ignore[index]


def test_available_and_conventions():
    assert optim.conventions() == ["pytorch", "keras", "optax", "paper"]
    names = optim.available()
    assert len(names) == len(set(names))
    assert {"sgd", "momentum", "nag", "adagrad", "adadelta", "rmsprop", "adam", "amsgrad"} <= set(
        names
    )
    for name in names:
        assert optim.entry(name).summary
        assert "lr" in optim.entry(name).hyperparameters()
