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
step's arguments then run eagerly (the contract of ``docs/training.md``):

* reading an array's value (``bool``, ``float``, ``int``, iteration), writing into an
  array, an array attribute or method outside the standard's few static ones, a NumPy
  function or ufunc called on an array;
* an operation whose result's shape depends on values (boolean-mask indexing,
  ``nonzero``, ``unique_*``, ``repeat`` by an array): its shape would be baked;
* an array that is neither an argument nor made by the namespace (a NumPy array drawn
  inside a layer would otherwise be replayed as a constant);
* number constants (Python or NumPy scalars) that are not arguments must be the same
  in two recordings: each argument structure is recorded twice, and only two identical
  recordings are replayed (a number drawn or counted inside a layer differs, and the
  step runs eagerly);
* the refusal cannot be swallowed: it is a :class:`BaseException` (not caught by
  ``except Exception``, nor by ``hasattr``), and a refused recording is discarded even
  if user code catches it.

A stand-in reports the namespace the eager step would see (``array_namespace(x)`` of
the real array, recording), so a layer that asks its inputs for their namespace runs
the same functions in both. The one write a step may make is the engine's own in-place
update, handed to it as a function (see ``writes`` of :class:`Replayer`). Recordings
are keyed by the whole structure of the arguments (dict keys, and every array's shape
and dtype), kept for at most :data:`MAX_RECORDINGS` structures, and safe to share
between threads.
"""

from __future__ import annotations

import numbers
import operator
import threading
import types
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import array_api_compat
import numpy as np

__all__ = ["Replayer", "Untraceable", "real"]

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


class Untraceable(BaseException):
    """The step did something a replay could not repeat; it runs eagerly instead.

    A :class:`BaseException`, so that a user's ``except Exception`` (or ``hasattr``)
    around the offending operation does not swallow it; the tape is also marked refused
    before it is raised, so a recording is discarded even if it is caught.
    """


class _Value:
    """A stand-in for an array while a step is recorded: the real array plus its name."""

    __slots__ = ("array", "name", "tape")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, array: Any, name: str, tape: _Tape) -> None:
        self.array, self.name, self.tape = array, name, tape

    def __getattr__(self, attribute: str) -> Any:
        if attribute in _STATIC:
            return getattr(self.array, attribute)
        if attribute in ("T", "mT"):
            return self.tape.record(f"{{}}.{attribute}", (self,), getattr(self.array, attribute))
        raise self.tape.refuse(f"array attribute {attribute!r}")

    def __getitem__(self, key: Any) -> _Value:
        if _has_boolean_mask(key):
            raise self.tape.refuse("boolean-mask indexing (a shape that depends on values)")
        return self.tape.record("{}[{}]", (self, key), self.array[_real(key)])

    def __len__(self) -> int:
        return len(self.array)

    def __array_namespace__(self, *, api_version: str | None = None) -> Any:
        # the namespace the eager step sees for this array, not the engine's own
        return self.tape.namespace_of(self.array)

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise self.tape.refuse("the step reads an array's value or writes into an array")

    __bool__ = __float__ = __int__ = __index__ = __complex__ = __iter__ = _refuse
    __array__ = __dlpack__ = __setitem__ = __contains__ = _refuse
    __iadd__ = __isub__ = __imul__ = __itruediv__ = __ipow__ = __imatmul__ = _refuse
    __array_ufunc__ = __array_function__ = _refuse  # NumPy's functions on a stand-in


def _has_boolean_mask(key: Any) -> bool:
    """Whether an index holds a boolean array (a stand-in or a real one)."""
    items = key if isinstance(key, tuple) else (key,)
    for item in items:
        array = item.array if isinstance(item, _Value) else item
        dtype = getattr(array, "dtype", None)
        if dtype is not None and getattr(array, "ndim", 0) > 0 and str(dtype) == "bool":
            return True
    return False


#: Namespace functions whose result's shape depends on the values of their inputs.
_VALUE_SHAPED = frozenset(
    {"nonzero", "unique_all", "unique_counts", "unique_inverse", "unique_values",
     "argwhere", "flatnonzero", "extract", "compress", "repeat"}
)  # fmt: skip


def _binary(symbol: str, reflected: bool) -> Callable:
    template = "{1} " + symbol + " {0}" if reflected else "{0} " + symbol + " {1}"
    apply = _OPERATORS[symbol]

    arithmetic = symbol in _EXACT_WITH_FLOATS

    def method(self: _Value, other: Any) -> Any:
        if isinstance(other, _Value) and other.tape is not self.tape:
            raise self.tape.refuse("an array from another recording")
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


def real(value: Any) -> Any:
    """The real array behind a stand-in (``value`` itself when it is not one)."""
    return value.array if isinstance(value, _Value) else value


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
            if name in _VALUE_SHAPED or (name == "where" and len(args) + len(kwargs) == 1):
                raise tape.refuse(f"{name} (a shape that depends on values)")
            result = attribute(*_real(args), **{k: _real(v) for k, v in kwargs.items()})
            if not _is_value(result):
                if _mentions_value(args) or _mentions_value(tuple(kwargs.values())):
                    raise tape.refuse(f"{name} gives {type(result).__name__}, not an array")
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
        self.refused: str | None = None  # why, once anything refused the recording
        self._namespaces: dict[int, _Namespace] = {}

    def refuse(self, why: str) -> Untraceable:
        """Mark the recording refused (for good: a caught refusal still discards it) and
        give the exception to raise."""
        if self.refused is None:
            self.refused = why
        return Untraceable(why)

    def namespace_of(self, array: Any) -> Any:
        """The recording view of ``array_namespace(array)``: what the eager step sees."""
        namespace = array_api_compat.array_namespace(array)
        view = self._namespaces.get(id(namespace))
        if view is None:
            view = self._namespaces[id(namespace)] = _Namespace(namespace, self)
        return view

    def is_floating(self, array: Any) -> bool:
        """Whether ``array`` has a real floating dtype (recording time only)."""
        return bool(self.namespace._namespace.isdtype(array.dtype, "real floating"))

    # -- names -------------------------------------------------------------------------
    def constant(self, value: Any) -> str:
        if value is None or isinstance(value, bool):
            return repr(value)
        if _is_array(value):
            raise self.refuse(f"an array constant ({type(value).__name__}) inside the step")
        name = self._constant_names.get(id(value))
        if name is None:
            name = self._constant_names[id(value)] = f"c{len(self._constant_names)}"
            self.globals[name] = value
        return name

    def render(self, value: Any, used: set[str]) -> str:
        if isinstance(value, _Value):
            if value.tape is not self:
                raise self.refuse("an array from another recording")
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
            raise self.refuse(f"an operator gave {type(result).__name__}, not an array")
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
    def code(self, parameters: list[str], outputs: Any) -> str:
        """The source of ``replay(*parameters) -> outputs`` as straight-line code:
        operations nothing returned depends on are dropped, and each array is released
        after its last use (as the eager step's callers release caches during backprop)."""
        if self.refused is not None:  # refused, and the refusal was caught by user code
            raise Untraceable(self.refused)
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
        released: dict[int, list[str]] = {}  # line -> names last used there (linear in lines)
        for name, last in last_use.items():
            if name not in used and name.startswith("v"):
                released.setdefault(last, []).append(name)
        body = [f"    {name} = {source}" for name, source in self.inputs if name in live]
        for index, (target, expression, _) in enumerate(kept):
            body.append(f"    {target} = {expression}")
            if index in released:
                body.append(f"    del {', '.join(sorted(released[index]))}")
        body.append(f"    return {result}")
        return f"def replay({', '.join(parameters)}):\n" + "\n".join(body) + "\n"

    def same_as(self, other: _Tape, source: str, other_source: str) -> bool:
        """Whether two recordings are the same code with the same constants."""
        if source != other_source or self.globals.keys() != other.globals.keys():
            return False
        return all(_same_constant(v, other.globals[k]) for k, v in self.globals.items())

    def build(self, source: str) -> Callable:
        """The recorded step as a function (compiled once)."""
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


def _same_constant(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, (numbers.Number, np.generic)):
        return bool(a == b) or (a != a and b != b)  # NaN equals NaN here
    try:
        return bool(a == b)
    except Exception:  # objects without a meaningful equality: only identity counts
        return False


_SHAPE_AND_DTYPE = operator.attrgetter("shape", "dtype")


def _structure(value: Any) -> Any:
    """What selects a recording: the arguments' nesting and dict keys, every array's
    shape and dtype, and the type of every other leaf."""
    kind = type(value)
    if kind is dict:
        return (dict, tuple(value), tuple([_structure(item) for item in value.values()]))
    if kind is tuple or kind is list:
        return (kind, tuple([_structure(item) for item in value]))
    shape = getattr(value, "shape", None)
    if shape is not None:  # dtypes are hashable on every backend; str() costs ~5 us
        return (shape, value.dtype)
    if isinstance(value, (numbers.Number, type(None))):
        return kind
    return (kind, value)


def _key(args: tuple, dicts_fixed: bool = False) -> tuple:
    """:func:`_structure` of a step's arguments, the common cases (dicts of arrays,
    arrays) at C speed: it is paid on every replayed step (~2 us on the tutorial's
    network, measured in benchmarks/README.md). ``dicts_fixed``: dicts by their keys
    only (their arrays' shapes and dtypes are fixed by the caller)."""
    key = []
    for value in args:
        if type(value) is dict:
            if dicts_fixed:
                key.append(tuple(value))
                continue
            try:
                key.append((tuple(value), tuple(map(_SHAPE_AND_DTYPE, value.values()))))
                continue
            except AttributeError:  # not all arrays
                pass
        elif getattr(value, "shape", None) is not None:
            key.append(_SHAPE_AND_DTYPE(value))
            continue
        key.append(_structure(value))
    return tuple(key)


_EAGER = object()

#: Recordings kept per step, the least recently used dropped first: a fit sees one or two
#: batch shapes, but ``partial_fit`` on batches of ever new sizes must not grow memory.
MAX_RECORDINGS = 32


class _Pending:
    """A first recording, waiting for a second identical one before it is replayed."""

    __slots__ = ("source", "tape")

    def __init__(self, tape: _Tape, source: str) -> None:
        self.tape, self.source = tape, source


class Replayer:
    """``function(xp, *args)``, replayed as straight-line code per structure of ``args``.

    Parameters
    ----------
    function : callable
        ``function(xp, *args)``, pure (see the module's docstring). The structure of the
        arguments (dict keys, nesting, every array's shape and dtype) selects the
        recording: a last, shorter batch, or parameters of another dtype, have their own.
    xp : namespace
        The array namespace the eager step and the replay use.
    writes : (write, pure), optional
        For a step that updates arrays in place: ``write(param, *rest)`` writes its
        result into ``param`` and returns it, ``pure(param, *rest)`` returns the same
        numbers as a new array. The step is then ``function(xp, write, *args)``. The
        recording computes with ``pure`` (a recording that fails, and the recorded calls,
        write nothing); the replays, and a step that runs eagerly, call ``write``.
    dicts_fixed : bool
        Key dict arguments by their keys only, for a caller whose dicts' shapes and
        dtypes cannot change between calls (the fit engine: its runners are keyed by
        model, dtype and optimizer, and a step that changes a parameter's or layer
        state's dtype raises). Saves ~2 us a step on the tutorial's network.

    Each structure is recorded on its first two calls; the replay is used from the third
    call when both recordings are the same code with the same constants, and the step
    runs eagerly for that structure otherwise.
    """

    def __init__(
        self, function: Callable, xp: Any, writes: tuple[Callable, Callable] | None = None,
        *, dicts_fixed: bool = False,
    ) -> None:  # fmt: skip
        self._xp, self._writes, self._step = xp, writes, function
        # the eager step: what a step that cannot be replayed runs
        self._function = function
        if writes is not None:
            write = writes[0]

            def eager(xp: Any, *args: Any) -> Any:
                return function(xp, write, *args)

            self._function = eager
        self._replays: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()  # fits in several threads may share one runner
        self._dicts_fixed = dicts_fixed
        self.refusals: dict[Any, str] = {}  # why a structure runs eagerly (for debugging)

    def __call__(self, *args: Any) -> Any:
        key = _key(args, self._dicts_fixed)
        replay = self._replays.get(key)
        if replay is _EAGER:
            return self._function(self._xp, *args)
        if replay is None or isinstance(replay, _Pending):
            return self._record(key, args, replay)
        return replay(*args)

    def _keep(self, key: Any, value: Any) -> None:
        with self._lock:
            self._replays[key] = value
            self._replays.move_to_end(key)
            while len(self._replays) > MAX_RECORDINGS:
                self._replays.popitem(last=False)

    def _record(self, key: Any, args: tuple, pending: _Pending | None) -> Any:
        tape = _Tape(self._xp)
        parameters = [f"p{i}" for i in range(len(args))]
        try:
            wrapped = [_wrap(tape, arg, name) for arg, name in zip(args, parameters, strict=True)]
            if self._writes is None:
                outputs = self._function(tape.namespace, *wrapped)
            else:
                writer = tape.writer(*self._writes)
                outputs = self._step(tape.namespace, writer, *wrapped)
            source = tape.code(parameters, outputs)
        except (Exception, Untraceable) as error:  # never KeyboardInterrupt
            # whatever stops a recording, the step runs eagerly (a genuine error in the
            # step is raised again by the eager call)
            self.refusals[key] = tape.refused or f"{type(error).__name__}: {error}"
            self._keep(key, _EAGER)
            return self._function(self._xp, *args)
        if pending is None:
            self._keep(key, _Pending(tape, source))
        elif pending.tape.same_as(tape, pending.source, source):
            self._keep(key, tape.build(source))
        else:  # something not an argument changed between two calls: never replayed
            self.refusals[key] = "two recordings differ (a constant that is not an argument)"
            self._keep(key, _EAGER)
        return _unwrap(outputs)
