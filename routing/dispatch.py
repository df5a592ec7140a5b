"""Dispatch recommendation: which directory items a call-taker's summary is about, and
which department each goes to for the caller's location (issue 4, point 3).

The ranking adds three scores per item, each scaled so that the best item of the query
scores 1 (the learned one is the model's decision value):

1. **words**: BM25 over the item's title, keywords and description, segmented by jieba.
   The query is the summary's words, the directory words written in it (found as
   substrings, so jieba's cut does not hide them) and the vocabulary's expansion: what
   callers say (煤气味, 没暖气) brings in the directory's words (燃气泄漏, 停暖);
2. **n-grams**: BM25 over character 2- and 3-grams, for words nobody listed and for
   misspellings the vocabulary does not know yet;
3. **learned**: ``HistoryModel``, trained on the directory's own words plus the labelled
   examples given to ``learn`` (dispatched orders, upheld objections).

``DispatchIndex`` is built once from the directory and the vocabulary (the jieba
tokenizer, both BM25 indexes, the place finder, the department resolver) and shared by
every ``DispatchRecommender`` made from it; ``learn`` returns a new recommender with the
model retrained, the index reused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from routing.dispatch_bm25 import BM25Index
from routing.dispatch_departments import DepartmentResolver, Resolution, Resolved
from routing.dispatch_directory import Directory, Item
from routing.dispatch_model import HistoryModel
from routing.dispatch_places import Location, PlaceFinder
from routing.dispatch_text import TextAnalyzer, char_ngrams
from routing.dispatch_vocabulary import Vocabulary


@dataclass(frozen=True, slots=True)
class Weights:
    """How the parts of the ranking add up; the defaults are tuned on the tune split."""

    words: float = 1.0
    ngrams: float = 0.6
    learned: float = 1.0
    title: float = 2.0  # field weights of the word index
    keywords: float = 2.0
    description: float = 1.0
    expansion: float = 1.0  # a vocabulary word against a word the caller said
    example_weight: float = 3.0  # a labelled example against an item's own words
    c: float = 0.5  # the linear model's regularisation (LinearSVC's C)


DEFAULT_WEIGHTS = Weights()
NO_VOCABULARY = Vocabulary()


@dataclass(frozen=True, slots=True)
class Recommendation:
    item: Item
    score: float
    matched_words: tuple[str, ...]  # why: directory words hit, "heard→word" via the vocabulary
    resolution: Resolution

    @property
    def is_urgent(self) -> bool:
        return self.item.is_urgent

    @property
    def department_code(self) -> str | None:
        return self.resolution.department_code


@dataclass(frozen=True, slots=True)
class Recommendations:
    items: tuple[Recommendation, ...]
    location: Location  # the one used: given, or found in the summary
    location_from_text: bool
    places: tuple[str, ...]  # the place names found in the summary

    @property
    def asks_county(self) -> bool:
        """The call-taker must ask the caller's county unit before dispatching the first."""
        return bool(self.items) and self.items[0].resolution.how is Resolved.ASK_COUNTY


@dataclass(frozen=True, slots=True)
class _Query:
    clean: str
    words: Counter[str]
    heard: dict[str, str]  # directory word -> the caller's words that brought it in
    model_text: str


class DispatchIndex:
    """Everything about the directory and the vocabulary that a query needs, built once."""

    def __init__(
        self,
        directory: Directory,
        vocabulary: Vocabulary = NO_VOCABULARY,
        weights: Weights = DEFAULT_WEIGHTS,
    ) -> None:
        self.directory = directory
        self.vocabulary = vocabulary
        self.weights = weights
        self.items = directory.items
        self.codes = tuple(item.code for item in self.items)
        keywords = {k for item in self.items for k in item.keywords}
        titles = {item.title for item in self.items}
        expansions = {w for _, means in vocabulary.synonyms for w in means}
        phrases = {heard for heard, _ in vocabulary.synonyms}
        places = {p.name for p in vocabulary.places}
        self.analyzer = TextAnalyzer(
            words=keywords | titles | expansions | phrases | places,
            fillers=vocabulary.fillers,
            misspellings=vocabulary.misspellings,
        )
        documents = [self._document(item) for item in self.items]
        self.item_terms = [frozenset(doc) for doc in documents]
        self.words = BM25Index(documents)
        self.known_words = tuple(sorted(w for w in self.words.postings if len(w) > 1))
        self.ngrams = BM25Index([Counter(char_ngrams(self.item_text(i))) for i in self.items])
        self.synonyms = tuple(sorted(vocabulary.synonyms, key=lambda s: (-len(s[0]), s)))
        self.places = PlaceFinder(vocabulary.places)
        self.resolver = DepartmentResolver(directory)

    @staticmethod
    def item_text(item: Item) -> str:
        return " ".join([item.title, item.title, *item.keywords, item.description])

    def _document(self, item: Item) -> Counter[str]:
        w, doc = self.weights, Counter[str]()
        tokens = self.analyzer.tokens
        doc[item.title] += w.title
        for token in tokens(self.analyzer.clean(item.title)):
            doc[token] += w.title
        for keyword in item.keywords:
            keyword = self.analyzer.clean(keyword)
            doc[keyword] += w.keywords
            for token in tokens(keyword):
                if token != keyword:
                    doc[token] += w.keywords / 2
        for token in tokens(self.analyzer.clean(item.description)):
            doc[token] += w.description
        return doc

    def query(self, summary: str) -> _Query:
        clean = self.analyzer.clean(summary)
        words: Counter[str] = Counter()
        for token in self.analyzer.tokens(clean):
            words[token] = 1.0
        for word in self.known_words:
            if word in clean:
                words[word] = 1.0
        heard: dict[str, str] = {}
        added: list[str] = []
        for phrase, means in self.synonyms:
            if phrase in clean:
                for word in means:
                    if word not in words:
                        words[word] = self.weights.expansion
                        heard.setdefault(word, phrase)
                        added.append(word)
        return _Query(clean, words, heard, " ".join([clean, *added]))


def _scaled(values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    top = float(array.max()) if array.size else 0.0
    return array / top if top > 0 else array


class DispatchRecommender:
    def __init__(self, index: DispatchIndex, examples: Iterable[tuple[str, str]] = ()) -> None:
        self.index = index
        known = set(index.codes)
        self.examples = tuple((text, code) for text, code in examples if code in known)
        w = index.weights
        self.model = (
            HistoryModel(
                index.codes,
                [index.analyzer.clean(index.item_text(item)) for item in index.items],
                [(index.query(text).model_text, code) for text, code in self.examples],
                example_weight=w.example_weight,
                c=w.c,
            )
            if w.learned
            else None  # weighed at 0: not trained
        )

    @classmethod
    def build(
        cls,
        directory: Directory,
        vocabulary: Vocabulary = NO_VOCABULARY,
        weights: Weights = DEFAULT_WEIGHTS,
        examples: Iterable[tuple[str, str]] = (),
    ) -> DispatchRecommender:
        return cls(DispatchIndex(directory, vocabulary, weights), examples)

    def learn(self, examples: Iterable[tuple[str, str]]) -> DispatchRecommender:
        """A recommender that has also learnt these (summary, item code) pairs.

        Codes the directory does not have (an item since removed) are skipped.
        """
        return DispatchRecommender(self.index, [*self.examples, *examples])

    def scores(self, summary: str) -> tuple[_Query, np.ndarray]:
        index, w = self.index, self.index.weights
        query = index.query(summary)
        total = w.words * _scaled(index.words.scores(query.words))
        if w.ngrams:
            total += w.ngrams * _scaled(index.ngrams.scores(Counter(char_ngrams(query.clean))))
        if self.model is not None:
            total += w.learned * self.model.scores(query.model_text)
        return query, total

    def recommend(
        self, summary: str, location: Location | None = None, *, limit: int = 3
    ) -> Recommendations:
        """The best ``limit`` items for the summary, each resolved for the location.

        A location that gives no county unit is completed from the place names in the
        summary (a given township without its county is kept only if the text agrees).
        """
        query, total = self.scores(summary)
        found = self.index.places.find(query.clean)
        from_text = location is None or location.county is None
        used = found.location if from_text else location
        assert used is not None
        order = sorted(range(len(total)), key=lambda i: (-total[i], self.index.codes[i]))
        picked = []
        for i in order[:limit]:
            item = self.index.items[i]
            picked.append(
                Recommendation(
                    item=item,
                    score=round(float(total[i]), 6),
                    matched_words=self._matched(query, i),
                    resolution=self.index.resolver.resolve(item, used),
                )
            )
        return Recommendations(tuple(picked), used, from_text, tuple(p.name for p in found.places))

    def _matched(self, query: _Query, position: int) -> tuple[str, ...]:
        terms = self.index.item_terms[position]
        hits = [word for word in query.words if word in terms]
        # Longer words first: 燃气泄漏 says more than 燃气; then as heard.
        hits.sort(key=lambda word: -len(word))
        return tuple(
            f"{query.heard[word]}→{word}" if word in query.heard else word for word in hits
        )
