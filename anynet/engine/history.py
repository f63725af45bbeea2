"""The record of a training run: one entry per completed epoch."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["History"]


@dataclass
class History:
    """What :meth:`Network.fit` recorded, one entry per epoch.

    Attributes
    ----------
    loss : list of float
        Full batch: the cost of the parameters *before* that epoch's update, exactly
        as the tutorial's loop computes it. Minibatches: the mean of the epoch's
        batch losses (each before its own update), weighted by batch size.
    val_loss, val_score : list of float
        With ``validation_data``: loss and score (accuracy for classifiers, R² for
        regressors) of the parameters *after* the epoch's updates.
    lr : list of float
        The learning rate used in each epoch (after the schedule).
    """

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_score: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    classifier: bool = True

    @property
    def val_accuracy(self) -> list[float]:
        """``val_score`` of a classifier (its validation accuracy)."""
        if not self.classifier:
            raise AttributeError("val_accuracy is for classifiers; this regressor has val_score")
        return self.val_score

    @property
    def epochs(self) -> int:
        """Number of epochs recorded."""
        return len(self.loss)

    def __len__(self) -> int:
        return len(self.loss)

    def to_dict(self, copy: bool = True) -> dict[str, list[float]]:
        """The figures recorded, one list per series, all of one length per epoch.

        ``loss`` and ``lr`` always; ``val_loss`` and ``val_score`` when validation data
        was given. Every list has
        one entry per epoch, so ``pandas.DataFrame(history.to_dict())`` is a table with a
        row per epoch. JSON-serialisable.

        Parameters
        ----------
        copy : bool
            False: the history's own lists, without copying (do not change them).
        """
        take = list if copy else (lambda values: values)
        series = {"loss": take(self.loss)}
        if self.val_loss or self.val_score:
            series["val_loss"] = take(self.val_loss)
            series["val_score"] = take(self.val_score)
        series["lr"] = take(self.lr)
        return series

    def extend(self, other: History) -> None:
        """Append another history's epochs (used when a run is resumed)."""
        for name in ("loss", "val_loss", "val_score", "lr"):
            getattr(self, name).extend(getattr(other, name))

    def __repr__(self) -> str:
        parts = [f"epochs={self.epochs}"]
        if self.loss:
            parts.append(f"loss={self.loss[-1]:.6g}")
        if self.val_loss:
            parts.append(f"val_loss={self.val_loss[-1]:.6g}")
        return f"History({', '.join(parts)})"
