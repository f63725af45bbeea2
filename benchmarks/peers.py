"""Peer implementations: the benchmark workloads written by hand, without anynet.

Each ``*_factory`` function takes the workload's data and settings and returns a
``factory()`` for :class:`harness.Impl`; calling it builds the model and returns
``run(n)``, which performs ``n`` epochs (W1, W2) or ``n`` training steps (W3) and
returns only when the work is done. A missing library raises
:class:`harness.Unavailable`, so that row is skipped with a note.

Every peer does the work anynet does: a forward pass, the loss (kept, as anynet
keeps a history), gradients and the update. Initial weights are drawn from
``numpy.random.default_rng(seed)`` like anynet's, so trajectories are comparable.

Workloads:

* W1, the tutorial's 2-4-1 tanh/sigmoid network with binary cross-entropy, full batch.
* W2, an ``sizes`` ReLU/softmax MLP with cross-entropy, minibatches, momentum SGD
  (``v = beta v + g; p -= lr v``, PyTorch's convention), reshuffled every epoch.
* W3, the same kind of MLP, one plain SGD step on one batch.
"""

from __future__ import annotations

import importlib
import itertools
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from harness import Unavailable

Run = Callable[[int], Any]
Factory = Callable[[], Run]


def require(module: str) -> Any:
    """Import ``module`` or raise :class:`Unavailable` naming it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = (exc.name or module).split(".")[0]
        raise Unavailable(f"{missing} not installed") from exc


def _jax_device(jax: Any, device: str) -> Any:
    try:
        return jax.devices("gpu" if device == "gpu" else "cpu")[0]
    except RuntimeError as exc:
        raise Unavailable(f"no JAX {device} device") from exc


def _torch_device(torch: Any, device: str) -> Any:
    if device == "gpu":
        if not torch.cuda.is_available():
            raise Unavailable("no CUDA device for torch")
        return torch.device("cuda")
    return torch.device("cpu")


def _torch_sync(torch: Any, device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tutorial_init(seed: int = 0) -> tuple[np.ndarray, ...]:
    """The tutorial's initial parameters (``randn * 0.01``, zero biases), float64."""
    rng = np.random.default_rng(seed)
    W1 = rng.standard_normal((4, 2)) * 0.01
    W2 = rng.standard_normal((1, 4)) * 0.01
    return W1, np.zeros((4, 1)), W2, np.zeros((1, 1))


# =============================================================================== W1


def tutorial_numpy(X: np.ndarray, y: np.ndarray, lr: float, seed: int = 0) -> Factory:
    """The tutorial's own code, transcribed (float64, ``(features, samples)``).

    Only the printing every 1000 iterations is dropped; the cost is still computed
    every epoch, as in the tutorial's loop.
    """

    def factory() -> Run:
        Xt = X.T  # the tutorial's ``X = X.T``
        Y = y.reshape(1, -1).astype("uint8")  # the tutorial's labels are uint8, (1, m)
        W1, b1, W2, b2 = tutorial_init(seed)

        def sigmoid(x):
            s = 1 / (1 + np.exp(-x))
            return s

        def forward_propagation(X, W1, W2, b1, b2):
            Z1 = np.dot(W1, X) + b1
            A1 = np.tanh(Z1)
            Z2 = np.dot(W2, A1) + b2
            A2 = sigmoid(Z2)
            cache = {"Z1": Z1, "A1": A1, "Z2": Z2, "A2": A2}
            return A2, cache

        def compute_cost(A2, Y):
            m = Y.shape[1]
            cost = -(1 / m) * np.sum(Y * np.log(A2) + (1 - Y) * np.log(1 - A2))
            cost = np.squeeze(cost)
            return cost

        def back_propagation(W1, b1, W2, b2, cache, learning_rate):
            A1 = cache["A1"]
            A2 = cache["A2"]
            m = Y.shape[1]
            dZ2 = A2 - Y
            dW2 = (1 / m) * np.dot(dZ2, A1.T)
            db2 = (1 / m) * np.sum(dZ2, axis=1, keepdims=True)
            dZ1 = np.multiply(np.dot(W2.T, dZ2), 1 - np.power(A1, 2))
            dW1 = (1 / m) * np.dot(dZ1, Xt.T)
            db1 = (1 / m) * np.sum(dZ1, axis=1, keepdims=True)
            W1 = W1 - learning_rate * dW1
            b1 = b1 - learning_rate * db1
            W2 = W2 - learning_rate * dW2
            b2 = b2 - learning_rate * db2
            return W1, W2, b1, b2

        state = [W1, W2, b1, b2]

        def run(n: int) -> None:
            W1, W2, b1, b2 = state
            with np.errstate(all="ignore"):
                for _ in range(0, n):
                    A2, cache = forward_propagation(Xt, W1, W2, b1, b2)
                    compute_cost(A2, Y)
                    W1, W2, b1, b2 = back_propagation(W1, b1, W2, b2, cache, lr)
            state[:] = [W1, W2, b1, b2]

        return run

    return factory


def tutorial_xp(
    xp_name: str, X: np.ndarray, y: np.ndarray, lr: float, dtype: str, device: str = "cpu"
) -> Factory:
    """The tutorial's code with ``np`` replaced by an array-API namespace, run eagerly.

    ``xp_name``: ``"array_api_compat.numpy"``, ``"array_api_strict"``, ``"jax.numpy"``
    (un-jitted), ``"array_api_compat.cupy"``.
    """

    def factory() -> Run:
        xp = require(xp_name)
        float_dtype = getattr(xp, dtype)
        sync: Callable[[Any], None] = lambda a: None  # noqa: E731
        if xp_name == "jax.numpy":
            jax = require("jax")
            place = _jax_device(jax, device)
            put = lambda a: jax.device_put(np.asarray(a, dtype), place)  # noqa: E731
            sync = lambda a: a.block_until_ready()  # noqa: E731
        elif xp_name == "array_api_compat.cupy":
            cupy = require("cupy")
            put = lambda a: cupy.asarray(np.asarray(a, dtype))  # noqa: E731
            sync = lambda a: cupy.cuda.get_current_stream().synchronize()  # noqa: E731
        else:
            put = lambda a: xp.asarray(np.asarray(a, dtype), dtype=float_dtype)  # noqa: E731
        Xt = put(X.T.copy())
        Y = put(y.reshape(1, -1))
        m = Y.shape[1]
        state = [put(p) for p in tutorial_init()]

        def epoch(W1, b1, W2, b2):
            Z1 = xp.matmul(W1, Xt) + b1
            A1 = xp.tanh(Z1)
            Z2 = xp.matmul(W2, A1) + b2
            A2 = 1 / (1 + xp.exp(-Z2))
            cost = -(1 / m) * xp.sum(Y * xp.log(A2) + (1 - Y) * xp.log(1 - A2))
            dZ2 = A2 - Y
            dW2 = (1 / m) * xp.matmul(dZ2, A1.T)
            db2 = (1 / m) * xp.sum(dZ2, axis=1, keepdims=True)
            dZ1 = xp.multiply(xp.matmul(W2.T, dZ2), 1 - xp.pow(A1, 2))
            dW1 = (1 / m) * xp.matmul(dZ1, Xt.T)
            db1 = (1 / m) * xp.sum(dZ1, axis=1, keepdims=True)
            new = (W1 - lr * dW1, b1 - lr * db1, W2 - lr * dW2, b2 - lr * db2)
            return new, cost

        def run(n: int) -> None:
            params = tuple(state)
            with np.errstate(all="ignore"):
                for _ in range(n):
                    params, _cost = epoch(*params)
            sync(params[0])
            state[:] = params

        return run

    return factory


def numpy_w1(X: np.ndarray, y: np.ndarray, lr: float) -> Factory:
    """Hand-written NumPy for W1, tuned: contiguous data, in-place updates, stable loss."""

    def factory() -> Run:
        Xt = np.ascontiguousarray(X.T, dtype=np.float64)
        XT = np.ascontiguousarray(X, dtype=np.float64)
        Y = y.reshape(1, -1).astype(np.float64)
        m = Y.shape[1]
        W1, b1, W2, b2 = tutorial_init()
        losses: list[float] = []

        def run(n: int) -> None:
            nonlocal W1, b1, W2, b2  # updated in place; nonlocal only for the augmented assignments
            with np.errstate(all="ignore"):
                for _ in range(n):
                    Z1 = W1 @ Xt
                    Z1 += b1
                    A1 = np.tanh(Z1, out=Z1)
                    Z2 = W2 @ A1
                    Z2 += b2
                    A2 = 1.0 / (1.0 + np.exp(-Z2))
                    # cost from logits: max(z,0) - y z + log1p(exp(-|z|))
                    losses.append(
                        float(np.mean(np.maximum(Z2, 0) - Y * Z2 + np.log1p(np.exp(-np.abs(Z2)))))
                    )
                    dZ2 = A2 - Y
                    dZ2 *= 1.0 / m
                    dW2 = dZ2 @ A1.T
                    db2 = dZ2.sum(axis=1, keepdims=True)
                    dZ1 = W2.T @ dZ2
                    dZ1 *= 1.0 - A1 * A1
                    dW1 = dZ1 @ XT
                    db1 = dZ1.sum(axis=1, keepdims=True)
                    W1 -= lr * dW1
                    b1 -= lr * db1
                    W2 -= lr * dW2
                    b2 -= lr * db2
            del losses[:]

        return run

    return factory


def torch_w1(
    X: np.ndarray, y: np.ndarray, lr: float, dtype: str, device: str, autograd: bool
) -> Factory:
    """PyTorch eager: the tutorial's math with hand-written gradients, or with autograd."""

    def factory() -> Run:
        torch = require("torch")
        dev = _torch_device(torch, device)
        tdtype = getattr(torch, dtype)
        W1, b1, W2, b2 = (torch.tensor(p, dtype=tdtype, device=dev) for p in tutorial_init())
        if autograd:
            Xr = torch.tensor(X, dtype=tdtype, device=dev)  # rows are samples
            Yr = torch.tensor(y.reshape(-1, 1), dtype=tdtype, device=dev)
            params = [W1, b1.reshape(-1).clone(), W2, b2.reshape(-1).clone()]
            for p in params:
                p.requires_grad_(True)
            F = torch.nn.functional

            def run(n: int) -> None:
                losses = []
                w1, c1, w2, c2 = params
                for _ in range(n):
                    z2 = torch.tanh(Xr @ w1.T + c1) @ w2.T + c2
                    loss = F.binary_cross_entropy_with_logits(z2, Yr)
                    loss.backward()
                    with torch.no_grad():
                        for p in params:
                            p -= lr * p.grad
                            p.grad = None
                    losses.append(loss.detach())
                torch.stack(losses).tolist()
                _torch_sync(torch, dev)

            return run

        Xt = torch.tensor(X.T.copy(), dtype=tdtype, device=dev)
        Y = torch.tensor(y.reshape(1, -1), dtype=tdtype, device=dev)
        m = Y.shape[1]
        state = [W1, b1, W2, b2]

        def run(n: int) -> None:
            W1, b1, W2, b2 = state
            losses = []
            for _ in range(n):
                Z1 = W1 @ Xt + b1
                A1 = torch.tanh(Z1)
                Z2 = W2 @ A1 + b2
                A2 = torch.sigmoid(Z2)
                losses.append(
                    torch.mean(torch.clamp(Z2, min=0) - Y * Z2 + torch.log1p(torch.exp(-Z2.abs())))
                )
                dZ2 = (A2 - Y) / m
                dW2 = dZ2 @ A1.T
                db2 = dZ2.sum(dim=1, keepdim=True)
                dZ1 = (W2.T @ dZ2) * (1 - A1 * A1)
                dW1 = dZ1 @ Xt.T
                db1 = dZ1.sum(dim=1, keepdim=True)
                W1 = W1 - lr * dW1
                b1 = b1 - lr * db1
                W2 = W2 - lr * dW2
                b2 = b2 - lr * db2
            torch.stack(losses).tolist()
            _torch_sync(torch, dev)
            state[:] = [W1, b1, W2, b2]

        return run

    return factory


def jax_w1_loop(X: np.ndarray, y: np.ndarray, lr: float, dtype: str, device: str) -> Factory:
    """Hand-written JAX: the tutorial's math, all ``n`` epochs in one jitted ``lax.fori_loop``.

    The per-epoch losses are kept in an array and read back at the end (as anynet's
    history). ``n`` is static: the first call for a new ``n`` compiles (``compile_s``).
    """

    def factory() -> Run:
        jax = require("jax")
        jnp = jax.numpy
        place = _jax_device(jax, device)
        Xt = jax.device_put(np.asarray(X.T, dtype), place)
        Y = jax.device_put(np.asarray(y.reshape(1, -1), dtype), place)
        state = [tuple(jax.device_put(np.asarray(p, dtype), place) for p in tutorial_init())]

        def train(params, Xt, Y, n):
            m = Xt.shape[1]

            def body(i, carry):
                (W1, b1, W2, b2), losses = carry
                A1 = jnp.tanh(W1 @ Xt + b1)
                Z2 = W2 @ A1 + b2
                A2 = jax.nn.sigmoid(Z2)
                cost = jnp.mean(jnp.maximum(Z2, 0) - Y * Z2 + jnp.log1p(jnp.exp(-jnp.abs(Z2))))
                dZ2 = (A2 - Y) / m
                dW2 = dZ2 @ A1.T
                db2 = jnp.sum(dZ2, axis=1, keepdims=True)
                dZ1 = (W2.T @ dZ2) * (1 - A1 * A1)
                dW1 = dZ1 @ Xt.T
                db1 = jnp.sum(dZ1, axis=1, keepdims=True)
                new = (W1 - lr * dW1, b1 - lr * db1, W2 - lr * dW2, b2 - lr * db2)
                return new, losses.at[i].set(cost)

            return jax.lax.fori_loop(0, n, body, (params, jnp.zeros(n, dtype)))

        jitted = jax.jit(train, static_argnums=3)
        compiled: dict[int, Any] = {}

        def run(n: int) -> None:
            if n not in compiled:
                start = time.perf_counter()
                compiled[n] = jitted.lower(state[0], Xt, Y, n).compile()
                run.compile_s = time.perf_counter() - start
            params, losses = compiled[n](state[0], Xt, Y)
            np.asarray(losses)  # blocks; the history, on the host
            state[0] = params

        run.compile_s = None
        return run

    return factory


def sklearn_w1(X: np.ndarray, y: np.ndarray, lr: float) -> Factory:
    """scikit-learn's MLPClassifier: 4 tanh units, logistic output, full-batch plain SGD.

    ``fit`` with ``warm_start=True`` and ``max_iter=n`` runs ``n`` more epochs.
    """

    def factory() -> Run:
        nn = require("sklearn.neural_network")
        exceptions = require("sklearn.exceptions")
        clf = nn.MLPClassifier(
            hidden_layer_sizes=(4,),
            activation="tanh",
            solver="sgd",
            learning_rate_init=lr,
            momentum=0.0,
            nesterovs_momentum=False,
            alpha=0.0,
            batch_size=X.shape[0],
            shuffle=False,
            warm_start=True,
            tol=0.0,
            n_iter_no_change=2**31 - 1,
            random_state=0,
        )

        def run(n: int) -> None:
            clf.set_params(max_iter=n)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", exceptions.ConvergenceWarning)
                clf.fit(X, y)

        return run

    return factory


# =========================================================================== W2, W3


def he_init(sizes: list[int], dtype: str, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """He-normal weights ``(n_in, n_out)`` (rows layout) and zero biases, on the host."""
    rng = np.random.default_rng(seed)
    layers = []
    for n_in, n_out in itertools.pairwise(sizes):
        w = rng.standard_normal((n_out, n_in)) * math.sqrt(2.0 / n_in)  # anynet's draw order
        # C order: in-place updates with C-ordered gradients stay contiguous
        layers.append((np.ascontiguousarray(w.T, dtype=dtype), np.zeros(n_out, dtype)))
    return layers


def mlp_flops(sizes: list[int], batch: int) -> int:
    """Matmul FLOPs of one training step: forward, weight gradients, input gradients
    of every layer but the first (whose input is the data)."""
    products = [n_in * n_out for n_in, n_out in itertools.pairwise(sizes)]
    return 2 * batch * (2 * sum(products) + sum(products[1:]))


class ArrayMLP:
    """Hand-written ReLU/softmax MLP for NumPy (or CuPy, same code): in-place everywhere.

    Activations are ``(batch, features)``; each layer's weights are updated in place as
    soon as backprop has gone through them, so gradients never all coexist.
    """

    def __init__(self, xp: Any, sizes: list[int], dtype: str, beta: float, seed: int = 0):
        self.xp = xp
        self.layers = [(xp.asarray(w), xp.asarray(b)) for w, b in he_init(sizes, dtype, seed)]
        self.beta = beta
        self.velocity = (
            [(xp.zeros_like(w), xp.zeros_like(b)) for w, b in self.layers] if beta else None
        )

    def step(self, xb: Any, yb: Any, lr: float) -> Any:
        """One SGD (momentum) step on a batch; returns the batch's mean loss (0-d array)."""
        xp = self.xp
        nb = xb.shape[0]
        rows = xp.arange(nb)
        acts = [xb]
        last = len(self.layers) - 1
        for index, (w, b) in enumerate(self.layers):
            z = acts[-1] @ w
            z += b
            if index < last:
                xp.maximum(z, 0, out=z)
            acts.append(z)
        z = acts.pop()  # logits -> probabilities, in place
        z -= z.max(axis=1, keepdims=True)
        picked = z[rows, yb]
        xp.exp(z, out=z)
        total = z.sum(axis=1, keepdims=True)
        loss = xp.mean(xp.log(total[:, 0]) - picked)
        z /= total
        z[rows, yb] -= 1
        z *= 1.0 / nb
        delta = z
        for index in range(last, -1, -1):
            w, b = self.layers[index]
            a_prev = acts[index]
            gw = a_prev.T @ delta
            gb = delta.sum(axis=0)
            if index:
                delta = delta @ w.T
                delta *= a_prev > 0
            if self.velocity is not None:
                vw, vb = self.velocity[index]
                vw *= self.beta
                vw += gw
                vb *= self.beta
                vb += gb
                gw, gb = vw, vb
            w -= lr * gw
            b -= lr * gb
        return loss


def _array_module(library: str) -> tuple[Any, Callable[[], None]]:
    if library == "cupy":
        cupy = require("cupy")
        return cupy, lambda: cupy.cuda.get_current_stream().synchronize()
    return np, lambda: None


def array_mlp_epochs(
    library: str, X: np.ndarray, y: np.ndarray, sizes: list[int], batch: int, lr: float, beta: float
) -> Factory:
    """Hand-written NumPy (or CuPy): momentum SGD over shuffled minibatches, ``run(n)`` epochs."""

    def factory() -> Run:
        xp, sync = _array_module(library)
        Xd, yd = xp.asarray(X), xp.asarray(y)
        mlp = ArrayMLP(xp, sizes, str(X.dtype), beta)
        rng = np.random.default_rng(0)
        count = X.shape[0]

        def run(n: int) -> None:
            for _ in range(n):
                perm = xp.asarray(rng.permutation(count))
                losses = [
                    mlp.step(Xd[idx], yd[idx], lr)
                    for idx in (perm[s : s + batch] for s in range(0, count, batch))
                ]
                float(xp.mean(xp.stack(losses)))
            sync()

        return run

    return factory


def array_mlp_steps(
    library: str, X: np.ndarray, y: np.ndarray, sizes: list[int], lr: float
) -> Factory:
    """Hand-written NumPy (or CuPy): ``run(n)`` plain SGD steps on the batch ``X``."""

    def factory() -> Run:
        xp, sync = _array_module(library)
        Xd, yd = xp.asarray(X), xp.asarray(y)
        mlp = ArrayMLP(xp, sizes, str(X.dtype), 0.0)

        def run(n: int) -> None:
            for _ in range(n):
                float(mlp.step(Xd, yd, lr))
            sync()

        return run

    return factory


def _torch_model(torch: Any, sizes: list[int], dtype: str, dev: Any) -> Any:
    layers: list[Any] = []
    for index, (w, b) in enumerate(he_init(sizes, dtype)):
        linear = torch.nn.Linear(w.shape[0], w.shape[1], dtype=getattr(torch, dtype))
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        if index < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).to(dev)


def torch_mlp(
    X: np.ndarray,
    y: np.ndarray,
    sizes: list[int],
    batch: int | None,
    lr: float,
    beta: float,
    device: str,
) -> Factory:
    """PyTorch eager: ``nn.Sequential``, autograd, ``torch.optim.SGD``.

    ``batch`` set: ``run(n)`` is ``n`` shuffled epochs of minibatches (W2); ``batch`` None:
    ``run(n)`` is ``n`` steps on the whole of ``X`` (W3).
    """

    def factory() -> Run:
        torch = require("torch")
        dev = _torch_device(torch, device)
        model = _torch_model(torch, sizes, str(X.dtype), dev)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=beta)
        Xd = torch.from_numpy(X).to(dev)
        yd = torch.from_numpy(y.astype(np.int64)).to(dev)
        count = X.shape[0]
        generator = torch.Generator(device=dev).manual_seed(0)
        cross_entropy = torch.nn.functional.cross_entropy

        def step(xb: Any, yb: Any) -> Any:
            optimizer.zero_grad(set_to_none=True)
            loss = cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            return loss.detach()

        def run(n: int) -> None:
            for _ in range(n):
                if batch is None:
                    float(step(Xd, yd))
                    continue
                perm = torch.randperm(count, device=dev, generator=generator)
                losses = [
                    step(Xd[idx], yd[idx])
                    for idx in (perm[s : s + batch] for s in range(0, count, batch))
                ]
                float(torch.stack(losses).mean())
            _torch_sync(torch, dev)

        return run

    return factory


def _jax_mlp_functions(jax: Any, lr: float, beta: float) -> tuple[Callable, Callable]:
    jnp = jax.numpy

    def loss_fn(params, xb, yb):
        a = xb
        for w, b in params[:-1]:
            a = jax.nn.relu(a @ w + b)
        w, b = params[-1]
        logp = jax.nn.log_softmax(a @ w + b)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    def update(params, velocity, xb, yb):
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        if beta:
            velocity = jax.tree.map(lambda v, g: beta * v + g, velocity, grads)
            grads = velocity
        params = jax.tree.map(lambda p, g: p - lr * g, params, grads)
        return params, velocity, loss

    return loss_fn, update


def _jax_setup(X: np.ndarray, y: np.ndarray, sizes: list[int], device: str) -> tuple:
    jax = require("jax")
    place = _jax_device(jax, device)
    params = jax.device_put([(w, b) for w, b in he_init(sizes, str(X.dtype))], place)
    velocity = jax.tree.map(jax.numpy.zeros_like, params)
    return jax, params, velocity, jax.device_put(X, place), jax.device_put(y, place)


def jax_mlp_step_jit(
    X: np.ndarray, y: np.ndarray, sizes: list[int], batch: int, lr: float, beta: float, device: str
) -> Factory:
    """Hand-written JAX, one jitted step (``jax.grad`` + momentum) per minibatch (W2)."""

    def factory() -> Run:
        jax, params, velocity, Xd, yd = _jax_setup(X, y, sizes, device)
        _, update = _jax_mlp_functions(jax, lr, beta)

        def step(params, velocity, X, y, idx):
            return update(params, velocity, X[idx], y[idx])

        jitted = jax.jit(step)
        count = X.shape[0]
        rest = count % batch
        start = time.perf_counter()
        compiled = {
            size: jitted.lower(params, velocity, Xd, yd, np.arange(size)).compile()
            for size in {batch, rest} - {0}
        }
        compile_s = time.perf_counter() - start
        rng = np.random.default_rng(0)
        state = [params, velocity]

        def run(n: int) -> None:
            params, velocity = state
            for _ in range(n):
                perm = rng.permutation(count)
                losses = []
                for s in range(0, count, batch):
                    idx = perm[s : s + batch]
                    params, velocity, loss = compiled[idx.shape[0]](params, velocity, Xd, yd, idx)
                    losses.append(loss)
                float(jax.numpy.mean(jax.numpy.stack(losses)))
            jax.block_until_ready(params)
            state[:] = [params, velocity]

        run.compile_s = compile_s
        return run

    return factory


def jax_mlp_epoch_scan(
    X: np.ndarray, y: np.ndarray, sizes: list[int], batch: int, lr: float, beta: float, device: str
) -> Factory:
    """Hand-written JAX: a whole epoch (shuffle + every minibatch) in one jitted ``lax.scan``."""

    def factory() -> Run:
        jax, params, velocity, Xd, yd = _jax_setup(X, y, sizes, device)
        jnp = jax.numpy
        _, update = _jax_mlp_functions(jax, lr, beta)
        count = X.shape[0]
        full = count // batch

        def epoch(params, velocity, key, X, y):
            key, sub = jax.random.split(key)
            perm = jax.random.permutation(sub, count)

            def body(carry, idx):
                params, velocity, loss = update(*carry, X[idx], y[idx])
                return (params, velocity), loss

            (params, velocity), losses = jax.lax.scan(
                body, (params, velocity), perm[: full * batch].reshape(full, batch)
            )
            if count % batch:
                idx = perm[full * batch :]
                params, velocity, loss = update(params, velocity, X[idx], y[idx])
                losses = jnp.concatenate([losses, loss[None]])
            return params, velocity, key, losses

        key = jax.random.key(0)
        start = time.perf_counter()
        compiled = jax.jit(epoch).lower(params, velocity, key, Xd, yd).compile()
        compile_s = time.perf_counter() - start
        state = [params, velocity, key]

        def run(n: int) -> None:
            params, velocity, key = state
            for _ in range(n):
                params, velocity, key, losses = compiled(params, velocity, key, Xd, yd)
                float(jnp.mean(losses))
            jax.block_until_ready(params)
            state[:] = [params, velocity, key]

        run.compile_s = compile_s
        return run

    return factory


def jax_mlp_steps(
    X: np.ndarray, y: np.ndarray, sizes: list[int], lr: float, device: str
) -> Factory:
    """Hand-written JAX: ``run(n)`` jitted plain-SGD steps on the batch ``X`` (W3)."""

    def factory() -> Run:
        jax, params, _, Xd, yd = _jax_setup(X, y, sizes, device)
        _, update = _jax_mlp_functions(jax, lr, 0.0)

        def step(params, X, y):
            params, _, loss = update(params, None, X, y)
            return params, loss

        start = time.perf_counter()
        compiled = jax.jit(step).lower(params, Xd, yd).compile()
        compile_s = time.perf_counter() - start
        state = [params]

        def run(n: int) -> None:
            params = state[0]
            for _ in range(n):
                params, loss = compiled(params, Xd, yd)
                float(loss)
            jax.block_until_ready(params)
            state[0] = params

        run.compile_s = compile_s
        return run

    return factory


def sklearn_mlp(
    X: np.ndarray, y: np.ndarray, sizes: list[int], batch: int, lr: float, beta: float
) -> Factory:
    """scikit-learn's MLPClassifier with the same network and algorithm (momentum SGD).

    ``fit`` with ``warm_start=True`` and ``max_iter=n`` runs ``n`` more epochs.
    """

    def factory() -> Run:
        nn = require("sklearn.neural_network")
        exceptions = require("sklearn.exceptions")
        clf = nn.MLPClassifier(
            hidden_layer_sizes=tuple(sizes[1:-1]),
            activation="relu",
            solver="sgd",
            learning_rate_init=lr,
            momentum=beta,
            nesterovs_momentum=False,
            alpha=0.0,
            batch_size=batch,
            shuffle=True,
            warm_start=True,
            tol=0.0,
            n_iter_no_change=2**31 - 1,
            random_state=0,
        )

        def run(n: int) -> None:
            clf.set_params(max_iter=n)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", exceptions.ConvergenceWarning)
                clf.fit(X, y)

        return run

    return factory


# ======================================================================== matmul peak


def matmul(library: str, size: int, device: str) -> Factory:
    """``run(n)``: ``n`` float32 ``size x size`` matmuls into a preallocated output."""

    def factory() -> Run:
        if library == "torch":
            torch = require("torch")
            dev = _torch_device(torch, device)
        elif library == "jax":
            jax = require("jax")
            place = _jax_device(jax, device)
        elif library == "cupy":
            cupy = require("cupy")
        elif library != "numpy":
            raise Unavailable(f"no matmul for {library}")
        rng = np.random.default_rng(0)
        a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
        if library == "numpy":
            out = np.empty_like(a)

            def run(n: int) -> None:
                for _ in range(n):
                    np.matmul(a, b, out=out)

            return run
        if library == "torch":
            ta, tb = torch.from_numpy(a).to(dev), torch.from_numpy(b).to(dev)
            tout = torch.empty_like(ta)

            def run(n: int) -> None:
                for _ in range(n):
                    torch.mm(ta, tb, out=tout)
                _torch_sync(torch, dev)

            return run
        if library == "jax":
            ja, jb = jax.device_put(a, place), jax.device_put(b, place)
            product = jax.jit(lambda x, y: x @ y)
            product(ja, jb).block_until_ready()

            def run(n: int) -> None:
                for _ in range(n):
                    out = product(ja, jb)
                out.block_until_ready()

            return run
        ca, cb = cupy.asarray(a), cupy.asarray(b)
        cout = cupy.empty_like(ca)

        def run(n: int) -> None:
            for _ in range(n):
                cupy.matmul(ca, cb, out=cout)
            cupy.cuda.get_current_stream().synchronize()

        return run

    return factory
