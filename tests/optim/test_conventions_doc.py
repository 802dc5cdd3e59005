"""``docs/conventions.md``'s table is generated from ``optimlab.optim.resolve()``: this test fails
when the doc and the code disagree. Regenerate the table with

    .venv/bin/python tests/optim/test_conventions_doc.py
"""

from __future__ import annotations

from pathlib import Path

import torch

from optimlab import optim

DOC = Path(__file__).resolve().parents[2] / "docs" / "conventions.md"
BEGIN = "<!-- BEGIN GENERATED TABLE: tests/optim/test_conventions_doc.py -->"
END = "<!-- END GENERATED TABLE -->"

COLUMNS = (
    "name",
    "convention",
    "lr",
    "decay rates",
    "eps and placement",
    "accumulator start",
    "momentum",
    "NAdam schedule",
    "weight decay",
    "amsgrad max",
)


def _g(x: float) -> str:
    return f"{x:g}"


def _built(name: str, convention: str) -> dict:
    e = optim.entry(name)
    return e.cls([torch.zeros(1, requires_grad=True)], **optim.resolve(name, convention)).defaults


def row(name: str, convention: str) -> list[str]:
    """The table row of ``name`` under ``convention``, read off the optimizer ``create`` builds."""
    d = _built(name, convention)
    cls = optim.entry(name).cls.__name__
    rates, eps, start, momentum, schedule, amsgrad = "", "", "", "", "", ""
    if "betas" in d:
        rates = f"β1={_g(d['betas'][0])}, β2={_g(d['betas'][1])}"
    elif "rho" in d:
        rates = f"ρ={_g(d['rho'])}"
    elif "alpha" in d:
        rates = f"α={_g(d['alpha'])}"
    if cls in ("Adagrad", "RMSprop"):
        where = "inside √" if d["eps_inside_sqrt"] else "outside √"
        eps = f"{_g(d['eps'])} {where}"
        start = _g(d["initial_accumulator_value"])
    elif cls == "Adadelta":
        eps = f"{_g(d['eps'])} inside both √"
    elif cls in ("Adam", "AdamW"):
        if d["eps_hat"]:
            eps = f"{_g(d['eps'])} ε̂: outside √v_t, uncorrected"
        else:
            eps = f"{_g(d['eps'])} {'inside' if d['eps_inside_sqrt'] else 'outside'} √v̂"
        if d["amsgrad"]:
            amsgrad = (
                "max of v̂ (corrected)" if d["amsgrad_max"] == "corrected" else "max of v (raw)"
            )
    elif cls == "NAdam":
        eps = f"{_g(d['eps'])} {'inside' if d['eps_inside_sqrt'] else 'outside'} √v̂"
        if d["momentum_schedule"] == "constant":
            schedule = "μ_t = β1 (constant)"
        else:
            schedule = f"μ_t = β1(1 − ½·0.96^(t·{_g(d['momentum_decay'])}))"
    elif cls == "Adamax":
        eps = f"{_g(d['eps'])} " + ("inside max" if d["eps_inside_max"] else "added to u_t")
    if d.get("momentum"):
        momentum = f"{_g(d['momentum'])} {d['form']}"
        if d.get("nesterov"):
            momentum += ", Nesterov"
        if d.get("dampening"):
            momentum += f", dampening {_g(d['dampening'])}"
    elif "momentum" in d:
        momentum = "none"
    wd = f"{_g(d['weight_decay'])} " + ("decoupled" if d["decoupled_weight_decay"] else "L2")
    return [name, convention, _g(d["lr"]), rates, eps, start, momentum, schedule, wd, amsgrad]


def render_table() -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for name in optim.available():
        for convention in optim.conventions():
            lines.append("| " + " | ".join(c or "–" for c in row(name, convention)) + " |")
    return "\n".join(lines)


def _doc_table(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip()


def test_doc_table_matches_resolve():
    text = DOC.read_text(encoding="utf-8")
    assert _doc_table(text) == render_table(), (
        "docs/conventions.md is out of date: run .venv/bin/python tests/optim/test_conventions_doc.py"
    )


def test_doc_names_every_source():
    """Every optimizer and convention has its row, and the prose cites each framework's source."""
    text = DOC.read_text(encoding="utf-8")
    for name in optim.available():
        assert f"| {name} | paper |" in text
    for source in ("torch/optim/", "keras/src/optimizers/", "optax/_src/alias.py", "seeds/000"):
        assert source in text, source


if __name__ == "__main__":
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + render_table() + "\n" + text[end:], encoding="utf-8")
    print(f"updated {DOC}")
