"""Understanding what a caller says at a menu: keyword tables, no network model.

Speech results arrive as Twilio transcribed them (Mandarin or English). A caller rarely
says the menu words, so each choice lists the words callers use for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from callflows.steps import Language

MAX_SPEECH_CHARS = 300  # longer results are cut before matching; nobody says a menu choice so

EMERGENCY_WORDS: Mapping[str, Sequence[str]] = {
    "fire": ("着火", "起火", "失火", "火灾", "冒烟", "烧起来", "fire", "smoke"),
    "medical": (
        "受伤",
        "晕倒",
        "昏倒",
        "急救",
        "救护车",
        "流血",
        "心脏",
        "不省人事",
        "ambulance",
        "injured",
        "unconscious",
        "heart attack",
        "bleeding",
    ),
    "police": (
        "打架",
        "被偷",
        "小偷",
        "抢劫",
        "被抢",
        "报警",
        "诈骗",
        "斗殴",
        "police",
        "robbery",
        "stolen",
        "fight",
        "thief",
    ),
    "traffic": ("撞车", "车祸", "交通事故", "追尾", "被撞", "car crash", "accident", "collision"),
    "utility": (
        "停水",
        "停电",
        "燃气味",
        "煤气味",
        "漏气",
        "燃气泄漏",
        "没有暖气",
        "停暖",
        "供暖",
        "power cut",
        "no water",
        "gas leak",
        "no heating",
        "blackout",
    ),
}

MENU_WORDS: Mapping[str, Sequence[str]] = {
    "1": ("政策", "咨询", "问一下", "了解", "policy", "question", "ask"),
    "2": ("投诉", "举报", "反映问题", "complain", "complaint", "report"),
    "3": ("求助", "建议", "帮忙", "帮助", "help", "suggest"),
    "4": ("查询", "进度", "工单", "办到哪", "progress", "work order", "status"),
    "0": ("人工", "接线员", "客服", "转人工", "真人", "operator", "agent", "person"),
    "9": ("紧急", "救命", "急事", "emergency", "urgent"),
}

OPTION_WORDS: Mapping[str, Sequence[str]] = {
    "1": ("重听", "再听", "再说一遍", "再说一次", "没听清", "again", "repeat"),
}

LANGUAGE_WORDS: Mapping[Language, Sequence[str]] = {
    Language.MANDARIN: ("普通话", "中文", "汉语", "国语", "mandarin", "chinese"),
    Language.TIBETAN: ("藏语", "藏文", "tibetan", "བོད"),
    Language.ENGLISH: ("english", "英语", "英文"),
}


def normalise(speech: str) -> str:
    return speech[:MAX_SPEECH_CHARS].strip().lower()


def _first_match(text: str, table: Mapping[str, Sequence[str]]) -> str | None:
    """The choice whose words cover most of what was said; ties go to the earlier one.

    "我想问一下我的工单进度" names both a question (问一下) and a work order (工单, 进度);
    the longer evidence wins, so the caller gets the progress look-up.
    """
    best, best_score = None, 0
    for choice, words in table.items():
        score = sum(len(word) for word in words if word in text)
        if score > best_score:
            best, best_score = choice, score
    return best


def emergency_line_in(speech: str) -> str | None:
    """The emergency line the caller's words point to, if any."""
    return _first_match(normalise(speech), EMERGENCY_WORDS)


def menu_choice_in(speech: str) -> str | None:
    """The main-menu key the caller's words stand for, if any."""
    return _first_match(normalise(speech), MENU_WORDS)


def option_choice_in(speech: str) -> str | None:
    """ "1" when the caller asks to hear the status again."""
    return _first_match(normalise(speech), OPTION_WORDS)


def language_in(speech: str) -> Language | None:
    text = normalise(speech)
    for language, words in LANGUAGE_WORDS.items():
        if any(word in text for word in words):
            return language
    return None


def hints_for(table: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """Speech-recognition hints: the Chinese words of a table."""
    return tuple(w for words in table.values() for w in words if not w.isascii())
