"""A light reward model: Bradley-Terry over hashed text features, fit in seconds on a CPU.

A response's reward is ``w . f(text)``, where ``f`` counts its words and word pairs hashed into
``DIMENSIONS`` buckets (Polars' hash, signed, so that collisions cancel on average rather than
add up; each distinct text is encoded once, ``Encoded``), plus a
few shape features: the log of its length in words and in lines, and whether it holds a code
fence. Bradley-Terry takes the chance that the chosen side is preferred to be
``sigmoid(r(chosen) - r(rejected))``; ``fit`` minimises the logistic loss of the pairs' feature
differences with an L2 penalty (L-BFGS, scipy, until it converges), which is a logistic
regression without an intercept: the model cannot favour a side by its position, only by its
text. The prompt is left out: both sides share it, so its features would cancel in every
difference.

It is meant to ask whether a dataset's pairs teach a preference that holds on pairs it never saw,
not to be a good reward model: a text the model cannot tell apart scores 0.5, and the measure
can fail (pairs with chosen and rejected swapped give an accuracy below 0.5).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DIMENSIONS = 2**18
"""Hash buckets of the word features. Fewer no longer make a fit faster (it works over the
columns its pairs hold): on the 0.5M-event dataset, 2^16 and 2^17 gave the same accuracies
(test 0.909 and 0.908) but blurred the ablations (without the edit pairs, test -0.007 instead
of -0.018), so 2^18."""
SHAPE = 3
"""Shape features after the buckets: log words, log lines, a code fence."""
L2 = 1.0
"""The penalty on the weights' squared norm (per pair, the loss is averaged)."""
MAX_ITERATIONS = 500
"""A bound a fit is not meant to reach: it runs until L-BFGS-B's own tests stop it. On the
0.5M-event dataset's 38,213 train pairs that took 172 iterations (99 to 176 for the ablations'
fits), 1.6 to 6 s a fit on a loaded 2-core machine; the test accuracy after 30, 60, 100 and 172
iterations was 0.906, 0.906, 0.909 and 0.909. Stopped at 60, the ablations showed where the
path stood more than what a signal adds (without the edit pairs, ab_choice -0.005 at 60 and
0.000 converged), so each fit converges."""
_WORD = re.compile(r"[a-z0-9_']+")


def _matrix(texts: Sequence[str]) -> Any:
    """The feature vectors of ``texts``, a sparse row each: computed over all of them at once in
    Polars (tokenising, pairing and hashing in Python took 0.7 ms a text)."""
    import polars as pl
    from scipy import sparse

    frame = pl.DataFrame({"text": list(texts)}, schema={"text": pl.String}).with_row_index("row")
    words = (
        frame.select("row", pl.col("text").str.to_lowercase().str.extract_all(_WORD.pattern)
                     .alias("word"))
        .explode("word")
        .drop_nulls("word")
        # The explode keeps each text's words together and in order, so the next row's word is
        # the next word when the row is the same text's (a window per text took 0.4 s at 62k).
        .with_columns(following=pl.when(pl.col("row").shift(-1) == pl.col("row"))
                      .then(pl.col("word").shift(-1)))
    )  # fmt: skip
    tokens = pl.concat([
        words.select("row", token=pl.col("word")),
        words.drop_nulls("following").select(
            "row", token=pl.col("word") + " " + pl.col("following")
        ),
    ])  # fmt: skip
    # Polars' hash is stable for a given Polars release (not across releases): a model is fit and
    # used by one process, so that is all it needs.
    hashed = tokens.select(
        "row", hashed=pl.col("token").hash(seed=0)
    ).with_columns(
        column=(pl.col("hashed") % DIMENSIONS).cast(pl.Int64),
        sign=pl.when(pl.col("hashed") >= 2**63).then(1.0).otherwise(-1.0),
    )  # fmt: skip
    # A text's signs summed per bucket as SciPy builds the matrix (a Polars group_by of text and
    # bucket was 2.7 s of the 6 s 62k texts took).
    counts = sparse.csr_matrix(
        (hashed["sign"].to_numpy(), (hashed["row"].to_numpy(), hashed["column"].to_numpy())),
        shape=(len(texts), DIMENSIONS + SHAPE),
        dtype=np.float64,
    )
    counts.sum_duplicates()
    # Counts grow with length: dampened, so that a long answer is not a strong one by size.
    counts.data = np.sign(counts.data) * np.log1p(np.abs(counts.data))
    counts.eliminate_zeros()
    shape = frame.select(
        words=pl.col("text").str.to_lowercase().str.count_matches(_WORD.pattern).log1p(),
        lines=pl.col("text").str.count_matches("\n", literal=True).log1p(),
        fence=pl.col("text").str.contains("```", literal=True).cast(pl.Float64),
    ).to_numpy()
    shapes = sparse.csr_matrix(
        (shape.astype(np.float64).ravel(), (np.repeat(np.arange(len(texts)), SHAPE),
                                            np.tile(DIMENSIONS + np.arange(SHAPE), len(texts)))),
        shape=counts.shape,
    )  # fmt: skip
    return counts + shapes


FEW = 32
"""Up to this many texts are scored by ``_few_rows``: building ``_matrix``'s frames costs about
5 ms a call however few the texts, and a reranker asks for a handful at a time, thousands of
times."""


def _few_rows(texts: Sequence[str]) -> list[tuple[Any, Any]]:
    """The feature rows of a few texts as (columns, values), equal to ``_matrix``'s rows:
    tokenised in Python, hashed by Polars in one call."""
    import polars as pl

    tokens = []
    for text in texts:
        words = _WORD.findall(text.lower())
        tokens.append((words, [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]))
    hashes = pl.Series(
        [t for words, pairs in tokens for t in (*words, *pairs)], dtype=pl.String
    ).hash(seed=0).to_numpy()  # fmt: skip
    rows = []
    start = 0
    for text, (words, pairs) in zip(texts, tokens, strict=True):
        mine = hashes[start : start + len(words) + len(pairs)]
        start += len(mine)
        signs = np.where(mine >= np.uint64(2**63), 1.0, -1.0)
        columns, where = np.unique((mine % DIMENSIONS).astype(np.int64), return_inverse=True)
        sums = np.bincount(where, weights=signs, minlength=len(columns))
        kept = sums != 0
        shape = (np.log1p(len(words)), np.log1p(text.count("\n")), float("```" in text))
        rows.append((
            np.concatenate([columns[kept], DIMENSIONS + np.arange(SHAPE)]),
            np.concatenate([np.sign(sums[kept]) * np.log1p(np.abs(sums[kept])), shape]),
        ))  # fmt: skip
    return rows


def features(text: str) -> dict[int, float]:
    """The sparse feature vector of a response's text (column -> value)."""
    row = _matrix([text])
    return {int(c): float(v) for c, v in zip(row.indices, row.data, strict=True) if v}


class Encoded:
    """Texts' feature vectors, each distinct text computed once: a sparse matrix with a row per
    text. Fits and measures of the same texts (the ablations) share it."""

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self.rows: dict[str, int] = {}
        self._blocks: list[Any] = []
        self._matrix: Any = None
        self.add(texts)

    def add(self, texts: Iterable[str]) -> None:

        new = [t for t in dict.fromkeys(texts) if t not in self.rows]
        if not new:
            return
        for text in new:
            self.rows[text] = len(self.rows)
        self._blocks.append(_matrix(new))
        self._matrix = None

    @property
    def matrix(self) -> Any:
        from scipy import sparse

        if self._matrix is None:
            self._matrix = sparse.vstack(self._blocks, format="csr")
        return self._matrix

    def differences(self, pairs: Sequence[tuple[str, str]]) -> Any:
        """The sparse matrix of ``f(chosen) - f(rejected)``, a row per pair."""
        self.add(text for pair in pairs for text in pair)
        first = [self.rows[a] for a, _ in pairs]
        second = [self.rows[b] for _, b in pairs]
        return self.matrix[first] - self.matrix[second]


@dataclass(frozen=True)
class RewardModel:
    """Fitted weights: ``score`` a text, ``prefers`` the first of two."""

    weights: Any
    pairs: int
    """Pairs it was fit on."""

    def score(self, text: str) -> float:
        return float(sum(self.weights[c] * v for c, v in features(text).items()))

    def scores(self, texts: Sequence[str]) -> Any:
        """The rewards of ``texts``, an array: a few texts (a reranker's candidates) through
        ``_few_rows``, many through one feature matrix."""
        if not texts:
            return np.zeros(0)
        if len(texts) <= FEW:
            return np.array([
                float(values @ self.weights[columns]) for columns, values in _few_rows(texts)
            ])  # fmt: skip
        return _matrix(texts) @ self.weights

    def margins(self, pairs: Sequence[tuple[str, str]], encoded: Encoded | None = None) -> Any:
        """``r(first) - r(second)`` of each pair."""
        if not pairs:
            return np.zeros(0)
        return (encoded or Encoded()).differences(pairs) @ self.weights


def fit(
    pairs: Sequence[tuple[str, str]], *, l2: float = L2, encoded: Encoded | None = None
) -> RewardModel:
    """The weights that best explain ``pairs`` (chosen, rejected): each chosen side preferred.
    ``encoded``: texts encoded already (their features are not computed again)."""
    from scipy import sparse
    from scipy.optimize import minimize
    from scipy.special import expit

    if not pairs:
        return RewardModel(np.zeros(DIMENSIONS + SHAPE), 0)
    whole = (encoded or Encoded()).differences(pairs)
    n = whole.shape[0]
    # Fit over the columns some difference holds only: any other weight has a zero gradient from
    # its zero start and stays zero, so the weights found are the same, but L-BFGS-B's own work
    # each iteration grows with the columns (over all 2^18 it was 3/4 of a fit's time).
    held = np.bincount(whole.indices, minlength=whole.shape[1]) > 0
    columns = np.flatnonzero(held)
    x = sparse.csr_matrix((whole.data, (np.cumsum(held) - 1)[whole.indices], whole.indptr),
                          shape=(n, len(columns)))  # fmt: skip
    xt = x.T.tocsr()  # the gradient's product, each iteration: faster row-major

    def loss(w: Any) -> tuple[float, Any]:
        margin = x @ w
        # -log sigmoid(m) = log(1 + exp(-m)), computed without overflow.
        value = float(np.sum(np.logaddexp(0.0, -margin)) / n + l2 * (w @ w) / (2 * n))
        gradient = -(xt @ expit(-margin)) / n + l2 * w / n
        return value, gradient

    found = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B",
                     options={"maxiter": MAX_ITERATIONS})  # fmt: skip
    weights = np.zeros(DIMENSIONS + SHAPE)
    weights[columns] = found.x
    return RewardModel(weights, n)
