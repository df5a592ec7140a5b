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


def normalise(
    text: str,
    misspellings: Iterable[tuple[str, str]] = (),
    protected: Iterable[str] = (),
) -> str:
    """Case and width folded, punctuation as single spaces, misspellings corrected.

    A misspelling inside a ``protected`` word is left alone: 然气 (for 燃气) is corrected
    in 然气泄漏 but not in 天然气.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = _NOT_TEXT.sub(" ", text).strip()
    keep = tuple(protected)
    for wrong, right in misspellings:
        if wrong in text:
            text = _corrected(text, wrong, right, [w for w in keep if wrong in w and w != wrong])
    return text


def _corrected(text: str, wrong: str, right: str, protected: list[str]) -> str:
    if not protected:
        return text.replace(wrong, right)
    spans = []
    for word in protected:
        start = text.find(word)
        while start != -1:
            spans.append((start, start + len(word)))
            start = text.find(word, start + 1)
    pieces, at = [], 0
    start = text.find(wrong)
    while start != -1:
        end = start + len(wrong)
        inside = any(low <= start and end <= high for low, high in spans)
        pieces.append(text[at:end] if inside else text[at:start] + right)
        at = end
        start = text.find(wrong, end)
    pieces.append(text[at:])
    return "".join(pieces)


def char_ngrams(text: str, sizes: tuple[int, ...] = (2, 3)) -> list[str]:
    """Character n-grams of each run of Chinese characters (n-grams never span a gap)."""
    grams: list[str] = []
    for run in _CJK.findall(text):
        for n in sizes:
            grams.extend(run[i : i + n] for i in range(len(run) - n + 1))
    return grams


class PhraseFinder:
    """Which of a fixed set of phrases occur in a text, as substrings.

    Looks up every substring of the lengths the phrases have, so a summary costs about
    (its length × the number of distinct phrase lengths) set look-ups, however many
    thousand phrases the directory and the vocabulary hold.

    A two-character phrase is not found across a cut the segmenter made between its two
    characters: 家装 is not in 一家|装修, 开学 is not in 离开|学校. (Longer phrases may span
    words: 楼上扔 is 楼上|扔.)
    """

    def __init__(self, phrases: Iterable[str]) -> None:
        self.phrases = frozenset(p for p in phrases if p)
        self.lengths = tuple(sorted({len(p) for p in self.phrases}, reverse=True))

    def find(self, text: str, cuts: frozenset[int] = frozenset()) -> set[str]:
        """The phrases in ``text``; ``cuts``: offsets where the segmenter cut it."""
        found: set[str] = set()
        phrases, size = self.phrases, len(text)
        for length in self.lengths:
            for start in range(size - length + 1):
                piece = text[start : start + length]
                if piece in phrases and not (length == 2 and start + 1 in cuts):
                    found.add(piece)
        return found


class TextAnalyzer:
    """Fillers, segmentation and n-grams, with a tokenizer built once for the index."""

    def __init__(
        self,
        words: Iterable[str] = (),
        fillers: Iterable[str] = (),
        misspellings: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.misspellings = tuple(sorted(set(misspellings), key=lambda p: (-len(p[0]), p)))
        # Directory words (and phrases) that contain a misspelling's wrong form: 天然气.
        wrongs = [wrong for wrong, _ in self.misspellings]
        words = set(words)
        self.protected = tuple(
            sorted(w for w in words if any(wrong in w and wrong != w for wrong in wrongs))
        )
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
        text = normalise(text, self.misspellings, self.protected)
        for filler in self.fillers:
            if len(filler) > 2 and filler in text:
                text = text.replace(filler, " ")
        return text

    def segment(self, clean_text: str) -> list[str]:
        """jieba's cut of a cleaned text, every piece (their lengths add up to the text's)."""
        return self.tokenizer.lcut(clean_text, HMM=True)

    def tokens(self, clean_text: str, pieces: list[str] | None = None) -> list[str]:
        """jieba's words of a cleaned text, without stopwords, fillers and spaces."""
        if pieces is None:
            pieces = self.segment(clean_text)
        return [t for t in pieces if t.strip() and t not in self.stopwords]


def cuts_of(pieces: Iterable[str]) -> frozenset[int]:
    """The offsets between consecutive pieces of a segmented text."""
    offsets, at = [], 0
    for piece in pieces:
        at += len(piece)
        offsets.append(at)
    return frozenset(offsets[:-1])
