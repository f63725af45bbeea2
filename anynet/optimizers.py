"""Optimizers as pure functions over the params dict, and learning-rate schedules.

An optimizer is a small frozen dataclass of hyperparameters with pure methods::

    state = opt.init(params, xp=xp)                          # dict of arrays
    params, state = opt.update(params, grads, state, lr, xp=xp)
    directions, state = opt.directions(params, grads, state, xp=xp)

``update`` is ``p - lr * direction`` for every parameter. The math updates nothing in
place, so JAX can compile the whole step and CuPy/torch work unchanged; the fit engine
asks for ``directions`` (on large models one layer at a time, as soon as backprop has
passed the layer) and lets the backend apply ``p - lr * direction`` (in place on NumPy,
CuPy and torch: :meth:`anynet.Backend.updater`). ``directions`` reads only the keys of the
``params`` it is given, so it works on any subset.

The state is a flat ``dict[str, array]`` (``"step"``,
``"velocity.W1"``, ``"m.W1"``, ...) living on the device next to the params,
which also makes it trivially checkpointable. The learning rate arrives as a
0-d array each step, so a schedule never triggers a recompilation.

Schedules map ``(base_lr, epoch) -> lr`` on the host, once per epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from array_api_compat import array_namespace

from ._validation import (
    check_fraction,
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
)
from .errors import InputError
from .registry import optimizers as optimizer_registry
from .registry import register_optimizer

__all__ = [
    "SCHEDULES",
    "Adam",
    "AdamW",
    "Constant",
    "Cosine",
    "Exponential",
    "Momentum",
    "Nesterov",
    "Optimizer",
    "SGD",
    "Step",
    "get_optimizer",
    "get_schedule",
]

Array = Any
Params = dict[str, Array]


def _with_l2(params: Params, grads: Params, l2: float, decay: Any) -> Params:
    """Add the gradient of ``0.5 * l2 * ||p||^2`` for the parameters in ``decay``.

    ``decay`` is the model's :attr:`~anynet.model.Model.decay_keys` (weight matrices,
    not biases or normalisation scales); None means every parameter.
    """
    if not l2:
        return grads
    return {
        key: g + l2 * params[key] if decay is None or key in decay else g
        for key, g in grads.items()
    }


def _zero_step(params: Params, xp: Any) -> Array:
    """A 0-d zero on the params' device, in their dtype; works on tracers (jit, vmap)."""
    first = next(iter(params.values()))
    xp = array_namespace(first) if xp is None else xp
    return xp.zeros_like(xp.reshape(first, (-1,))[0])


@dataclass(frozen=True)
class Optimizer:
    """Base class: hyperparameters plus pure ``init`` and ``update``.

    Attributes
    ----------
    lr : float
        Base learning rate (a schedule scales it per epoch).
    l2 : float
        L2 regularisation: ``0.5 * l2 * ||W||^2`` on weight matrices (not biases),
        added to the gradients. The loss reported by ``fit`` is the data loss only.
    """

    lr: float = 0.01
    l2: float = 0.0

    def __post_init__(self) -> None:
        check_positive_float(self.lr, "lr")
        check_non_negative_float(self.l2, "l2")

    def init(self, params: Params, *, xp: Any = None) -> dict[str, Array]:
        """Initial state for ``params``: a flat dict of arrays on the params' device."""
        return {"step": _zero_step(params, xp)}

    def update(
        self,
        params: Params,
        grads: Params,
        state: dict[str, Array],
        lr: Array,
        *,
        xp: Any = None,
        decay: Any = None,
    ) -> tuple[Params, dict[str, Array]]:
        """One update. Returns new params and state.

        ``lr`` is a 0-d array of the params' dtype (or a float); ``decay`` the keys L2
        applies to (None: all). A subclass implements :meth:`directions`, or overrides
        this method: the fit engine then always calls the override (all parameters at
        once, never in place), as the functional loop does.
        """
        directions, new_state = self.directions(params, grads, state, xp=xp, decay=decay)
        return {key: params[key] - lr * directions[key] for key in params}, new_state

    def directions(
        self,
        params: Params,
        grads: Params,
        state: dict[str, Array],
        *,
        xp: Any = None,
        decay: Any = None,
    ) -> tuple[Params, dict[str, Array]]:
        """``(directions, new state)``: the update is ``p - lr * direction``.

        Reads and returns the state of the keys of ``params`` only (plus shared entries
        such as ``"step"``, the same whichever subset is given).
        """
        raise NotImplementedError

    #: Declared by a class (not inherited) whose :meth:`update` and :meth:`directions`
    #: never read ``self.lr`` (only the ``lr`` argument): the fit engine then shares one
    #: compiled runner among learning rates. A class that does not declare it gets a
    #: runner per learning rate, so its methods see their real ``self.lr``.
    lr_free: ClassVar[bool] = False

    @property
    def gives_directions(self) -> bool:
        """Whether the class implements :meth:`directions`."""
        return type(self).directions is not Optimizer.directions

    @property
    def layerwise(self) -> bool:
        """Whether :meth:`update` is exactly ``p - lr * direction`` of :meth:`directions`
        (the base class's ``update``, overridden nowhere), so the fit engine may apply
        the directions itself, in place and layer by layer. False for any optimizer that
        overrides ``update``: the engine then calls that ``update``."""
        return type(self).update is Optimizer.update and self.gives_directions

    def with_lr(self, lr: float) -> Optimizer:
        """A copy with another base learning rate."""
        return replace(self, lr=check_positive_float(lr, "lr"))


@dataclass(frozen=True)
class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    The PyTorch formulation: ``v = momentum * v + g``; ``p = p - lr * v``
    (Nesterov: ``p = p - lr * (g + momentum * v)``). With ``momentum=0`` this
    is the tutorial's update ``p = p - lr * g``.
    """

    lr_free: ClassVar[bool] = True

    momentum: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.momentum, "momentum")
        if self.nesterov and not self.momentum:
            raise InputError("nesterov=True needs momentum > 0, got momentum=0")

    def init(self, params: Params, *, xp: Any = None) -> dict[str, Array]:
        if not self.momentum:
            return {}  # plain SGD keeps no state: nothing to update, nothing to save
        state = super().init(params, xp=xp)
        xp = array_namespace(state["step"]) if xp is None else xp
        state.update({f"velocity.{key}": xp.zeros_like(p) for key, p in params.items()})
        return state

    def directions(
        self,
        params: Params,
        grads: Params,
        state: dict[str, Array],
        *,
        xp: Any = None,
        decay: Any = None,
    ) -> tuple[Params, dict[str, Array]]:
        grads = _with_l2(params, grads, self.l2, decay)
        if not self.momentum:
            return {key: grads[key] for key in params}, state
        new_state = {"step": state["step"] + 1}
        directions = {}
        for key in params:
            velocity = self.momentum * state[f"velocity.{key}"] + grads[key]
            new_state[f"velocity.{key}"] = velocity
            directions[key] = grads[key] + self.momentum * velocity if self.nesterov else velocity
        return directions, new_state


@dataclass(frozen=True)
class Momentum(SGD):
    """SGD with heavy-ball momentum 0.9 by default (``nesterov=True`` for Nesterov)."""

    lr_free: ClassVar[bool] = True

    momentum: float = 0.9


@dataclass(frozen=True)
class Adam(Optimizer):
    """Adam (Kingma & Ba, Algorithm 1) with bias correction.

    ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g^2``;
    ``p = p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``.
    ``weight_decay`` is decoupled (AdamW): ``p = p - lr * weight_decay * p`` in the
    same step, applied to every parameter as in PyTorch's ``AdamW``.
    """

    lr_free: ClassVar[bool] = True

    lr: float = 0.001
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.betas, tuple) or len(self.betas) != 2:
            raise InputError(f"betas must be a tuple of two numbers in [0, 1), got {self.betas!r}")
        check_fraction(self.betas[0], "betas[0]")
        check_fraction(self.betas[1], "betas[1]")
        check_positive_float(self.eps, "eps")
        check_non_negative_float(self.weight_decay, "weight_decay")

    def init(self, params: Params, *, xp: Any = None) -> dict[str, Array]:
        state = super().init(params, xp=xp)
        xp = array_namespace(state["step"]) if xp is None else xp
        for key, p in params.items():
            state[f"m.{key}"] = xp.zeros_like(p)
            state[f"v.{key}"] = xp.zeros_like(p)
        return state

    def directions(
        self,
        params: Params,
        grads: Params,
        state: dict[str, Array],
        *,
        xp: Any = None,
        decay: Any = None,
    ) -> tuple[Params, dict[str, Array]]:
        xp = array_namespace(next(iter(params.values()))) if xp is None else xp
        grads = _with_l2(params, grads, self.l2, decay)
        beta1, beta2 = self.betas
        step = state["step"] + 1
        correction1 = 1 - beta1**step
        correction2 = 1 - beta2**step
        directions, new_state = {}, {"step": step}
        for key, p in params.items():
            g = grads[key]
            m = beta1 * state[f"m.{key}"] + (1 - beta1) * g
            v = beta2 * state[f"v.{key}"] + (1 - beta2) * (g * g)
            new_state[f"m.{key}"], new_state[f"v.{key}"] = m, v
            direction = (m / correction1) / (xp.sqrt(v / correction2) + self.eps)
            if self.weight_decay:
                direction = direction + self.weight_decay * p
            directions[key] = direction
        return directions, new_state


@dataclass(frozen=True)
class AdamW(Adam):
    """Adam with decoupled weight decay, 0.01 by default (PyTorch's ``AdamW``)."""

    lr_free: ClassVar[bool] = True

    weight_decay: float = 0.01


@dataclass(frozen=True)
class Nesterov(Momentum):
    """SGD with Nesterov momentum 0.9."""

    lr_free: ClassVar[bool] = True

    nesterov: bool = True


optimizer_registry.base = Optimizer
register_optimizer("sgd", SGD)
register_optimizer("momentum", Momentum)
register_optimizer("nesterov", Nesterov)
register_optimizer("adam", Adam)
register_optimizer("adamw", AdamW)


def get_optimizer(optimizer: str | Optimizer = "sgd", lr: float | None = None) -> Optimizer:
    """An optimizer from a registered name (sgd, momentum, nesterov, adam, adamw, ...) or
    an object. ``lr``, when given, replaces the optimizer's own learning rate."""
    if isinstance(optimizer, Optimizer):
        return optimizer if lr is None else optimizer.with_lr(lr)
    cls = optimizer_registry.get(optimizer, "optimizer")
    return cls() if lr is None else cls(lr=check_positive_float(lr, "lr"))


# -- learning-rate schedules -----------------------------------------------------


@dataclass(frozen=True)
class Constant:
    """``lr`` at every epoch."""

    def __call__(self, lr: float, epoch: int) -> float:
        return lr


@dataclass(frozen=True)
class Step:
    """``lr * gamma ** (epoch // step_size)``: multiply by ``gamma`` every ``step_size`` epochs."""

    step_size: int = 10
    gamma: float = 0.1

    def __post_init__(self) -> None:
        check_positive_int(self.step_size, "step_size")
        check_non_negative_float(self.gamma, "gamma")

    def __call__(self, lr: float, epoch: int) -> float:
        return lr * self.gamma ** (epoch // self.step_size)


@dataclass(frozen=True)
class Exponential:
    """``lr * gamma ** epoch``."""

    gamma: float = 0.99

    def __post_init__(self) -> None:
        check_non_negative_float(self.gamma, "gamma")

    def __call__(self, lr: float, epoch: int) -> float:
        return lr * self.gamma**epoch


@dataclass(frozen=True)
class Cosine:
    """Cosine annealing from ``lr`` to ``min_lr`` over ``total`` epochs, then ``min_lr``."""

    total: int = 100
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        check_positive_int(self.total, "total")
        check_non_negative_float(self.min_lr, "min_lr")

    def __call__(self, lr: float, epoch: int) -> float:
        progress = min(epoch, self.total) / self.total
        return self.min_lr + 0.5 * (lr - self.min_lr) * (1 + math.cos(math.pi * progress))


SCHEDULES = {"constant": Constant, "step": Step, "exponential": Exponential, "cosine": Cosine}


def get_schedule(schedule: Any) -> Any:
    """A schedule from None (constant), a name, or a callable ``(lr, epoch) -> lr``."""
    if schedule is None:
        return Constant()
    if isinstance(schedule, str):
        if schedule not in SCHEDULES:
            raise InputError(
                f"schedule must be one of {sorted(SCHEDULES)} or a callable (lr, epoch) -> lr, "
                f"got {schedule!r}"
            )
        return SCHEDULES[schedule]()
    if callable(schedule):
        return schedule
    raise InputError(
        f"schedule must be one of {sorted(SCHEDULES)} or a callable (lr, epoch) -> lr, "
        f"got {schedule!r}"
    )
