"""Environment for the optimizer tests when they are run directly (``pytest tests/optim/...``):
Keras must see its backend, and JAX its platform, before either is first imported."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
