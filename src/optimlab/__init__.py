"""optimlab: the gradient-descent family as verified, fast PyTorch optimizers, and a lab to compare them."""

from . import optim
from .ema import EWMA

__version__ = "0.1.0"

__all__ = ["EWMA", "__version__", "optim"]
