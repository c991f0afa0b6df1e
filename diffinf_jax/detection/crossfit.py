"""Cross-fitting: out-of-sample class probabilities for every training sample.

Confident learning and any "does the model agree with this label" score need
probabilities from a model that never trained on the sample: a network that
memorised the noisy labels agrees with all of them. `cross_fit` calls a
user-supplied `fit_predict(train_rows, held_rows)` once per fold (train on
all other folds, predict the held-out one) and assembles the [N, K] matrix;
`make_logistic_fit_predict` is the cheap model for it (multinomial logistic
regression on fixed features, standardised inside each fold).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

FitPredict = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class OutOfSample:
  """Cross-fitted probabilities and the fold that produced each row.

  Attributes:
    probs: [N, K] float64, row i from the model fit without fold[i].
    fold: [N] int32, the held-out fold of each row (the model that
      predicted row i trained on every fold except fold[i]).
  """
  probs: np.ndarray
  fold: np.ndarray

  @property
  def num_folds(self) -> int:
    return int(self.fold.max()) + 1 if self.fold.size else 0


def cross_fit(folds: np.ndarray, fit_predict: FitPredict,
              num_classes: int,
              exclude: np.ndarray | None = None) -> OutOfSample:
  """Runs `fit_predict` once per fold and assembles out-of-sample probs.

  Args:
    folds: [N] int fold ids in 0..K-1 (see `folds.assign_folds`).
    fit_predict: fn(train_rows [n_train] int, held_rows [n_held] int) ->
      probs [n_held, num_classes]: fit on `train_rows` only, predict
      `held_rows`. Rows are positions into the caller's arrays, sorted.
    num_classes: K, the width of the probability matrix.
    exclude: [N] bool, rows never used for training (e.g. the label issues
      of a first round, so the refit learns from cleaner labels); they are
      still predicted by their own fold's model.

  Returns:
    `OutOfSample` with probs [N, num_classes] float64 and the fold ids.

  Raises:
    ValueError: a fold is empty, or `fit_predict` returns the wrong shape,
      non-finite or negative values, or rows that do not sum to 1.
  """
  folds = np.asarray(folds)
  n = folds.shape[0]
  num_folds = int(folds.max()) + 1 if n else 0
  usable = np.ones(n, bool) if exclude is None else ~np.asarray(exclude, bool)
  if usable.shape != (n,):
    raise ValueError(f"exclude has shape {np.shape(exclude)}; expected ({n},)")
  probs = np.full((n, num_classes), np.nan, np.float64)
  for f in range(num_folds):
    held = np.flatnonzero(folds == f)
    train = np.flatnonzero((folds != f) & usable)
    if held.size == 0 or train.size == 0:
      raise ValueError(f"fold {f} of {num_folds} is empty or leaves no "
                       "training rows; fold ids must be 0..K-1, all used")
    out = np.asarray(fit_predict(train, held), np.float64)
    if out.shape != (held.size, num_classes):
      raise ValueError(f"fit_predict for fold {f} returned shape {out.shape}"
                       f"; expected {(held.size, num_classes)}")
    if not np.all(np.isfinite(out)) or np.any(out < 0):
      raise ValueError(f"fit_predict for fold {f} returned non-finite or "
                       "negative probabilities")
    if not np.allclose(out.sum(1), 1.0, atol=1e-4):
      raise ValueError(f"fit_predict for fold {f} returned rows that do not "
                       "sum to 1 (pass softmax probabilities, not logits)")
    probs[held] = out
  return OutOfSample(probs=probs, fold=folds.astype(np.int32))


def make_logistic_fit_predict(features: np.ndarray, labels: np.ndarray,
                              num_classes: int, *, inverse_reg: float = 1e-3,
                              max_iter: int = 500,
                              blas_threads: int | None = 1) -> FitPredict:
  """A `fit_predict` of multinomial logistic regression on fixed features.

  Each call standardises the features with the mean and std of its training
  rows only (the held-out rows never shape the model) and fits scikit-learn's
  L2-regularised multinomial LogisticRegression (lbfgs, deterministic).

  Args:
    features: [N, D] float features (raw pixels flattened, or the output of
      a frozen network that never saw the task labels).
    labels: [N] int assigned labels in 0..num_classes-1.
    num_classes: K; a class absent from a training part gets probability 0.
    inverse_reg: scikit-learn's C (smaller = stronger L2 penalty; a strong
      penalty keeps the model from fitting the wrong labels). 1e-3 was the
      best of 1e-4..1e-1 on the demo (about 1,000 samples, 1-4k
      standardised features); larger C fitted the noise.
    max_iter: lbfgs iterations.
    blas_threads: BLAS threads during the fit (None: the library default).
      The matrices are small (N x D, a few classes): one thread avoids the
      OpenBLAS thread start-up and spinning, which made each fit 20-40x
      slower in wall time on our shared 2-core machine.

  Returns:
    fn(train_rows, held_rows) -> [n_held, num_classes] probabilities.
  """
  import contextlib

  import threadpoolctl
  from sklearn.linear_model import LogisticRegression
  x_all = np.asarray(features, np.float64).reshape(len(features), -1)
  y_all = np.asarray(labels)

  def fit_predict(train_rows: np.ndarray, held_rows: np.ndarray) -> np.ndarray:
    x = x_all[train_rows]
    mean = x.mean(0)
    # Constant features (std 0) stay 0 after centring instead of dividing by 0.
    std = np.where(x.std(0) > 1e-12, x.std(0), 1.0)
    limit = (threadpoolctl.threadpool_limits(blas_threads, user_api="blas")
             if blas_threads else contextlib.nullcontext())
    with limit:
      model = LogisticRegression(C=inverse_reg, max_iter=max_iter)
      model.fit((x - mean) / std, y_all[train_rows])
      p = model.predict_proba((x_all[held_rows] - mean) / std)
    out = np.zeros((held_rows.size, num_classes), np.float64)
    out[:, model.classes_] = p
    return out

  return fit_predict


def cross_fit_logistic(features: np.ndarray, labels: np.ndarray,
                       folds: np.ndarray, num_classes: int, *,
                       inverse_reg: float = 1e-3, max_iter: int = 500,
                       blas_threads: int | None = 1) -> OutOfSample:
  """`cross_fit` with `make_logistic_fit_predict` (see both).

  Returns:
    `OutOfSample` with probs [N, num_classes].
  """
  fit_predict = make_logistic_fit_predict(
      features, labels, num_classes, inverse_reg=inverse_reg,
      max_iter=max_iter, blas_threads=blas_threads)
  return cross_fit(folds, fit_predict, num_classes)
