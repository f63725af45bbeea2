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

Schedules map ``(base_lr, epoch) -> lr`` on the host, once per epoch; a schedule whose
``per`` attribute is ``"step"`` maps ``(base_lr, step) -> lr`` once per optimizer step
(``step`` counts the updates of the run from 0, minibatches included), e.g.
``Warmup(500, then=Cosine(total=9500, per="step"))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
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
    "Warmup",
    "clip_gradients",
    "get_optimizer",
    "get_schedule",
    "schedule_per",
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


#: Added to the global norm before dividing by it, as ``torch.nn.utils.clip_grad_norm_`` does.
CLIP_EPS = 1e-6


def clip_gradients(
    grads: Params,
    *,
    clip_norm: float | None = None,
    clip_value: float | None = None,
    xp: Any = None,
) -> Params:
    """Gradients clipped by their global norm, or element by element.

    Parameters
    ----------
    grads : dict of arrays
        Gradients of any shapes, one dtype.
    clip_norm : float, optional
        Scale every gradient by ``min(1, clip_norm / (norm + 1e-6))``, where ``norm`` is
        the Euclidean norm of all of them together (``sqrt(sum over keys of sum(g**2))``):
        ``torch.nn.utils.clip_grad_norm_``'s formula (``optax.clip_by_global_norm``
        omits the ``1e-6``).
    clip_value : float, optional
        Clip every element to ``[-clip_value, clip_value]``
        (``torch.nn.utils.clip_grad_value_``).

    Returns
    -------
    dict of arrays
        ``grads``' keys, shapes and dtypes. No branch on values: it traces under
        ``jax.jit``.
    """
    if clip_norm is None and clip_value is None:
        return grads
    if not grads:
        return grads
    xp = array_namespace(*grads.values()) if xp is None else xp
    if clip_norm is not None:
        total = None
        for g in grads.values():
            square = xp.sum(g * g)
            total = square if total is None else total + square
        coefficient = clip_norm / (xp.sqrt(total) + CLIP_EPS)
        coefficient = xp.minimum(coefficient, xp.ones_like(coefficient))
        grads = {key: g * coefficient for key, g in grads.items()}
    if clip_value is not None:
        grads = {key: xp.clip(g, min=-clip_value, max=clip_value) for key, g in grads.items()}
    return grads


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
    clip_norm : float, optional (keyword only)
        Clip the gradients by their global norm over all parameters before each update
        (:func:`clip_gradients`; ``torch.nn.utils.clip_grad_norm_``). Applied to the data
        loss's gradients, before ``l2`` and ``weight_decay`` are added, as in PyTorch.
    clip_value : float, optional (keyword only)
        Clip every gradient element to ``[-clip_value, clip_value]`` instead
        (``torch.nn.utils.clip_grad_value_``). At most one of the two.
    """

    lr: float = 0.01
    l2: float = 0.0
    clip_norm: float | None = field(default=None, kw_only=True)
    clip_value: float | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        check_positive_float(self.lr, "lr")
        check_non_negative_float(self.l2, "l2")
        if self.clip_norm is not None:
            check_positive_float(self.clip_norm, "clip_norm")
        if self.clip_value is not None:
            check_positive_float(self.clip_value, "clip_value")
        if self.clip_norm is not None and self.clip_value is not None:
            raise InputError(
                "clip_norm and clip_value cannot both be set (which applies first would be "
                f"a hidden choice), got clip_norm={self.clip_norm!r} and "
                f"clip_value={self.clip_value!r}"
            )

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
        applies to (None: all). The gradients are clipped first (:meth:`clip`). A
        subclass implements :meth:`directions`, or overrides this method: the fit engine
        then always calls the override (all parameters at once, never in place), as the
        functional loop does, and the override clips (``grads = self.clip(grads)``) if it
        honours ``clip_norm`` and ``clip_value``.
        """
        grads = self.clip(grads, xp=xp)
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
        such as ``"step"``, the same whichever subset is given). ``grads`` are used as
        given: :meth:`update` (and the fit engine) clip them first.
        """
        raise NotImplementedError

    def clip(self, grads: Params, *, xp: Any = None) -> Params:
        """``grads`` clipped as ``clip_norm`` or ``clip_value`` say (unchanged if neither)."""
        return clip_gradients(grads, clip_norm=self.clip_norm, clip_value=self.clip_value, xp=xp)

    @property
    def clips_globally(self) -> bool:
        """Whether clipping needs every gradient at once (``clip_norm``): the fit engine
        then never updates layer by layer."""
        return self.clip_norm is not None

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

#: What a schedule's ``per`` may say: its clock counts epochs or optimizer steps.
PERS = ("epoch", "step")


def _check_per(per: Any) -> str:
    if per not in PERS:
        raise InputError(f"per must be one of {list(PERS)}, got {per!r}")
    return str(per)


def schedule_per(schedule: Any) -> str:
    """What ``schedule``'s clock counts: its ``per`` attribute (``"epoch"`` if it has none)."""
    per = getattr(schedule, "per", "epoch")
    if per not in PERS:
        raise InputError(
            f"schedule.per must be one of {list(PERS)} (what the schedule's clock counts), "
            f"got {per!r} on {schedule!r}"
        )
    return str(per)


@dataclass(frozen=True)
class Constant:
    """``lr`` at every epoch."""

    def __call__(self, lr: float, epoch: int) -> float:
        return lr


@dataclass(frozen=True)
class Step:
    """``lr * gamma ** (epoch // step_size)``: multiply by ``gamma`` every ``step_size`` epochs
    (steps with ``per="step"``)."""

    step_size: int = 10
    gamma: float = 0.1
    per: str = field(default="epoch", kw_only=True)

    def __post_init__(self) -> None:
        check_positive_int(self.step_size, "step_size")
        check_non_negative_float(self.gamma, "gamma")
        _check_per(self.per)

    def __call__(self, lr: float, epoch: int) -> float:
        return lr * self.gamma ** (epoch // self.step_size)


@dataclass(frozen=True)
class Exponential:
    """``lr * gamma ** epoch`` (``** step`` with ``per="step"``)."""

    gamma: float = 0.99
    per: str = field(default="epoch", kw_only=True)

    def __post_init__(self) -> None:
        check_non_negative_float(self.gamma, "gamma")
        _check_per(self.per)

    def __call__(self, lr: float, epoch: int) -> float:
        return lr * self.gamma**epoch


@dataclass(frozen=True)
class Cosine:
    """Cosine annealing from ``lr`` to ``min_lr`` over ``total`` epochs (steps with
    ``per="step"``), then ``min_lr``."""

    total: int = 100
    min_lr: float = 0.0
    per: str = field(default="epoch", kw_only=True)

    def __post_init__(self) -> None:
        check_positive_int(self.total, "total")
        check_non_negative_float(self.min_lr, "min_lr")
        _check_per(self.per)

    def __call__(self, lr: float, epoch: int) -> float:
        progress = min(epoch, self.total) / self.total
        return self.min_lr + 0.5 * (lr - self.min_lr) * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class Warmup:
    """A linear warm-up over the first ``steps`` steps, then ``then``.

    At step ``s < steps`` the rate is ``lr * (start + (1 - start) * s / steps)`` (from
    ``start * lr`` at the first step towards ``lr``, as ``optax.linear_schedule`` and
    Hugging Face's ``get_linear_schedule_with_warmup`` ramp); from step ``steps`` on it
    is ``then(lr, s - steps)``: ``then``'s clock starts where the warm-up ends.

    Attributes
    ----------
    steps : int
        Length of the warm-up.
    then : schedule, optional
        What follows (default: the constant ``lr``); its ``per`` must be this one's.
    start : float
        The first rate as a fraction of ``lr``, in [0, 1).
    per : {"step", "epoch"}
        What ``steps`` counts: optimizer steps (the default) or epochs.
    """

    steps: int = 100
    then: Any = None
    start: float = 0.0
    per: str = "step"

    def __post_init__(self) -> None:
        check_positive_int(self.steps, "steps")
        check_fraction(self.start, "start")
        _check_per(self.per)
        if self.then is not None:
            if not callable(self.then):
                raise InputError(f"then must be a schedule (a callable) or None, got {self.then!r}")
            if schedule_per(self.then) != self.per:
                raise InputError(
                    f"then must count {self.per}s as the warm-up does (per={self.per!r}), got "
                    f"{self.then!r} with per={schedule_per(self.then)!r}: pass "
                    f"per={self.per!r} to it"
                )

    def __call__(self, lr: float, step: int) -> float:
        if step < self.steps:
            return lr * (self.start + (1 - self.start) * step / self.steps)
        return lr if self.then is None else self.then(lr, step - self.steps)


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
        schedule_per(schedule)
        return schedule
    raise InputError(
        f"schedule must be one of {sorted(SCHEDULES)} or a callable (lr, epoch) -> lr, "
        f"got {schedule!r}"
    )
