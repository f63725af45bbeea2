"""Record a training step once, replay it as straight-line code (eager backends).

On an eager backend (NumPy, PyTorch, CuPy, array-api-strict) a tiny network's step is
mostly Python: the layer protocol's calls, per-layer dicts, the optimizer's loops, each
costing as much as the array operation it leads to (benchmarks/README.md). A
:class:`Replayer` runs the step once on stand-in arrays that record every operation of
the array namespace (and every operator) on the way, then writes those operations out
as one Python function of straight-line code, compiled once, which later steps of the
same shapes call instead. This is what ``jax.jit`` does with XLA, without a compiler:
the replay calls the same functions with the same arguments in the same order, so its
numbers are the eager step's bit for bit; it only skips the Python between them.

The recorded step must be a pure function of its arguments, as for ``jax.jit``: its
Python control flow may depend on shapes, dtypes and constants, not on array values.
Whatever would make a replay differ from the eager step stops the recording, and that
step shape then runs eagerly: reading an array's value (``bool``, ``float``,
``int``), writing into an array, an array that is neither an argument nor made by the
namespace (a NumPy array drawn inside a layer would otherwise be replayed as a
constant), or an operation outside the namespace and the operators. The one write a
step may make is the engine's own in-place update, handed to it as a function (see
``writes`` of :class:`Replayer`).
"""

from __future__ import annotations

import functools
import operator
import types
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Replayer"]

_BINARY = {
    "__add__": "+", "__sub__": "-", "__mul__": "*", "__truediv__": "/", "__floordiv__": "//",
    "__mod__": "%", "__pow__": "**", "__matmul__": "@", "__and__": "&", "__or__": "|",
    "__xor__": "^", "__lt__": "<", "__le__": "<=", "__gt__": ">", "__ge__": ">=",
    "__eq__": "==", "__ne__": "!=",
}  # fmt: skip
_REFLECTED = {
    "__radd__": "+", "__rsub__": "-", "__rmul__": "*", "__rtruediv__": "/",
    "__rfloordiv__": "//", "__rmod__": "%", "__rpow__": "**", "__rmatmul__": "@",
    "__rand__": "&", "__ror__": "|", "__rxor__": "^",
}  # fmt: skip
_UNARY = {"__neg__": "neg", "__pos__": "pos", "__abs__": "abs", "__invert__": "invert"}
_STATIC = ("shape", "ndim", "dtype", "size", "device")


class Untraceable(Exception):
    """The step did something a replay could not repeat; it runs eagerly instead."""


class _NoAttribute(Untraceable, AttributeError):
    """An array attribute the recording does not follow (``hasattr`` sees it missing)."""


class _Value:
    """A stand-in for an array while a step is recorded: the real array plus its name."""

    __slots__ = ("array", "name", "tape")
    __array_ufunc__ = None  # NumPy defers to our reflected operators
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, array: Any, name: str, tape: _Tape) -> None:
        self.array, self.name, self.tape = array, name, tape

    def __getattr__(self, attribute: str) -> Any:
        if attribute in _STATIC:
            return getattr(self.array, attribute)
        if attribute in ("T", "mT"):
            return self.tape.record(f"{{}}.{attribute}", (self,), getattr(self.array, attribute))
        raise _NoAttribute(f"array attribute {attribute!r}")

    def __getitem__(self, key: Any) -> _Value:
        return self.tape.record("{}[{}]", (self, key), self.array[_real(key)])

    def __len__(self) -> int:
        return len(self.array)

    def __array_namespace__(self, *, api_version: str | None = None) -> Any:
        return self.tape.namespace

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise Untraceable("the step reads an array's value or writes into an array")

    __bool__ = __float__ = __int__ = __index__ = __complex__ = __iter__ = _refuse
    __array__ = __dlpack__ = __setitem__ = __contains__ = _refuse
    __iadd__ = __isub__ = __imul__ = __itruediv__ = __ipow__ = __imatmul__ = _refuse


def _binary(symbol: str, reflected: bool) -> Callable:
    template = "{1} " + symbol + " {0}" if reflected else "{0} " + symbol + " {1}"
    apply = _OPERATORS[symbol]

    arithmetic = symbol in _EXACT_WITH_FLOATS

    def method(self: _Value, other: Any) -> Any:
        if reflected:
            result = apply(_real(other), self.array)
        else:
            result = apply(self.array, _real(other))
        if arithmetic and _is_small_int(other) and self.tape.is_floating(self.array):
            # An int meets a float array as the array's dtype, and so does the float of
            # the same value (exact below 2**53): the same numbers, and on torch a float
            # scalar skips a slower path (~1 us an operation).
            other = float(other)
        return self.tape.record(template, (self, other), result)

    return method


#: Operators whose result from a float array and a Python number depends only on the
#: number's value (not ``**``: a backend may take another path for an integer exponent).
_EXACT_WITH_FLOATS = frozenset("+-*/")


def _is_small_int(value: Any) -> bool:
    return type(value) is int and -(2**53) <= value <= 2**53


_OPERATORS: dict[str, Callable[..., Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow, "@": operator.matmul,
    "&": operator.and_, "|": operator.or_, "^": operator.xor, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
    "!=": operator.ne, "neg": operator.neg, "pos": operator.pos, "abs": operator.abs,
    "invert": operator.invert,
}  # fmt: skip


def _unary(function: str) -> Callable:
    template = {"neg": "-{0}", "pos": "+{0}", "abs": "abs({0})", "invert": "~{0}"}[function]
    apply = _OPERATORS[function]

    def method(self: _Value) -> Any:
        return self.tape.record(template, (self,), apply(self.array))

    return method


for _dunder, _symbol in _BINARY.items():
    setattr(_Value, _dunder, _binary(_symbol, reflected=False))
for _dunder, _symbol in _REFLECTED.items():
    setattr(_Value, _dunder, _binary(_symbol, reflected=True))
for _dunder, _function in _UNARY.items():
    setattr(_Value, _dunder, _unary(_function))


def _real(value: Any) -> Any:
    """``value`` with every stand-in replaced by its array (through tuples and lists)."""
    if isinstance(value, _Value):
        return value.array
    if isinstance(value, (tuple, list)):
        return type(value)(_real(item) for item in value)
    return value


def _is_value(value: Any) -> bool:
    """Whether an operation's result is an array (NumPy's scalars included)."""
    return isinstance(value, np.generic) or _is_array(value)


def _is_array(value: Any) -> bool:
    """Whether ``value`` is a (mutable) array of some library: never a constant."""
    if isinstance(value, (np.generic, np.dtype, type)):  # immutable scalars and dtypes
        return False
    return any(hasattr(value, name) for name in ("__array_namespace__", "__array__", "__dlpack__"))


class _Namespace(types.ModuleType):
    """An array namespace whose functions record themselves on a tape."""

    def __init__(self, namespace: Any, tape: _Tape) -> None:
        super().__init__(getattr(namespace, "__name__", "namespace"))
        self._namespace, self._tape = namespace, tape

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._namespace, name)
        if isinstance(attribute, types.ModuleType):  # xp.linalg and the like
            return _Namespace(attribute, self._tape)
        if isinstance(attribute, type) or not callable(attribute):
            return attribute  # dtypes, constants
        tape = self._tape

        def recorded(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*_real(args), **{k: _real(v) for k, v in kwargs.items()})
            if not _is_value(result):
                if _mentions_value(args) or _mentions_value(tuple(kwargs.values())):
                    raise Untraceable(f"{name} gives {type(result).__name__}, not an array")
                return result  # about dtypes or shapes only: the same on every replay
            return tape.call(attribute, args, kwargs, result)

        return recorded


def _mentions_value(items: tuple | list) -> bool:
    return any(
        isinstance(item, _Value) or (isinstance(item, (tuple, list)) and _mentions_value(item))
        for item in items
    )


class _Tape:
    """The recorded operations of one step, and the code they become."""

    def __init__(self, namespace: Any) -> None:
        self.namespace = _Namespace(namespace, self)
        self.lines: list[tuple[str, str, set[str]]] = []  # (target, expression, names used)
        self.globals: dict[str, Any] = {}
        self._constant_names: dict[int, str] = {}
        self.inputs: list[tuple[str, str]] = []  # (name, expression reading it from arguments)

    def is_floating(self, array: Any) -> bool:
        """Whether ``array`` has a real floating dtype (recording time only)."""
        return bool(self.namespace._namespace.isdtype(array.dtype, "real floating"))

    # -- names -------------------------------------------------------------------------
    def constant(self, value: Any) -> str:
        if value is None or isinstance(value, bool):
            return repr(value)
        if _is_array(value):
            raise Untraceable(f"an array constant ({type(value).__name__}) inside the step")
        name = self._constant_names.get(id(value))
        if name is None:
            name = self._constant_names[id(value)] = f"c{len(self._constant_names)}"
            self.globals[name] = value
        return name

    def render(self, value: Any, used: set[str]) -> str:
        if isinstance(value, _Value):
            if value.tape is not self:
                raise Untraceable("an array from another recording")
            used.add(value.name)
            return value.name
        if isinstance(value, tuple):
            inner = "".join(self.render(item, used) + ", " for item in value)
            return f"({inner})"
        if isinstance(value, list):
            return "[" + ", ".join(self.render(item, used) for item in value) + "]"
        if isinstance(value, dict):
            items = (f"{self.constant(k)}: {self.render(v, used)}" for k, v in value.items())
            return "{" + ", ".join(items) + "}"
        return self.constant(value)

    def _new(self, expression: str, used: set[str], result: Any) -> _Value:
        value = _Value(result, f"v{len(self.lines)}", self)
        self.lines.append((value.name, expression, used))
        return value

    # -- recording -----------------------------------------------------------------------
    def argument(self, array: Any, source: str) -> _Value:
        value = _Value(array, f"a{len(self.inputs)}", self)
        self.inputs.append((value.name, source))
        return value

    def record(self, template: str, operands: tuple, result: Any) -> _Value:
        if not _is_value(result):
            raise Untraceable(f"an operator gave {type(result).__name__}, not an array")
        used: set[str] = set()
        return self._new(template.format(*(self.render(o, used) for o in operands)), used, result)

    def writer(self, write: Callable, pure: Callable) -> Callable:
        """``write`` as the step sees it while recording: computed with ``pure`` (the same
        numbers as a new array, so a recording that fails has written nothing), recorded
        as a call of ``write`` (which the replay makes, writing in place)."""

        def recorded(*args: Any) -> Any:
            return self.call(write, args, {}, pure(*_real(args)))

        return recorded

    def call(self, function: Any, args: tuple, kwargs: dict, result: Any) -> _Value:
        used: set[str] = set()
        name = self.constant(function)
        rendered = [self.render(arg, used) for arg in args]
        rendered += [f"{key}={self.render(value, used)}" for key, value in kwargs.items()]
        return self._new(f"{name}({', '.join(rendered)})", used, result)

    # -- code ------------------------------------------------------------------------------
    def compile(self, parameters: list[str], outputs: Any) -> Callable:
        """The function ``(*parameters) -> outputs`` as straight-line code: operations
        nothing returned depends on are dropped, and each array is released after its last
        use (as the eager step's callers release caches during backprop)."""
        used: set[str] = set()
        result = self.render(outputs, used)
        live, kept = set(used), []
        for target, expression, names in reversed(self.lines):
            if target in live:
                kept.append((target, expression, names))
                live |= names
        kept.reverse()
        last_use: dict[str, int] = {}
        for index, (_, _, names) in enumerate(kept):
            for name in names:
                last_use[name] = index
        body = [f"    {name} = {source}" for name, source in self.inputs if name in live]
        for index, (target, expression, _) in enumerate(kept):
            body.append(f"    {target} = {expression}")
            done = sorted(
                name for name, last in last_use.items()
                if last == index and name not in used and name.startswith("v")
            )  # fmt: skip
            if done:
                body.append(f"    del {', '.join(done)}")
        body.append(f"    return {result}")
        source = f"def replay({', '.join(parameters)}):\n" + "\n".join(body) + "\n"
        scope = dict(self.globals)
        exec(compile(source, "<anynet replay>", "exec"), scope)
        replay: Callable = scope["replay"]
        replay.__doc__ = source  # what runs, for whoever debugs it
        return replay


def _wrap(tape: _Tape, value: Any, source: str) -> Any:
    """The arguments with every array (in dicts, tuples, lists) a recorded input."""
    if isinstance(value, dict):
        return {
            key: _wrap(tape, item, f"{source}[{tape.constant(key)}]") for key, item in value.items()
        }
    if isinstance(value, (tuple, list)):
        return type(value)(_wrap(tape, item, f"{source}[{i}]") for i, item in enumerate(value))
    # a Python learning rate too: it changes between calls
    if _is_value(value) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return tape.argument(value, source)
    return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _unwrap(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_unwrap(item) for item in value)
    return value.array if isinstance(value, _Value) else value


def _shape_key(args: tuple) -> tuple:
    """Shapes and dtypes of the arguments that are not dicts: what selects a recording."""
    return tuple(
        [(arg.shape, arg.dtype) if hasattr(arg, "dtype") else type(arg) for arg in args
         if not isinstance(arg, dict)]
    )  # fmt: skip


_EAGER = object()

#: Recordings kept per step, the oldest dropped first: a fit sees one or two batch shapes,
#: but ``partial_fit`` on batches of ever new sizes must not grow memory without bound.
MAX_RECORDINGS = 32


class Replayer:
    """``function(xp, *args)``, replayed as straight-line code per shape of ``args``.

    Parameters
    ----------
    function : callable
        ``function(xp, *args)``, pure (see the module's docstring). Dict arguments must
        hold the same keys and shapes on every call (a training step's parameters);
        other arguments' shapes select the recording (a last, shorter batch has its own).
    xp : namespace
        The array namespace the eager step and the replay use.
    writes : (write, pure), optional
        For a step that updates arrays in place: ``write(param, *rest)`` writes its
        result into ``param`` and returns it, ``pure(param, *rest)`` returns the same
        numbers as a new array. The step is then ``function(xp, write, *args)``. The
        recording computes with ``pure`` (a recording that fails, and the first call of
        each shape, write nothing); the replays, and a step that runs eagerly, call
        ``write``.
    """

    def __init__(
        self, function: Callable, xp: Any, writes: tuple[Callable, Callable] | None = None
    ) -> None:
        self._xp, self._writes, self._step = xp, writes, function
        # the eager step: what a step that cannot be replayed runs
        self._function = function if writes is None else functools.partial(function, writes[0])
        self._replays: dict[tuple, Any] = {}

    def __call__(self, *args: Any) -> Any:
        replay = self._replays.get(_shape_key(args))
        if replay is None:
            return self._record(args)
        if replay is _EAGER:
            return self._function(self._xp, *args)
        return replay(*args)

    def _record(self, args: tuple) -> Any:
        if len(self._replays) >= MAX_RECORDINGS:
            del self._replays[next(iter(self._replays))]
        tape = _Tape(self._xp)
        parameters = [f"p{i}" for i in range(len(args))]
        try:
            wrapped = [_wrap(tape, arg, name) for arg, name in zip(args, parameters, strict=True)]
            if self._writes is None:
                outputs = self._function(tape.namespace, *wrapped)
            else:
                writer = tape.writer(*self._writes)
                outputs = self._step(tape.namespace, writer, *wrapped)
            replay = tape.compile(parameters, outputs)
        except Exception:  # whatever stops a recording, the step runs eagerly
            # (a genuine error in the step is raised again by the eager call)
            self._replays[_shape_key(args)] = _EAGER
            return self._function(self._xp, *args)
        self._replays[_shape_key(args)] = replay
        return _unwrap(outputs)
