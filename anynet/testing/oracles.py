"""Autodiff oracles: PyTorch's or JAX's gradients of the same forward pass, in float64.

The forward pass runs through each layer's :meth:`~anynet.layers.Layer.reference`
(stateless layers; by default their own ``forward``) or
:meth:`~anynet.layers.Layer.forward_state` (layers with state), in the oracle
library's own array-API namespace; only the hand-written backward passes are left
out. Nothing here names a layer: every model is walked through its layers.

Neither library is imported before a function here is called.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..backend import install_hint, to_numpy
from ..errors import BackendError, InputError
from ..model import Model

if TYPE_CHECKING:  # pragma: no cover
    from ..layers.base import Layer
    from ..network import Network


def _import_oracle(name: str) -> Any:
    """The oracle library ``name``, or a BackendError saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise BackendError(
            f"oracle={name!r} needs {name}, which is not installed ({exc}); "
            f"install it ({install_hint(name)}) or pass oracle=None"
        ) from exc


def _installed_oracles() -> tuple[str, ...]:
    """The oracle libraries that import here (what ``oracle="all"`` uses)."""
    found = []
    for name in _AUTODIFF:
        try:
            _import_oracle(name)
        except BackendError:
            continue
        found.append(name)
    return tuple(found)


def _jax_x64(jax: Any) -> contextlib.AbstractContextManager:
    """A context in which JAX computes in float64, or an error saying how to get one."""
    if jax.config.read("jax_enable_x64"):
        return contextlib.nullcontext()
    manager = getattr(jax, "enable_x64", None)  # jax >= 0.7: jax.enable_x64(True)
    if manager is not None:
        return manager(True)
    with contextlib.suppress(ImportError):
        experimental = importlib.import_module("jax.experimental")
        if hasattr(experimental, "enable_x64"):
            return experimental.enable_x64()
    raise BackendError(
        "oracle='jax' computes in float64, which needs JAX's 64-bit mode: set the "
        "environment variable JAX_ENABLE_X64=1 before Python starts, or use oracle='torch'"
    )


def _torch_namespace(torch: Any) -> Any:
    """PyTorch's array-API namespace (array-api-compat's wrapper)."""
    import array_api_compat

    return array_api_compat.array_namespace(torch.zeros(1))


def _reference_loss(model: Any, params: dict, state: dict, x: Any, y: Any, xp: Any) -> Any:
    """The model's evaluation-mode loss through each layer's :meth:`~Layer.reference`
    (its forward pass unless it gives an independent one), in namespace ``xp``."""
    assert isinstance(model, Model)
    h = x
    for slot, own, own_state in model.walk(params, state):
        if slot.state:
            h = slot.layer.forward_state(own, own_state, h, xp=xp, train=False)[0]
        else:
            h = slot.layer.reference(own, h, xp=xp, train=False)
    t = model.head.targets(y, h, xp=xp)
    return model.head.loss_value(h, t, xp=xp)


def _torch_autodiff(
    function: Callable[[Any, Callable, dict[str, Any]], Any], leaves: dict[str, np.ndarray]
) -> tuple[float, dict[str, np.ndarray]]:
    """``function(xp, asarray, leaves)`` (a 0-d array) and its gradients by PyTorch.

    ``xp`` is PyTorch's array-API namespace, ``asarray`` turns host constants into
    tensors, ``leaves`` holds float64 tensors of the host arrays given. A leaf the value
    does not depend on gets a zero gradient.
    """
    torch = _import_oracle("torch")
    tensors = {key: torch.tensor(value, requires_grad=True) for key, value in leaves.items()}
    value = function(_torch_namespace(torch), torch.tensor, tensors)
    value.backward()
    grads = {
        key: np.zeros(tuple(tensor.shape))
        if tensor.grad is None
        else tensor.grad.detach().numpy().astype(np.float64)
        for key, tensor in tensors.items()
    }
    return float(value.detach().item()), grads


def _jax_autodiff(
    function: Callable[[Any, Callable, dict[str, Any]], Any], leaves: dict[str, np.ndarray]
) -> tuple[float, dict[str, np.ndarray]]:
    """``function(xp, asarray, leaves)`` (a 0-d array) and its gradients by JAX, float64.

    Compiled: one compilation of the whole graph costs less than one per operation.
    """
    jax = _import_oracle("jax")
    jnp = jax.numpy
    with _jax_x64(jax):
        run = jax.jit(jax.value_and_grad(lambda p: function(jnp, jnp.asarray, p)))
        value, grads = run({key: jnp.asarray(v) for key, v in leaves.items()})
        return float(value), {key: np.asarray(g, dtype=np.float64) for key, g in grads.items()}


#: How each oracle library differentiates a function of host arrays.
_AUTODIFF = {"torch": _torch_autodiff, "jax": _jax_autodiff}
#: The libraries that can serve as autodiff oracles.
ORACLES = tuple(_AUTODIFF)


def _autodiff(name: str) -> Callable[..., tuple[float, dict[str, np.ndarray]]]:
    if name not in _AUTODIFF:
        raise InputError(f"oracle must be one of {list(_AUTODIFF)}, got {name!r}")
    return _AUTODIFF[name]


def _oracle_gradients(name: str, net: Network, X: Any, y: Any) -> dict[str, np.ndarray]:
    """Gradients of the network's loss by ``name``'s autodiff (torch or jax), in float64.

    The forward pass runs through every layer's ``reference`` in that library's own
    namespace; only the hand-written backward passes are left out.
    """
    model = net.model
    host = {k: to_numpy(v).astype(np.float64) for k, v in net.params.items()}
    state = {k: to_numpy(v) for k, v in net.state.items()}
    state = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in state.items()}
    x = np.asarray(X, dtype=np.float64)
    target = np.asarray(y)

    def loss(xp: Any, asarray: Callable, leaves: dict[str, Any]) -> Any:
        own_state = {k: asarray(v) for k, v in state.items()}
        return _reference_loss(model, leaves, own_state, asarray(x), asarray(target), xp)

    return _autodiff(name)(loss, host)[1]


# -------------------------------------------------------------------- single layers


def _layer_objective(
    layer: Layer, params: dict, state: dict, x: Any, dy: Any, xp: Any, train: bool
) -> Any:
    """``L = sum(y * dy)``, 0-d, ``y`` from the layer's :meth:`~Layer.reference` when it
    has no state, else from :meth:`~Layer.forward_state`, in namespace ``xp``."""
    if layer.state_names:
        y = layer.forward_state(params, state, x, xp=xp, train=train)[0]
    else:
        y = layer.reference(params, x, xp=xp, train=train)
    return xp.sum(y * dy)


def _layer_oracle_gradients(
    name: str,
    layer: Layer,
    params: dict[str, np.ndarray],
    state: dict[str, np.ndarray],
    x: np.ndarray,
    dy: np.ndarray,
    train: bool,
) -> tuple[float, dict[str, np.ndarray]]:
    """``L = sum(y * dy)`` and its gradients by ``name``'s autodiff (torch or jax), float64.

    Parameters
    ----------
    name : {"torch", "jax"}
    layer : Layer
    params : dict of str to numpy.ndarray
        The layer's own parameters, float64.
    state : dict of str to numpy.ndarray
        Its state: float64, or integer (kept).
    x : numpy.ndarray, float64, shape (n_samples, n_in)
    dy : numpy.ndarray, float64, shape (n_samples, n_out)
    train : bool

    Returns
    -------
    value : float
        ``L`` as the oracle computes it.
    grads : dict of str to numpy.ndarray
        ``"dx"`` (shape of ``x``) and one float64 array per parameter key.
    """
    leaves = {"x": x, **{f"params.{key}": value for key, value in params.items()}}

    def objective(xp: Any, asarray: Callable, leaves: dict[str, Any]) -> Any:
        own = {key: leaves[f"params.{key}"] for key in params}
        own_state = {key: asarray(value) for key, value in state.items()}
        return _layer_objective(layer, own, own_state, leaves["x"], asarray(dy), xp, train)

    value, grads = _autodiff(name)(objective, leaves)
    return value, {"dx": grads["x"], **{key: grads[f"params.{key}"] for key in params}}
