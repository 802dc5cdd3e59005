"""How long one optimizer step takes against torch.optim and the memory limit.

The measurement is :mod:`optimlab.bench.step` (also ``optimlab bench step``); this script runs it:
``.venv/bin/python benchmarks/step.py --help``.
"""

import sys

from optimlab.bench.step import main

if __name__ == "__main__":
    sys.exit(main())
