"""The satisfaction survey call of PRODUCT.md ("Satisfaction callbacks") as a pure state
machine.

The robot says who is calling (the 12345 hotline) and about which order: its number digit
by digit and, unless the order is confidential, its topic in a few words (but not a
Chinese topic in an English call: the English voice cannot read it). Then it asks the three
questions, each by key or speech:

1. Did the department respond to you?  ``1`` yes · ``2`` no                    (响应率)
2. Is the problem solved?  ``1`` solved · ``2`` partly · ``3`` not solved        (解决率)
3. Are you satisfied?  ``1`` satisfied · ``2`` basically · ``3`` dissatisfied    (满意率)

A question is asked again once on silence or bad input (a key that is no answer, garbage
keys, words that match nothing or too many words); after that the survey moves on and the
answer stays empty. ``9`` (``OPT_OUT_KEY``, announced after the introduction) at any
question, or saying "do not call me again" in so many words, ends the call: the citizen
does not want survey calls any more. After the last question: thanks and goodbye.

``SurveyFlow.start`` and ``SurveyFlow.handle`` return a ``SurveyTurn``: the steps the
citizen hears and the new ``SurveyState``. The state is small and flat
(``to_dict``/``from_dict``: strings only): it travels in the gather's action URL, which
Twilio signs, and it holds the answers so far, so the edge stores ``turn.state`` after
every step and a citizen who hangs up midway leaves their partial answers behind.

Tibetan: prompts are recordings (``ivr`` falls back to Mandarin text-to-speech where one
is missing, and always for the introduction, which has the order number in it); Twilio
has no Tibetan speech recognition, so a Tibetan survey listens for keys only.

Nothing here does I/O, and nothing here knows about the order beyond the number and the
topic it is given (``SurveyOrder``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from callflows import survey_speech
from callflows.front_door import CallerInput
from callflows.steps import Action, Gather, Hangup, Language, Say, Stage, Step

OPT_OUT_KEY = "9"  # spoken in the prompts: change them together
TRIES = 2  # asked, then asked again once
GATHER_TIMEOUT_SECONDS = 8  # a survey answer takes a moment's thought
MAX_TOPIC_CHARS = 40  # "a few words": longer topics are cut
_CJK = 0x2E80  # the first CJK block: Chinese characters from here on
LISTENS_FOR_SPEECH = frozenset({Language.MANDARIN, Language.ENGLISH})  # Twilio has no Tibetan


class Question(StrEnum):
    RESPONDED = "responded"  # 1) did the department respond to you?
    SOLVED = "solved"  # 2) is the problem solved?
    SATISFIED = "satisfied"  # 3) are you satisfied?


class Responded(StrEnum):
    YES = "yes"
    NO = "no"


class Resolution(StrEnum):
    SOLVED = "solved"
    PARTLY = "partly"
    NOT_SOLVED = "not_solved"


class Satisfaction(StrEnum):
    SATISFIED = "satisfied"
    BASICALLY_SATISFIED = "basically_satisfied"
    DISSATISFIED = "dissatisfied"


Answer = Responded | Resolution | Satisfaction


class SurveyStatus(StrEnum):
    ASKING = "asking"  # a question is open (a hang-up now leaves the answers so far)
    COMPLETED = "completed"  # every question was asked (some answers may be empty)
    OPTED_OUT = "opted_out"  # the citizen asked not to be called again


@dataclass(frozen=True, slots=True)
class QuestionSpec:
    prompt: str
    keys: Mapping[str, Answer]
    words: Mapping[str, Sequence[str]]  # key -> the words that stand for it


QUESTIONS: Mapping[Question, QuestionSpec] = {
    Question.RESPONDED: QuestionSpec(
        "survey_q_responded",
        {"1": Responded.YES, "2": Responded.NO},
        survey_speech.RESPONDED_WORDS,
    ),
    Question.SOLVED: QuestionSpec(
        "survey_q_solved",
        {"1": Resolution.SOLVED, "2": Resolution.PARTLY, "3": Resolution.NOT_SOLVED},
        survey_speech.SOLVED_WORDS,
    ),
    Question.SATISFIED: QuestionSpec(
        "survey_q_satisfied",
        {
            "1": Satisfaction.SATISFIED,
            "2": Satisfaction.BASICALLY_SATISFIED,
            "3": Satisfaction.DISSATISFIED,
        },
        survey_speech.SATISFIED_WORDS,
    ),
}
_ORDER = tuple(Question)
_ANSWER_TYPES: Mapping[Question, type[Answer]] = {
    Question.RESPONDED: Responded,
    Question.SOLVED: Resolution,
    Question.SATISFIED: Satisfaction,
}


@dataclass(frozen=True, slots=True)
class SurveyOrder:
    """What the robot may say about the order: given by whoever starts the call."""

    number: str
    topic: str = ""  # a few words, e.g. "小区夜间施工噪音"; never spoken when confidential
    is_confidential: bool = False


@dataclass(frozen=True, slots=True)
class SurveyAnswers:
    responded: Responded | None = None
    solved: Resolution | None = None
    satisfied: Satisfaction | None = None

    def of(self, question: Question) -> Answer | None:
        answer: Answer | None = getattr(self, Question(question).value)
        return answer

    def with_answer(self, question: Question, answer: Answer) -> SurveyAnswers:
        if not isinstance(answer, _ANSWER_TYPES[question]):
            raise ValueError(f"{answer!r} does not answer the question {question.value!r}")
        return replace(self, **{question.value: answer})

    @property
    def is_empty(self) -> bool:
        return all(self.of(question) is None for question in Question)


@dataclass(frozen=True, slots=True)
class SurveyState:
    """Where the survey call is; ``to_dict`` is what the gather's action URL carries."""

    survey_id: str  # the edge's reference to the survey attempt this call belongs to
    language: Language = Language.MANDARIN
    question: Question = Question.RESPONDED
    attempt: int = 1
    answers: SurveyAnswers = SurveyAnswers()
    status: SurveyStatus = SurveyStatus.ASKING

    @property
    def is_finished(self) -> bool:
        return self.status is not SurveyStatus.ASKING

    def to_dict(self) -> dict[str, str]:
        data = {
            "survey": self.survey_id,
            "lang": self.language.value,
            "q": self.question.value,
            "try": str(self.attempt),
            "status": self.status.value,
        }
        for question in Question:
            answer = self.answers.of(question)
            if answer is not None:
                data[question.value] = answer.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SurveyState:
        """The state ``to_dict`` wrote; other keys are ignored. ValueError if malformed."""
        try:
            survey_id = str(data["survey"])
            attempt = int(str(data["try"]))
            language = Language(data["lang"])
            question = Question(data["q"])
            status = SurveyStatus(data["status"])
            answers = SurveyAnswers(
                **{q.value: _ANSWER_TYPES[q](data[q.value]) for q in Question if data.get(q.value)}
            )
        except KeyError as missing:
            raise ValueError(f"survey state: {missing} is missing") from None
        except ValueError as bad:
            raise ValueError(f"survey state: {bad}") from None
        if not survey_id or attempt < 1:
            raise ValueError("survey state: needs a survey id and an attempt of 1 or more")
        return cls(survey_id, language, question, attempt, answers, status)


@dataclass(frozen=True, slots=True)
class SurveyTurn:
    state: SurveyState  # store it: the answers so far, and whether the survey ended
    steps: tuple[Step, ...]
    path: str  # for the webhook log, e.g. "survey:solved:partly", "survey:solved:retry1"

    @property
    def answers(self) -> SurveyAnswers:
        return self.state.answers

    @property
    def is_finished(self) -> bool:
        return self.state.is_finished

    @property
    def opted_out(self) -> bool:
        """The citizen asked not to be called again: put the number on the do-not-call list."""
        return self.state.status is SurveyStatus.OPTED_OUT


@dataclass(frozen=True, slots=True)
class SurveyFlow:
    tries: int = TRIES
    timeout_seconds: int = GATHER_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if self.tries < 1 or self.timeout_seconds < 1:
            raise ValueError("a survey asks each question at least once and waits a second")

    def start(self, order: SurveyOrder, *, survey_id: str, language: Language) -> SurveyTurn:
        """The citizen answered: who is calling, about which order, then question 1."""
        state = SurveyState(survey_id, Language(language))
        steps = (_introduction(order, state.language), self._gather(state, first=True))
        return SurveyTurn(state, steps, path="survey:intro")

    def handle(self, state: SurveyState, given: CallerInput) -> SurveyTurn:
        """The citizen's answer (or silence) to the open question."""
        if state.is_finished:  # nothing is open: a replayed or forged action
            return SurveyTurn(state, (Hangup(),), path="survey:ended")
        where = f"survey:{state.question.value}"
        if given.digits == OPT_OUT_KEY or (
            not given.digits and survey_speech.asks_not_to_be_called(given.speech)
        ):
            done = replace(state, status=SurveyStatus.OPTED_OUT)
            steps = (Say("survey_opted_out", state.language), Hangup())
            return SurveyTurn(done, steps, path=f"{where}:opt-out")
        answer = _answer_in(state.question, given)
        if answer is not None:
            answered = replace(state, answers=state.answers.with_answer(state.question, answer))
            return self._after(answered, path=f"{where}:{answer.value}")
        if state.attempt < self.tries:
            again = replace(state, attempt=state.attempt + 1)
            steps = (Say("invalid_input", state.language), self._gather(again))
            return SurveyTurn(again, steps, path=f"{where}:retry{state.attempt}")
        return self._after(state, path=f"{where}:skipped")

    # -- building blocks ---------------------------------------------------------------
    def _after(self, state: SurveyState, path: str) -> SurveyTurn:
        """On to the next question, or thanks and goodbye after the last one."""
        position = _ORDER.index(state.question)
        if position + 1 == len(_ORDER):
            done = replace(state, status=SurveyStatus.COMPLETED)
            return SurveyTurn(done, (Say("survey_thanks", state.language), Hangup()), path)
        following = replace(state, question=_ORDER[position + 1], attempt=1)
        return SurveyTurn(following, (self._gather(following),), path)

    def _gather(self, state: SurveyState, *, first: bool = False) -> Gather:
        spec = QUESTIONS[state.question]
        question = Say(spec.prompt, state.language)
        prompts = (Say("survey_opt_out_hint", state.language), question) if first else (question,)
        listens = state.language in LISTENS_FOR_SPEECH
        hints = (
            survey_speech.hints_for(spec.words, english=state.language is Language.ENGLISH)
            if listens
            else ()
        )
        return Gather(
            Action(Stage.SURVEY, state.to_dict()),
            prompts,
            state.language,
            num_digits=1,
            timeout_seconds=self.timeout_seconds,
            speech=listens,
            hints=hints,
        )


def _answer_in(question: Question, given: CallerInput) -> Answer | None:
    spec = QUESTIONS[question]
    if given.digits or given.is_garbage:
        return spec.keys.get(given.digits)
    key = survey_speech.answer_in(given.speech, spec.words) if given.speech else None
    return spec.keys.get(key) if key else None


def _introduction(order: SurveyOrder, language: Language) -> Say:
    number = " ".join(char for char in order.number if char.isalnum())
    topic = "" if order.is_confidential else short_topic(order.topic)
    if language is Language.ENGLISH and any(ord(char) >= _CJK for char in topic):
        topic = ""  # a Chinese summary is not read out by the English voice
    if not topic:  # a confidential order: its number only, never its content
        return Say("survey_intro", language, {"number": number})
    return Say("survey_intro_topic", language, {"number": number, "topic": topic})


def short_topic(topic: str, limit: int = MAX_TOPIC_CHARS) -> str:
    """The topic in a few words: one line, at most ``limit`` characters, whole words."""
    text = " ".join(topic.split())
    if len(text) > limit:
        cut = text[:limit]
        if text[limit] != " " and " " in cut:
            cut = cut.rsplit(" ", 1)[0]
        text = cut
    return text.rstrip(" ,.;:，。；：、")


def survey_apology(language: Language) -> tuple[Step, ...]:
    """What the citizen hears when the survey failed on our side."""
    return (Say("survey_apology", language), Hangup())
