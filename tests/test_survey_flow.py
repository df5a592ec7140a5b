"""The satisfaction survey call (PRODUCT.md, "Satisfaction callbacks") as a pure state machine.

No Flask, no database, no Twilio: each test builds a ``SurveyState`` the way the voice edge
rebuilds it from the signed action URL (``SurveyState.from_dict``), feeds the citizen's
keys or words to ``SurveyFlow.handle`` and looks at what the citizen would hear and at the
state the edge would store.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from callflows.front_door import CallerInput
from callflows.prompts import PROMPTS, prompt_text
from callflows.steps import Gather, Hangup, Language, Say, Stage, Step
from callflows.survey import (
    OPT_OUT_KEY,
    QUESTIONS,
    Answer,
    Question,
    Resolution,
    Responded,
    Satisfaction,
    SurveyAnswers,
    SurveyFlow,
    SurveyOrder,
    SurveyState,
    SurveyStatus,
    SurveyTurn,
    short_topic,
    survey_apology,
)
from callflows.survey_speech import MAX_ANSWER_CHARS

FLOW = SurveyFlow()
SURVEY_ID = "survey-attempt-42"
NUMBER = "20261127000001"
TOPIC = "小区夜间施工噪音"
ORDER = SurveyOrder(NUMBER, TOPIC)
SECRET = SurveyOrder(NUMBER, "举报邻居私设赌场", is_confidential=True)
LANGUAGES = tuple(Language)
SPOKEN = (Language.MANDARIN, Language.ENGLISH)  # Twilio has no Tibetan recognition
SILENCE = CallerInput.parse(None, None)

KEY_ANSWERS: list[tuple[Question, str, Answer]] = [
    (Question.RESPONDED, "1", Responded.YES),
    (Question.RESPONDED, "2", Responded.NO),
    (Question.SOLVED, "1", Resolution.SOLVED),
    (Question.SOLVED, "2", Resolution.PARTLY),
    (Question.SOLVED, "3", Resolution.NOT_SOLVED),
    (Question.SATISFIED, "1", Satisfaction.SATISFIED),
    (Question.SATISFIED, "2", Satisfaction.BASICALLY_SATISFIED),
    (Question.SATISFIED, "3", Satisfaction.DISSATISFIED),
]

SPEECH_ANSWERS: list[tuple[Question, Language, str, Answer]] = [
    # 1) did the department respond to you?
    (Question.RESPONDED, Language.MANDARIN, "是的", Responded.YES),
    (Question.RESPONDED, Language.MANDARIN, "联系过了。", Responded.YES),
    (Question.RESPONDED, Language.MANDARIN, "对，他们打过电话", Responded.YES),
    (Question.RESPONDED, Language.MANDARIN, "有，但是没解决", Responded.YES),
    (Question.RESPONDED, Language.MANDARIN, "一", Responded.YES),
    (Question.RESPONDED, Language.MANDARIN, "没有", Responded.NO),
    (Question.RESPONDED, Language.MANDARIN, "没有人联系我", Responded.NO),
    (Question.RESPONDED, Language.MANDARIN, "不是", Responded.NO),
    (Question.RESPONDED, Language.MANDARIN, "二。", Responded.NO),
    (Question.RESPONDED, Language.ENGLISH, "Yes.", Responded.YES),
    (Question.RESPONDED, Language.ENGLISH, "yeah they called me", Responded.YES),
    (Question.RESPONDED, Language.ENGLISH, "One", Responded.YES),
    (Question.RESPONDED, Language.ENGLISH, "No.", Responded.NO),
    (Question.RESPONDED, Language.ENGLISH, "nobody contacted me", Responded.NO),
    (Question.RESPONDED, Language.ENGLISH, "they didn't", Responded.NO),
    # 2) is the problem solved?
    (Question.SOLVED, Language.MANDARIN, "解决了", Resolution.SOLVED),
    (Question.SOLVED, Language.MANDARIN, "问题已经解决了，谢谢", Resolution.SOLVED),
    (Question.SOLVED, Language.MANDARIN, "部分解决", Resolution.PARTLY),
    (Question.SOLVED, Language.MANDARIN, "解决了一部分", Resolution.PARTLY),
    (Question.SOLVED, Language.MANDARIN, "没有完全解决", Resolution.PARTLY),
    (Question.SOLVED, Language.MANDARIN, "没有解决", Resolution.NOT_SOLVED),
    (Question.SOLVED, Language.MANDARIN, "还没解决呢", Resolution.NOT_SOLVED),
    (Question.SOLVED, Language.MANDARIN, "三", Resolution.NOT_SOLVED),
    (Question.SOLVED, Language.ENGLISH, "it is solved", Resolution.SOLVED),
    (Question.SOLVED, Language.ENGLISH, "Fixed.", Resolution.SOLVED),
    (Question.SOLVED, Language.ENGLISH, "partly", Resolution.PARTLY),
    (Question.SOLVED, Language.ENGLISH, "not completely solved", Resolution.PARTLY),
    (Question.SOLVED, Language.ENGLISH, "not solved", Resolution.NOT_SOLVED),
    (Question.SOLVED, Language.ENGLISH, "no, nothing happened", Resolution.NOT_SOLVED),
    (Question.SOLVED, Language.ENGLISH, "three", Resolution.NOT_SOLVED),
    # 3) are you satisfied?
    (Question.SATISFIED, Language.MANDARIN, "满意", Satisfaction.SATISFIED),
    (Question.SATISFIED, Language.MANDARIN, "非常满意！", Satisfaction.SATISFIED),
    (Question.SATISFIED, Language.MANDARIN, "基本满意", Satisfaction.BASICALLY_SATISFIED),
    (Question.SATISFIED, Language.MANDARIN, "我觉得还可以吧", Satisfaction.BASICALLY_SATISFIED),
    (Question.SATISFIED, Language.MANDARIN, "不满意", Satisfaction.DISSATISFIED),
    (Question.SATISFIED, Language.MANDARIN, "不太满意", Satisfaction.DISSATISFIED),
    (Question.SATISFIED, Language.MANDARIN, "不是很满意", Satisfaction.DISSATISFIED),
    (Question.SATISFIED, Language.ENGLISH, "satisfied", Satisfaction.SATISFIED),
    (Question.SATISFIED, Language.ENGLISH, "very happy", Satisfaction.SATISFIED),
    (Question.SATISFIED, Language.ENGLISH, "basically satisfied", Satisfaction.BASICALLY_SATISFIED),
    (Question.SATISFIED, Language.ENGLISH, "it's okay", Satisfaction.BASICALLY_SATISFIED),
    (Question.SATISFIED, Language.ENGLISH, "dissatisfied", Satisfaction.DISSATISFIED),
    (Question.SATISFIED, Language.ENGLISH, "I'm not satisfied", Satisfaction.DISSATISFIED),
    (Question.SATISFIED, Language.ENGLISH, "no, not really satisfied", Satisfaction.DISSATISFIED),
]

BAD_INPUTS: list[tuple[str, CallerInput]] = [
    ("a key that is no answer", CallerInput.parse("7", None)),
    ("zero", CallerInput.parse("0", None)),
    ("two keys", CallerInput.parse("12", None)),
    ("star", CallerInput.parse("*", None)),
    ("hash", CallerInput.parse("#", None)),
    ("garbage keys", CallerInput.parse("1a;DROP", None)),
    ("a flood of keys", CallerInput.parse("1" * 500, None)),
    ("words that match nothing", CallerInput.parse(None, "请问你是谁")),
    ("english words that match nothing", CallerInput.parse(None, "what is this about")),
    ("a tie", CallerInput.parse(None, "yes, but not fully, no")),
    ("a huge speech result", CallerInput.parse(None, "满意" * 5000)),
    ("a long story", CallerInput.parse(None, "满意" + "。" * MAX_ANSWER_CHARS)),
]

# What the edge has stored when a question opens: the answers to the questions before it.
EARLIER = {
    Question.RESPONDED: SurveyAnswers(),
    Question.SOLVED: SurveyAnswers(responded=Responded.YES),
    Question.SATISFIED: SurveyAnswers(responded=Responded.YES, solved=Resolution.PARTLY),
}


# -- helpers ------------------------------------------------------------------------------


def keyed(digits: str) -> CallerInput:
    return CallerInput.parse(digits, None)


def said(words: str) -> CallerInput:
    return CallerInput.parse(None, words)


def at(question: Question, language: Language = Language.MANDARIN, attempt: int = 1) -> SurveyState:
    """The state of an open question, rebuilt from the action URL as the edge does."""
    state = SurveyState(SURVEY_ID, language, question, attempt, EARLIER[question])
    return SurveyState.from_dict(state.to_dict())


def gather_of(turn: SurveyTurn) -> Gather:
    gathers = [step for step in turn.steps if isinstance(step, Gather)]
    assert len(gathers) == 1, turn.steps
    return gathers[0]


def says(steps: Iterable[Step]) -> list[Say]:
    found: list[Say] = []
    for step in steps:
        if isinstance(step, Say):
            found.append(step)
        elif isinstance(step, Gather):
            found.extend(prompt for prompt in step.prompts if isinstance(prompt, Say))
    return found


def prompts(turn: SurveyTurn) -> list[str]:
    return [say.prompt for say in says(turn.steps)]


def heard(turn: SurveyTurn) -> str:
    """Everything the citizen hears, as text (Tibetan prompts read as their Mandarin)."""
    return " ".join(
        prompt_text(say.prompt, say.language.value, say.args) for say in says(turn.steps)
    )


def asks(turn: SurveyTurn, question: Question, attempt: int = 1) -> None:
    """The turn asks ``question``, and its action URL carries the turn's state."""
    gather = gather_of(turn)
    assert gather.action.stage == Stage.SURVEY
    assert turn.state.question is question
    assert turn.state.attempt == attempt
    assert turn.state.status is SurveyStatus.ASKING
    assert QUESTIONS[question].prompt in prompts(turn)
    assert SurveyState.from_dict(gather.action.params) == turn.state
    assert gather.num_digits == 1
    assert not turn.is_finished


def after(question: Question) -> Question | None:
    order = list(Question)
    position = order.index(question)
    return order[position + 1] if position + 1 < len(order) else None


# -- the introduction ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "topic"),
    [
        (Language.MANDARIN, TOPIC),
        (Language.TIBETAN, TOPIC),
        (Language.ENGLISH, "Noise from night-time building work"),
    ],
)
def test_the_robot_says_who_calls_and_which_order_then_asks_the_first_question(
    language: Language, topic: str
) -> None:
    turn = FLOW.start(SurveyOrder(NUMBER, topic), survey_id=SURVEY_ID, language=language)

    intro = turn.steps[0]
    assert intro == Say(
        "survey_intro_topic",
        language,
        {"number": "2 0 2 6 1 1 2 7 0 0 0 0 0 1", "topic": short_topic(topic)},
    )
    assert "12345" in prompt_text("survey_intro_topic", language.value, intro.args)
    asks(turn, Question.RESPONDED)
    gather = gather_of(turn)
    assert gather.language is language
    assert [say.prompt for say in says([gather])] == ["survey_opt_out_hint", "survey_q_responded"]
    assert turn.state == SurveyState(SURVEY_ID, language)
    assert turn.answers.is_empty
    assert turn.path == "survey:intro"


def test_the_introduction_is_not_inside_the_gather_so_no_key_answers_an_unheard_question() -> None:
    turn = FLOW.start(ORDER, survey_id=SURVEY_ID, language=Language.MANDARIN)

    assert isinstance(turn.steps[0], Say)
    assert isinstance(turn.steps[1], Gather)
    assert len(turn.steps) == 2


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_do_not_call_key_is_announced_before_the_first_question(language: Language) -> None:
    hint = prompt_text("survey_opt_out_hint", language.value)

    assert OPT_OUT_KEY in hint
    turn = FLOW.start(ORDER, survey_id=SURVEY_ID, language=language)
    assert "survey_opt_out_hint" in prompts(turn)


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_confidential_order_is_named_by_its_number_only(language: Language) -> None:
    turn = FLOW.start(SECRET, survey_id=SURVEY_ID, language=language)

    intro = turn.steps[0]
    assert intro == Say("survey_intro", language, {"number": "2 0 2 6 1 1 2 7 0 0 0 0 0 1"})
    assert "topic" not in intro.args
    assert SECRET.topic not in heard(turn)
    assert "赌场" not in heard(turn)
    assert all(SECRET.topic not in value for value in gather_of(turn).action.params.values())


@pytest.mark.parametrize("language", [Language.MANDARIN, Language.TIBETAN])
def test_a_non_confidential_order_is_named_with_its_topic(language: Language) -> None:
    turn = FLOW.start(ORDER, survey_id=SURVEY_ID, language=language)

    assert TOPIC in heard(turn)
    assert NUMBER not in gather_of(turn).action.params.values()  # the URL carries no content


def test_an_english_survey_does_not_read_a_chinese_topic_with_the_english_voice() -> None:
    turn = FLOW.start(ORDER, survey_id=SURVEY_ID, language=Language.ENGLISH)

    assert turn.steps[0] == Say("survey_intro", Language.ENGLISH, {"number": " ".join(NUMBER)})


@pytest.mark.parametrize("topic", ["", "   ", "\n"])
def test_an_order_without_a_topic_is_named_by_its_number(topic: str) -> None:
    turn = FLOW.start(SurveyOrder(NUMBER, topic), survey_id=SURVEY_ID, language=Language.ENGLISH)

    assert says(turn.steps)[0].prompt == "survey_intro"


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("小区夜间施工噪音", "小区夜间施工噪音"),
        ("  路灯\n 不亮  ", "路灯 不亮"),
        ("噪" * 100, "噪" * 40),
        (
            "Streetlights on Jinzhu Road have not worked for two weeks now",
            "Streetlights on Jinzhu Road have not",
        ),
        ("占道经营，", "占道经营"),
    ],
)
def test_the_topic_is_said_in_a_few_words(topic: str, expected: str) -> None:
    assert short_topic(topic) == expected


# -- answers by key -----------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("question", "key", "answer"), KEY_ANSWERS)
def test_each_question_is_answered_by_key(
    language: Language, question: Question, key: str, answer: Answer
) -> None:
    turn = FLOW.handle(at(question, language), keyed(key))

    assert turn.answers.of(question) is answer
    assert turn.path == f"survey:{question.value}:{answer.value}"
    for earlier in Question:
        if earlier is not question:
            assert turn.answers.of(earlier) == EARLIER[question].of(earlier)
    following = after(question)
    if following is None:
        assert turn.steps == (Say("survey_thanks", language), Hangup())
        assert turn.state.status is SurveyStatus.COMPLETED
    else:
        asks(turn, following)
        assert gather_of(turn).language is language


# -- answers by speech --------------------------------------------------------------------


@pytest.mark.parametrize(("question", "language", "words", "answer"), SPEECH_ANSWERS)
def test_each_question_is_answered_by_speech(
    question: Question, language: Language, words: str, answer: Answer
) -> None:
    turn = FLOW.handle(at(question, language), said(words))

    assert turn.answers.of(question) is answer


def test_every_answer_of_every_question_can_be_said_in_mandarin_and_in_english() -> None:
    covered = {(question, language, answer) for question, language, _, answer in SPEECH_ANSWERS}

    for question, _, answer in KEY_ANSWERS:
        for language in SPOKEN:
            assert (question, language, answer) in covered, (question, language, answer)


@pytest.mark.parametrize("question", list(Question))
@pytest.mark.parametrize("language", SPOKEN)
def test_mandarin_and_english_questions_listen_for_speech_with_hints_in_the_language(
    question: Question, language: Language
) -> None:
    gather = gather_of(FLOW.handle(at(question, language), SILENCE))

    assert gather.speech
    assert gather.hints
    assert all(hint.isascii() is (language is Language.ENGLISH) for hint in gather.hints)


@pytest.mark.parametrize("question", list(Question))
def test_a_tibetan_survey_is_answered_by_keys_only(question: Question) -> None:
    gather = gather_of(FLOW.handle(at(question, Language.TIBETAN), SILENCE))

    assert gather.speech is False
    assert gather.hints == ()
    assert gather.language is Language.TIBETAN


def test_a_key_wins_over_words_said_at_the_same_time() -> None:
    turn = FLOW.handle(at(Question.SATISFIED), CallerInput.parse("1", "不满意"))

    assert turn.answers.satisfied is Satisfaction.SATISFIED


# -- silence and bad input ----------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("question", list(Question))
def test_silence_once_repeats_the_question_then_the_answer_counts(
    question: Question, language: Language
) -> None:
    retry = FLOW.handle(at(question, language), SILENCE)

    assert retry.steps[0] == Say("invalid_input", language)
    asks(retry, question, attempt=2)
    assert retry.path == f"survey:{question.value}:retry1"
    assert retry.answers == EARLIER[question]
    assert "survey_opt_out_hint" not in prompts(retry)

    state = SurveyState.from_dict(gather_of(retry).action.params)
    answered = FLOW.handle(state, keyed("1"))
    assert answered.answers.of(question) is QUESTIONS[question].keys["1"]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("question", list(Question))
def test_silence_twice_skips_the_question_and_leaves_its_answer_empty(
    question: Question, language: Language
) -> None:
    turn = FLOW.handle(at(question, language, attempt=2), SILENCE)

    assert turn.answers.of(question) is None
    assert turn.answers == EARLIER[question]
    assert turn.path == f"survey:{question.value}:skipped"
    following = after(question)
    if following is None:
        assert turn.steps == (Say("survey_thanks", language), Hangup())
        assert turn.state.status is SurveyStatus.COMPLETED
    else:
        asks(turn, following, attempt=1)
        assert "invalid_input" not in prompts(turn)


@pytest.mark.parametrize("question", list(Question))
@pytest.mark.parametrize(("label", "given"), BAD_INPUTS, ids=[label for label, _ in BAD_INPUTS])
def test_bad_input_is_asked_again_once(question: Question, label: str, given: CallerInput) -> None:
    retry = FLOW.handle(at(question), given)

    asks(retry, question, attempt=2)
    assert retry.steps[0] == Say("invalid_input", Language.MANDARIN)
    assert retry.answers == EARLIER[question]


@pytest.mark.parametrize("question", list(Question))
@pytest.mark.parametrize(("label", "given"), BAD_INPUTS, ids=[label for label, _ in BAD_INPUTS])
def test_bad_input_twice_skips_the_question(
    question: Question, label: str, given: CallerInput
) -> None:
    turn = FLOW.handle(at(question, attempt=2), given)

    assert turn.answers == EARLIER[question]
    assert turn.path.endswith(":skipped")


def test_a_third_key_is_no_answer_to_the_yes_or_no_question() -> None:
    retry = FLOW.handle(at(Question.RESPONDED), keyed("3"))

    asks(retry, Question.RESPONDED, attempt=2)


def test_a_huge_speech_result_is_no_answer_even_when_it_holds_the_words() -> None:
    given = CallerInput.parse(None, "我非常满意" * 10_000)

    assert len(given.speech) <= 300  # cut by CallerInput before matching
    assert FLOW.handle(at(Question.SATISFIED), given).answers.satisfied is None


def test_more_tries_can_be_configured() -> None:
    flow = SurveyFlow(tries=3)

    second = flow.handle(at(Question.SOLVED, attempt=2), SILENCE)
    asks(second, Question.SOLVED, attempt=3)
    third = flow.handle(second.state, SILENCE)
    asks(third, Question.SATISFIED)


@pytest.mark.parametrize("tries", [0, -1])
def test_a_survey_asks_each_question_at_least_once(tries: int) -> None:
    with pytest.raises(ValueError, match="at least once"):
        SurveyFlow(tries=tries)


# -- do not call me again -----------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("attempt", [1, 2])
@pytest.mark.parametrize("question", list(Question))
def test_the_do_not_call_key_at_any_question_thanks_and_hangs_up_keeping_the_answers(
    question: Question, attempt: int, language: Language
) -> None:
    turn = FLOW.handle(at(question, language, attempt), keyed(OPT_OUT_KEY))

    assert turn.opted_out
    assert turn.is_finished
    assert turn.state.status is SurveyStatus.OPTED_OUT
    assert turn.steps == (Say("survey_opted_out", language), Hangup())
    assert turn.answers == EARLIER[question]
    assert turn.path == f"survey:{question.value}:opt-out"


@pytest.mark.parametrize(
    ("language", "words"),
    [
        (Language.MANDARIN, "以后不要再打电话了"),
        (Language.MANDARIN, "别再给我打了"),
        (Language.ENGLISH, "Please don't call me again."),
        (Language.ENGLISH, "stop calling me"),
    ],
)
@pytest.mark.parametrize("question", list(Question))
def test_saying_do_not_call_me_again_opts_out_too(
    question: Question, language: Language, words: str
) -> None:
    turn = FLOW.handle(at(question, language), said(words))

    assert turn.opted_out
    assert turn.answers == EARLIER[question]


def test_only_a_completed_or_opted_out_survey_is_finished() -> None:
    assert not FLOW.handle(at(Question.SOLVED), keyed("1")).opted_out
    assert not FLOW.handle(at(Question.SOLVED), SILENCE).is_finished


# -- whole calls --------------------------------------------------------------------------


def run(language: Language, inputs: list[CallerInput]) -> list[SurveyTurn]:
    """A whole call, each state taken from the previous gather's action URL."""
    turns = [FLOW.start(ORDER, survey_id=SURVEY_ID, language=language)]
    for given in inputs:
        state = SurveyState.from_dict(gather_of(turns[-1]).action.params)
        turns.append(FLOW.handle(state, given))
    return turns


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_whole_survey_by_keys_ends_with_all_three_answers(language: Language) -> None:
    turns = run(language, [keyed("1"), keyed("2"), keyed("3")])

    final = turns[-1]
    assert final.state == SurveyState(
        SURVEY_ID,
        language,
        Question.SATISFIED,
        1,
        SurveyAnswers(Responded.YES, Resolution.PARTLY, Satisfaction.DISSATISFIED),
        SurveyStatus.COMPLETED,
    )
    assert final.steps == (Say("survey_thanks", language), Hangup())
    assert final.state.to_dict() == {
        "survey": SURVEY_ID,
        "lang": language.value,
        "q": "satisfied",
        "try": "1",
        "status": "completed",
        "responded": "yes",
        "solved": "partly",
        "satisfied": "dissatisfied",
    }
    assert [turn.path for turn in turns] == [
        "survey:intro",
        "survey:responded:yes",
        "survey:solved:partly",
        "survey:satisfied:dissatisfied",
    ]


@pytest.mark.parametrize(
    ("language", "inputs"),
    [
        (Language.MANDARIN, ["联系过了", "解决了", "非常满意"]),
        (Language.ENGLISH, ["yes", "it's fixed", "very satisfied"]),
    ],
)
def test_a_whole_survey_by_speech(language: Language, inputs: list[str]) -> None:
    final = run(language, [said(words) for words in inputs])[-1]

    assert final.answers == SurveyAnswers(Responded.YES, Resolution.SOLVED, Satisfaction.SATISFIED)
    assert final.state.status is SurveyStatus.COMPLETED


def test_a_mixed_call_with_silence_bad_input_and_a_skipped_question() -> None:
    turns = run(
        Language.MANDARIN,
        [SILENCE, keyed("2"), keyed("8"), said("请问你是谁"), said("基本满意")],
    )

    assert [turn.path for turn in turns[1:]] == [
        "survey:responded:retry1",
        "survey:responded:no",
        "survey:solved:retry1",
        "survey:solved:skipped",
        "survey:satisfied:basically_satisfied",
    ]
    assert turns[-1].answers == SurveyAnswers(Responded.NO, None, Satisfaction.BASICALLY_SATISFIED)


def test_a_citizen_who_hangs_up_midway_leaves_the_answers_given_so_far() -> None:
    """The edge stores ``turn.state`` after each step; a hang-up sends no further step."""
    stored = run(Language.ENGLISH, [keyed("1"), keyed("3")])[-1].state

    assert stored.answers == SurveyAnswers(Responded.YES, Resolution.NOT_SOLVED, None)
    assert stored.status is SurveyStatus.ASKING
    assert stored.question is Question.SATISFIED


def test_a_call_with_no_answer_at_all_completes_empty() -> None:
    final = run(Language.MANDARIN, [SILENCE] * 6)[-1]

    assert final.state.status is SurveyStatus.COMPLETED
    assert final.answers.is_empty


def test_a_finished_survey_answers_a_replayed_step_with_a_hang_up_only() -> None:
    done = run(Language.MANDARIN, [keyed("1"), keyed("1"), keyed("1")])[-1].state

    turn = FLOW.handle(done, keyed("3"))

    assert turn.steps == (Hangup(),)
    assert turn.state == done


def test_the_same_step_twice_gives_the_same_turn() -> None:
    """Twilio may retry a webhook: the machine is a function of state and input."""
    assert FLOW.handle(at(Question.SOLVED), keyed("2")) == FLOW.handle(
        at(Question.SOLVED), keyed("2")
    )


# -- the state ----------------------------------------------------------------------------


def test_every_state_of_a_call_reads_back_from_its_dict() -> None:
    turns = run(Language.TIBETAN, [SILENCE, keyed("1"), keyed("5"), keyed("2")])
    turns.append(FLOW.handle(turns[-1].state, keyed(OPT_OUT_KEY)))

    for turn in turns:
        data = turn.state.to_dict()
        assert all(isinstance(value, str) for value in data.values())
        assert SurveyState.from_dict(data) == turn.state


def test_a_state_ignores_the_other_parameters_of_the_request() -> None:
    data = {**at(Question.SOLVED).to_dict(), "CallSid": "CA" + "0" * 32, "Digits": "1"}

    assert SurveyState.from_dict(data) == at(Question.SOLVED)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"survey": None}, "'survey' is missing"),
        ({"lang": None}, "'lang' is missing"),
        ({"survey": ""}, "survey id"),
        ({"lang": "fr"}, "'fr' is not a valid Language"),
        ({"q": "happy"}, "'happy' is not a valid Question"),
        ({"try": "x"}, "invalid literal"),
        ({"try": "0"}, "attempt of 1 or more"),
        ({"status": "paused"}, "'paused' is not a valid SurveyStatus"),
        ({"solved": "maybe"}, "'maybe' is not a valid Resolution"),
        ({"responded": "solved"}, "'solved' is not a valid Responded"),
    ],
)
def test_a_malformed_state_is_refused(change: dict[str, str | None], message: str) -> None:
    data: dict[str, str] = at(Question.SATISFIED).to_dict()
    for key, value in change.items():
        if value is None:
            del data[key]
        else:
            data[key] = value

    with pytest.raises(ValueError, match="survey state") as error:
        SurveyState.from_dict(data)
    assert message in str(error.value)


def test_an_answer_must_fit_its_question() -> None:
    with pytest.raises(ValueError, match="does not answer"):
        SurveyAnswers().with_answer(Question.SOLVED, Satisfaction.SATISFIED)


# -- prompts ------------------------------------------------------------------------------


def test_every_prompt_of_the_survey_exists_in_mandarin_and_english_and_fills_in() -> None:
    turns = [
        FLOW.start(ORDER, survey_id=SURVEY_ID, language=Language.MANDARIN),
        FLOW.start(SECRET, survey_id=SURVEY_ID, language=Language.MANDARIN),
        *run(Language.MANDARIN, [SILENCE, keyed("1"), keyed("1"), keyed("1")]),
        FLOW.handle(at(Question.SOLVED), keyed(OPT_OUT_KEY)),
    ]
    used = {say.prompt for turn in turns for say in says(turn.steps)}
    used |= {say.prompt for say in says(survey_apology(Language.ENGLISH))}

    assert used >= {spec.prompt for spec in QUESTIONS.values()}
    for prompt in used:
        assert {"zh", "en"} <= set(PROMPTS[prompt]), prompt
    for turn in turns:
        for say in says(turn.steps):
            for language in ("zh", "en", "bo"):
                assert "{" not in prompt_text(say.prompt, language, say.args)


@pytest.mark.parametrize("question", list(Question))
@pytest.mark.parametrize("language", ["zh", "en"])
def test_each_question_names_its_keys(question: Question, language: str) -> None:
    text = prompt_text(QUESTIONS[question].prompt, language)

    for key in QUESTIONS[question].keys:
        assert key in text


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_apology_ends_the_call_politely(language: Language) -> None:
    assert survey_apology(language) == (Say("survey_apology", language), Hangup())
