"""Dispatch recommendation: which directory items a call-taker's summary is about, and
which department each goes to for the caller's location (issue 4, point 3).

The ranking adds three scores per item, each scaled so that the best item of the query
scores 1, and the precedents (weighted by ``Weights``):

1. **words**: BM25 over the item's title, keywords and description, segmented by jieba.
   The query is the summary's words, the directory words written in it (found as
   substrings, so jieba's cut does not hide them; a two-character word only where jieba
   did not cut between its characters) and the vocabulary's expansion: what callers say
   (煤气味, 没暖气) brings in the directory's words (燃气泄漏, 停暖), weighed below a word
   the caller said (``Weights.expansion``);
2. **n-grams**: BM25 over character 2- and 3-grams, for words nobody listed and for
   misspellings the vocabulary does not know yet;
3. **learned**: ``HistoryModel``, the cosine with each item's centroid of the directory's
   own words and the labelled examples given to ``learn`` (dispatched orders, upheld
   objections); plus **precedents**: earlier summaries nearly the same as this one count
   for the item they went to, so a phrasing the call-takers keep sending somewhere goes
   there.

``recommend`` then ranks by department (``by_department``, the default): the items near
the top vote for the department they resolve to, the first recommendation is the best
item of the department with most weight, and the last of three or more comes from a
department the others do not cover.

``DispatchIndex`` is built once from the directory and the vocabulary (the jieba
tokenizer, both BM25 indexes, the phrase finders, the place finder, the department
resolver) and shared by every ``DispatchRecommender`` made from it; ``learn`` returns a
new recommender with the model retrained, the index reused.
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
from routing.dispatch_text import PhraseFinder, TextAnalyzer, char_ngrams, cuts_of
from routing.dispatch_vocabulary import Vocabulary


@dataclass(frozen=True, slots=True)
class Weights:
    """How the parts of the ranking add up; the defaults are tuned on the tune split."""

    words: float = 1.0
    ngrams: float = 0.5
    learned: float = 3.0
    title: float = 2.0  # field weights of the word index
    keywords: float = 2.0
    description: float = 1.0
    expansion: float = 0.7  # a vocabulary word against a word the caller said
    example_weight: float = 1.0  # a labelled example against an item's own words
    precedent: float = 1.0  # per earlier summary nearly the same as this one (see the model)
    precedent_similarity: float = 0.8  # the cosine from which a summary is nearly the same
    department_temperature: float = 0.5  # how far below the best item an item still votes


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
        self.code_rank = np.argsort(np.argsort(self.codes, kind="stable"), kind="stable")
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
        # What callers say and what it means, written as the cleaned summary is (case and
        # width folded, misspellings corrected), so KTV吵 is found in "ktv吵得".
        clean = self.analyzer.clean
        synonyms = {
            (clean(heard), tuple(clean(w) for w in means)) for heard, means in vocabulary.synonyms
        }
        self.synonyms = tuple(
            sorted(((h, m) for h, m in synonyms if h), key=lambda s: (-len(s[0]), s))
        )
        self.known_finder = PhraseFinder(self.known_words)
        self.meanings: dict[str, tuple[str, ...]] = {}
        for heard, means in self.synonyms:
            known = self.meanings.get(heard, ())
            self.meanings[heard] = known + tuple(w for w in means if w not in known)
        self.heard_finder = PhraseFinder(self.meanings)
        self.places = PlaceFinder(vocabulary.places)
        self.resolver = DepartmentResolver(directory)

    @staticmethod
    def item_text(item: Item) -> str:
        return " ".join([item.title, item.title, *item.keywords, item.description])

    def _document(self, item: Item) -> Counter[str]:
        w, doc = self.weights, Counter[str]()
        tokens = self.analyzer.tokens
        title = self.analyzer.clean(item.title)  # as the vocabulary's words are: 酒吧ktv噪音扰民
        doc[title] += w.title
        for token in tokens(title):
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
        pieces = self.analyzer.segment(clean)
        cuts = cuts_of(pieces)
        for token in self.analyzer.tokens(clean, pieces):
            words[token] = 1.0
        for word in self.known_finder.find(clean, cuts):
            words[word] = 1.0
        heard: dict[str, str] = {}
        added: list[str] = []
        # Longest first: the longest phrase heard names the word's source.
        for phrase in sorted(self.heard_finder.find(clean, cuts), key=lambda h: (-len(h), h)):
            for word in self.meanings[phrase]:
                if word not in words:
                    words[word] = self.weights.expansion
                    heard.setdefault(word, phrase)
                    added.append(word)
        return _Query(clean, words, heard, " ".join([clean, *added]))


_CANDIDATES = 60  # the items near the top that vote for their department


def _department_key(resolution: Resolution) -> tuple[str | None, bool]:
    """What the call-taker dispatches to: the department, or "ask the county first"."""
    return (resolution.department_code, resolution.is_resolved)


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
                similar=w.precedent_similarity,
            )
            if w.learned or w.precedent
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
            cosine, precedents = self.model.scores(query.model_text)
            total += w.learned * _scaled(cosine) + w.precedent * precedents
        return query, total

    def recommend(
        self,
        summary: str,
        location: Location | None = None,
        *,
        limit: int = 3,
        by_department: bool = True,
    ) -> Recommendations:
        """The best ``limit`` items for the summary, each resolved for the location.

        A location that gives no county unit is completed from the place names in the
        summary (a given township without its county is kept only if the text agrees).

        ``by_department`` (the default) ranks what the call-taker dispatches to: the items
        near the top vote for the department they resolve to (each with a weight that
        falls off with its distance below the best item, ``Weights.department_temperature``),
        the first recommendation is the best item of the department with most weight, and
        when three or more are asked for the last one is the best item of a department the
        others do not already cover, so the list offers a second department. With
        ``by_department=False`` the items come in plain score order.
        """
        query, total = self.scores(summary)
        found = self.index.places.find(query.clean)
        from_text = location is None or location.county is None
        used = found.location if from_text else location
        assert used is not None
        ranked = np.lexsort((self.index.code_rank, -total))
        order = [int(i) for i in ranked[: max(_CANDIDATES, limit)]]
        resolve = self.index.resolver.resolve
        resolutions = {i: resolve(self.index.items[i], used) for i in order}
        picked = (
            self._by_department(order, total, resolutions, limit)
            if by_department
            else order[:limit]
        )
        return Recommendations(
            tuple(
                Recommendation(
                    item=self.index.items[i],
                    score=round(float(total[i]), 6),
                    matched_words=self._matched(query, i),
                    resolution=resolutions[i],
                )
                for i in picked
            ),
            used,
            from_text,
            tuple(p.name for p in found.places),
        )

    def _by_department(
        self,
        order: list[int],
        total: np.ndarray,
        resolutions: dict[int, Resolution],
        limit: int,
    ) -> list[int]:
        """The candidates' positions in the order described in ``recommend``."""
        if limit <= 0 or not order:
            return []
        temperature = self.index.weights.department_temperature
        best = float(total[order[0]])
        weight: dict[tuple[str | None, bool], float] = {}
        for i in order:
            key = _department_key(resolutions[i])
            share = np.exp((float(total[i]) - best) / temperature) if temperature > 0 else 0.0
            weight[key] = weight.get(key, 0.0) + float(share)
        # Departments by weight; ties go to the one whose best item comes first.
        departments = sorted(weight, key=lambda k: -weight[k])
        first = next(i for i in order if _department_key(resolutions[i]) == departments[0])
        picked = [first, *(i for i in order if i != first)][:limit]
        if limit >= 3:
            covered = {_department_key(resolutions[i]) for i in picked[:-1]}
            other = next((k for k in departments if k not in covered), None)
            if other is not None and _department_key(resolutions[picked[-1]]) in covered:
                picked[-1] = next(i for i in order if _department_key(resolutions[i]) == other)
        return picked

    def _matched(self, query: _Query, position: int) -> tuple[str, ...]:
        terms = self.index.item_terms[position]
        hits = [word for word in query.words if word in terms]
        # Longer words first: 燃气泄漏 says more than 燃气; then as heard.
        hits.sort(key=lambda word: -len(word))
        return tuple(
            f"{query.heard[word]}→{word}" if word in query.heard else word for word in hits
        )
