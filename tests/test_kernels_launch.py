"""The launch cache of ``sciamba.kernels._launch`` (host-side logic, with a stand-in kernel).

Compiled, every Triton test on a GPU goes through it; here a fake JIT function
records what Triton would be asked, so the keying runs on any machine.
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sciamba.kernels import _launch


class _Compiled:
    def __init__(self, log, tag):
        self.log, self.tag = log, tag

    def __getitem__(self, grid):
        return lambda *args: self.log.append(("direct", self.tag, grid, args))


class _FakeJIT:
    """``kernel[grid](*args, **kw)`` compiles once per call here, like Triton on a new key."""

    arg_names = ["x_ptr", "n", "scale", "BLOCK", "FLAG"]
    params = [SimpleNamespace(name=n, is_constexpr=n.isupper()) for n in arg_names]
    pre_run_hooks = []

    def __init__(self, returns=True):
        self.log, self.compiled, self.returns = [], 0, returns

    def __getitem__(self, grid):
        def run(*args, **kw):
            self.compiled += 1
            self.log.append(("jit", grid, args, tuple(sorted(kw.items()))))
            return _Compiled(self.log, self.compiled) if self.returns else None
        return run


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(_launch, "_CACHE", {})
    monkeypatch.setattr(_launch, "_NO_DIRECT", set())
    monkeypatch.setattr(_launch, "_KERNELS", {})
    monkeypatch.setattr(_launch, "_direct_ok", None)
    monkeypatch.setattr(_launch, "_interpret_enabled", lambda: False)


def test_second_launch_goes_direct_with_constexprs_in_signature_order(fresh):
    k = _FakeJIT()
    x = torch.zeros(64)
    _launch.launch(k, (3,), x, 40, 0.5, BLOCK=16, FLAG=True, num_warps=1)
    _launch.launch(k, [5, 2], x, 40, 2.5, BLOCK=16, FLAG=True, num_warps=1)
    assert k.log[0][0] == "jit"
    # num_warps is a launch option, not a parameter: not passed to the compiled kernel;
    # a float's value is not part of the specialization
    assert k.log[1] == ("direct", 1, (5, 2, 1), (x, 40, 2.5, 16, True))


@pytest.mark.parametrize("change", ["dtype", "misaligned", "n_is_one", "n_not_div16", "n_64bit",
                                    "n_unsigned", "scale_none", "constexpr", "constexpr_type", "option",
                                    "settings"])
def test_any_specialization_change_goes_back_to_triton(fresh, change, monkeypatch):
    k = _FakeJIT()
    x = torch.zeros(64)
    args, kw = [x, 2**32, 1.0], dict(BLOCK=16, FLAG=True, num_warps=1)
    _launch.launch(k, (1,), *args, **kw)
    if change == "dtype":
        args[0] = torch.zeros(64, dtype=torch.float64)
    elif change == "misaligned":
        args[0] = x[1:]  # 4 bytes past a 16-byte boundary
    elif change == "n_is_one":
        args[1] = 1
    elif change == "n_not_div16":
        args[1] = 2**32 + 1
    elif change == "n_64bit":
        args[1] = 32
    elif change == "n_unsigned":
        args[1] = 2**64 - 16
    elif change == "scale_none":
        args[2] = None
    elif change == "constexpr":
        kw["BLOCK"] = 32
    elif change == "constexpr_type":
        kw["FLAG"] = 1  # == True in Python, another specialization in Triton
    elif change == "option":
        kw["num_warps"] = 4
    else:
        monkeypatch.setattr(_launch, "_settings", lambda: (True,))  # e.g. Triton's debug mode on
    _launch.launch(k, (1,), *args, **kw)
    assert [e[0] for e in k.log] == ["jit", "jit"] and k.compiled == 2
    # and the new specialization is then cached too
    _launch.launch(k, (1,), *args, **kw)
    assert k.log[-1][:2] == ("direct", 2)


def test_same_specialization_other_values_reuse_the_kernel(fresh):
    k = _FakeJIT()
    _launch.launch(k, (1,), torch.zeros(64), 32, 1.0, BLOCK=16, FLAG=False)
    y = torch.ones(128)  # another aligned float32 tensor, another float
    _launch.launch(k, (1,), y, 32, 3.0, BLOCK=16, FLAG=False)
    assert k.compiled == 1 and k.log[-1] == ("direct", 1, (1, 1, 1), (y, 32, 3.0, 16, False))


def test_a_new_integer_value_asks_triton_once(fresh):
    """Integers are keyed by value (finer than Triton's key): a new value goes through
    Triton, which on a GPU finds its own compiled kernel, and is direct from then on."""
    k = _FakeJIT()
    x = torch.zeros(64)
    for n in (32, 48, 48):
        _launch.launch(k, (1,), x, n, 1.0, BLOCK=16, FLAG=False)
    assert [e[0] for e in k.log] == ["jit", "jit", "direct"]
    assert k.log[-1] == ("direct", 2, (1, 1, 1), (x, 48, 1.0, 16, False))


@pytest.mark.parametrize("first, second", [(True, 1), (1, True), (False, 0), (np.float64(1.0), 1),
                                           (1, np.float64(1.0))])
def test_values_equal_in_python_but_not_in_triton_do_not_share_a_kernel(fresh, first, second):
    """Triton compiles a bool, the integer 1 (or 0) and a float differently; Python says they are equal."""
    k = _FakeJIT()
    x = torch.zeros(64)
    _launch.launch(k, (1,), x, first, 1.0, BLOCK=16, FLAG=True)
    _launch.launch(k, (1,), x, second, 1.0, BLOCK=16, FLAG=True)
    assert [e[0] for e in k.log] == ["jit", "jit"]


def test_the_cache_is_bounded(fresh, monkeypatch):
    monkeypatch.setattr(_launch, "_CACHE_MAX", 8)
    k = _FakeJIT()
    for n in range(1, 40):  # e.g. inference on ever new lengths
        _launch.launch(k, (1,), torch.zeros(64), n, 1.0, BLOCK=16, FLAG=False)
        assert len(_launch._CACHE) <= 8
    _launch.launch(k, (1,), torch.zeros(64), 39, 1.0, BLOCK=16, FLAG=False)
    assert k.log[-1][0] == "direct"


def test_layouts_the_key_cannot_cover_always_use_triton(fresh):
    k = _FakeJIT()
    for _ in range(2):  # BLOCK passed positionally: its value would not be in the key
        _launch.launch(k, (1,), torch.zeros(64), 32, 1.0, 16, FLAG=False)
    assert k.compiled == 2 and id(k) in _launch._NO_DIRECT
    j = _FakeJIT()
    for _ in range(2):  # a tensor keyword
        _launch.launch(j, (1,), torch.zeros(64), 32, 1.0, BLOCK=torch.zeros(1), FLAG=False)
    assert j.compiled == 2


def test_no_compiled_kernel_returned(fresh, monkeypatch):
    k = _FakeJIT(returns=False)
    for _ in range(2):  # e.g. a cache hook took over: ask Triton every time, never crash
        _launch.launch(k, (1,), torch.zeros(64), 32, 1.0, BLOCK=16, FLAG=False)
    assert k.compiled == 2 and not _launch._CACHE
    k.returns = True  # later calls may be cached again
    for _ in range(2):
        _launch.launch(k, (1,), torch.zeros(64), 32, 1.0, BLOCK=16, FLAG=False)
    assert k.log[-1][0] == "direct"


def test_interpreter_always_uses_triton(fresh, monkeypatch):
    k = _FakeJIT()
    monkeypatch.setattr(_launch, "_interpret_enabled", lambda: True)
    for _ in range(2):
        _launch.launch(k, (1,), torch.zeros(64), 32, 1.0, BLOCK=16, FLAG=False)
    assert k.compiled == 2 and not _launch._CACHE


class _CompiledWithLauncher(_Compiled):
    """A compiled kernel as Triton 3.6-3.9 shape it: a launcher, a function handle, metadata."""

    def __init__(self, log, tag):
        super().__init__(log, tag)
        self.function, self.packed_metadata = f"fn{tag}", f"meta{tag}"

    @property
    def run(self):
        return lambda *a: self.log.append(("launcher", self.tag, a))


class _FakeJITLauncher(_FakeJIT):
    def __getitem__(self, grid):
        def run(*args, **kw):
            self.compiled += 1
            self.log.append(("jit", grid, args, tuple(sorted(kw.items()))))
            return _CompiledWithLauncher(self.log, self.compiled)
        return run


@pytest.fixture
def on_gpu(fresh, monkeypatch):
    """The launcher path as on a GPU: CUDA initialized, device 3, a raw stream handle."""
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(_launch, "_current_device", lambda: 3)
    monkeypatch.setattr(_launch, "_RAW_STREAM", lambda device: 1000 + device)
    monkeypatch.setattr(_launch, "_TRITON_VERSION", (3, 6))


def test_cached_kernel_starts_through_its_launcher_on_the_current_stream(on_gpu):
    k = _FakeJITLauncher()
    x = torch.zeros(64)
    _launch.launch(k, (3,), x, 40, 0.5, BLOCK=16, FLAG=True, num_warps=1)
    _launch.launch(k, (5, 2), x, 40, 2.5, BLOCK=16, FLAG=True, num_warps=1)
    # Triton's runner convention: grid, stream, function, metadata, launch metadata and
    # the two hooks (none), then every parameter in signature order.
    assert k.log[-1] == ("launcher", 1, (5, 2, 1, 1003, "fn1", "meta1", None, None, None,
                                         x, 40, 2.5, 16, True))


def test_launch_hooks_or_unknown_triton_keep_the_runner(on_gpu, monkeypatch):
    hooks = SimpleNamespace(runtime=SimpleNamespace(launch_enter_hook=print, launch_exit_hook=None))
    monkeypatch.setattr(_launch, "_settings", lambda: ())  # the key's settings stay put
    k = _FakeJITLauncher()
    x = torch.zeros(64)
    _launch.launch(k, (2,), x, 40, 0.5, BLOCK=16, FLAG=True)
    monkeypatch.setattr(_launch, "_KNOBS", hooks)  # a profiler (proton) asks for launch metadata
    _launch.launch(k, (2,), x, 40, 0.5, BLOCK=16, FLAG=True)
    assert k.log[-1][0] == "direct"
    monkeypatch.setattr(_launch, "_TRITON_VERSION", (4, 0))
    assert _launch._direct_runner(_CompiledWithLauncher([], 1)) is None
    monkeypatch.setattr(_launch, "_TRITON_VERSION", (3, 9))
    assert _launch._direct_runner(_CompiledWithLauncher([], 1))[1:] == ("fn1", "meta1")
    assert _launch._direct_runner(_Compiled([], 1)) is None  # no launcher attributes


def test_empty_hook_chains_count_as_no_hooks(monkeypatch):
    chain = SimpleNamespace(calls=[])  # Triton 3.9's HookChain with nothing added
    monkeypatch.setattr(_launch, "_KNOBS", SimpleNamespace(
        runtime=SimpleNamespace(launch_enter_hook=chain, launch_exit_hook=None)))
    assert not _launch._hooks_set()
    chain.calls.append(print)
    assert _launch._hooks_set()


def test_floating_point_contraction_asked_for_unless_the_user_set_it(fresh, monkeypatch):
    """Launches ask Triton for FMA contraction (its default until 3.10), not when
    TRITON_DEFAULT_FP_FUSION was set by the user, and never over the caller's own choice."""
    k = _FakeJIT()
    x = torch.zeros(64)
    _launch.launch(k, (1,), x, 40, 0.5, BLOCK=16, FLAG=True)
    assert ("enable_fp_fusion", True) in k.log[-1][3]
    _launch.launch(k, (1,), x, 40, 0.5, BLOCK=16, FLAG=False, enable_fp_fusion=False)
    assert ("enable_fp_fusion", False) in k.log[-1][3]
    monkeypatch.setattr(_launch, "_FP_FUSION", None)
    _launch.launch(k, (1,), x, 40, 0.5, BLOCK=32, FLAG=True)
    assert all(name != "enable_fp_fusion" for name, _ in k.log[-1][3])


def test_bind_replays_the_cached_launch_through_its_launcher(on_gpu):
    k = _FakeJITLauncher()
    x, y = torch.zeros(64), torch.ones(64)
    assert _launch.bind(k, (3,), x, 40, 0.5, BLOCK=16, FLAG=True) is None  # not launched yet
    _launch.launch(k, (3,), x, 40, 0.5, BLOCK=16, FLAG=True, num_warps=1)
    run = _launch.bind(k, (3,), x, 40, 0.5, BLOCK=16, FLAG=True, num_warps=1)
    run(y, 40, 1.5)  # new arguments of the same specialization
    assert k.log[-1] == ("launcher", 1, (3, 1, 1, 1003, "fn1", "meta1", None, None, None,
                                         y, 40, 1.5, 16, True))
    assert k.compiled == 1
    # Another specialization (an integer value, a constexpr) was never launched: no runner.
    assert _launch.bind(k, (3,), x, 41, 0.5, BLOCK=16, FLAG=True, num_warps=1) is None
    assert _launch.bind(k, (3,), x, 40, 0.5, BLOCK=32, FLAG=True, num_warps=1) is None


def test_bind_keeps_triton_s_runner_under_hooks_and_refuses_the_interpreter(on_gpu, monkeypatch):
    monkeypatch.setattr(_launch, "_settings", lambda: ())
    k = _FakeJITLauncher()
    x = torch.zeros(64)
    _launch.launch(k, (2,), x, 40, 0.5, BLOCK=16, FLAG=True)
    run = _launch.bind(k, (2,), x, 40, 0.5, BLOCK=16, FLAG=True)
    monkeypatch.setattr(_launch, "_KNOBS", SimpleNamespace(
        runtime=SimpleNamespace(launch_enter_hook=print, launch_exit_hook=None)))
    run(x, 40, 0.5)
    assert k.log[-1][0] == "direct"
    monkeypatch.setattr(_launch, "_interpret_enabled", lambda: True)
    k2 = _FakeJITLauncher()
    _launch.launch(k2, (2,), x, 40, 0.5, BLOCK=16, FLAG=True)
    assert _launch.bind(k2, (2,), x, 40, 0.5, BLOCK=16, FLAG=True) is None
