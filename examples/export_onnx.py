"""Deploy with ONNX: train the tutorial's flower network, export it, score it with onnxruntime.

anynet's forward pass is written against the array API standard, so running it on
ndonnx arrays records it as an ONNX graph: the exported file needs neither anynet nor
Python to run. Needs the extra ``pip install "anynet[onnx]"`` (ndonnx, onnx,
onnxruntime)::

    python examples/export_onnx.py                     # NumPy, float64
    python examples/export_onnx.py --backend torch --dtype float32 --out /tmp/flower.onnx

It trains the network, writes ``flower.onnx`` (outputs ``proba`` and ``labels``), runs
it with onnxruntime on the 400 training points and on a batch of 7 (the batch dimension
is symbolic), and checks that the probabilities match ``net.predict_proba`` (to 1e-12 in
float64, 1e-6 in float32) and the labels ``net.predict`` exactly.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import numpy as np

import anynet as an

TOLERANCE = {"float32": 1e-6, "float64": 1e-12}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (``argv`` defaults to ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(
        description="Train the flower network, export it to ONNX and score it with onnxruntime.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--backend", default=None, help="array backend to train on")
    parser.add_argument("--device", default=None, help="device, e.g. cpu, cuda")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--epochs", type=int, default=10000, help="gradient-descent iterations")
    parser.add_argument("--out", default="flower.onnx", help="the ONNX file to write")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    return args


def main(argv: Sequence[str] | None = None) -> float:
    """Run the example; return the largest probability difference ONNX vs anynet."""
    args = parse_args(argv)
    import onnxruntime as ort  # the optional extra: pip install "anynet[onnx]"

    X, y = an.datasets.planar_flower()
    net = an.Network([2, 4, 1], activations=["tanh", "sigmoid"], init="normal",
                     init_scale=0.01, seed=0, dtype=args.dtype, backend=args.backend,
                     device=args.device)  # fmt: skip
    net.fit(X, y, epochs=args.epochs, lr=1.2)
    print(f"trained on {net.backend.describe()}: training accuracy {net.score(X, y):.4f}")

    path = an.export_onnx(net, args.out, outputs=("proba", "labels"))
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = [(i.name, i.shape, i.type) for i in session.get_inputs()]
    outputs = [(o.name, o.shape, o.type) for o in session.get_outputs()]
    print(f"inputs {inputs}, outputs {outputs}")

    worst = 0.0
    for rows in (X, X[:7]):  # one session, any batch size
        rows = rows.astype(args.dtype)
        proba, labels = session.run(["proba", "labels"], {"X": rows})
        expected = an.to_numpy(net.predict_proba(rows))
        difference = float(np.max(np.abs(proba - expected)))
        same_labels = bool(np.array_equal(labels, an.to_numpy(net.predict(rows))))
        print(f"{len(rows)} rows: max |proba difference| {difference:.3g}, "
              f"labels identical: {same_labels}")  # fmt: skip
        if difference > TOLERANCE[args.dtype] or not same_labels:
            raise SystemExit(f"the ONNX model disagrees with the network on {len(rows)} rows")
        worst = max(worst, difference)
    (labels,) = session.run(["labels"], {"X": X.astype(args.dtype)})
    print(f"accuracy of the ONNX model: {float(np.mean(labels == y)):.4f}")
    return worst


if __name__ == "__main__":
    main()
