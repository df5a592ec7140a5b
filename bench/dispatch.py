#!/usr/bin/env python3
"""Dispatch recommendation: accuracy and time on the held-out utterances (issue 4, point 3).

Builds the recommender from the demo directory (``routing/data/directory/``) and the
colloquial vocabulary (``routing/data/``), teaches it the tune split
(``tests/data/dispatch_utterances_tune.csv``, standing in for dispatch history) and
recommends for each utterance of the held-out split, with the utterance's county and
township as the call-taker's location. It prints top-1 and top-3 accuracy for the item and
for the department, and the milliseconds per recommendation (p50/p99), for the full method
("full": ranked by department, the default; "items": the same scores in plain item order)
and, in the same run, for the baseline: plain BM25 over the directory's own words (no
vocabulary, no n-grams, no learning). It says how long the index and the model took to
build and the process's peak resident memory before and after.

**Department accuracy.** A recommendation's department is its item resolved for the
utterance's location by the directory's rule. It is right when it is the department the
labelled item resolves to for that location. When the county is unknown, a county or
township item resolves to "ask the caller": the call-taker would be asked, which counts as
right when the labelled item would also have to be asked (it is county or township level)
and wrong when the labelled item is a city item (that order could have gone straight out).
Top-3: any of the first three is right.

    .venv/bin/python bench/dispatch.py              # held-out figures and the baseline
    .venv/bin/python bench/dispatch.py --errors     # and the held-out misses
    .venv/bin/python bench/dispatch.py --cv 5       # tuning: k-fold on the tune split only
    .venv/bin/python bench/dispatch.py --cv 5 --weights expansion=0.5,learned=2

It reports and never asserts a time.
"""

from __future__ import annotations

import argparse
import csv
import resource
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from routing.dispatch import DispatchIndex, DispatchRecommender, Weights  # noqa: E402
from routing.dispatch_directory import Directory, parse_directory  # noqa: E402
from routing.dispatch_places import Location  # noqa: E402
from routing.dispatch_vocabulary import Vocabulary, parse_vocabulary  # noqa: E402

DATA = ROOT / "routing" / "data"
UTTERANCES = ROOT / "tests" / "data"


@dataclass(frozen=True)
class Utterance:
    text: str
    item_code: str
    location: Location


@dataclass
class Figures:
    n: int = 0
    item1: int = 0
    item3: int = 0
    dept1: int = 0
    dept3: int = 0
    county_found: int = 0
    county_wrong: int = 0
    with_county: int = 0

    def line(self, name: str, times: list[float]) -> str:
        pct = lambda k: f"{100 * k / self.n:5.1f}%"  # noqa: E731
        p50 = statistics.median(times)
        p99 = sorted(times)[min(len(times) - 1, int(0.99 * len(times)))]
        return (
            f"{name:<10} item top-1 {pct(self.item1)}  top-3 {pct(self.item3)}   "
            f"department top-1 {pct(self.dept1)}  top-3 {pct(self.dept3)}   "
            f"{p50:5.2f} ms p50  {p99:5.2f} ms p99"
        )


def load_directory() -> Directory:
    d = DATA / "directory"
    return parse_directory(
        *(
            d.joinpath(name).read_text(encoding="utf-8")
            for name in ("categories.csv", "departments.csv", "items.csv")
        )
    )


def load_vocabulary() -> Vocabulary:
    return parse_vocabulary(
        (DATA / "vocabulary.csv").read_text(encoding="utf-8"),
        (DATA / "places.csv").read_text(encoding="utf-8"),
    )


def load_utterances(split: str) -> list[Utterance]:
    path = UTTERANCES / f"dispatch_utterances_{split}.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        return [
            Utterance(
                r["text"],
                r["item_code"],
                Location(r["county"] or None, r["township"] or None),
            )
            for r in csv.DictReader(fh)
        ]


def evaluate(
    recommender: DispatchRecommender,
    utterances: list[Utterance],
    errors: bool = False,
    by_department: bool = True,
) -> tuple[Figures, list[float]]:
    figures, times = Figures(), []
    resolver, directory = recommender.index.resolver, recommender.index.directory
    for u in utterances:
        started = time.perf_counter()
        result = recommender.recommend(u.text, u.location, by_department=by_department)
        times.append((time.perf_counter() - started) * 1000)
        expected = resolver.resolve(directory.item(u.item_code), u.location)
        codes = [r.item.code for r in result.items]
        departments = [
            (r.resolution.department_code, r.resolution.is_resolved) for r in result.items
        ]
        right = (expected.department_code, expected.is_resolved)
        figures.n += 1
        figures.item1 += codes[:1] == [u.item_code]
        figures.item3 += u.item_code in codes
        figures.dept1 += departments[:1] == [right]
        figures.dept3 += right in departments
        if u.location.county:
            figures.with_county += 1
            found = recommender.index.places.find(recommender.index.analyzer.clean(u.text))
            county = found.location.county
            figures.county_found += county == u.location.county
            figures.county_wrong += county is not None and county != u.location.county
        if errors and departments[:1] != [right]:
            top = result.items[0]
            print(
                f"  MISS {u.item_code} {directory.item(u.item_code).title} "
                f"<- {top.item.code} {top.item.title} {top.matched_words}: {u.text}"
            )
    return figures, times


def cross_validate(
    directory: Directory, vocabulary: Vocabulary, folds: int, errors: bool, weights: Weights
) -> None:
    tune = load_utterances("tune")
    full = DispatchRecommender.build(directory, vocabulary, weights)
    total, plain, times = Figures(), Figures(), []
    for k in range(folds):
        train = [u for i, u in enumerate(tune) if i % folds != k]
        test = [u for i, u in enumerate(tune) if i % folds == k]
        taught = full.learn((u.text, u.item_code) for u in train)
        figures, fold_times = evaluate(taught, test, errors)
        times += fold_times
        add(total, figures)
        add(plain, evaluate(taught, test, by_department=False)[0])
    print(f"{folds}-fold cross-validation on the tune split ({total.n} utterances)")
    print(plain.line("items", times))
    print(total.line("full", times))


def add(total: Figures, figures: Figures) -> None:
    for name in vars(total):
        setattr(total, name, getattr(total, name) + getattr(figures, name))


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def weights_from(text: str) -> Weights:
    """``Weights`` with the named fields changed: ``expansion=0.7,learned=2``."""
    changes = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in Weights.__dataclass_fields__:
            raise argparse.ArgumentTypeError(f"no weight {name!r}")
        changes[name] = float(value)
    return replace(Weights(), **changes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--errors", action="store_true", help="list the department misses")
    parser.add_argument("--cv", type=int, metavar="K", help="k-fold on the tune split only")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (default 3)")
    parser.add_argument(
        "--weights",
        type=weights_from,
        default=Weights(),
        metavar="NAME=VALUE,...",
        help="the full method's weights, e.g. expansion=0.7,learned=2 (tuning)",
    )
    args = parser.parse_args()

    import logging

    logging.getLogger("jieba").setLevel(logging.WARNING)
    directory, vocabulary = load_directory(), load_vocabulary()
    if args.cv:
        cross_validate(directory, vocabulary, args.cv, args.errors, args.weights)
        return 0

    tune, heldout = load_utterances("tune"), load_utterances("heldout")
    rss_before = peak_rss_mb()
    started = time.perf_counter()
    index = DispatchIndex(directory, vocabulary, args.weights)
    indexed = time.perf_counter()
    full = DispatchRecommender(index, ((u.text, u.item_code) for u in tune))
    learnt = time.perf_counter()
    rss_after = peak_rss_mb()
    baseline = DispatchRecommender.build(
        directory,
        weights=replace(Weights(), ngrams=0.0, learned=0.0, precedent=0.0, expansion=0.0),
    )
    print(
        f"held-out: {len(heldout)} utterances ({len(tune)} tune utterances learnt); "
        f"directory: {len(directory.items)} items, {len(directory.departments)} departments; "
        f"index built in {indexed - started:.1f} s, model trained in {learnt - indexed:.1f} s; "
        f"peak RSS {rss_before:.0f} MB before, {rss_after:.0f} MB after"
    )
    runs = (
        ("baseline", baseline, False),  # plain BM25, items in score order
        ("items", full, False),  # the full method, items in score order
        ("full", full, True),  # the full method, ranked by department (the default)
    )
    for name, recommender, by_department in runs:
        times: list[float] = []
        for round_ in range(args.rounds):
            figures, round_times = evaluate(
                recommender,
                heldout,
                errors=args.errors and round_ == 0 and name == "full",
                by_department=by_department,
            )
            times += round_times
        print(figures.line(name, times))
    print(
        f"places: county found in the text for {figures.county_found} of "
        f"{figures.with_county} utterances with a county (wrong county: {figures.county_wrong})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
