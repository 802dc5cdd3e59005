"""The seeds' claims, as data: what each says, where, the experiment that tests it, the quantity
measured and the threshold that decides it.

Thresholds, stated once: a difference in test accuracy smaller than half a point
(:data:`POINT_MARGIN`) does not count as one optimizer "beating" another; "about the same" means
within one point (:data:`SAME_MARGIN`); "at least matches" allows half a point. Ratios are
tested on their logarithm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .experiments import Experiment, SurfaceExperiment, TrainingExperiment
from .verdicts import Test, above, within

POINT_MARGIN = 0.005
SAME_MARGIN = 0.01


@dataclass(frozen=True)
class Check:
    """One measured test of a claim: ``quantity(experiment result, **params)`` against ``test``."""

    label: str
    quantity: str
    params: tuple[tuple[str, Any], ...]
    test: Test
    experiment: str | None = None  # None: the claim's

    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)


@dataclass(frozen=True)
class Claim:
    """A claim of the seeds and how it is checked (all checks must hold for the claim to hold)."""

    id: str
    text: str
    seed: str  # the seed files that make it, e.g. "000, 004"
    experiment: str
    checks: tuple[Check, ...]
    note: str = ""


def check(label: str, quantity: str, test: Test, *, experiment: str | None = None,
          **params: Any) -> Check:
    return Check(label, quantity, tuple(params.items()), test, experiment)


def ratio_above(hold: float, fail: float | None = None) -> Test:
    """A ratio test: holds above ``hold``, does not hold below ``fail`` (default ``hold``)."""
    return above(math.log(hold), math.log(hold if fail is None else fail))


# ---- the experiments ----------------------------------------------------------------------------
_SEED_OPTIMIZERS = (
    "sgd", "momentum", "nag", "adagrad", "adadelta", "rmsprop", "adam", "nadam", "adamax",
)

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        TrainingExperiment(
            name="mnist-tuned",
            task="mnist-mlp",
            optimizers=_SEED_OPTIMIZERS,
            epochs=5,
            variants=(("adagrad-restarted", "adagrad", "adagrad:lr={lr}@{half}+adagrad:lr={lr}"),),
            description="seed 003's MLP on the embedded MNIST sample, 5 epochs, the seeds' nine "
            "optimizers, each learning rate tuned with the same budget",
        ),
        TrainingExperiment(
            name="sparse-tuned",
            task="sparse-logreg",
            optimizers=("sgd", "adagrad", "rmsprop", "adam"),
            epochs=3,
            grid_points=8,
            fixed=(("adam-default", "adam:lr=0.001"), ("rmsprop-default", "rmsprop:lr=0.001")),
            description="logistic regression on synthetic sparse binary features (rare features "
            "carry the signal), 3 epochs; plus Adam and RMSProp untuned at lr 1e-3",
        ),
        SurfaceExperiment(
            name="valley",
            surface="valley",
            optimizers=("sgd", "momentum", "adam"),
            steps=600,
            x_range=(-9.5, -6.5),
            y_range=(1.0, 2.5),
            per_decade=4,
            description="seed 002's elongated valley f = 0.05x^2 + 5y^2 (condition number 100)",
        ),
        SurfaceExperiment(
            name="rotated-valley",
            surface="rotated-valley",
            optimizers=("sgd", "adam"),
            steps=600,
            x_range=(-9.5, -6.5),
            y_range=(1.0, 2.5),
            rotate=True,
            per_decade=4,
            description="the same valley turned by 45 degrees: no coordinate is its steep axis",
        ),
        SurfaceExperiment(
            name="saddle",
            surface="saddle",
            optimizers=("sgd", "rmsprop"),
            steps=300,
            x_range=(0.5, 1.5),
            y_range=(1e-4, 1e-2),
            y_log=True,
            description="seed 002's saddle f = x^2 - y^2, started just off the ridge y = 0",
        ),
    )
}


# ---- the claims ---------------------------------------------------------------------------------
CLAIMS: tuple[Claim, ...] = (
    Claim(
        "adagrad-stalls",
        "AdaGrad's learning rate shrinks as its squared gradients accumulate, so it stalls "
        "before the minimum, where RMSProp, which forgets old gradients, keeps improving.",
        "000, 001, 004",
        "mnist-tuned",
        (
            check("AdaGrad ends with a higher training loss than RMSProp", "loss_ratio",
                  ratio_above(1.0, 1.1), a="adagrad", b="rmsprop", part="final"),
            check("restarting AdaGrad's accumulator half-way lowers its final loss (the shrunken "
                  "step is the cause)", "loss_ratio", ratio_above(1.0, 1.05),
                  a="adagrad", b="adagrad-restarted", part="final"),
        ),
    ),
    Claim(
        "adam-fast-early",
        "Adam lowers the training loss faster than SGD and momentum early in training.",
        "000, 003, 004",
        "mnist-tuned",
        (
            check("SGD's early loss is higher than Adam's", "loss_ratio", ratio_above(1.0, 1.1),
                  a="sgd", b="adam", part="early"),
            check("momentum's early loss is higher than Adam's", "loss_ratio",
                  ratio_above(1.0, 1.1), a="momentum", b="adam", part="early"),
        ),
    ),
    Claim(
        "momentum-damps-valley",
        "Momentum damps the oscillation across a narrow valley that plain gradient descent "
        "zig-zags through.",
        "000, 001, 002",
        "valley",
        (
            check("SGD reverses direction across the valley more often than momentum (it "
                  "zig-zags)", "reversal_ratio", ratio_above(1.0), a="sgd", b="momentum"),
            check("the oscillation across the valley dies out sooner with momentum than with "
                  "SGD", "settle_ratio", ratio_above(1.0), a="sgd", b="momentum"),
        ),
    ),
    Claim(
        "adaptive-steep-flat",
        "Adaptive methods damp the oscillation by shrinking the step along the steep direction "
        "and enlarging it along the flat one, so they reach the bottom of a narrow valley sooner "
        "than plain gradient descent.",
        "002, 003",
        "valley",
        (
            check("on the axis-aligned valley SGD needs more steps than Adam to come within 1e-3 "
                  "of the minimum", "convergence_ratio", ratio_above(1.0), a="sgd", b="adam"),
            check("on the same valley turned by 45 degrees, too", "convergence_ratio",
                  ratio_above(1.0), a="sgd", b="adam", experiment="rotated-valley"),
        ),
        note="Per-coordinate step sizes fit a valley whose axes are the coordinates; the rotated "
        "valley asks whether the seeds' 'steep direction' is meant, or only the coordinates.",
    ),
    Claim(
        "rmsprop-escapes-saddle",
        "RMSProp escapes a saddle point where plain gradient descent lingers.",
        "000, 002",
        "saddle",
        (check("SGD needs at least twice RMSProp's steps to escape", "escape_ratio",
               ratio_above(2.0), a="sgd", b="rmsprop"),),
    ),
    Claim(
        "nadam-matches-adam",
        "Nadam (Adam with Nesterov momentum) does at least as well as Adam.",
        "000, 004",
        "mnist-tuned",
        (check("Nadam's test accuracy is no more than 0.5 points below Adam's",
               "accuracy_difference", above(-POINT_MARGIN), a="nadam", b="adam"),),
    ),
    Claim(
        "lr-matters-most",
        "The learning rate matters more than the choice of optimizer.",
        "000",
        "mnist-tuned",
        (check("a 10x learning-rate error costs more accuracy than the choice of optimizer",
               "lr_versus_optimizer", above(0.0)),),
    ),
    Claim(
        "adaptive-sparse",
        "Adaptive methods suit sparse features: there AdaGrad and Adam beat plain SGD.",
        "000, 001, 004",
        "sparse-tuned",
        (
            check("AdaGrad's test accuracy beats SGD's by a margin", "accuracy_difference",
                  above(0.0, POINT_MARGIN), a="adagrad", b="sgd"),
            check("Adam's test accuracy beats SGD's by a margin", "accuracy_difference",
                  above(0.0, POINT_MARGIN), a="adam", b="sgd"),
        ),
    ),
    Claim(
        "sparse-defaults",
        "For sparse data, RMSProp and Adam do well at their default settings, without tuning.",
        "000",
        "sparse-tuned",
        (
            check("Adam at lr 1e-3 is within 1 point of the best tuned optimizer",
                  "accuracy_difference", above(-SAME_MARGIN), a="adam-default", b="best-tuned"),
            check("RMSProp at lr 1e-3 is within 1 point of the best tuned optimizer",
                  "accuracy_difference", above(-SAME_MARGIN), a="rmsprop-default",
                  b="best-tuned"),
        ),
        note="Default: lr 1e-3 (torch.optim's and Keras' Adam; Keras' RMSprop, as seed 004 "
        "writes it), every other hyperparameter at torch.optim's default.",
    ),
    Claim(
        "adaptive-generalize-worse",
        "Adaptive methods train faster but generalize worse than tuned SGD with momentum "
        "(Wilson et al. 2017).",
        "000",
        "mnist-tuned",
        (
            check("Adam's early training loss is lower than momentum's", "loss_ratio",
                  ratio_above(1.0, 1.1), a="momentum", b="adam", part="early"),
            check("momentum's test accuracy beats Adam's by a margin", "accuracy_difference",
                  above(0.0, POINT_MARGIN), a="momentum", b="adam"),
        ),
        note="A weak test: 5 epochs on a 5,000-image MNIST sample, where no optimizer overfits "
        "much; Wilson et al. trained to convergence on CIFAR-10 and language models. An "
        "inconclusive verdict here is no evidence against the paper.",
    ),
    Claim(
        "momentum-beats-sgd",
        "Momentum converges faster than SGD and ends at a better result.",
        "004",
        "mnist-tuned",
        (
            check("SGD's final training loss is higher than momentum's", "loss_ratio",
                  ratio_above(1.0, 1.1), a="sgd", b="momentum", part="final"),
            check("momentum's test accuracy beats SGD's by a margin", "accuracy_difference",
                  above(0.0, POINT_MARGIN), a="momentum", b="sgd"),
        ),
    ),
    Claim(
        "adaptive-alike",
        "AdaDelta, RMSProp and Adam are close relatives and perform about the same.",
        "000",
        "mnist-tuned",
        (
            check("RMSProp's test accuracy is within 1 point of Adam's", "accuracy_difference",
                  within(SAME_MARGIN), a="rmsprop", b="adam"),
            check("AdaDelta's test accuracy is within 1 point of Adam's", "accuracy_difference",
                  within(SAME_MARGIN), a="adadelta", b="adam"),
        ),
    ),
)


def get_claims(ids: str | None = None) -> tuple[Claim, ...]:
    """The claims named in the comma-separated ``ids`` (all when None), in catalog order."""
    from ..errors import UserError

    if ids is None:
        return CLAIMS
    wanted = [i.strip() for i in ids.split(",") if i.strip()]
    known = {c.id for c in CLAIMS}
    unknown = [i for i in wanted if i not in known]
    if unknown or not wanted:
        raise UserError(
            f"Unknown claim {', '.join(unknown) or repr(ids)} "
            f"(expected one or more of {', '.join(c.id for c in CLAIMS)})"
        )
    return tuple(c for c in CLAIMS if c.id in wanted)
