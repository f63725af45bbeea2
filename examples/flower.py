"""The tutorial end to end: a 2-h-1 tanh/sigmoid network learns the planar flower.

Reproduces the seven steps of the tutorial *Deep Neural net with forward and back
propagation from scratch - Python* (GeeksforGeeks, last updated 10 Sep 2024) with anynet,
on any backend::

    python examples/flower.py                          # anynet's default backend
    python examples/flower.py --backend torch --device cuda --out /tmp/flower

It prints the parameter shapes, the cost every ``epochs // 10`` iterations and the
training accuracy, and writes two figures to ``--out``: ``flower_data.png`` (the data)
and ``flower_boundary.png`` (the learnt decision boundary over the data).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: no display needed

import matplotlib.pyplot as plt

import anynet as an


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (``argv`` defaults to ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(
        description="Train the tutorial's tanh/sigmoid network on the planar flower.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--backend",
        default=None,
        help="array backend (numpy, array_api_strict, jax, torch, cupy); "
        "default: anynet's default (ANYNET_BACKEND, else numpy)",
    )
    parser.add_argument("--device", default=None, help="device, e.g. cpu, cuda, cuda:1")
    parser.add_argument("--lr", type=float, default=1.2, help="learning rate")
    parser.add_argument("--epochs", type=int, default=10000, help="gradient-descent iterations")
    parser.add_argument("--hidden", type=int, default=4, help="hidden units")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weight initialisation")
    parser.add_argument("--dtype", default="float64", help="floating-point dtype")
    parser.add_argument("--out", default=".", help="folder for the PNG figures")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.hidden < 1:
        parser.error(f"--hidden must be >= 1, got {args.hidden}")
    return args


def save_figure(fig: plt.Figure, path: str) -> None:
    """Write ``fig`` to ``path`` atomically (:func:`anynet.plot.save_figure`), then close it."""
    try:
        an.plot.save_figure(fig, path)
    finally:
        plt.close(fig)


def main(argv: Sequence[str] | None = None) -> float:
    """Run the tutorial's seven steps; return the training accuracy, a float in [0, 1]."""
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    backend = an.get_backend(args.backend, args.device)
    print(f"backend: {backend.name}, device: {backend.device}, dtype: {args.dtype}")

    # 1. Load and visualise the data -----------------------------------------------------
    X, y = an.datasets.planar_flower()  # X (400, 2) float64, y (400,) int64
    print(f"X: {X.shape} {X.dtype}, y: {y.shape} {y.dtype}")
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(X[:, 0], X[:, 1], c=y, s=40, cmap=plt.cm.Spectral, edgecolors="k", linewidths=0.3)
    ax.set_title("Planar flower data")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    data_png = os.path.join(args.out, "flower_data.png")
    save_figure(fig, data_png)
    print(f"saved {data_png}")

    # 2. Decide the shapes of the weights and biases -------------------------------------
    n_x, n_h, n_y = X.shape[1], args.hidden, 1
    shapes = {"W1": (n_h, n_x), "b1": (n_h,), "W2": (n_y, n_h), "b2": (n_y,)}
    for name, shape in shapes.items():
        print(f"{name}: {shape}")

    # 3. Initialise the network: tanh hidden layer, sigmoid output, N(0, 0.01^2) weights --
    net = an.Network(
        [n_x, n_h, n_y],
        activations=["tanh", "sigmoid"],
        loss="binary_crossentropy",
        init="normal",
        init_scale=0.01,
        seed=args.seed,
        dtype=args.dtype,
        backend=args.backend,
        device=args.device,
    )
    got = {name: tuple(p.shape) for name, p in net.params.items()}
    if got != shapes:
        raise RuntimeError(f"network parameters have shapes {got}, expected {shapes}")

    # 4.-6. Forward propagation, cost, backpropagation and the update: full-batch fit -----
    hist = net.fit(X, y, epochs=args.epochs, lr=args.lr)
    every = max(1, args.epochs // 10)
    for i in range(0, len(hist.loss), every):
        print(f"cost after iteration {i}: {hist.loss[i]:.6f}")

    # 7. Predict, and visualise the decision boundary ------------------------------------
    accuracy = float(net.score(X, y))
    print(f"training accuracy: {100 * accuracy:.2f}%")

    fig = an.plot.decision_boundary(
        net,
        X,
        y,
        resolution=400,
        pad=1.0,
        title=f"Decision boundary, {n_h} hidden units ({backend.name}): "
        f"{100 * accuracy:.2f}% correct",
    )
    boundary_png = os.path.join(args.out, "flower_boundary.png")
    save_figure(fig, boundary_png)
    print(f"saved {boundary_png}")
    return accuracy


if __name__ == "__main__":
    # JAX computes in float32 unless its 64-bit mode is on before it starts, and this
    # script's default dtype is float64: the script (not anynet) turns the mode on.
    os.environ.setdefault("JAX_ENABLE_X64", "1")
    main()
