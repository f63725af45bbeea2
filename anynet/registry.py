"""Registries: one extension point per kind, all of the same form.

Every layer, activation, loss, optimizer and initialiser anynet knows is a class
registered under a name. The name is what a list of layers may use in place of the
object (``"relu"`` for :class:`~anynet.layers.ReLU`), and what a checkpoint stores,
so a file naming a user's class loads wherever that class is registered again::

    anynet.register_layer("Scale", Scale)          # Scale subclasses anynet.layers.Layer
    anynet.register_activation("swish", Swish)     # ... anynet.layers.Activation
    anynet.register_loss("huber", Huber)           # ... anynet.losses.Loss
    anynet.register_optimizer("lion", Lion)        # ... anynet.optimizers.Optimizer
    anynet.register_initializer("orthogonal", Orthogonal)  # ... anynet.random.Initializer

Nothing else in anynet compares names: code asks the registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import InputError

if TYPE_CHECKING:
    from .layers.activation import Activation
    from .layers.base import Layer
    from .losses import Loss
    from .optimizers import Optimizer
    from .random import Initializer

__all__ = [
    "Registry",
    "activations",
    "initializers",
    "layers",
    "losses",
    "optimizers",
    "register_activation",
    "register_initializer",
    "register_layer",
    "register_loss",
    "register_optimizer",
]


T = TypeVar("T")
L = TypeVar("L", bound="Layer")
A = TypeVar("A", bound="Activation")
Lo = TypeVar("Lo", bound="Loss")
O = TypeVar("O", bound="Optimizer")  # noqa: E741
I = TypeVar("I", bound="Initializer")  # noqa: E741


class Registry(Generic[T]):
    """Names to classes of one kind, and back.

    Parameters
    ----------
    kind : str
        What is registered (``"layer"``, ``"loss"``, ...), for messages.
    register_function : str
        The public function that registers this kind, named in error messages.
    """

    def __init__(self, kind: str, register_function: str) -> None:
        self.kind = kind
        self.register_function = register_function
        self._classes: dict[str, type[T]] = {}
        self._names: dict[type, str] = {}
        self.base: type | None = None

    def register(self, name: str, cls: type[T], *, replace: bool = False) -> type[T]:
        """Register ``cls`` under ``name``; returns ``cls`` (usable as a decorator's body)."""
        if not isinstance(name, str) or not name.isidentifier():
            raise InputError(f"name must be a Python identifier string, got {name!r}")
        if not isinstance(cls, type) or (self.base is not None and not issubclass(cls, self.base)):
            base = self.base.__qualname__ if self.base is not None else "a class"
            raise InputError(
                f"cls must be a subclass of {base} to be registered as a {self.kind}, got {cls!r}"
            )
        known = self._classes.get(name)
        if known is not None and known is not cls and not replace:
            raise InputError(
                f"a {self.kind} named {name!r} is already registered ({known.__qualname__}); "
                f"pass replace=True to {self.register_function} to replace it"
            )
        self._classes[name] = cls
        self._names.setdefault(cls, name)
        if known is not None and known is not cls:
            self._names.pop(known, None)
            self._names[cls] = name
        return cls

    def get(self, name: str, argument: str | None = None) -> type[T]:
        """The class registered under ``name``, or an InputError listing the names."""
        if isinstance(name, str) and name in self._classes:
            return self._classes[name]
        argument = argument or self.kind
        raise InputError(
            f"{argument} must be one of {self.names()}, got {name!r} "
            f"(register your own with anynet.{self.register_function}(name, cls))"
        )

    def name_of(self, obj: Any) -> str:
        """The registered name of ``obj``'s class (or of a class), or InputError."""
        cls = obj if isinstance(obj, type) else type(obj)
        name = self._names.get(cls)
        if name is None:
            raise InputError(
                f"{cls.__qualname__} is not a registered {self.kind}: call "
                f"anynet.{self.register_function}('{cls.__name__}', {cls.__name__}) so that "
                "checkpoints can name it"
            )
        return name

    def lookup_name(self, obj: Any) -> str | None:
        """The registered name of ``obj``'s class, or None."""
        return self._names.get(obj if isinstance(obj, type) else type(obj))

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._classes)


layers: Registry[Layer] = Registry("layer", "register_layer")
activations: Registry[Activation] = Registry("activation", "register_activation")
losses: Registry[Loss] = Registry("loss", "register_loss")
optimizers: Registry[Optimizer] = Registry("optimizer", "register_optimizer")
initializers: Registry[Initializer] = Registry("initializer", "register_initializer")


def register_layer(name: str, cls: type[L], *, replace: bool = False) -> type[L]:
    """Register a :class:`~anynet.layers.Layer` subclass under ``name``."""
    layers.register(name, cls, replace=replace)
    return cls


def register_activation(name: str, cls: type[A], *, replace: bool = False) -> type[A]:
    """Register an :class:`~anynet.layers.Activation` subclass; ``name`` then stands for it.

    An activation is also a layer: it is registered in both registries.
    """
    activations.register(name, cls, replace=replace)
    layers.register(name, cls, replace=replace)
    return cls


def register_loss(name: str, cls: type[Lo], *, replace: bool = False) -> type[Lo]:
    """Register an :class:`~anynet.losses.Loss` subclass under ``name``."""
    losses.register(name, cls, replace=replace)
    return cls


def register_optimizer(name: str, cls: type[O], *, replace: bool = False) -> type[O]:
    """Register an :class:`~anynet.optimizers.Optimizer` subclass under ``name``."""
    optimizers.register(name, cls, replace=replace)
    return cls


def register_initializer(name: str, cls: type[I], *, replace: bool = False) -> type[I]:
    """Register an :class:`~anynet.random.Initializer` subclass under ``name``."""
    initializers.register(name, cls, replace=replace)
    return cls
