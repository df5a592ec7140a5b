"""Okapi BM25 over a fixed set of documents, each a bag of weighted terms.

Built once; ``scores`` returns one score per document for a bag of query terms (a term
asked twice counts twice, so expansion can weigh a term). Pure Python with an inverted
index: a query costs the postings of its terms, not the number of documents.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence


class BM25Index:
    def __init__(
        self, documents: Sequence[Mapping[str, float]], k1: float = 1.2, b: float = 0.75
    ) -> None:
        self.size = len(documents)
        lengths = [sum(doc.values()) for doc in documents]
        average = (sum(lengths) / self.size) if self.size else 0.0
        postings: dict[str, list[tuple[int, float]]] = {}
        for position, doc in enumerate(documents):
            norm = k1 * (1 - b + b * lengths[position] / average) if average else k1
            for term in sorted(doc):
                tf = doc[term]
                # The term's whole BM25 weight for this document, idf applied below.
                postings.setdefault(term, []).append((position, tf * (k1 + 1) / (tf + norm)))
        self.postings: dict[str, tuple[tuple[int, float], ...]] = {}
        self.idf: dict[str, float] = {}
        for term, hits in postings.items():
            df = len(hits)
            self.idf[term] = math.log(1 + (self.size - df + 0.5) / (df + 0.5))
            self.postings[term] = tuple(hits)

    def __contains__(self, term: str) -> bool:
        return term in self.postings

    def scores(self, terms: Mapping[str, float] | Counter[str]) -> list[float]:
        """The BM25 score of every document for the query (one weight per query term)."""
        result = [0.0] * self.size
        for term in sorted(terms):
            hits = self.postings.get(term)
            if hits is None:
                continue
            weight = self.idf[term] * terms[term]
            for position, part in hits:
                result[position] += weight * part
        return result
