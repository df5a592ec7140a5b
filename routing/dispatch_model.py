"""Learning from dispatch history: a linear model over character n-grams.

Every dispatched order (and every upheld objection, with the item it was re-dispatched to)
is a labelled example: the summary and the right item. The model is trained on those
examples together with one pseudo-example per directory item (its own words), so it knows
every item from the start and history shifts it towards the way callers speak. A linear
SVM (scikit-learn's ``LinearSVC``, one-vs-rest) over TF-IDF of character 1–3-grams: fast
to train on thousands of examples, a sparse dot product to apply, and deterministic.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC


class HistoryModel:
    """Scores of every item (in the order of ``codes``) for a cleaned summary."""

    def __init__(
        self,
        codes: Sequence[str],
        item_texts: Sequence[str],
        examples: Sequence[tuple[str, str]],
        example_weight: float = 3.0,
        c: float = 0.5,
    ) -> None:
        self.codes = tuple(codes)
        position = {code: i for i, code in enumerate(self.codes)}
        texts = [*item_texts, *(text for text, _ in examples)]
        labels = [*range(len(self.codes)), *(position[code] for _, code in examples)]
        weights = [1.0] * len(item_texts) + [example_weight] * len(examples)
        self.vectorizer = TfidfVectorizer(
            analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=1
        )
        matrix = self.vectorizer.fit_transform(texts)
        self.classifier = LinearSVC(C=c, max_iter=5000, random_state=0)
        with warnings.catch_warnings():
            # One class per item, so there are always "many classes for the samples".
            warnings.filterwarnings("ignore", message="The number of unique classes")
            self.classifier.fit(matrix, labels, sample_weight=weights)
        # Class i of the classifier is item i: every item has its pseudo-example.
        assert list(self.classifier.classes_) == list(range(len(self.codes)))

    def scores(self, clean_text: str) -> np.ndarray:
        """One decision value per item, higher is likelier."""
        vector = self.vectorizer.transform([clean_text])
        return self.classifier.decision_function(vector)[0]
