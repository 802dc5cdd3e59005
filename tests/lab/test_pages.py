"""The one palette: an optimizer name has one colour on every page; one page never repeats one."""

from __future__ import annotations

from optimlab.lab.pages import COLOR_ORDER, PALETTE, base_name, color, colors
from optimlab.optim import SEED_OPTIMIZERS, available


def test_a_name_has_one_colour_whatever_its_hyperparameters_or_convention():
    assert base_name("adam:lr=0.1,betas=0.9/0.99@keras@3+sgd") == "adam"
    assert color("adam") == color("adam:lr=0.3") == color("adam@keras") == color("adam@2+sgd")
    # the seeds' nine keep matplotlib's tab10 order; every registered name has its own colour
    assert [color(n) for n in SEED_OPTIMIZERS] == list(PALETTE[:9])
    assert set(COLOR_ORDER) == set(available())
    assert len({color(n) for n in available()}) == len(available())


def test_one_page_gives_every_spec_a_distinct_colour():
    labels = ["adam:lr=0.001", "sgd:lr=0.1", "adam:lr=0.01", "adam:lr=0.1", "mypkg:Lion"]
    got = colors(labels)
    assert len(set(got)) == len(labels)
    assert got[0] == color("adam") and got[1] == color("sgd")  # the first of a name keeps its own
    assert color("mypkg:Lion") == color("mypkg:Lion") in PALETTE  # outside the registry: stable
