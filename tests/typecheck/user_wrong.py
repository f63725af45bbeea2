"""A user's mistake that mypy must catch: ``epochs`` is an int, not a string."""

import anynet as an

X, y = an.datasets.planar_flower()
net = an.Network([2, 4, 1], seed=0)
net.fit(X, y, epochs="10")  # error: Argument "epochs" to "fit" of "Network" ...
