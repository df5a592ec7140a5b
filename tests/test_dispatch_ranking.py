"""How the dispatch recommender ranks: phrase finding, misspellings inside directory words,
vocabulary written as the summary is, precedents from history and the ranking by
department. Small directories built here; no database, no timing."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from routing.dispatch import DispatchRecommender, _Query
from routing.dispatch_directory import parse_directory
from routing.dispatch_model import HistoryModel
from routing.dispatch_places import Location
from routing.dispatch_text import PhraseFinder, cuts_of, normalise
from routing.dispatch_vocabulary import parse_vocabulary

logging.getLogger("jieba").setLevel(logging.WARNING)

CATEGORIES = """code,name,description
C01,城乡建设,市容
C02,环境保护,噪声
C11,公用事业,水电气热
"""
DEPARTMENTS = """code,name,level,county,role,phone,sms_contact
D-CITY-CGJ,拉萨市城市管理和综合执法局,city,,城管局,+868910000001,+8613800000001
D-CITY-RQGS,拉萨市燃气有限公司,city,,燃气公司,+868910000002,+8613800000002
D-CGQ-ZFB,城关区人民政府办公室,county,城关区,政府办,+868910000003,+8613800000003
D-CGQ-CGJ,城关区城市管理和综合执法局,county,城关区,城管局,+868910000004,+8613800000004
D-CGQ-GAJ,城关区公安分局,county,城关区,公安局,+868910000005,+8613800000005
"""
ITEMS = """code,category,title,description,keywords,level,role,sla_days,urgent
C01-071,C01,路灯不亮,道路或小巷路灯损坏不亮,路灯|不亮|黑灯|照明|损坏|夜间,county,城管局,3,no
C01-076,C01,垃圾分类指导,生活垃圾分类投放和设施咨询,垃圾分类|分类投放|可回收|厨余垃圾,city,城管局,5,no
C02-008,C02,酒吧KTV噪音扰民,娱乐场所深夜噪音,酒吧|KTV|噪音|娱乐场所|深夜|唱歌,county,公安局,3,no
C11-037,C11,燃气泄漏,闻到燃气味疑似燃气泄漏,燃气泄漏|煤气味|天然气|漏气|气味|危险,city,燃气公司,1,yes
C11-040,C11,燃气费异常,燃气费用异常偏高,燃气费|偏高|异常|账单|气量|扣费,city,燃气公司,5,no
"""
VOCABULARY = """kind,heard,means,note
misspelling,然气,燃气,
synonym,KTV吵,酒吧KTV噪音扰民|噪音,written in capitals
synonym,家装,燃气费异常,a phrase that must not be found across a cut
"""


@pytest.fixture(scope="module")
def recommender() -> DispatchRecommender:
    directory = parse_directory(CATEGORIES, DEPARTMENTS, ITEMS)
    return DispatchRecommender.build(directory, parse_vocabulary(VOCABULARY))


# -- finding phrases ---------------------------------------------------------------------


def test_phrases_are_found_as_substrings_of_every_length() -> None:
    finder = PhraseFinder(["燃气泄漏", "燃气", "泄漏", "路灯"])

    assert finder.find("家里燃气泄漏了") == {"燃气泄漏", "燃气", "泄漏"}
    assert finder.find("") == set()


def test_a_two_character_phrase_is_not_found_across_a_cut() -> None:
    finder = PhraseFinder(["家装", "装修"])
    text = "有一家装修的"

    assert finder.find(text) == {"家装", "装修"}
    assert finder.find(text, cuts_of(["有", "一家", "装修", "的"])) == {"装修"}


def test_cuts_are_the_offsets_between_pieces() -> None:
    assert cuts_of(["有", "一家", "装修"]) == frozenset({1, 3})
    assert cuts_of([]) == frozenset()


def test_the_query_drops_a_vocabulary_phrase_split_by_the_segmenter(recommender) -> None:
    query = recommender.index.query("有一家装修的把碎砖头堆在楼下")

    assert "家装" not in query.heard.values()


# -- misspellings and the vocabulary's own spelling ----------------------------------------


def test_a_misspelling_inside_a_directory_word_is_left_alone(recommender) -> None:
    clean = recommender.index.analyzer.clean

    assert clean("家里天然气漏了") == "家里天然气漏了"
    assert clean("好像然气泄漏了") == "好像燃气泄漏了"
    assert normalise("然气 天然气", [("然气", "燃气")], ["天然气"]) == "燃气 天然气"


def test_vocabulary_phrases_are_matched_as_the_summary_is_written(recommender) -> None:
    for text in ("楼下ＫＴＶ吵到半夜", "楼下ktv吵到半夜", "楼下KTV吵到半夜"):
        top = recommender.recommend(text, Location("城关区")).items[0]
        assert top.item.code == "C02-008", text
        assert "ktv吵→酒吧ktv噪音扰民" in top.matched_words


# -- learning: centroids and precedents ----------------------------------------------------


def test_the_model_scores_the_items_own_words_without_history() -> None:
    model = HistoryModel(["A", "B"], ["路灯 不亮 照明", "燃气 泄漏 漏气"], [])
    cosine, precedents = model.scores("路灯坏了不亮")

    assert cosine[0] > cosine[1] >= 0
    assert not precedents.any()


def test_a_nearly_identical_earlier_summary_is_a_precedent() -> None:
    examples = [("楼下那家烧烤摊天天半夜吵", "B")] * 2 + [("门口路灯不亮", "A")]
    model = HistoryModel(["A", "B"], ["路灯 不亮", "燃气 泄漏"], examples)

    _, same = model.scores("楼下那家烧烤摊天天半夜吵")
    _, near = model.scores("楼下烧烤摊天天半夜吵")
    _, other = model.scores("烧烤摊的油烟太大")

    assert same[1] == pytest.approx(2.0) and same[0] == 0
    assert 0 < near[1] < same[1]
    assert not other.any()


def test_history_that_keeps_sending_a_phrase_to_an_item_wins(recommender) -> None:
    phrase = "楼下那家烧烤摊天天半夜吵"
    taught = recommender.learn([(phrase, "C01-076")] * 3)

    assert taught.recommend(phrase).items[0].item.code == "C01-076"
    assert recommender.recommend(phrase).items[0].item.code != "C01-076"


# -- ranking by department ------------------------------------------------------------------


class _Fixed(DispatchRecommender):
    """The recommender with the items' scores given, to test the ranking alone."""

    def __init__(self, recommender: DispatchRecommender, totals: dict[str, float]) -> None:
        super().__init__(recommender.index)
        self.totals = totals

    def scores(self, summary: str) -> tuple[_Query, np.ndarray]:
        query = self.index.query(summary)
        return query, np.array([self.totals.get(code, 0.0) for code in self.index.codes])


def fixed(recommender: DispatchRecommender, totals: dict[str, float]) -> _Fixed:
    return _Fixed(recommender, totals)


def test_the_department_most_items_point_to_comes_first(recommender) -> None:
    # One street-lamp item scores best, but two gas items close behind both go to the
    # gas company: the gas company is the better bet, and its best item comes first.
    ranked = fixed(recommender, {"C01-071": 3.0, "C11-037": 2.9, "C11-040": 2.85})
    where = Location("城关区")

    by_department = ranked.recommend("随便说点什么", where)
    plain = ranked.recommend("随便说点什么", where, by_department=False)

    assert [r.item.code for r in plain.items] == ["C01-071", "C11-037", "C11-040"]
    assert by_department.items[0].item.code == "C11-037"
    assert by_department.items[0].department_code == "D-CITY-RQGS"


def test_a_clear_best_item_keeps_its_place(recommender) -> None:
    ranked = fixed(recommender, {"C01-071": 3.0, "C11-037": 1.0, "C11-040": 0.9})

    assert ranked.recommend("随便说点什么", Location("城关区")).items[0].item.code == "C01-071"


def test_the_last_of_three_offers_another_department(recommender) -> None:
    ranked = fixed(recommender, {"C11-037": 3.0, "C11-040": 2.9, "C01-076": 1.0, "C01-071": 2.0})
    where = Location("城关区")

    items = ranked.recommend("随便说点什么", where).items
    plain = ranked.recommend("随便说点什么", where, by_department=False).items

    assert [r.item.code for r in plain] == ["C11-037", "C11-040", "C01-071"]
    assert [r.item.code for r in items] == ["C11-037", "C11-040", "C01-071"]
    departments = {r.department_code for r in items}
    assert len(departments) == 2
    # Two asked: no room for a second department, plain order after the first.
    assert [r.item.code for r in ranked.recommend("随便", where, limit=2).items] == [
        "C11-037",
        "C11-040",
    ]


def test_the_third_is_replaced_when_it_repeats_a_department(recommender) -> None:
    ranked = fixed(recommender, {"C01-071": 3.0, "C01-076": 2.0, "C11-037": 1.0})
    # Unknown county: the county street-lamp item means "ask the county first".
    items = ranked.recommend("随便说点什么", Location(), limit=3).items

    assert items[0].item.code == "C01-071" and items[0].department_code is None
    assert {r.item.code for r in items} == {"C01-071", "C01-076", "C11-037"}


def test_asking_for_no_items_gives_none(recommender) -> None:
    assert recommender.recommend("路灯不亮", limit=0).items == ()
