"""Compiled steps (issue 15): ``torch.compile`` of a function that calls ``opt.step()``.

As torch.optim's recipe for compiling its optimizers has it: the learning rate is a tensor, an
LR scheduler changes it every step, and the compiled step must give the numbers the eager one
gives without compiling anything new once the state exists (dynamo compiles the step once for
the empty state and once more at step 2, when the state holds its tensors). Inside
``torch.compile`` the step reads nothing on the host (the counts, the learning rate and every
scalar derived from them stay tensors), and with ``fused=None`` it takes the multi-tensor path.

Frames are counted with dynamo's ``CompileCounter`` backend (the graphs run eagerly, so the
frame and guard behaviour is dynamo's own); Inductor compiles one optimizer for real.
"""

from __future__ import annotations

import pytest
import torch
from optim_testing import TORCH_COUNTERPARTS
from torch._dynamo.testing import CompileCounter

from optimlab import optim

CLASSES = [ours for ours, _ in TORCH_COUNTERPARTS]
#: each class with settings that exercise its state (momentum, centering, AMSGrad...)
KWARGS = {
    optim.SGD: {"momentum": 0.9, "weight_decay": 0.01},
    optim.Adagrad: {"lr_decay": 0.01},
    optim.RMSprop: {"momentum": 0.5, "centered": True},
    optim.Adam: {"amsgrad": True},
}
STEPS = 10


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Every test compiles from scratch (dynamo's caches are per process)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _run(cls, foreach, compile_backend=None, steps=STEPS, eager_steps=0):
    """``steps`` steps under an ExponentialLR schedule of a tensor lr, the first
    ``eager_steps`` of them uncompiled; returns the parameters, the optimizer and the frame
    count after each step."""
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen).requires_grad_(True) for s in ((3, 2), (2,))]
    opt = cls(params, lr=torch.tensor(0.01), foreach=foreach, **KWARGS.get(cls, {}))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)

    def step():
        opt.step()

    compiled = torch.compile(step, backend=compile_backend) if compile_backend else step
    frames = []
    for t in range(steps):
        g = torch.Generator().manual_seed(100 + t)
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        (step if t < eager_steps else compiled)()
        sched.step()
        if isinstance(compile_backend, CompileCounter):
            frames.append(compile_backend.frame_count)
    return params, opt, frames


@pytest.mark.parametrize("foreach", [None, False], ids=["default", "forloop"])
@pytest.mark.parametrize("cls", CLASSES, ids=[c.__name__ for c in CLASSES])
def test_compiled_step_equals_eager_and_never_recompiles(cls, foreach):
    eager, eager_opt, _ = _run(cls, foreach)
    counter = CompileCounter()
    compiled, opt, frames = _run(cls, foreach, counter)
    assert frames[0] > 0, "nothing was compiled"
    assert frames[-1] == frames[1], f"new frames after step 2: {frames}"
    assert opt.param_groups[0]["impl"] == ("forloop" if foreach is False else "foreach")
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b)
    for a, b in zip(compiled, eager):
        for key, value in eager_opt.state[b].items():
            torch.testing.assert_close(opt.state[a][key], value, msg=key)


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")
def test_inductor_compiled_adam_equals_eager():
    """One optimizer through Inductor (a C++ kernel on the CPU); its state is created by an
    eager step first, so that one graph is compiled, in this process (no worker pool)."""
    import torch._inductor.config

    eager, _, _ = _run(optim.Adam, None, steps=4)
    with torch._inductor.config.patch(compile_threads=1):
        compiled, _, _ = _run(optim.Adam, None, "inductor", steps=4, eager_steps=1)
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b)


@pytest.mark.gpu
@pytest.mark.parametrize("cls", CLASSES, ids=[c.__name__ for c in CLASSES])
def test_capturable_step_replays_in_a_cuda_graph(cls):
    """H3: a capturable step (the classes torch takes ``capturable`` for) captured in a CUDA
    graph after 3 warm-up steps, then replayed, equals torch.optim's capturable class eager."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    torch_cls = getattr(torch.optim, cls.__name__)
    if "capturable" not in torch_cls.__init__.__code__.co_varnames:
        pytest.skip(f"torch.optim.{cls.__name__} takes no capturable")
    dev = torch.device("cuda")
    kwargs = {**KWARGS.get(cls, {}), "capturable": True, "foreach": True}
    grads = [
        [torch.randn(s, generator=torch.Generator().manual_seed(t)) for s in ((3, 2), (2,))]
        for t in range(6)
    ]
    runs = []
    for make in (cls, torch_cls):
        params = [
            torch.randn(s, generator=torch.Generator().manual_seed(9), device="cpu")
            for s in ((3, 2), (2,))
        ]
        params = [p.to(dev).requires_grad_(True) for p in params]
        opt = make(params, lr=0.01, **kwargs)
        for p, g in zip(params, grads[0]):
            p.grad = g.to(dev)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for t in range(3):
                for p, g in zip(params, grads[t]):
                    p.grad.copy_(g.to(dev))
                opt.step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            opt.step()
        for t in range(3, 6):
            for p, g in zip(params, grads[t]):
                p.grad.copy_(g.to(dev))
            graph.replay()
        torch.cuda.synchronize()
        runs.append([p.detach().cpu() for p in params])
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b)
