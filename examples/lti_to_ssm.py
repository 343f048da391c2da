"""From a SciPy system to a trainable state space layer and back: a damped mass-spring.

A mass m on a spring k with viscous damping c, driven by a force u, has position

    m y'' + c y' + k y = u,      H(s) = 1 / (m s^2 + c s + k).

1. We write it as ``scipy.signal.lti`` and turn it into a :class:`sciamba.ssm.LTISSM`
   layer with :func:`sciamba.ssm.from_lti`. Sampled with first-order hold, the
   layer reproduces ``scipy.signal.lsim`` (whose default input interpolation is
   linear) to rounding error; with zero-order hold it matches ``lsim(interp=False)``.
2. We record the true system's response to a random force with 10% measurement
   noise, start a trainable layer from a wrong guess (a softer spring, more
   damping), keep its eigenvalues in the left half plane (``stable=True``) and fit
   the continuous-time parameters by gradient descent through the discretization.
3. :func:`sciamba.ssm.to_lti` exports the trained layer as a ``scipy.signal.StateSpace``;
   its poles, natural frequency and damping ratio are read off with SciPy, and
   Bode plots compare the true, initial and trained systems.

Run ``python examples/lti_to_ssm.py`` (about 10 s on 2 CPU cores); ``--fast`` or
``SCIAMBA_FAST=1`` uses a shorter record. The figure goes to ``lti_to_ssm.png`` in
the current directory (or ``SCIAMBA_OUTPUT_DIR``).
"""

import os
import sys
import warnings

import matplotlib

if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")  # headless: write the file, open no window
import matplotlib.pyplot as plt
import numpy as np
import scipy.signal
import torch
from tqdm import tqdm

from sciamba.ssm import from_lti, to_lti

# A two-state model: its matrices are far too small to gain from intra-op threads,
# which only add synchronization (and stall badly on a busy machine).
torch.set_num_threads(1)
FAST = "--fast" in sys.argv[1:] or os.environ.get("SCIAMBA_FAST", "0") not in ("", "0")
OUT = os.environ.get("SCIAMBA_OUTPUT_DIR", ".")
F64 = torch.float64


def mass_spring(m, c, k):
    """Force -> position of m y'' + c y' + k y = u."""
    return scipy.signal.lti([1.0], [m, c, k])


def natural_frequency_and_damping(poles):
    p = poles[np.argmax(poles.imag)]  # one of the conjugate pair
    wn = abs(p)
    return wn, -p.real / wn


def bode(system, w):
    with warnings.catch_warnings():
        # scipy converts to a transfer function, whose tiny leading numerator terms it flags
        warnings.simplefilter("ignore", scipy.signal.BadCoefficients)
        _, mag, phase = scipy.signal.bode(system, w)
    return mag, phase


rng = np.random.default_rng(0)
true_sys = mass_spring(m=1.0, c=0.6, k=4.0)  # wn = 2 rad/s, zeta = 0.15
dt = 0.05
n_samples = 400 if FAST else 2000
t = dt * np.arange(n_samples)

# ---- 1. SciPy system -> layer, checked against lsim ------------------------------------
u_test = np.sin(1.3 * t) + 0.5 * rng.standard_normal(n_samples)
# The force starts from rest: the FOH discrete state is x[k] - M13 u[k] (see sciamba.ssm.discretize),
# so the layer's zero initial state is the system at rest only when u[0] = 0.
u_test[0] = 0.0
print("1. from_lti(scipy.signal.lti([1], [1, 0.6, 4]), dt=0.05) vs scipy.signal.lsim")
for method, interp in (("foh", True), ("zoh", False)):
    layer = from_lti(true_sys, dt=dt, method=method, dtype=F64)
    y_layer = layer(torch.tensor(u_test)[None, None])[0, 0].numpy()  # (batch=1, inputs=1, L)
    _, y_lsim, _ = scipy.signal.lsim(true_sys.to_ss(), u_test, t, interp=interp)
    err = np.max(np.abs(y_layer - y_lsim)) / np.max(np.abs(y_lsim))
    print(f"   method={method!r:6} vs lsim(interp={interp!s:5}): max relative difference {err:.1e}")
    assert err < 1e-8, err

# ---- 2. identification from noisy data ----------------------------------------------
u_train = rng.standard_normal((4, 1, n_samples))  # 4 experiments, random force
y_train = np.stack([scipy.signal.dlsim(true_sys.to_ss().to_discrete(dt), u[0])[1].T for u in u_train])
noise = 0.1 * y_train.std()
y_noisy = y_train + noise * rng.standard_normal(y_train.shape)

guess = mass_spring(m=1.0, c=1.5, k=2.0)  # softer spring, three times the damping
model = from_lti(guess, dt=dt, trainable=True, stable=True, dtype=F64)
model.log_dt.requires_grad_(False)  # the sampling interval is known
initial = to_lti(model)
ut, yt = torch.tensor(u_train), torch.tensor(y_noisy)
opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=10, line_search_fn="strong_wolfe")


def closure():
    opt.zero_grad()
    loss = torch.mean((model(ut) - yt) ** 2)
    loss.backward()
    return loss


print(f"2. training from noisy data (noise std {noise:.3g}, {u_train.shape[0]} x {n_samples} samples)")
with torch.no_grad():
    loss0 = float(torch.mean((model(ut) - yt) ** 2))
bar = tqdm(range(8), desc="   LBFGS", unit="round")
for _ in bar:
    loss = float(opt.step(closure).detach())
    bar.set_postfix(mse=f"{loss:.3g}")
print(f"   mse {loss0:.3g} -> {loss:.3g} (noise floor {noise**2:.3g})")

# ---- 3. export and analyse with scipy ----------------------------------------------
trained = to_lti(model)  # continuous scipy.signal.StateSpace
print("3. to_lti(model): poles, natural frequency and damping ratio")
for name, system in (("true", true_sys.to_ss()), ("initial", initial), ("trained", trained)):
    poles = np.linalg.eigvals(system.A)
    wn, zeta = natural_frequency_and_damping(poles)
    print(f"   {name:8} poles {np.round(np.sort_complex(poles), 4)}  wn = {wn:.4f} rad/s  zeta = {zeta:.4f}")
true_poles = np.sort_complex(true_sys.poles)
rel = np.max(np.abs(np.sort_complex(np.linalg.eigvals(trained.A)) - true_poles) / np.abs(true_poles))
print(f"   largest relative pole error: {rel:.2%}")
assert rel < 0.02, "the fit did not recover the poles"

# ---- figure -------------------------------------------------------------------------
w = np.logspace(-1, 1.5, 400)
fig, axes = plt.subplots(3, 1, figsize=(8, 10), constrained_layout=True)
for name, system, style in (("true", true_sys, "k-"), ("initial guess", initial, "C1--"), ("trained", trained, "C0:")):
    mag, phase = bode(system, w)
    axes[0].semilogx(w, mag, style, label=name, lw=2)
    axes[1].semilogx(w, phase, style, label=name, lw=2)
axes[0].set(ylabel="magnitude [dB]", title="Bode plot: mass-spring, true vs initial vs trained LTISSM")
axes[1].set(ylabel="phase [deg]", xlabel="frequency [rad/s]")
axes[0].legend()
n_show = min(400, n_samples)
with torch.no_grad():
    y_fit = model(ut[:1])[0, 0].numpy()
axes[2].plot(t[:n_show], y_noisy[0, 0, :n_show], ".", color="0.6", ms=3, label="noisy measurement")
axes[2].plot(t[:n_show], y_train[0, 0, :n_show], "k-", lw=1.5, label="true response")
axes[2].plot(t[:n_show], y_fit[:n_show], "C0--", lw=1.5, label="trained layer")
axes[2].set(xlabel="time [s]", ylabel="position", title="Training data (first experiment)")
axes[2].legend(loc="upper right")
path = os.path.join(OUT, "lti_to_ssm.png")
fig.savefig(path, dpi=120)
print(f"figure written to {path}")
