"""Edges found by trying anynet as a user would: autograd, resume safety, schedules, batches."""

from __future__ import annotations

import numpy as np
import pytest

import anynet as an


def host(array):
    return np.asarray(an.to_numpy(array), dtype=np.float64)


X, Y = an.datasets.planar_flower(n=60)


# -- inputs never carry autograd history (or anything else) into anynet ------------------


@pytest.mark.backends("torch", reason="autograd history is PyTorch's")
def test_inputs_that_require_grad_leave_no_graph(backend):
    torch = pytest.importorskip("torch")
    x = torch.tensor(X, requires_grad=True, device=backend.device)
    y = torch.tensor(Y, device=backend.device)
    net = an.Network([2, 8, 1], ["relu", "sigmoid"], seed=0, dtype="float64", backend=backend)
    plain = an.Network([2, 8, 1], ["relu", "sigmoid"], seed=0, dtype="float64", backend=backend)
    net.fit(x, y, epochs=5, lr=0.1)
    plain.fit(X, Y, epochs=5, lr=0.1)
    for key, value in net.params.items():
        assert value.grad_fn is None and not value.requires_grad, key
        np.testing.assert_array_equal(host(value), host(plain.params[key]))
    net.fit(x, y, epochs=2, lr=0.1, batch_size=16)
    assert all(v.grad_fn is None for v in net.params.values())
    for output in (net.predict_proba(x), net.forward(x), net.predict(x)):
        assert output.grad_fn is None and not output.requires_grad
    assert all(g.grad_fn is None for g in net.gradients(x, y).values())
    w = torch.ones((8, 2), dtype=torch.float64, requires_grad=True, device=backend.device)
    net.set_params({**net.params, "W1": w * 2})  # a tensor with history
    assert net.params["W1"].grad_fn is None and not net.params["W1"].requires_grad
    assert an.to_numpy(w)[0, 0] == 1.0  # to_numpy reads a tensor that requires grad


def test_read_only_inputs_are_accepted_and_never_aliased(backend):
    x, y = X.copy(), Y.copy()
    x.flags.writeable = False
    y.flags.writeable = False
    net = an.Network([2, 3, 1], seed=0, dtype="float64", backend=backend)
    params = {k: host(v) for k, v in net.params.items()}
    for value in params.values():
        value.flags.writeable = False
    net.set_params(params)
    net.fit(x, y, epochs=3, lr=0.5)
    assert not np.array_equal(host(net.params["W1"]), params["W1"])  # trained a copy
    assert net.score(x, y) >= 0


# -- resume refuses a different run -------------------------------------------------------


@pytest.fixture
def interrupted(backend, tmp_path):
    path = tmp_path / "run.npz"
    net = an.Network([2, 4, 1], seed=0, dtype="float64", backend=backend)
    net.fit(X, Y, epochs=20, lr=0.5, batch_size=16, seed=3, checkpoint=path, checkpoint_every=10)
    return path


def fresh(backend):
    return an.Network([2, 4, 1], seed=0, dtype="float64", backend=backend)


def test_resume_refuses_other_data(backend, interrupted):
    with pytest.raises(an.InputError, match=r"other data.*allow_changes=\('data',\)"):
        fresh(backend).fit(X[:40], Y[:40], epochs=30, lr=0.5, batch_size=16, resume=interrupted)
    changed = Y.copy()
    changed[0] = 1 - changed[0]  # one label, in the fingerprint's sample (the first row)
    with pytest.raises(an.InputError, match="other data"):
        fresh(backend).fit(X, changed, epochs=30, lr=0.5, batch_size=16, resume=interrupted)
    history = fresh(backend).fit(
        X[:40], Y[:40], epochs=30, lr=0.5, batch_size=16, resume=interrupted,
        allow_changes=("data",),
    )  # fmt: skip
    assert len(history.loss) == 30


def test_resume_refuses_another_seed_or_fewer_epochs(backend, interrupted):
    with pytest.raises(an.InputError, match="was trained with seed=3, this fit asks for seed=4"):
        fresh(backend).fit(X, Y, epochs=30, lr=0.5, batch_size=16, seed=4, resume=interrupted)
    with pytest.raises(an.InputError, match="epochs must be >= 20 .*got 10"):
        fresh(backend).fit(X, Y, epochs=10, lr=0.5, batch_size=16, resume=interrupted)
    with pytest.raises(an.InputError, match="batch_size=16, this fit asks for batch_size=8"):
        fresh(backend).fit(X, Y, epochs=30, lr=0.5, batch_size=8, resume=interrupted)
    with pytest.raises(an.InputError, match="allow_changes must name only"):
        fresh(backend).fit(X, Y, epochs=30, resume=interrupted, allow_changes=("lr!",))
    # the same seed, explicit or not, resumes; and equals the uninterrupted run
    resumed = fresh(backend)
    resumed.fit(X, Y, epochs=30, lr=0.5, batch_size=16, seed=3, resume=interrupted)
    whole = fresh(backend)
    whole.fit(X, Y, epochs=30, lr=0.5, batch_size=16, seed=3)
    for key in whole.params:
        np.testing.assert_array_equal(host(resumed.params[key]), host(whole.params[key]))


# -- schedules may return any real number ------------------------------------------------


def test_schedules_may_return_numpy_scalars_and_0d_arrays(backend):
    def scalar(lr, epoch):
        return lr * np.float32(0.5) ** epoch

    def zero_d(lr, epoch):
        return backend.asarray(np.asarray(lr * 0.5**epoch), "float64")

    histories = []
    for schedule in (scalar, zero_d, lambda lr, e: np.asarray(lr * 0.5**e)):
        net = an.Network([2, 3, 1], seed=0, dtype="float64", backend=backend)
        histories.append(net.fit(X, Y, epochs=3, lr=0.4, schedule=schedule).lr)
    np.testing.assert_allclose(histories[0], [0.4, 0.2, 0.1], rtol=1e-7)
    assert histories[1] == histories[2] == [0.4, 0.2, 0.1]
    net = an.Network([2, 3, 1], seed=0, backend=backend)
    with pytest.raises(an.InputError, match="must return a real number .*got str '0.1' at epoch 0"):
        net.fit(X, Y, epochs=2, schedule=lambda lr, e: "0.1")
    with pytest.raises(an.InputError, match=r"finite learning rates >= 0, got -0.1 at epoch 1"):
        net.fit(X, Y, epochs=2, schedule=lambda lr, e: np.float64(0.1 - 0.2 * e))


# -- batches ----------------------------------------------------------------------------------


def test_batch_larger_than_the_data_with_drop_last_raises(backend):
    net = an.Network([2, 3, 1], seed=0, dtype="float64", backend=backend)
    with pytest.raises(an.InputError, match="batch_size must be <= 60 .*got 1000: no full batch"):
        net.fit(X, Y, epochs=1, batch_size=1000, drop_last=True)
    one = an.Network([2, 3, 1], seed=0, dtype="float64", backend=backend)
    full = an.Network([2, 3, 1], seed=0, dtype="float64", backend=backend)
    assert (
        one.fit(X, Y, epochs=3, lr=0.5, batch_size=60, drop_last=True).loss
        == full.fit(X, Y, epochs=3, lr=0.5).loss
    )  # batch_size == n: one full batch, the same as full batch
    big = an.Network([2, 3, 1], seed=0, dtype="float64", backend=backend)
    reference = an.Network([2, 3, 1], seed=0, dtype="float64", backend=backend)
    # batch_size > n without drop_last: documented as full batch
    assert (
        big.fit(X, Y, epochs=3, lr=0.5, batch_size=1000).loss
        == reference.fit(X, Y, epochs=3, lr=0.5).loss
    )
