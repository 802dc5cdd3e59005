"""optimlab: the gradient-descent family as verified, fast PyTorch optimizers, and a lab to compare them."""

from . import optim
from ._version import __version__
from .ema import EWMA

__all__ = ["EWMA", "__version__", "optim"]
