"""Progress reaches logs: lines flushed per epoch into files and pipes, a bar per epoch in a
terminal, the ``anynet`` logger, ``CSVLogger``, ``History.to_dict()`` for pandas; and
showing progress does not change the numbers (the engine contract)."""

from __future__ import annotations

import csv
import importlib.util
import io
import logging
import os
import selectors
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import anynet as an
from anynet import callbacks

# The child trains 4 epochs with verbose=1 and stdout a pipe. Its schedule, called by the
# engine when it prepares an epoch, waits for the parent's "go" before every epoch but the
# first: the parent sends it only once it has read the previous epoch's line. A line that
# waits in a buffer, or an engine that prepares a chunk of several epochs at once, leaves
# the parent without its line: it gives up after a timeout and the test fails.
CHILD = textwrap.dedent("""
    import sys
    import anynet as an

    backend, device, engine = sys.argv[1], sys.argv[2] or None, sys.argv[3]

    def schedule(lr, epoch):
        if epoch > 0:
            assert sys.stdin.readline() == "go\\n"
        return lr

    X, y = an.datasets.planar_flower(n=40)
    net = an.Network([2, 3, 1], seed=0, dtype="float64", backend=backend, device=device)
    net.fit(X, y, epochs=4, lr=0.5, schedule=schedule, verbose={verbose}, engine=engine)
    print("done", flush=True)
""")


def _read_line(process, selector, timeout):
    if not selector.select(timeout):
        return None
    return process.stdout.readline()


@pytest.mark.parametrize("verbose", [1, True])
@pytest.mark.parametrize("engine", ["auto", "eager"])
def test_a_pipe_gets_a_line_per_epoch_as_the_epoch_completes(backend, engine, verbose):
    env = dict(os.environ, PYTHONUNBUFFERED="", PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("PYTHONUNBUFFERED")  # the child's stdout is block-buffered, as in a real pipe
    device = "" if backend.device is None else str(backend.device)
    command = [sys.executable, "-c", CHILD.format(verbose=verbose), backend.name, device, engine]
    with (
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env) as process,
        selectors.DefaultSelector() as selector,
    ):  # fmt: skip
        selector.register(process.stdout, selectors.EVENT_READ)
        try:
            for epoch in range(4):
                line = _read_line(process, selector, timeout=120)
                assert line is not None, f"no line for epoch {epoch} while the fit waits for it"
                assert line.startswith(f"epoch {epoch}: loss "), line
                if epoch < 3:
                    process.stdin.write("go\n")
                    process.stdin.flush()
            assert _read_line(process, selector, timeout=120) == "done\n"
            assert process.wait(timeout=60) == 0, process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()


def test_the_anynet_logger_receives_the_same_records(backend, capsys, caplog):
    X, y = an.datasets.planar_flower(n=40)
    net = an.Network([2, 3, 1], seed=0, backend=backend.name, device=backend.device)
    with caplog.at_level(logging.INFO, logger="anynet"):
        history = net.fit(X, y, epochs=6, lr=0.5, verbose=2, validation_data=(X, y))
    printed = capsys.readouterr().out.splitlines()
    records = [r for r in caplog.records if r.name == "anynet"]
    assert [r.getMessage() for r in records] == printed
    assert [r.epoch for r in records] == [0, 2, 4]
    for record in records:
        assert record.levelno == logging.INFO
        assert record.logs["loss"] == history.loss[record.epoch]
        assert record.logs["val_loss"] == history.val_loss[record.epoch]
        assert f"loss {history.loss[record.epoch]:.6f}" in record.getMessage()


def test_off_a_terminal_verbose_true_writes_lines_and_always_the_last(backend, capsys):
    X, y = an.datasets.planar_flower(n=30)
    net = an.Network([2, 3, 1], seed=0, backend=backend.name, device=backend.device)
    net.fit(X, y, epochs=7, lr=0.5, verbose=True)  # pytest's output is not a terminal
    assert [line.split(":")[0] for line in capsys.readouterr().out.splitlines()] == [
        f"epoch {e}" for e in range(7)
    ]
    net.fit(X, y, epochs=250, lr=0.5, verbose=True)
    epochs = [int(line.split(":")[0][6:]) for line in capsys.readouterr().out.splitlines()]
    assert epochs == [*range(0, 250, 2), 249]  # every epochs // 100, and the last
    net.fit(X, y, epochs=20, lr=0.5, verbose=False)
    assert capsys.readouterr().out == ""


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.skipif(importlib.util.find_spec("tqdm") is None, reason="tqdm not installed")
def test_a_terminal_bar_moves_every_epoch(backend, monkeypatch):
    updates = []
    real = callbacks.Progress.update

    def spy(self, first_epoch, logs):
        updates.append((first_epoch, len(logs)))
        return real(self, first_epoch, logs)

    monkeypatch.setattr(callbacks.Progress, "update", spy)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(sys, "stdout", _Terminal())  # both on the terminal: the bar alone
    X, y = an.datasets.planar_flower(n=30)
    net = an.Network([2, 3, 1], seed=0, backend=backend.name, device=backend.device)
    net.fit(X, y, epochs=30, lr=0.5, verbose=True)
    assert updates == [(epoch, 1) for epoch in range(30)]  # one report per epoch
    assert "30/30" in terminal.getvalue()
    assert sys.stdout.getvalue() == ""


@pytest.mark.parametrize("batch_size", [None, 8])
def test_showing_progress_keeps_the_numbers(backend, batch_size, capsys):
    """Per-epoch reports (chunks of one epoch) against the default chunks and the plain loop."""
    X, y = an.datasets.planar_flower(n=40)
    nets = {}
    for name, kwargs in {
        "silent": {}, "verbose": {"verbose": 1}, "eager": {"engine": "eager"},
    }.items():  # fmt: skip
        net = an.Network([2, 5, 1], seed=0, dtype="float64", backend=backend.name,
                         device=backend.device)  # fmt: skip
        history = net.fit(X, y, epochs=30, optimizer="adam", lr=0.05, batch_size=batch_size,
                          **kwargs)  # fmt: skip
        nets[name] = (net.params, history.loss)
    capsys.readouterr()
    for name in ("verbose", "eager"):
        for key, value in nets["silent"][0].items():
            np.testing.assert_allclose(an.to_numpy(nets[name][0][key]), an.to_numpy(value),
                                       rtol=1e-11, atol=1e-13, err_msg=f"{name} {key}")  # fmt: skip
        np.testing.assert_allclose(nets[name][1], nets["silent"][1], rtol=1e-11, atol=0)


def test_csv_logger_writes_whole_lines_as_the_history_grows(backend, tmp_path):
    path = tmp_path / "run.csv"
    seen = []

    def look(epoch, logs):  # runs after the logger: the file already holds this epoch
        text = path.read_text()
        assert text.endswith("\n")  # never half a line
        seen.append(len(text.splitlines()))

    X, y = an.datasets.planar_flower(n=40)
    net = an.Network([2, 3, 1], seed=0, dtype="float64", backend=backend.name,
                     device=backend.device)  # fmt: skip
    history = net.fit(X, y, epochs=5, lr=0.5, validation_data=(X, y),
                      callbacks=[an.CSVLogger(path), look])  # fmt: skip
    assert seen == [2, 3, 4, 5, 6]  # the header and one row per completed epoch
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["epoch", "loss", "lr", "val_loss", "val_score", "val_accuracy"]
    assert [int(row["epoch"]) for row in rows] == list(range(5))
    for name in ("loss", "lr", "val_loss", "val_score"):
        assert [float(row[name]) for row in rows] == getattr(history, name)  # exact: repr
    # append: a resumed run adds rows under the same header
    net.fit(X, y, epochs=2, lr=0.5, callbacks=[an.CSVLogger(path, append=True)])
    lines = path.read_text().splitlines()
    assert len(lines) == 8 and lines.count(lines[0]) == 1


def test_csv_logger_refuses_bad_arguments(tmp_path):
    with pytest.raises(an.InputError, match="CSVLogger path must be in an existing folder"):
        an.CSVLogger(tmp_path / "missing" / "run.csv")
    with pytest.raises(an.InputError, match="CSVLogger path must be a path"):
        an.CSVLogger(3)
    with pytest.raises(an.InputError, match="separator must be one character"):
        an.CSVLogger(tmp_path / "run.csv", separator="\n")
    with pytest.raises(an.InputError, match="append must be True or False"):
        an.CSVLogger(tmp_path / "run.csv", append="yes")


def test_history_to_dict_is_a_table_of_equal_columns(backend):
    X, y = an.datasets.planar_flower(n=30)
    net = an.Network([2, 3, 1], seed=0, backend=backend.name, device=backend.device)
    history = net.fit(X, y, epochs=4, lr=0.5)
    table = history.to_dict()
    assert list(table) == ["loss", "lr"] and table["loss"] == history.loss
    assert table["loss"] is not history.loss  # a copy by default
    shared = history.to_dict(copy=False)
    assert shared["loss"] is history.loss and shared["lr"] is history.lr  # no copy
    validated = net.fit(X, y, epochs=3, lr=0.5, validation_data=(X, y)).to_dict()
    assert list(validated) == ["loss", "val_loss", "val_score", "lr"]
    assert {len(column) for column in validated.values()} == {3}
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(validated)
    assert frame.shape == (3, 4)
