"""The pure dispatch recommender (issue 4, point 3): text, vocabulary, places, departments,
ranking, learning, and the demo directory end to end. No database, no timing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from routing.dispatch import DispatchIndex, DispatchRecommender
from routing.dispatch_departments import DepartmentResolver, Resolved
from routing.dispatch_directory import Directory, Level, parse_directory
from routing.dispatch_places import Location, PlaceFinder
from routing.dispatch_text import char_ngrams, normalise
from routing.dispatch_vocabulary import (
    PlaceKind,
    VocabularyError,
    parse_vocabulary,
)

DATA = Path(__file__).resolve().parents[1] / "routing" / "data"
logging.getLogger("jieba").setLevel(logging.WARNING)

CATEGORIES = """code,name,description
C01,城乡建设,市容
C11,公用事业,水电气热
"""
DEPARTMENTS = """code,name,level,county,role,phone,sms_contact
D-CITY-CGJ,拉萨市城市管理和综合执法局,city,,城管局,+868910000001,+8613800000001
D-CITY-RQGS,拉萨市燃气有限公司,city,,燃气公司,+868910000002,+8613800000002
D-CGQ-ZFB,城关区人民政府办公室,county,城关区,政府办,+868910000003,+8613800000003
D-CGQ-CGJ,城关区城市管理和综合执法局,county,城关区,城管局,+868910000004,+8613800000004
D-CGQ-BKJD,城关区八廓街道办事处,township,城关区,街道办/乡镇政府,+868910000005,+8613800000005
D-DXX-ZFB,当雄县人民政府办公室,county,当雄县,政府办,+868910000006,+8613800000006
D-DXX-CGJ,当雄县综合行政执法局,county,当雄县,城管局,+868910000007,+8613800000007
"""
ITEMS = """code,category,title,description,keywords,level,role,sla_days,urgent
C01-071,C01,路灯不亮,道路或小巷路灯损坏不亮,路灯|不亮|黑灯|照明|损坏|夜间,county,城管局,3,no
C01-067,C01,牛皮癣小广告,墙面电杆乱贴乱画小广告,小广告|牛皮癣|乱贴|乱画|涂鸦|电线杆,township,街道办/乡镇政府,5,no
C01-076,C01,垃圾分类指导,生活垃圾分类投放和设施咨询,垃圾分类|分类投放|可回收|厨余垃圾,city,城管局,5,no
C11-037,C11,燃气泄漏,闻到燃气味疑似燃气泄漏,燃气泄漏|煤气味|天然气|漏气|气味|危险,city,燃气公司,1,yes
C11-040,C11,燃气费异常,燃气费用异常偏高,燃气费|偏高|异常|账单|气量|扣费,city,燃气公司,5,no
"""
VOCABULARY = """kind,heard,means,note
filler,我跟你说,,
filler,那个,,
misspelling,煤汽,煤气,
synonym,黑乎乎,不亮|照明,
synonym,臭鸡蛋味,燃气泄漏|漏气,
"""
PLACES = """name,county,township,kind
城关区,城关区,,county
当雄,当雄县,,county
八廓街,城关区,八廓街道,place
娘热乡,城关区,娘热乡,township
纳木错,当雄县,纳木湖乡,place
"""


@pytest.fixture(scope="module")
def small() -> DispatchRecommender:
    directory = parse_directory(CATEGORIES, DEPARTMENTS, ITEMS)
    return DispatchRecommender.build(directory, parse_vocabulary(VOCABULARY, PLACES))


def codes(recommender: DispatchRecommender, text: str) -> list[str]:
    return [r.item.code for r in recommender.recommend(text).items]


# -- directory and vocabulary as plain data -------------------------------------------


def test_the_directory_is_parsed_from_text_into_plain_values() -> None:
    directory = parse_directory(CATEGORIES, DEPARTMENTS, ITEMS)

    leak = directory.item("C11-037")
    assert leak.is_urgent and leak.level is Level.CITY and leak.sla_days == 1
    assert leak.keywords[:2] == ("燃气泄漏", "煤气味")
    office = next(d for d in directory.departments if d.code == "D-CGQ-BKJD")
    assert office.township == "八廓街道"
    assert next(d for d in directory.departments if d.code == "D-CITY-CGJ").county is None


def test_the_vocabulary_reads_synonyms_misspellings_fillers_and_places() -> None:
    vocabulary = parse_vocabulary(VOCABULARY, PLACES)

    assert ("黑乎乎", ("不亮", "照明")) in vocabulary.synonyms
    assert ("煤汽", "煤气") in vocabulary.misspellings
    assert "我跟你说" in vocabulary.fillers
    assert vocabulary.places[2].township == "八廓街道"
    assert vocabulary.places[0].kind is PlaceKind.COUNTY


def test_a_synonym_that_means_nothing_is_refused_with_its_line() -> None:
    with pytest.raises(VocabularyError, match="line 3"):
        parse_vocabulary("kind,heard,means,note\nfiller,嗯,,\nsynonym,黑乎乎,,\n")


# -- text -----------------------------------------------------------------------------


def test_normalising_folds_width_and_case_and_corrects_misspellings() -> None:
    assert normalise("ＡＢＣ，家里有煤汽味！", [("煤汽", "煤气")]) == "abc 家里有煤气味"


def test_fillers_are_cut_and_words_segmented(small: DispatchRecommender) -> None:
    analyzer = small.index.analyzer
    clean = analyzer.clean("那个我跟你说，那个路灯坏了")

    assert "我跟你说" not in clean
    tokens = analyzer.tokens(clean)
    assert "路灯" in tokens and "那个" not in tokens


def test_character_ngrams_stay_inside_runs_of_chinese() -> None:
    assert char_ngrams("路灯 坏了", sizes=(2,)) == ["路灯", "坏了"]


# -- vocabulary expansion and ranking --------------------------------------------------


def test_a_colloquial_word_brings_in_the_directory_words(small: DispatchRecommender) -> None:
    result = small.recommend("家里有股臭鸡蛋味")

    top = result.items[0]
    assert top.item.code == "C11-037"
    assert "臭鸡蛋味→燃气泄漏" in top.matched_words


def test_ranking_says_which_words_matched(small: DispatchRecommender) -> None:
    top = small.recommend("城关区我家门口路灯不亮，黑乎乎的").items[0]

    assert top.item.code == "C01-071"
    assert "路灯" in top.matched_words and "不亮" in top.matched_words


def test_a_misspelling_is_corrected_before_matching(small: DispatchRecommender) -> None:
    assert codes(small, "闻到一股煤汽味")[0] == "C11-037"


def test_urgent_items_are_flagged(small: DispatchRecommender) -> None:
    result = small.recommend("天然气漏气了很危险")

    assert result.items[0].is_urgent
    assert not any(r.is_urgent for r in result.items if r.item.code != "C11-037")


def test_learning_a_taught_example_changes_the_ranking(small: DispatchRecommender) -> None:
    text = "楼道墙上贴满了开锁的单子"
    before = codes(small, text)
    taught = small.learn([(text, "C01-067"), ("电线杆上贴满了办证的单子", "C01-067")])

    assert taught.recommend(text).items[0].item.code == "C01-067"
    assert before[0] != "C01-067" or before != codes(taught, text)
    assert small.examples == ()  # the old recommender is unchanged


def test_learning_skips_items_the_directory_no_longer_has(small: DispatchRecommender) -> None:
    assert small.learn([("路灯不亮", "C99-999")]).examples == ()


def test_the_index_is_deterministic() -> None:
    def build() -> DispatchRecommender:
        directory = parse_directory(CATEGORIES, DEPARTMENTS, ITEMS)
        return DispatchRecommender.build(directory, parse_vocabulary(VOCABULARY, PLACES))

    first, second = build(), build()
    for text in ("路灯不亮", "燃气费太高了", "到处贴小广告"):
        a, b = first.recommend(text, limit=5), second.recommend(text, limit=5)
        assert [(r.item.code, r.score) for r in a.items] == [
            (r.item.code, r.score) for r in b.items
        ]


# -- places --------------------------------------------------------------------------


def test_place_names_in_the_text_give_the_location() -> None:
    finder = PlaceFinder(parse_vocabulary(VOCABULARY, PLACES).places)

    assert finder.find("八廓街那边路灯坏了").location == Location("城关区", "八廓街道")
    assert finder.find("当雄纳木错边上").location == Location("当雄县", "纳木湖乡")
    assert finder.find("我家路灯坏了").location == Location()


def test_a_given_location_wins_over_the_text(small: DispatchRecommender) -> None:
    result = small.recommend("八廓街路灯不亮", Location("当雄县"))

    assert result.location == Location("当雄县") and not result.location_from_text
    assert result.items[0].department_code == "D-DXX-CGJ"


# -- departments -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def resolver() -> tuple[DepartmentResolver, Directory]:
    directory = parse_directory(CATEGORIES, DEPARTMENTS, ITEMS)
    return DepartmentResolver(directory), directory


def test_a_city_item_goes_to_the_city_department_even_without_county(resolver) -> None:
    rules, directory = resolver
    resolution = rules.resolve(directory.item("C01-076"), Location())

    assert resolution.how is Resolved.CITY and resolution.department_code == "D-CITY-CGJ"


def test_a_county_item_goes_to_that_county_department(resolver) -> None:
    rules, directory = resolver
    item = directory.item("C01-071")

    assert rules.resolve(item, Location("城关区")).department_code == "D-CGQ-CGJ"
    assert rules.resolve(item, Location("当雄县")).department_code == "D-DXX-CGJ"


def test_a_county_or_township_item_without_county_asks_the_call_taker(resolver) -> None:
    rules, directory = resolver
    for code in ("C01-071", "C01-067"):
        resolution = rules.resolve(directory.item(code), Location())
        assert resolution.how is Resolved.ASK_COUNTY and not resolution.is_resolved


def test_a_township_item_goes_to_the_street_office_when_known(resolver) -> None:
    rules, directory = resolver
    resolution = rules.resolve(directory.item("C01-067"), Location("城关区", "八廓街道"))

    assert resolution.how is Resolved.TOWNSHIP and resolution.department_code == "D-CGQ-BKJD"
    assert rules.resolve(directory.item("C01-067"), Location("城关区", "八廓")).is_resolved


def test_a_township_item_falls_back_to_the_county_office(resolver) -> None:
    rules, directory = resolver
    item = directory.item("C01-067")
    unknown = rules.resolve(item, Location("城关区"))
    no_office = rules.resolve(item, Location("城关区", "娘热乡"))

    assert unknown.how is Resolved.COUNTY_OFFICE and unknown.department_code == "D-CGQ-ZFB"
    assert no_office.department_code == "D-CGQ-ZFB"


def test_recommendations_ask_for_the_county_when_the_text_has_none(small) -> None:
    assert small.recommend("我家门口路灯不亮").asks_county
    assert not small.recommend("城关区我家门口路灯不亮").asks_county


# -- the demo directory end to end -----------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> DispatchRecommender:
    directory_dir = DATA / "directory"
    directory = parse_directory(
        *(
            (directory_dir / name).read_text(encoding="utf-8")
            for name in ("categories.csv", "departments.csv", "items.csv")
        )
    )
    vocabulary = parse_vocabulary(
        (DATA / "vocabulary.csv").read_text(encoding="utf-8"),
        (DATA / "places.csv").read_text(encoding="utf-8"),
    )
    return DispatchRecommender.build(directory, vocabulary)


def test_the_demo_directory_has_the_samples_shape(demo: DispatchRecommender) -> None:
    directory = demo.index.directory
    assert len(directory.categories) == 12
    assert len(directory.departments) == 212
    assert len(directory.items) == 815


@pytest.mark.parametrize(
    ("text", "item", "department"),
    [
        ("我跟你说，家里闻到一股煤气味，是不是漏气了", "C11-037", "D-CITY-RQGS"),
        ("那个就是八廓街那边楼道里贴满了小广告", "C01-067", "D-CGQ-BKJD"),
        ("当雄县那边我们村里的路全是坑，拖拉机都过不去", "C03-037", "D-DXX-JTJ"),
        ("楼下饭馆的油烟直接往我家窗户里灌，城关区的", "C02-001", "D-CGQ-CGJ"),
        ("有人被困在电梯里了，卡在两层中间", "C10-003", "D-CITY-XFZD"),
    ],
)
def test_caller_speech_reaches_the_right_department(
    demo: DispatchRecommender, text: str, item: str, department: str
) -> None:
    result = demo.recommend(text)
    top = result.items[0]

    assert top.item.code == item
    assert top.department_code == department
    assert top.matched_words


def test_a_county_item_from_an_unplaced_caller_asks_for_the_county(demo) -> None:
    result = demo.recommend("我们小区物业根本不管事，保洁好几天不来")

    assert result.items[0].item.level is Level.COUNTY
    assert result.asks_county and result.items[0].department_code is None


def test_one_index_serves_recommenders_that_learnt_different_history(demo) -> None:
    taught = demo.learn([("楼上那家天天往下倒洗脚水", "C10-052")])

    assert taught.index is demo.index
    assert isinstance(taught.index, DispatchIndex)
