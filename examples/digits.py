"""A multi-layer perceptron on scikit-learn's handwritten digits, on any backend.

64-128-64-10 ReLU network with a softmax output, Adam, minibatches of 32, a
held-out test split (25%, stratified). The data ships with scikit-learn: no
download. Prints the test accuracy and saves a learning curve::

    python examples/digits.py                       # NumPy
    python examples/digits.py --backend jax --out /tmp/digits
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: no display needed

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import anynet as an


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (``argv`` defaults to ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(
        description="Train an MLP on scikit-learn's digits with anynet.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--backend", default=None, help="numpy, array_api_strict, jax, torch, cupy")
    parser.add_argument("--device", default=None, help="cpu, gpu, gpu:1, ...")
    parser.add_argument("--epochs", type=int, default=40, help="passes over the training data")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    parser.add_argument("--batch-size", type=int, default=32, help="minibatch size")
    parser.add_argument("--hidden", default="128,64", help="hidden layer widths, comma-separated")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and shuffles")
    parser.add_argument("--dtype", default="float32", help="float32 or float64")
    parser.add_argument("--out", default=".", help="folder for digits_learning_curve.png")
    return parser.parse_args(argv)


def save_figure(fig: plt.Figure, path: str) -> None:
    """Write ``fig`` to ``path`` atomically: a temporary file in the same folder, then rename."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".png")
    try:
        with os.fdopen(fd, "wb") as handle:
            fig.savefig(handle, format="png", dpi=100, bbox_inches="tight")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        plt.close(fig)


def main(argv: Sequence[str] | None = None) -> float:
    """Train, print the test accuracy and save the learning curve; return the test accuracy."""
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    digits = load_digits()
    X = digits.data / 16.0  # pixel intensities 0..16 scaled to [0, 1]
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, test_size=0.25, random_state=args.seed, stratify=digits.target
    )
    hidden = [int(width) for width in args.hidden.split(",") if width]
    net = an.Network(
        [64, *hidden, 10],
        ["relu"] * len(hidden) + ["softmax"],
        "categorical_crossentropy",
        init="he",
        seed=args.seed,
        dtype=args.dtype,
        backend=args.backend,
        device=args.device,
    )
    print(net)
    history = net.fit(
        X_train,
        y_train,
        epochs=args.epochs,
        optimizer=an.optimizers.Adam(lr=args.lr),
        batch_size=args.batch_size,
        validation_data=(X_test, y_test),
        verbose=max(args.epochs // 10, 1),
    )
    accuracy = net.score(X_test, y_test)
    print(f"test accuracy: {100 * accuracy:.2f}%")

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = range(1, history.epochs + 1)
    left.plot(epochs, history.loss, label="training loss")
    left.plot(epochs, history.val_loss, label="test loss")
    left.set_yscale("log")
    left.set_xlabel("epoch")
    left.legend()
    right.plot(epochs, history.val_accuracy, color="tab:green")
    right.set_xlabel("epoch")
    right.set_ylabel("test accuracy")
    fig.suptitle(f"digits, {net.backend.name}: {100 * accuracy:.2f}% test accuracy")
    path = os.path.join(args.out, "digits_learning_curve.png")
    save_figure(fig, path)
    print(f"saved {path}")
    return accuracy


if __name__ == "__main__":
    main()
