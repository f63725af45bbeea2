"""Dask for inference beyond memory: blockwise, lazy, on a cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import anynet as an


def host(array):
    return np.asarray(an.to_numpy(array))


@pytest.mark.needs("dask")
def test_predict_on_dask_arrays_is_lazy_and_equals_numpy(backend):
    da = pytest.importorskip("dask.array")
    X, _ = an.datasets.planar_flower()
    net = an.Network([2, 5, 3], ["tanh", "softmax"], seed=0, dtype="float64", backend=backend)
    labels = np.arange(400) % 3
    net.fit(X, labels, epochs=50, lr=0.5)
    lazy = net.predict_proba(da.from_array(X, chunks=(96, 1)))  # rechunked along features
    assert isinstance(lazy, da.Array) and lazy.chunks[0] == (96, 96, 96, 96, 16)
    np.testing.assert_allclose(lazy.compute(), host(net.predict_proba(X)), rtol=1e-13)
    predicted = net.predict(da.from_array(X, chunks=50))
    assert isinstance(predicted, da.Array) and predicted.ndim == 1
    np.testing.assert_array_equal(predicted.compute(), host(net.predict(X)))
    assert net.score(da.from_array(X, chunks=50), labels) == pytest.approx(net.score(X, labels))
    assert net.loss(da.from_array(X, chunks=50), da.from_array(labels, chunks=50)) == (
        pytest.approx(net.loss(X, labels), rel=1e-12)
    )
    with pytest.raises(
        an.InputError, match=r"X must be a 2-D dask array \(n_samples, n_features=2\)"
    ):
        net.predict(da.zeros((10, 3), chunks=5))


CLUSTER = textwrap.dedent(
    """
    import json, resource
    import numpy as np
    import dask.array as da
    from dask.distributed import Client, LocalCluster
    import anynet as an

    if __name__ == "__main__":
        X, y = an.datasets.planar_flower()
        net = an.Network([2, 8, 1], ["tanh", "sigmoid"], seed=0, dtype="float32")
        net.fit(X, y, epochs=300, lr=1.2)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          memory_limit="1GiB", dashboard_address=None) as cluster, \\
                Client(cluster):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            rng = da.random.default_rng(0)
            big = rng.standard_normal((5_000_000, 2), chunks=(250_000, 2), dtype=np.float32)
            probabilities = net.predict_proba(big)[:, 1]
            total = float(probabilities.sum().compute())
            sample = big[::50_000].compute()
            got = probabilities[::50_000].compute()
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        want = an.to_numpy(net.predict_proba(sample))[:, 1]
        print(json.dumps({"total": total, "max_diff": float(np.max(np.abs(got - want))),
                          "grew_kb": after - before, "n": int(big.shape[0])}))
    """
)


@pytest.mark.needs("distributed")
@pytest.mark.backends("numpy", reason="a cluster of NumPy workers; one run is enough")
def test_five_million_rows_through_a_local_cluster(backend, tmp_path):
    script = tmp_path / "cluster.py"
    script.write_text(CLUSTER)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=240, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["n"] == 5_000_000
    assert report["max_diff"] <= 1e-6  # float32, the same network on the host
    assert 0 < report["total"] < 5_000_000
    # 5e6 x 2 float32 inputs are 40 MB and their probabilities 20 MB: the client never
    # holds them (only a sum and 100 sampled rows come back)
    assert report["grew_kb"] < 40_000, report
