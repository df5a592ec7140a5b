"""The dispatch recommender as the console uses it: built from the current directory
version and the shipped colloquial vocabulary, trained on the dispatch history, and
kept warm in the process.

Building the index and training take seconds, so neither happens on a call-taker's
request once the first one is built: the directory's index is built when the directory
version changes (or the process starts), and the learned model is retrained in a
background thread at most every ``relearn_seconds`` when the history has grown. A
request always gets the newest model that is ready.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy.orm import Session, sessionmaker

from routing.dispatch_places import Location
from routing.dispatch_vocabulary import Vocabulary, parse_vocabulary
from tickets import directory as directory_store
from tickets.dispatch_source import directory_of, examples_digest, learned_examples, order_text
from tickets.models import DirectoryVersion, WorkOrder
from tickets.order_flow import Recommended

if TYPE_CHECKING:  # numpy, scikit-learn and jieba: loaded when a model is first built, so
    # that the processes that never recommend (the webhooks' web tier) do not carry them
    from routing.dispatch import DispatchIndex, DispatchRecommender, Recommendations

log = logging.getLogger(__name__)

ROUTING_DATA = Path(__file__).resolve().parent.parent / "routing" / "data"
RELEARN_SECONDS = 600.0
SERVICE_KEY = "hotline.recommender"


def load_vocabulary(folder: Path = ROUTING_DATA) -> Vocabulary:
    """The colloquial vocabulary and place names the knowledge editors maintain."""
    return parse_vocabulary(
        (folder / "vocabulary.csv").read_text(encoding="utf-8"),
        (folder / "places.csv").read_text(encoding="utf-8"),
    )


# Indexes and trained recommenders are pure functions of their inputs, so one process
# shares them between apps (the tests build many apps over the same demo directory).
_INDEXES: dict[str, DispatchIndex] = {}
_TRAINED: dict[tuple[str, str], DispatchRecommender] = {}
_CACHE_LOCK = threading.Lock()


def _directory_key(version: DirectoryVersion, session: Session) -> tuple[str, Any]:
    directory = directory_of(version, session=session)
    digest = hashlib.sha256(repr(directory).encode()).hexdigest()[:16]
    return digest, directory


def _index_for(version: DirectoryVersion, session: Session) -> tuple[str, DispatchIndex]:
    digest, directory = _directory_key(version, session)
    with _CACHE_LOCK:
        index = _INDEXES.get(digest)
    if index is None:
        from routing.dispatch import DispatchIndex

        started = time.perf_counter()
        index = DispatchIndex(directory, load_vocabulary())
        log.info(
            "dispatch index for directory version %s built in %.1f s",
            version.id,
            time.perf_counter() - started,
        )
        with _CACHE_LOCK:
            _INDEXES[digest] = index
    return digest, index


def _trained(
    digest: str, index: DispatchIndex, examples: list[tuple[str, str]]
) -> DispatchRecommender:
    key = (digest, examples_digest(examples))
    with _CACHE_LOCK:
        recommender = _TRAINED.get(key)
    if recommender is None:
        from routing.dispatch import DispatchRecommender

        started = time.perf_counter()
        recommender = DispatchRecommender(index, examples)
        log.info(
            "dispatch model trained on %d examples in %.1f s",
            len(recommender.examples),
            time.perf_counter() - started,
        )
        with _CACHE_LOCK:
            if len(_TRAINED) > 8:
                _TRAINED.clear()
            _TRAINED[key] = recommender
    return recommender


@dataclass(frozen=True)
class Model:
    version_id: int
    recommender: DispatchRecommender
    trained_at: float  # time.monotonic()


class RecommenderService:
    def __init__(self, sessions: sessionmaker[Session], relearn_seconds: float = RELEARN_SECONDS):
        self._sessions = sessions
        self._relearn_seconds = relearn_seconds
        self._model: Model | None = None
        self._build_lock = threading.Lock()
        self._relearning = threading.Event()

    def model(self) -> Model | None:
        """The model for the current directory version (built now if there is none or
        the directory changed); None when no directory has been imported."""
        with self._sessions() as session:
            version = directory_store.find_current_version(session=session)
            if version is None:
                return None
            model = self._model
            if model is None or model.version_id != version.id:
                with self._build_lock:
                    model = self._model
                    if model is None or model.version_id != version.id:
                        model = self._model = self._build(version, session)
                return model
        if time.monotonic() - model.trained_at > self._relearn_seconds:
            self._relearn_in_background()
        return model

    def relearn(self) -> Model | None:
        """Train on the history as it is now (the background thread, and tests)."""
        with self._sessions() as session:
            version = directory_store.find_current_version(session=session)
            if version is None:
                return None
            model = self._build(version, session)
        with self._build_lock:
            current = self._model
            if current is None or current.version_id == model.version_id:
                self._model = model
        return model

    def _build(self, version: DirectoryVersion, session: Session) -> Model:
        digest, index = _index_for(version, session)
        examples = learned_examples(session=session)
        return Model(version.id, _trained(digest, index, examples), time.monotonic())

    def _relearn_in_background(self) -> None:
        if self._relearning.is_set():
            return
        self._relearning.set()

        def run() -> None:
            try:
                self.relearn()
            except Exception:
                log.exception("retraining the dispatch model failed; the old one stays")
            finally:
                self._relearning.clear()

        threading.Thread(target=run, name="dispatch-relearn", daemon=True).start()


def current_model() -> Model | None:
    """The app's model (None when there is no directory, or the recommender failed: then
    people pick by hand, and the failure is logged)."""
    try:
        return current_app.extensions[SERVICE_KEY].model()
    except Exception:
        log.exception("the dispatch recommender is not available")
        return None


def alternatives(order: WorkOrder, *, excluding: str | None, limit: int = 3) -> list[Recommended]:
    """Where else the order might belong: the recommender's best items whose department
    (for the order's location) is not ``excluding`` (what an objecting department and
    the reviewer see)."""
    model = current_model()
    if model is None:
        return []
    found = recommend(model, order, limit=limit + 6)
    return [
        suggestion
        for suggestion in suggestions_of(found)
        if suggestion.department_code != excluding
    ][:limit]


def suggestions_of(recommendations: Recommendations) -> list[Recommended]:
    """The recommendations as the store keeps them with a dispatch or an objection."""
    return [
        Recommended(
            item_code=r.item.code,
            item_title=r.item.title,
            department_code=r.department_code,
            department_name=r.resolution.department.name if r.resolution.department else None,
            matched_words=r.matched_words,
        )
        for r in recommendations.items
    ]


def location_of(order: WorkOrder) -> Location | None:
    if not order.district:
        return None
    return Location(order.district, order.street or None)


def recommend(model: Model, order: WorkOrder, *, limit: int = 3) -> Recommendations:
    return model.recommender.recommend(
        order_text(order.summary, order.caller_words), location_of(order), limit=limit
    )


def as_json(recommendations: Recommendations) -> dict[str, Any]:
    """What the console shows: the top items, each with its department for the caller's
    location (or why there is none), and the words that matched."""
    return {
        "location": {
            "county": recommendations.location.county,
            "township": recommendations.location.township,
            "from_text": recommendations.location_from_text,
        },
        "places": list(recommendations.places),
        "asks_county": recommendations.asks_county,
        "items": [
            {
                "rank": rank,
                "item_code": r.item.code,
                "item_title": r.item.title,
                "category": r.item.category,
                "is_urgent": r.is_urgent,
                "sla_days": r.item.sla_days,
                "matched_words": list(r.matched_words),
                "department_code": r.department_code,
                "department_name": r.resolution.department.name
                if r.resolution.department
                else None,
                "resolved": r.resolution.how.value,
            }
            for rank, r in enumerate(recommendations.items, start=1)
        ],
    }
