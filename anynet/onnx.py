"""Export a network to ONNX, by running its math on ndonnx arrays.

anynet's forward pass is written once against the Python array API standard.
`ndonnx <https://github.com/Quantco/ndonnx>`_ is an array library of that standard
whose arrays record an ONNX graph instead of computing: running the network's
evaluation-mode forward pass (dropout off, batch norm on its running statistics) on an
ndonnx placeholder of shape ``(batch_dim, n_features)`` *is* the export. No layer has
export code of its own, and a user's layer exports as soon as its ``forward`` uses only
functions of the standard through ``xp``.

The parameters and layer state become constants of the graph (the network's own
values, in its dtype); the input ``"X"`` has a symbolic batch dimension, so the model
scores any number of rows. Run it with any ONNX runtime (onnxruntime, ONNX.js, TensorRT,
...), without anynet or Python::

    import anynet as an
    import onnxruntime as ort

    an.export_onnx(net, "net.onnx", outputs=("proba", "labels"))
    session = ort.InferenceSession("net.onnx")
    proba, labels = session.run(None, {"X": X.astype(net.dtype)})

``ndonnx``, ``onnx`` and ``onnxruntime`` are an optional extra: ``pip install
anynet[onnx]``. ``import anynet`` never imports them; :func:`export_onnx` does, when called.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import to_numpy
from .errors import InputError

if TYPE_CHECKING:
    import pathlib

    from .layers.base import Layer
    from .network import Network

__all__ = ["INPUT_NAME", "OUTPUTS", "OnnxExportError", "export_onnx", "to_onnx"]

Array = Any

#: The name of the model's input, ``(batch_dim, n_features)`` in the network's dtype.
INPUT_NAME = "X"

#: The outputs a model can have, each a graph output of that name:
#:
#: ``"proba"``
#:     What :meth:`~anynet.Network.predict_proba` returns: ``(n, 2)`` for one sigmoid
#:     output, ``(n, n_outputs)`` otherwise. A regressor has no probabilities: for it,
#:     ``"proba"`` is its output values, what :meth:`~anynet.Network.forward` returns.
#: ``"labels"``
#:     What :meth:`~anynet.Network.predict` returns: 0/1 labels at threshold 0.5
#:     (sigmoid), the argmax class (softmax), the values (regressor; ``(n,)`` for one
#:     output). Integer labels are int64.
#: ``"logits"``
#:     The last layer's output, before the output activation, ``(n, n_outputs)``.
#: ``"outputs"``
#:     The output activations, what :meth:`~anynet.Network.forward` returns, for any head.
OUTPUTS: tuple[str, ...] = ("proba", "labels", "logits", "outputs")

_INSTALL = "pip install anynet[onnx]"
_STANDARD_ONLY = (
    "a layer exports when its forward pass computes with the functions of the array API "
    "standard through xp only: no NumPy (or other library) calls on its input, and no "
    "Python decisions on array values (float(x), bool(x), if x > 0)"
)


class OnnxExportError(InputError):
    """A layer or the output head of a network cannot be traced on ndonnx arrays.

    The message names the layer (its position and description) and the reason.
    """


def _import_tools() -> tuple[Any, Any]:
    """``(ndonnx, onnx)``, or an ImportError saying how to install them."""
    try:
        ndonnx = importlib.import_module("ndonnx")
        onnx = importlib.import_module("onnx")
    except ImportError as exc:
        raise ImportError(
            f"exporting to ONNX needs the packages ndonnx and onnx, which are not installed "
            f"({exc}); install them with: {_INSTALL}"
        ) from exc
    return ndonnx, onnx


def _check_outputs(outputs: Any) -> tuple[str, ...]:
    if isinstance(outputs, str):
        outputs = (outputs,)
    if not isinstance(outputs, Sequence) or not outputs:
        raise InputError(
            f"outputs must be a non-empty sequence of names from {list(OUTPUTS)}, got {outputs!r}"
        )
    names = tuple(outputs)
    for name in names:
        if not isinstance(name, str) or name not in OUTPUTS:
            raise InputError(
                f"outputs must be a non-empty sequence of names from {list(OUTPUTS)}, "
                f"got {name!r} in {list(names)}"
            )
    if len(set(names)) != len(names):
        raise InputError(f"outputs must not repeat a name, got {list(names)}")
    return names


def _check_batch_dim(batch_dim: Any) -> str:
    if not isinstance(batch_dim, str) or not batch_dim.strip():
        raise InputError(
            f"batch_dim must be a non-empty string (the symbolic name of the batch "
            f"dimension, e.g. 'N'), got {batch_dim!r}"
        )
    return batch_dim


def _check_network(net: Any) -> Network:
    from .network import Network  # at call time: anynet/__init__ imports this module

    if not isinstance(net, Network):
        raise InputError(
            f"net must be an anynet.Network (from Network or Sequential), got {type(net).__name__}"
        )
    return net


def _constant(ndx: Any, value: Any, dtype: str) -> Array:
    """A parameter or state array as an ndonnx constant: floats in ``dtype``, ints as they are."""
    host = np.asarray(to_numpy(value))
    if host.dtype.kind == "f":
        host = host.astype(dtype, copy=False)
    return ndx.asarray(np.ascontiguousarray(host))


def _sub(values: dict[str, Any], index: int) -> dict[str, Any]:
    """A container's entries for its ``index``-th child (keys ``"<index>.<name>"``)."""
    prefix = f"{index}."
    return {key[len(prefix) :]: v for key, v in values.items() if key.startswith(prefix)}


def _run(layer: Layer, params: dict, state: dict, h: Array, ndx: Any) -> Array:
    """``layer``'s evaluation-mode output on ndonnx ``h``; raises whatever the layer raises.

    Called as :meth:`anynet.Model.forward` calls it: ``forward_state`` for a layer with
    state, ``forward`` otherwise.
    """
    if state:
        y, _, _ = layer.forward_state(params, state, h, xp=ndx, train=False)
    else:
        y, _ = layer.forward(params, h, xp=ndx, train=False)
    if not isinstance(y, ndx.Array):
        raise TypeError(
            f"it returned {type(y).__module__}.{type(y).__name__}, not an array of the "
            "namespace xp it was given"
        )
    return y


def _culprit(layer: Layer, params: dict, state: dict, h: Array, ndx: Any) -> str | None:
    """The innermost child of a failing container that fails alone (its path), if any.

    Children are run one after another, as :class:`~anynet.layers.Residual` runs them;
    for a container that combines them otherwise this is only a guess, and None when
    every child runs.
    """
    for index, child in enumerate(layer.children()):
        own, own_state = _sub(params, index), _sub(state, index)
        try:
            h = _run(child, own, own_state, h, ndx)
        except Exception:
            inner = _culprit(child, own, own_state, h, ndx) if child.children() else None
            return f"[{index}]" + (inner or "") + ("" if inner else f" {child.describe()}")
    return None


def _layer_error(index: int, layer: Layer, exc: Exception, culprit: str | None) -> OnnxExportError:
    where = f"layers[{index}] {layer.describe()}"
    if culprit is not None:
        where += f" (inside it: layers[{index}]{culprit})"
    return OnnxExportError(
        f"{where} cannot be exported to ONNX: its forward pass failed on ndonnx arrays "
        f"({type(exc).__name__}: {exc}); {_STANDARD_ONLY}"
    )


def _trace(net: Network, ndx: Any, batch_dim: str, names: tuple[str, ...]) -> tuple[Any, dict]:
    """The input placeholder and the requested outputs, traced through the network."""
    model, dtype = net.model, str(net.dtype)
    params = {key: _constant(ndx, v, dtype) for key, v in net.params.items()}
    state = {key: _constant(ndx, v, dtype) for key, v in net.state.items()}
    x = ndx.argument(shape=(batch_dim, model.inputs), dtype=getattr(ndx, dtype))
    h = x
    for slot, own, own_state in model.walk(params, state):
        layer = slot.layer
        try:
            h = _run(layer, own, own_state, h, ndx)
        except Exception as exc:
            culprit = _culprit(layer, own, own_state, h, ndx) if layer.children() else None
            raise _layer_error(slot.index, layer, exc, culprit) from exc
    head = model.head
    try:
        out = head.output(h, xp=ndx)
        results = {"logits": h, "outputs": out}
        if "proba" in names:
            results["proba"] = head.predict_proba(out, xp=ndx) if head.is_classifier else out
        if "labels" in names:
            results["labels"] = head.predict(out, xp=ndx, int_dtype=ndx.int64)
    except Exception as exc:
        raise OnnxExportError(
            f"the output activation {head.activation.describe()} ({head.kind} head) cannot be "
            f"exported to ONNX: it failed on ndonnx arrays ({type(exc).__name__}: {exc}); "
            f"{_STANDARD_ONLY}"
        ) from exc
    return x, {name: results[name] for name in names}


def _declare_shapes(model: Any, net: Network, batch_dim: str) -> None:
    """Write each output's shape, ``(batch_dim, k...)``, into the graph's signature.

    ndonnx does not carry static widths through ``matmul``; the head knows them. They
    are found by running the head on one row of zeros with NumPy.
    """
    from array_api_compat import array_namespace

    head, xp = net.model.head, array_namespace(np.empty(0))
    z = np.zeros((1, head.n_outputs), dtype=str(net.dtype))
    try:
        out = head.output(z, xp=xp)
        shapes = {
            "logits": z.shape,
            "outputs": out.shape,
            "proba": (head.predict_proba(out, xp=xp) if head.is_classifier else out).shape,
            "labels": head.predict(out, xp=xp, int_dtype=np.int64).shape,
        }
    except Exception:  # a user's output activation that NumPy cannot run: keep ndonnx's
        return
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        shape = shapes[output.name]
        if len(dims) != len(shape):
            continue  # not what the head computes on NumPy: leave ndonnx's declaration
        dims[0].Clear()
        dims[0].dim_param = batch_dim
        for dim, size in zip(dims[1:], shape[1:], strict=True):
            dim.Clear()
            dim.dim_value = int(size)


def _metadata(net: Network, names: tuple[str, ...]) -> dict[str, str]:
    from . import __version__  # at call time: anynet/__init__ imports this module

    props = {
        "anynet.version": __version__,
        "anynet.dtype": str(net.dtype),
        "anynet.outputs": ",".join(names),
    }
    try:
        props["anynet.architecture"] = json.dumps(net.architecture(), sort_keys=True)
    except InputError:  # an unregistered user layer: the graph is still complete
        pass
    return props


def to_onnx(net: Network, *, batch_dim: str = "N", outputs: Sequence[str] = ("proba",)) -> Any:
    """The ONNX model of ``net``'s evaluation-mode forward pass, in memory.

    What :func:`export_onnx` writes; see it for the arguments.

    Returns
    -------
    onnx.ModelProto
        Input ``"X"`` ``(batch_dim, n_features)`` in the network's dtype; one output per
        name in ``outputs``, in that order.
    """
    names = _check_outputs(outputs)
    batch_dim = _check_batch_dim(batch_dim)
    net = _check_network(net)
    ndx, onnx = _import_tools()
    x, results = _trace(net, ndx, batch_dim, names)
    model = ndx.build({INPUT_NAME: x}, results)
    _declare_shapes(model, net, batch_dim)
    model.producer_name = "anynet"
    model.doc_string = (
        f"anynet network {net.model!r}, evaluation mode; input {INPUT_NAME!r} "
        f"({batch_dim}, {net.model.inputs}) {net.dtype}; outputs {list(names)}"
    )
    onnx.helper.set_model_props(model, _metadata(net, names))
    return model


def export_onnx(
    net: Network,
    path: str | os.PathLike,
    *,
    batch_dim: str = "N",
    outputs: Sequence[str] = ("proba",),
) -> pathlib.Path:
    """Write ``net`` as an ONNX model: its evaluation-mode forward pass, for any runtime.

    The network's math runs once on an ndonnx placeholder array, which records the ONNX
    graph; parameters and layer state become constants. Evaluation mode means what
    :meth:`~anynet.Network.predict` computes: dropout is an identity and batch norm
    normalises with its running statistics. Every public layer exports, and a user's
    layer exports when its ``forward`` uses only functions of the array API standard
    through ``xp``.

    Parameters
    ----------
    net : Network
        Any network (``Network`` or ``Sequential``), on any backend and device; its
        parameters and state are read to the host once.
    path : str or os.PathLike
        The file to write (conventionally ``*.onnx``); written atomically.
    batch_dim : str, default "N"
        The symbolic name of the input's first dimension: the model accepts any number
        of rows.
    outputs : sequence of str, default ("proba",)
        Graph outputs, in order, from :data:`OUTPUTS`: ``"proba"`` (as
        :meth:`~anynet.Network.predict_proba`; a regressor's output values),
        ``"labels"`` (as :meth:`~anynet.Network.predict`, int64 for classifiers),
        ``"logits"`` (before the output activation), ``"outputs"`` (as
        :meth:`~anynet.Network.forward`).

    Returns
    -------
    pathlib.Path
        The file written. Its input is ``"X"``, shape ``(batch_dim, n_features)``, in the
        network's dtype (float32 or float64); outputs are float arrays in that dtype
        (``(N, k)``) and, for labels, int64 ``(N,)`` or ``(N, k)``.

    Raises
    ------
    ImportError
        ndonnx or onnx is not installed (``pip install anynet[onnx]``).
    OnnxExportError
        A layer (or the output activation) cannot be traced: the message names it,
        with the index in ``net.layers``, and says why.
    InputError
        An argument is invalid.

    Examples
    --------
    >>> import anynet as an                                          # doctest: +SKIP
    >>> X, y = an.datasets.planar_flower()
    >>> net = an.Network([2, 4, 1], seed=0, dtype="float64")
    >>> net.fit(X, y, epochs=1000, lr=1.2)
    >>> an.export_onnx(net, "flower.onnx", outputs=("proba", "labels"))
    >>> import onnxruntime as ort
    >>> proba, labels = ort.InferenceSession("flower.onnx").run(None, {"X": X})
    """
    from .io import _atomic_write, _check_path

    target = _check_path(path)
    model = to_onnx(net, batch_dim=batch_dim, outputs=outputs)
    data = model.SerializeToString()
    _atomic_write(target, lambda file: file.write(data))
    return target
