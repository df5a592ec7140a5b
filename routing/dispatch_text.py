"""From a call-taker's summary to the terms the ranking reads.

``normalise`` folds full-width forms and case (NFKC), turns punctuation into spaces and
corrects the vocabulary's misspellings; ``TextAnalyzer`` drops fillers, segments with its
own jieba ``Tokenizer`` (the process-wide one is never touched) that knows the directory's
words and the vocabulary's phrases, and gives the character n-grams that stand in for
words jieba does not know or that are written wrongly.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import jieba

_NOT_TEXT = re.compile(r"[^0-9a-z\u3400-\u9fff]+")
_CJK = re.compile(r"[\u3400-\u9fff]+")

# Words that never tell one matter from another (beside the vocabulary's fillers).
_STOPWORDS = (
    "的 了 吗 呢 吧 啊 呀 哦 嗯 呃 哎 诶 么 嘛 啦 哈 是 在 有 我 你 他 她 它 我们 你们 他们 "
    "这 那 这个 那个 这边 那边 这里 那里 这样 那样 一个 一下 就 都 也 还 又 很 太 挺 特别 "
    "非常 比较 然后 所以 因为 但是 可是 不过 而且 就是 反正 其实 现在 已经 一直 一些 有点 "
    "什么 怎么 怎么办 为什么 哪里 哪个 谁 多少 能不能 可不可以 可以 能 要 想 会 去 来 说 "
    "问 问问 一下子 给 让 把 被 跟 和 与 对 从 到 向 找 帮 帮忙 请 麻烦 您 咱们 人家 "
    "自己 大家 时候 今天 昨天 前天 最近 好几天 天天 每天 老是 总是 经常 一直都 情况 问题 "
    "事情 事 这种 那种 那么 这么 多 少 好 不 没 没有 不是 了吧 一点 有人 管 管管 "
    "反映 反应 打电话 电话 热线 12345 咨询一下 想问 我想 请问"
)
STOPWORDS = frozenset(_STOPWORDS.split())


def normalise(text: str, misspellings: Iterable[tuple[str, str]] = ()) -> str:
    """Case and width folded, punctuation as single spaces, misspellings corrected."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _NOT_TEXT.sub(" ", text).strip()
    for wrong, right in misspellings:
        if wrong in text:
            text = text.replace(wrong, right)
    return text


def char_ngrams(text: str, sizes: tuple[int, ...] = (2, 3)) -> list[str]:
    """Character n-grams of each run of Chinese characters (n-grams never span a gap)."""
    grams: list[str] = []
    for run in _CJK.findall(text):
        for n in sizes:
            grams.extend(run[i : i + n] for i in range(len(run) - n + 1))
    return grams


class TextAnalyzer:
    """Fillers, segmentation and n-grams, with a tokenizer built once for the index."""

    def __init__(
        self,
        words: Iterable[str] = (),
        fillers: Iterable[str] = (),
        misspellings: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.misspellings = tuple(sorted(set(misspellings), key=lambda p: (-len(p[0]), p)))
        # Longest first, so 我跟你说 goes before 你说.
        self.fillers = tuple(sorted(set(fillers), key=lambda f: (-len(f), f)))
        self.stopwords = STOPWORDS | {f for f in self.fillers}
        self.tokenizer = jieba.Tokenizer()
        self.tokenizer.initialize()
        for word in sorted(set(words)):
            if len(word) > 1:
                self.tokenizer.add_word(word, freq=None)

    def clean(self, text: str) -> str:
        """The summary normalised, misspellings corrected and fillers cut out."""
        text = normalise(text, self.misspellings)
        for filler in self.fillers:
            if len(filler) > 2 and filler in text:
                text = text.replace(filler, " ")
        return text

    def tokens(self, clean_text: str) -> list[str]:
        """jieba's words of a cleaned text, without stopwords, fillers and spaces."""
        return [
            t
            for t in self.tokenizer.lcut(clean_text, HMM=True)
            if t.strip() and t not in self.stopwords
        ]
