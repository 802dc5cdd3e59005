"""Without a C compiler, the optimizer tests pass on the fallback paths, and the default path never
warns (not every user's machine has gcc).

A representative slice of the optimizer tests runs in a child process whose ``CC`` and ``CXX``
name missing programs and whose ``PATH`` holds no compiler, with every RuntimeWarning an error:
the default path must take torch's kernels or the multi-tensor path silently (``fused=True``
may still say once that it runs uncompiled; the in-place tests allow exactly that warning there).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: every optimizer on every path at 1k elements, the bitwise resume tests, two groups
SLICE = [
    "test_inplace.py",
    "test_contracts.py::test_two_groups_equal_two_optimizers",
    "test_state_dict.py::test_save_load_resume_is_bitwise",
    "-k",
    "not 1M",
]


def test_optimizer_tests_pass_without_a_c_compiler(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {
        **os.environ,
        "CC": str(tmp_path / "no-such-cc"),
        "CXX": str(tmp_path / "no-such-c++"),
        "PATH": str(empty),
        "OPTIMLAB_KERNEL_CACHE": str(tmp_path / "kernels"),
        "OPTIMLAB_TEST_NO_CC": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("PYTEST_XDIST_WORKER", None)
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
            "-W", "error::RuntimeWarning", "-x", "-rs", *SLICE,
        ],
        check=False,
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, tail
    assert " passed" in tail and "run by test_no_compiler" not in tail  # the check ran too
    assert not (tmp_path / "kernels").exists() or not any((tmp_path / "kernels").glob("*.so"))
