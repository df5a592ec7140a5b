"""Understanding a spoken survey answer: keyword tables per question, no network model.

The approach of ``callflows.speech`` (words callers actually use, as Twilio transcribed
them in Mandarin or English), with one difference that survey answers need: negations.
"不满意" contains "满意", "not solved" contains "solved", "没有联系" contains "联系". So the
words are matched longest first and every character counts once: the phrase "不满意" uses
up its "满意", which no longer speaks for "satisfied". The choice named by the most phrases
wins; a tie ("yes, but not fully"; "满意，也不满意") is no answer: the question is asked
again.

English words match whole words only ("no" is not in "know", "yes" not in "eyes"). A
one-character Chinese word ("有", "对", "差") counts only at the start of the answer, where
it is the answer ("有，联系过"), not inside another sentence ("你是谁").

Tibetan: Twilio's speech recognition has no Tibetan, and the prompt catalogue has no
Tibetan text to take words from, so a Tibetan survey is answered by keys only (its gathers
do not listen for speech; see ``callflows.survey``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache

MAX_ANSWER_CHARS = 120  # a longer result is a story, not an answer: asked again

# Whole answers that are the key itself ("1", "一", "one", "按1"), after punctuation is gone.
NUMBER_WORDS: Mapping[str, Sequence[str]] = {
    "1": ("1", "一", "幺", "one", "第一", "第一个", "按1", "按一", "选1", "选一"),
    "2": ("2", "二", "两", "two", "第二", "第二个", "按2", "按二", "选2", "选二"),
    "3": ("3", "三", "three", "第三", "第三个", "按3", "按三", "选3", "选三"),
}

# 1) Did the department respond to you? 1 yes, 2 no.
RESPONDED_WORDS: Mapping[str, Sequence[str]] = {
    "1": (
        "联系过",
        "联系了",
        "有联系",
        "联系我",
        "打过电话",
        "来过电话",
        "打电话了",
        "回应了",
        "回应过",
        "有回应",
        "回复了",
        "答复了",
        "来过",
        "上门了",
        "有的",
        "是的",
        "对的",
        "有",
        "是",
        "对",
        "yes",
        "yeah",
        "yep",
        "they did",
        "they called",
        "called me",
        "contacted",
        "responded",
    ),
    "2": (
        "没有联系",
        "没联系",
        "没人联系",
        "没有人联系",
        "没有回应",
        "没回应",
        "没有回复",
        "没回复",
        "没有答复",
        "没打过",
        "没来过",
        "从来没有",
        "没有",
        "没有人",
        "不是",
        "否",
        "no",
        "nope",
        "never",
        "nobody",
        "no one",
        "nobody contacted",
        "nobody called",
        "no one contacted",
        "no one called",
        "never contacted",
        "never called",
        "they didn't",
        "they did not",
        "did not",
        "didn't",
        "not contacted",
    ),
}

# 2) Is the problem solved? 1 solved, 2 partly, 3 not solved.
SOLVED_WORDS: Mapping[str, Sequence[str]] = {
    "1": (
        "解决了",
        "已解决",
        "已经解决",
        "基本解决",  # counted as solved, as the 解决率 of 12345 hotlines counts it
        "彻底解决",
        "处理好了",
        "办好了",
        "弄好了",
        "修好了",
        "搞定了",
        "好了",
        "是的",
        "对",
        "yes",
        "yeah",
        "solved",
        "resolved",
        "fixed",
        "sorted",
    ),
    "2": (
        "部分解决",
        "解决了一部分",
        "一部分",
        "部分",
        "没有完全",
        "没完全",
        "还没完全",
        "不完全",
        "一半",
        "partly",
        "partially",
        "part of it",
        "some of it",
        "not completely",
        "not fully",
        "not entirely",
        "partly solved",
        "partially solved",
        "not completely solved",
        "not fully solved",
        "not entirely solved",
        "half",
    ),
    "3": (
        "没有解决",
        "没解决",
        "未解决",
        "还没解决",
        "没有处理",
        "没处理",
        "没人管",
        "没有用",
        "没有",
        "不是",
        "no",
        "nope",
        "not solved",
        "not resolved",
        "not fixed",
        "unsolved",
        "unresolved",
        "nothing",
        "not at all",
    ),
}

# 3) Are you satisfied? 1 satisfied, 2 basically satisfied, 3 dissatisfied.
SATISFIED_WORDS: Mapping[str, Sequence[str]] = {
    "1": (
        "满意",
        "很满意",
        "非常满意",
        "挺满意",
        "十分满意",
        "不错",
        "挺好",
        "很好",
        "yes",
        "satisfied",
        "very satisfied",
        "happy",
        "good",
        "great",
        "not bad",
    ),
    "2": (
        "基本满意",
        "基本上满意",
        "比较满意",
        "还算满意",
        "基本",
        "还行",
        "还可以",
        "一般",
        "马马虎虎",
        "凑合",
        "basically",
        "basically satisfied",
        "mostly",
        "more or less",
        "fairly",
        "okay",
        "ok",
        "so so",
        "so-so",
    ),
    "3": (
        "不满意",
        "不太满意",
        "不是很满意",
        "很不满意",
        "非常不满意",
        "不满",
        "不行",
        "不好",
        "太差",
        "很差",
        "差",
        "no",
        "dissatisfied",
        "unsatisfied",
        "not satisfied",
        "not very satisfied",
        "not really satisfied",
        "not happy",
        "unhappy",
        "bad",
        "terrible",
    ),
}

# "Do not call me again", said in so many words (the key is announced in the intro).
OPT_OUT_WORDS: Sequence[str] = (
    "不要再打",
    "别再打",
    "不要再给我打",
    "别再给我打",
    "不要再打电话",
    "以后不要打",
    "以后别打",
    "不要再来电话",
    "don't call me again",
    "do not call me again",
    "don't call again",
    "do not call again",
    "stop calling",
)

_PUNCTUATION = re.compile(r"[\s\.,!?;:'\"。，！？；：、…~-]+")


def answer_in(said: str, table: Mapping[str, Sequence[str]]) -> str | None:
    """The key the words stand for at this question, or None (nothing, a tie, a story)."""
    text = _clean(said)
    if not text or len(text) > MAX_ANSWER_CHARS:
        return None
    bare = _PUNCTUATION.sub("", text)
    for key, words in NUMBER_WORDS.items():
        if key in table and bare in words:
            return key
    scores = _scores(text, table)
    if not scores:
        return None
    best = max(scores.values())
    winners = [key for key, score in scores.items() if score == best]
    return winners[0] if len(winners) == 1 else None


def asks_not_to_be_called(said: str) -> bool:
    text = _clean(said)
    return 0 < len(text) <= MAX_ANSWER_CHARS and any(words in text for words in OPT_OUT_WORDS)


def hints_for(table: Mapping[str, Sequence[str]], *, english: bool) -> tuple[str, ...]:
    """Speech-recognition hints: the table's English or its Chinese words."""
    return tuple(w for words in table.values() for w in words if w.isascii() is english)


def _clean(said: str) -> str:
    return said.strip().lower().replace("\u2019", "'")


def _scores(text: str, table: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Matched phrases per key; each character of ``text`` counts for one phrase only."""
    used = [False] * len(text)
    scores: dict[str, int] = {}
    for key, pattern in _longest_first(_frozen(table)):
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(used[start:end]):
                continue
            used[start:end] = [True] * (end - start)
            scores[key] = scores.get(key, 0) + 1
    return scores


def _frozen(table: Mapping[str, Sequence[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((key, tuple(words)) for key, words in table.items())


@cache
def _longest_first(
    table: tuple[tuple[str, tuple[str, ...]], ...],
) -> tuple[tuple[str, re.Pattern[str]], ...]:
    pairs = [(key, word) for key, words in table for word in words]
    pairs.sort(key=lambda pair: -len(pair[1]))  # stable: equal lengths keep table order
    return tuple((key, _pattern(word)) for key, word in pairs)


def _pattern(word: str) -> re.Pattern[str]:
    if word.isascii():
        return re.compile(rf"(?<![a-z0-9']){re.escape(word)}(?![a-z0-9'])")
    if len(word) == 1:
        return re.compile(f"^{re.escape(word)}")
    return re.compile(re.escape(word))
