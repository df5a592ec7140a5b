"""The shipped colloquial vocabulary, place names and labelled utterances against the demo
directory: what the knowledge editors maintain must point at things the directory has."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from pathlib import Path

import pytest

from routing.dispatch_directory import Directory, Level, parse_directory
from routing.dispatch_text import normalise
from routing.dispatch_vocabulary import PlaceKind, Vocabulary, parse_vocabulary

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "routing" / "data"
TUNE = ROOT / "tests" / "data" / "dispatch_utterances_tune.csv"
COUNTIES = {"城关区", "堆龙德庆区", "达孜区", "林周县", "当雄县", "尼木县", "曲水县", "墨竹工卡县"}
CODE = re.compile(r"C\d\d-\d{3}")


@pytest.fixture(scope="module")
def directory() -> Directory:
    folder = DATA / "directory"
    return parse_directory(
        *(
            (folder / name).read_text(encoding="utf-8")
            for name in ("categories.csv", "departments.csv", "items.csv")
        )
    )


@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    return parse_vocabulary(
        (DATA / "vocabulary.csv").read_text(encoding="utf-8"),
        (DATA / "places.csv").read_text(encoding="utf-8"),
    )


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def directory_words(directory: Directory) -> set[str]:
    return {w for item in directory.items for w in (item.title, *item.keywords)}


def test_every_synonym_means_words_of_the_directory(directory, vocabulary) -> None:
    words = directory_words(directory)
    strays = [(heard, w) for heard, means in vocabulary.synonyms for w in means if w not in words]

    assert not strays


def test_a_phrase_is_listed_once_per_kind() -> None:
    listed = Counter((r["kind"], r["heard"]) for r in rows(DATA / "vocabulary.csv"))

    assert [key for key, n in listed.items() if n > 1] == []


def test_notes_name_items_the_directory_has(directory) -> None:
    codes = {item.code for item in directory.items}
    named = {code for r in rows(DATA / "vocabulary.csv") for code in CODE.findall(r["note"])}

    assert named and named <= codes


def test_the_vocabulary_speaks_for_every_item(directory) -> None:
    named = {code for r in rows(DATA / "vocabulary.csv") for code in CODE.findall(r["note"])}

    assert {item.code for item in directory.items} <= named


def test_misspellings_never_change_a_directory_word(directory, vocabulary) -> None:
    words = directory_words(directory)
    for word in words:
        folded = normalise(word)
        assert normalise(word, vocabulary.misspellings, words) == folded, word


def test_a_correction_is_not_itself_corrected(vocabulary) -> None:
    wrongs = {wrong for wrong, _ in vocabulary.misspellings}

    assert not [right for _, right in vocabulary.misspellings if right in wrongs]


def test_places_lie_in_the_directorys_county_units(directory, vocabulary) -> None:
    townships = {d.township for d in directory.departments if d.level is Level.TOWNSHIP}
    for place in vocabulary.places:
        assert place.county in COUNTIES | {None}, place
        if place.kind is PlaceKind.COUNTY:
            assert place.county is not None and place.township is None, place
        if place.township is not None:
            assert place.county is not None, place
            assert place.township.endswith(("街道", "镇", "乡")), place
    # Every street and township office of the directory can be found by its name.
    names = {place.township for place in vocabulary.places}
    assert townships <= names


def test_place_names_are_unique() -> None:
    names = Counter(r["name"] for r in rows(DATA / "places.csv"))

    assert [name for name, n in names.items() if n > 1] == []


def test_tune_utterances_are_labelled_with_items_and_places_of_the_directory(
    directory, vocabulary
) -> None:
    codes = {item.code for item in directory.items}
    utterances = rows(TUNE)
    townships = {place.township for place in vocabulary.places} - {None}

    assert len(utterances) >= 1000
    assert not [u for u in utterances if u["item_code"] not in codes]
    assert not [u for u in utterances if u["county"] and u["county"] not in COUNTIES]
    assert not [u for u in utterances if u["township"] and not u["county"]]
    assert not [u for u in utterances if u["township"] and u["township"] not in townships]
    assert [t for t, n in Counter(u["text"] for u in utterances).items() if n > 1] == []


def test_the_tune_utterances_reach_every_category_and_the_urgent_items(directory) -> None:
    said = Counter(u["item_code"] for u in rows(TUNE))
    categories = Counter(code[:3] for code in said.elements())

    assert {c.code for c in directory.categories} <= set(categories)
    assert min(categories.values()) >= 40
    urgent = [item.code for item in directory.items if item.is_urgent]
    assert all(said[code] >= 2 for code in urgent)
