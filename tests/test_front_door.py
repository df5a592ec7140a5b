"""The front door of PRODUCT.md ("The inbound call", points 1-4) as a pure state machine.

No Flask, no database: each test builds a ``FlowState`` the way ``ivr`` rebuilds it from the
signed action URL, feeds the caller's input to ``FrontDoor.handle`` and looks at the steps
the caller would hear.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from callflows import speech
from callflows.front_door import (
    DEFAULT_EMERGENCY_LINE,
    EMERGENCY_KEYS,
    MAX_DIGITS,
    SHORT_NUMBERS,
    CallerInput,
    FlowState,
    FrontDoor,
    FrontDoorMode,
    Intent,
    ProgressInfo,
    Turn,
    emergency_wait,
    queue_wait,
)
from callflows.prompts import LINE_NAMES, PROMPTS, prompt_text
from callflows.steps import (
    Action,
    Gather,
    Hangup,
    HoldMusic,
    JoinConference,
    Language,
    Pause,
    Say,
    Stage,
    WaitRoom,
)

CALL_SID = "CA" + "f" * 32
ORDER = "20261127000001"
MENU = FrontDoor()
DIRECT = FrontDoor(FrontDoorMode.DIRECT)
LINES = ("fire", "medical", "police", "traffic", "utility")


# -- helpers ------------------------------------------------------------------


@dataclass
class Lookup:
    """A progress look-up that records the numbers it was asked for."""

    result: ProgressInfo | None = None
    asked: list[str] = field(default_factory=list)

    def __call__(self, number: str) -> ProgressInfo | None:
        self.asked.append(number)
        return self.result


def found(number: str = ORDER, state: str = "in_progress") -> Lookup:
    return Lookup(ProgressInfo(number, state, "城关区住建局", "2026-12-04"))


def no_lookup(number: str) -> ProgressInfo | None:
    raise AssertionError(f"the progress look-up must not be called (asked for {number!r})")


def given(digits: str | None = None, said: str | None = None) -> CallerInput:
    return CallerInput.parse(digits, said)


SILENCE = given()


def state(
    language: Language = Language.MANDARIN, attempt: int = 1, order: str = "", line: str = ""
) -> FlowState:
    return FlowState(CALL_SID, language, attempt, order, line)


def state_from(action: Action) -> FlowState:
    """The state ``ivr`` rebuilds from the action URL's query parameters."""
    params = action.params
    return FlowState(
        CALL_SID,
        Language(params["lang"]),
        int(params["try"]),
        params.get("order", ""),
        params.get("line", ""),
    )


def handle(
    stage: Stage,
    caller_input: CallerInput,
    flow: FlowState | None = None,
    *,
    door: FrontDoor = MENU,
    lookup=no_lookup,
) -> Turn:
    return door.handle(stage, flow or state(), caller_input, lookup)


def the_gather(turn: Turn) -> Gather:
    gathers = [step for step in turn.steps if isinstance(step, Gather)]
    assert len(gathers) == 1, turn.steps
    assert turn.steps[-1] is gathers[0], "the gather must come last"
    return gathers[0]


def the_join(turn: Turn) -> JoinConference:
    joins = [step for step in turn.steps if isinstance(step, JoinConference)]
    assert len(joins) == 1, turn.steps
    assert turn.steps[-1] is joins[0], "joining the conference must come last"
    return joins[0]


def said(turn: Turn) -> list[str]:
    """The prompt keys the caller hears, in order, gathers included."""
    keys: list[str] = []
    for step in turn.steps:
        if isinstance(step, Say):
            keys.append(step.prompt)
        elif isinstance(step, Gather):
            keys.extend(p.prompt for p in step.prompts if isinstance(p, Say))
    return keys


def follow(turn: Turn, caller_input: CallerInput, *, door=MENU, lookup=no_lookup) -> Turn:
    """Answer the turn's gather: what the next webhook would do."""
    action = the_gather(turn).action
    return door.handle(action.stage, state_from(action), caller_input, lookup)


def assert_queued(turn: Turn, intent: Intent, language: Language = Language.MANDARIN) -> None:
    assert turn.queue is True
    assert turn.intent is intent
    assert turn.emergency_line is None
    join = the_join(turn)
    assert join.wait is WaitRoom.QUEUE
    assert join.room == CALL_SID
    assert join.language is language
    assert join.after.stage is Stage.AFTER_CONFERENCE
    assert not any(isinstance(step, Gather) for step in turn.steps)


def assert_emergency_line(turn: Turn, line: str, language: Language = Language.MANDARIN) -> None:
    assert turn.emergency_line == line
    assert turn.intent is Intent.EMERGENCY
    assert turn.queue is False, "an emergency caller never waits in the queue"
    join = the_join(turn)
    assert join.wait is WaitRoom.EMERGENCY
    assert join.room == CALL_SID
    assert dict(join.params) == {"line": line}
    assert join.language is language
    connecting = turn.steps[0]
    assert isinstance(connecting, Say)
    assert connecting.prompt == "emergency_connecting"
    expected_name = LINE_NAMES[line].get(language.value) or LINE_NAMES[line]["zh"]
    assert connecting.args == {"line": expected_name}


def assert_emergency_menu(turn: Turn, language: Language = Language.MANDARIN) -> None:
    gather = the_gather(turn)
    assert gather.action.stage is Stage.EMERGENCY
    assert gather.action.params["try"] == "1"
    assert gather.action.params["lang"] == language.value
    assert said(turn) == ["emergency_menu"]
    assert turn.intent is Intent.EMERGENCY
    assert turn.emergency_line is None
    assert turn.queue is False


def assert_retry(turn: Turn, stage: Stage, next_try: int) -> Gather:
    assert isinstance(turn.steps[0], Say)
    assert turn.steps[0].prompt == "invalid_input"
    gather = the_gather(turn)
    assert gather.action.stage is stage
    assert gather.action.params["try"] == str(next_try)
    assert turn.queue is False
    assert turn.emergency_line is None
    return gather


# -- 1. greeting and language ---------------------------------------------------


def test_a_new_call_hears_the_welcome_then_the_three_language_choices() -> None:
    turn = MENU.start(CALL_SID)

    gather = the_gather(turn)
    assert turn.path == "greeting"
    assert gather.action == Action(Stage.LANGUAGE, {"lang": "zh", "try": "1"})
    assert [(p.prompt, p.language) for p in gather.prompts] == [
        ("welcome", Language.MANDARIN),
        ("choose_tibetan", Language.TIBETAN),
        ("choose_english", Language.ENGLISH),
    ]
    assert gather.num_digits == 1
    assert gather.speech is True
    assert set(speech.hints_for(speech.EMERGENCY_WORDS)) <= set(gather.hints)


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_welcome_tells_the_caller_to_press_9_for_emergencies(language: str) -> None:
    assert "9" in PROMPTS["welcome"][language]


@pytest.mark.parametrize(
    ("key", "language"),
    [("1", Language.MANDARIN), ("2", Language.TIBETAN), ("3", Language.ENGLISH)],
)
def test_a_language_key_opens_the_main_menu_in_that_language(key: str, language: Language) -> None:
    turn = handle(Stage.LANGUAGE, given(key))

    gather = the_gather(turn)
    assert turn.language is language
    assert turn.path == f"language:{language.value}"
    assert gather.action == Action(Stage.MENU, {"lang": language.value, "try": "1"})
    assert gather.language is language
    assert said(turn) == ["main_menu"]
    assert turn.queue is False
    assert turn.intent is None


@pytest.mark.parametrize(
    ("words", "language"),
    [
        ("普通话", Language.MANDARIN),
        ("我要说中文", Language.MANDARIN),
        ("藏语", Language.TIBETAN),
        ("Tibetan please", Language.TIBETAN),
        ("English please", Language.ENGLISH),
        ("英语", Language.ENGLISH),
    ],
)
def test_a_caller_who_names_a_language_gets_the_main_menu_in_it(
    words: str, language: Language
) -> None:
    turn = handle(Stage.LANGUAGE, given(said=words))

    assert turn.language is language
    assert the_gather(turn).action.stage is Stage.MENU
    assert the_gather(turn).action.params["lang"] == language.value


@pytest.mark.parametrize(
    "caller_input",
    [SILENCE, given("5"), given("*"), given("12a"), given(said="嗯嗯")],
    ids=["silence", "key-5", "star", "garbage", "unknown-words"],
)
def test_a_caller_without_a_valid_language_choice_is_asked_once_more(
    caller_input: CallerInput,
) -> None:
    turn = handle(Stage.LANGUAGE, caller_input)

    assert_retry(turn, Stage.LANGUAGE, next_try=2)
    assert said(turn) == ["invalid_input", "welcome", "choose_tibetan", "choose_english"]
    assert turn.path == "language:retry1"
    assert turn.language is None


@pytest.mark.parametrize(
    "caller_input", [SILENCE, given("7"), given("1" * 50)], ids=["silence", "key-7", "garbage"]
)
def test_a_caller_without_a_valid_language_choice_twice_gets_mandarin(
    caller_input: CallerInput,
) -> None:
    turn = handle(Stage.LANGUAGE, caller_input, state(attempt=2))

    assert turn.language is Language.MANDARIN
    assert turn.path == "language:default"
    gather = the_gather(turn)
    assert gather.action == Action(Stage.MENU, {"lang": "zh", "try": "1"})
    assert said(turn) == ["main_menu"]


def test_the_language_retry_carries_try_2_and_the_next_silence_falls_back_to_mandarin() -> None:
    first = MENU.start(CALL_SID)
    second = follow(first, SILENCE)
    third = follow(second, SILENCE)

    assert the_gather(second).action.params["try"] == "2"
    assert third.language is Language.MANDARIN
    assert the_gather(third).action.stage is Stage.MENU


def test_a_caller_who_picks_a_language_on_the_second_try_gets_it() -> None:
    turn = handle(Stage.LANGUAGE, given("3"), state(attempt=2))

    assert turn.language is Language.ENGLISH
    assert the_gather(turn).action.params == {"lang": "en", "try": "1"}


@pytest.mark.parametrize("attempt", [1, 2])
def test_caller_who_presses_9_at_the_language_menu_gets_the_emergency_menu(attempt: int) -> None:
    turn = handle(Stage.LANGUAGE, given("9"), state(attempt=attempt))

    assert_emergency_menu(turn)
    assert turn.path == "language:9"


def test_caller_who_says_fire_at_the_language_menu_is_joined_with_the_fire_line() -> None:
    turn = handle(Stage.LANGUAGE, given(said="着火了"))

    assert_emergency_line(turn, "fire")
    assert turn.path == "language:speech-fire"


@pytest.mark.parametrize("words", ["救命", "紧急情况", "emergency"])
def test_caller_who_cries_for_help_at_the_language_menu_gets_the_emergency_menu(
    words: str,
) -> None:
    turn = handle(Stage.LANGUAGE, given(said=words))

    assert_emergency_menu(turn)
    assert turn.path == "language:9"


# -- direct mode ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "language"),
    [("1", Language.MANDARIN), ("2", Language.TIBETAN), ("3", Language.ENGLISH)],
)
def test_in_direct_mode_the_language_choice_goes_straight_to_the_queue(
    key: str, language: Language
) -> None:
    turn = handle(Stage.LANGUAGE, given(key), door=DIRECT)

    assert_queued(turn, Intent.OPERATOR, language)
    assert turn.language is language
    assert said(turn) == ["to_call_taker"]
    assert turn.steps[0] == Say("to_call_taker", language)
    assert turn.path == f"language:{language.value}"


def test_in_direct_mode_a_silent_caller_is_asked_again_then_queued_in_mandarin() -> None:
    first = handle(Stage.LANGUAGE, SILENCE, door=DIRECT)
    second = follow(first, SILENCE, door=DIRECT)

    assert_retry(first, Stage.LANGUAGE, next_try=2)
    assert_queued(second, Intent.OPERATOR, Language.MANDARIN)
    assert second.language is Language.MANDARIN
    assert second.path == "language:default"


def test_in_direct_mode_9_still_opens_the_emergency_menu() -> None:
    turn = handle(Stage.LANGUAGE, given("9"), door=DIRECT)

    assert_emergency_menu(turn)


def test_in_direct_mode_the_emergency_menu_still_joins_the_emergency_line() -> None:
    menu = handle(Stage.LANGUAGE, given("9"), door=DIRECT)
    turn = follow(menu, given("2"), door=DIRECT)

    assert_emergency_line(turn, "medical")


def test_in_direct_mode_emergency_words_join_the_line_at_once() -> None:
    turn = handle(Stage.LANGUAGE, given(said="我家着火了"), door=DIRECT)

    assert_emergency_line(turn, "fire")


# -- 2. main menu -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "intent"),
    [("1", Intent.CONSULTATION), ("2", Intent.COMPLAINT), ("3", Intent.HELP)],
)
@pytest.mark.parametrize("language", list(Language))
def test_a_main_menu_choice_1_to_3_queues_the_caller_with_that_intent(
    key: str, intent: Intent, language: Language
) -> None:
    turn = handle(Stage.MENU, given(key), state(language))

    assert_queued(turn, intent, language)
    assert turn.steps[0] == Say("to_call_taker", language)
    assert turn.path == f"menu:{key}"


def test_caller_who_presses_0_at_the_main_menu_is_queued_for_a_call_taker() -> None:
    turn = handle(Stage.MENU, given("0"))

    assert_queued(turn, Intent.OPERATOR)
    assert turn.path == "menu:0"


def test_caller_who_presses_4_at_the_main_menu_is_asked_for_the_work_order_number() -> None:
    turn = handle(Stage.MENU, given("4"), state(Language.ENGLISH, attempt=2))

    gather = the_gather(turn)
    assert turn.intent is Intent.PROGRESS
    assert turn.queue is False
    assert turn.path == "menu:4"
    assert gather.action == Action(Stage.PROGRESS, {"lang": "en", "try": "1"})
    assert said(turn) == ["progress_enter_number"]
    assert gather.finish_on_key == "#"
    assert gather.num_digits is None
    assert gather.speech is False


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_caller_who_presses_9_at_the_main_menu_gets_the_emergency_menu(attempt: int) -> None:
    turn = handle(Stage.MENU, given("9"), state(Language.ENGLISH, attempt=attempt))

    assert_emergency_menu(turn, Language.ENGLISH)
    assert turn.path == "menu:9"


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_caller_who_presses_star_hears_the_menu_again_without_using_a_try(attempt: int) -> None:
    turn = handle(Stage.MENU, given("*"), state(attempt=attempt))

    gather = the_gather(turn)
    assert said(turn) == ["main_menu"], "no 'sorry' when the caller asked to hear it again"
    assert gather.action == Action(Stage.MENU, {"lang": "zh", "try": str(attempt)})
    assert turn.path == "menu:repeat"
    assert turn.queue is False


@pytest.mark.parametrize(
    "caller_input",
    [SILENCE, given("5"), given("#"), given("12a"), given("1" * 50), given(said="今天天气怎么样")],
    ids=["silence", "key-5", "hash", "garbage", "fifty-digits", "unknown-words"],
)
@pytest.mark.parametrize("attempt", [1, 2])
def test_an_invalid_main_menu_choice_is_answered_with_sorry_and_the_menu_again(
    caller_input: CallerInput, attempt: int
) -> None:
    turn = handle(Stage.MENU, caller_input, state(Language.TIBETAN, attempt=attempt))

    gather = assert_retry(turn, Stage.MENU, next_try=attempt + 1)
    assert said(turn) == ["invalid_input", "main_menu"]
    assert gather.action.params["lang"] == "bo"
    assert turn.path == f"menu:retry{attempt}"


@pytest.mark.parametrize(
    "caller_input", [SILENCE, given("8"), given("abc")], ids=["silence", "key-8", "garbage"]
)
def test_a_third_invalid_main_menu_choice_goes_to_a_call_taker(caller_input: CallerInput) -> None:
    turn = handle(Stage.MENU, caller_input, state(attempt=3))

    assert_queued(turn, Intent.OPERATOR)
    assert turn.path == "menu:gave-up"


def test_a_silent_caller_hears_the_main_menu_three_times_in_all_then_gets_a_call_taker() -> None:
    turn = handle(Stage.LANGUAGE, given("1"))
    menus_heard = 1
    while not turn.queue:
        assert menus_heard <= 3, "more than three tries at the main menu"
        turn = follow(turn, SILENCE)
        if any(isinstance(step, Gather) for step in turn.steps):
            menus_heard += 1

    assert menus_heard == 3
    assert_queued(turn, Intent.OPERATOR)


def test_star_between_invalid_choices_does_not_give_the_caller_an_extra_try() -> None:
    first = handle(Stage.MENU, SILENCE)  # try 1 used
    repeated = follow(first, given("*"))  # try 2 kept
    third = follow(repeated, SILENCE)  # try 2 used
    last = follow(third, SILENCE)  # try 3 used

    assert the_gather(repeated).action.params["try"] == "2"
    assert the_gather(third).action.params["try"] == "3"
    assert_queued(last, Intent.OPERATOR)


@pytest.mark.parametrize(
    ("words", "intent"),
    [
        ("政策咨询", Intent.CONSULTATION),
        ("我要投诉", Intent.COMPLAINT),
        ("我要举报", Intent.COMPLAINT),
        ("我想提个建议", Intent.HELP),
        ("转人工", Intent.OPERATOR),
        ("I have a complaint", Intent.COMPLAINT),
    ],
)
def test_a_caller_who_says_what_they_want_at_the_main_menu_is_queued_with_that_intent(
    words: str, intent: Intent
) -> None:
    turn = handle(Stage.MENU, given(said=words))

    assert_queued(turn, intent)


@pytest.mark.parametrize("words", ["查询工单进度", "帮我查一下我的工单", "check my work order"])
def test_a_caller_who_asks_for_progress_by_voice_is_asked_for_the_number(words: str) -> None:
    turn = handle(Stage.MENU, given(said=words))

    assert the_gather(turn).action.stage is Stage.PROGRESS
    assert turn.intent is Intent.PROGRESS


@pytest.mark.parametrize(
    "words",
    [
        "我想问一下我的工单进度",
        "我想了解一下工单办到哪了",
        "I want to ask about my work order status",
    ],
)
def test_a_caller_who_asks_about_their_work_order_in_a_sentence_gets_the_progress_lookup(
    words: str,
) -> None:
    turn = handle(Stage.MENU, given(said=words))

    assert turn.intent is Intent.PROGRESS
    assert the_gather(turn).action.stage is Stage.PROGRESS


@pytest.mark.parametrize(
    ("words", "line"),
    [
        ("着火了", "fire"),
        ("有人受伤了", "medical"),
        ("这里有人打架", "police"),
        ("撞车了", "traffic"),
    ],
)
def test_caller_who_says_an_emergency_at_the_main_menu_is_joined_with_that_line_directly(
    words: str, line: str
) -> None:
    turn = handle(Stage.MENU, given(said=words), state(attempt=3))

    assert_emergency_line(turn, line)
    assert turn.path == f"menu:speech-{line}"


@pytest.mark.parametrize("words", ["救命", "紧急", "This is an emergency"])
def test_caller_who_cries_for_help_at_the_main_menu_gets_the_emergency_menu(words: str) -> None:
    turn = handle(Stage.MENU, given(said=words))

    assert_emergency_menu(turn)
    assert turn.path == "menu:9"


def test_a_key_at_the_main_menu_wins_over_words_said_with_it() -> None:
    turn = handle(Stage.MENU, CallerInput(digits="2", speech="政策咨询"))

    assert turn.intent is Intent.COMPLAINT


# -- 3. work-order progress -------------------------------------------------------


def test_a_caller_who_keys_a_work_order_number_hears_its_status_and_the_options() -> None:
    lookup = found()

    turn = handle(Stage.PROGRESS, given(ORDER), lookup=lookup)

    assert lookup.asked == [ORDER]
    status = turn.steps[0]
    assert isinstance(status, Say)
    assert status.prompt == "progress_status"
    assert status.args == {
        "number": " ".join(ORDER),
        "state": "办理中",
        "department": "城关区住建局",
        "due": "2026-12-04",
    }
    gather = the_gather(turn)
    assert gather.action == Action(
        Stage.PROGRESS_RESULT, {"lang": "zh", "try": "1", "order": ORDER}
    )
    assert said(turn) == ["progress_status", "progress_options"]
    assert gather.speech is True  # "重听", "转人工" and emergency words work here too
    assert turn.intent is Intent.PROGRESS
    assert turn.queue is False
    assert turn.path == "progress:number:read"


def test_the_status_is_read_in_the_callers_language() -> None:
    turn = handle(Stage.PROGRESS, given(ORDER), state(Language.ENGLISH), lookup=found())

    status = turn.steps[0]
    assert isinstance(status, Say)
    assert status.language is Language.ENGLISH
    assert status.args["state"] == "in progress"


def test_an_unknown_state_name_is_read_as_it_is_stored() -> None:
    turn = handle(Stage.PROGRESS, given(ORDER), lookup=found(state="on_hold"))

    assert isinstance(turn.steps[0], Say)
    assert turn.steps[0].args["state"] == "on_hold"


def test_a_work_order_not_found_for_this_caller_sends_them_to_a_call_taker() -> None:
    lookup = Lookup(None)

    turn = handle(Stage.PROGRESS, given(ORDER), lookup=lookup)

    assert lookup.asked == [ORDER]
    assert said(turn) == ["progress_not_found"]
    assert_queued(turn, Intent.PROGRESS)
    assert turn.path == "progress:number:not-found"


@pytest.mark.parametrize(
    "caller_input",
    [SILENCE, given("123"), given("12345"), given("1" * 21), given("12a"), given("2026*1127")],
    ids=["silence", "too-short", "five-digits", "too-long", "garbage", "star-inside"],
)
@pytest.mark.parametrize("attempt", [1, 2])
def test_an_invalid_work_order_number_is_asked_for_again(
    caller_input: CallerInput, attempt: int
) -> None:
    turn = handle(Stage.PROGRESS, caller_input, state(attempt=attempt))

    assert_retry(turn, Stage.PROGRESS, next_try=attempt + 1)
    assert said(turn) == ["invalid_input", "progress_enter_number"]
    assert turn.path == f"progress:retry{attempt}"


def test_a_third_invalid_work_order_number_goes_to_a_call_taker() -> None:
    turn = handle(Stage.PROGRESS, given("1"), state(attempt=3))

    assert_queued(turn, Intent.PROGRESS)
    assert turn.path == "progress:gave-up"


def test_a_silent_caller_is_asked_for_the_number_three_times_then_gets_a_call_taker() -> None:
    turn = handle(Stage.MENU, given("4"))
    tries = [the_gather(turn).action.params["try"]]
    while not turn.queue:
        turn = follow(turn, SILENCE)
        if not turn.queue:
            tries.append(the_gather(turn).action.params["try"])

    assert tries == ["1", "2", "3"]
    assert_queued(turn, Intent.PROGRESS)


def test_caller_who_presses_0_instead_of_a_number_is_queued() -> None:
    turn = handle(Stage.PROGRESS, given("0"))

    assert_queued(turn, Intent.PROGRESS)


@pytest.mark.parametrize("number", ["123456", "1" * 20])
def test_work_order_numbers_of_6_to_20_digits_are_looked_up(number: str) -> None:
    lookup = Lookup(None)

    handle(Stage.PROGRESS, given(number), lookup=lookup)

    assert lookup.asked == [number]


def test_caller_who_presses_1_after_the_status_hears_it_again_from_a_fresh_lookup() -> None:
    lookup = found()
    status = handle(Stage.PROGRESS, given(ORDER), lookup=lookup)

    again = follow(status, given("1"), lookup=lookup)

    assert lookup.asked == [ORDER, ORDER]
    assert said(again) == ["progress_status", "progress_options"]
    assert the_gather(again).action.params == {"lang": "zh", "try": "1", "order": ORDER}
    assert again.path == "progress:again:read"


def test_an_order_that_disappeared_before_hearing_it_again_goes_to_a_call_taker() -> None:
    lookup = Lookup(None)

    turn = handle(Stage.PROGRESS_RESULT, given("1"), state(order=ORDER), lookup=lookup)

    assert lookup.asked == [ORDER]
    assert_queued(turn, Intent.PROGRESS)
    assert turn.path == "progress:again:not-found"


def test_caller_who_presses_0_after_the_status_is_queued_for_a_call_taker() -> None:
    turn = handle(Stage.PROGRESS_RESULT, given("0"), state(order=ORDER))

    assert_queued(turn, Intent.PROGRESS)
    assert said(turn) == ["to_call_taker"]


def test_a_silent_caller_after_the_status_is_asked_once_more_then_hears_goodbye() -> None:
    status = handle(Stage.PROGRESS, given(ORDER), lookup=found())

    retry = follow(status, SILENCE)
    goodbye = follow(retry, SILENCE)

    gather = assert_retry(retry, Stage.PROGRESS_RESULT, next_try=2)
    assert gather.action.params["order"] == ORDER
    assert said(retry) == ["invalid_input", "progress_options"]
    assert goodbye.steps == (Say("goodbye", Language.MANDARIN), Hangup())
    assert goodbye.path == "progress:goodbye"
    assert goodbye.queue is False


def test_pressing_1_without_an_order_number_in_the_state_does_not_look_anything_up() -> None:
    turn = handle(Stage.PROGRESS_RESULT, given("1"), state(order=""))

    assert_retry(turn, Stage.PROGRESS_RESULT, next_try=2)


@pytest.mark.parametrize("attempt", [1, 2])
def test_caller_who_presses_9_after_the_status_gets_the_emergency_menu(attempt: int) -> None:
    turn = handle(Stage.PROGRESS_RESULT, given("9"), state(attempt=attempt, order=ORDER))

    assert_emergency_menu(turn)
    assert turn.path == "progress:9"


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_caller_who_presses_9_instead_of_a_work_order_number_gets_the_emergency_menu(
    attempt: int,
) -> None:
    turn = handle(Stage.PROGRESS, given("9"), state(Language.ENGLISH, attempt=attempt))

    assert_emergency_menu(turn, Language.ENGLISH)
    assert turn.path == "progress:9"


# -- 4. emergency fast lane -------------------------------------------------------


@pytest.mark.parametrize(("key", "line"), sorted(EMERGENCY_KEYS.items()))
def test_an_emergency_key_joins_the_caller_with_that_line_at_once(key: str, line: str) -> None:
    turn = handle(Stage.EMERGENCY, given(key))

    assert_emergency_line(turn, line)
    assert turn.path == f"emergency:{line}"


def test_the_emergency_keys_are_the_product_decisions() -> None:
    assert EMERGENCY_KEYS == {
        "1": "fire",
        "2": "medical",
        "3": "police",
        "4": "traffic",
        "5": "utility",
    }


@pytest.mark.parametrize(
    ("words", "line"),
    [
        ("着火了", "fire"),
        ("楼下起火了", "fire"),
        ("有人受伤", "medical"),
        ("我爸晕倒了", "medical"),
        ("有人打架", "police"),
        ("我的手机被偷了", "police"),
        ("撞车了", "traffic"),
        ("小区停电了", "utility"),
        ("家里停水了", "utility"),
        ("厨房有燃气味", "utility"),
        ("There is a gas leak", "utility"),
        ("someone is unconscious", "medical"),
    ],
)
def test_emergency_words_join_the_caller_with_the_right_line(words: str, line: str) -> None:
    turn = handle(Stage.EMERGENCY, given(said=words))

    assert_emergency_line(turn, line)


@pytest.mark.parametrize("language", list(Language))
def test_the_emergency_line_is_named_in_the_callers_language(language: Language) -> None:
    turn = handle(Stage.EMERGENCY, given("3"), state(language))

    assert_emergency_line(turn, "police", language)


@pytest.mark.parametrize(
    "caller_input",
    [SILENCE, given("6"), given("9"), given("12a"), given(said="我也不知道")],
    ids=["silence", "key-6", "key-9", "garbage", "unknown-words"],
)
@pytest.mark.parametrize("attempt", [1, 2])
def test_an_unclear_emergency_choice_is_asked_for_again(
    caller_input: CallerInput, attempt: int
) -> None:
    turn = handle(Stage.EMERGENCY, caller_input, state(attempt=attempt))

    assert_retry(turn, Stage.EMERGENCY, next_try=attempt + 1)
    assert said(turn) == ["invalid_input", "emergency_menu"]
    assert turn.intent is None or turn.intent is Intent.EMERGENCY


def test_three_unclear_emergency_choices_join_the_police_line() -> None:
    menu = handle(Stage.MENU, given("9"))
    second = follow(menu, SILENCE)
    third = follow(second, given("7"))
    last = follow(third, SILENCE)

    assert the_gather(second).action.params["try"] == "2"
    assert the_gather(third).action.params["try"] == "3"
    assert DEFAULT_EMERGENCY_LINE == "police"
    assert_emergency_line(last, "police")
    assert last.path == "emergency:default"


def test_caller_who_presses_star_at_the_emergency_menu_hears_it_again_without_using_a_try() -> None:
    turn = handle(Stage.EMERGENCY, given("*"), state(attempt=3))

    gather = the_gather(turn)
    assert said(turn) == ["emergency_menu"]
    assert gather.action.params["try"] == "3"


def test_caller_who_presses_0_at_the_emergency_menu_is_queued_for_a_call_taker() -> None:
    turn = handle(Stage.EMERGENCY, given("0"))

    assert_queued(turn, Intent.OPERATOR)


def test_the_emergency_menu_opened_on_a_late_main_menu_try_starts_at_try_1() -> None:
    turn = handle(Stage.MENU, given("9"), state(attempt=3))

    assert the_gather(turn).action.params["try"] == "1"


# -- after the conference, unreachable lines, apologies --------------------------


def test_after_the_conference_the_caller_hears_goodbye() -> None:
    turn = handle(Stage.AFTER_CONFERENCE, SILENCE, state(Language.ENGLISH))

    assert turn.steps == (Say("goodbye", Language.ENGLISH), Hangup())
    assert turn.path == "ended"


@pytest.mark.parametrize("line", [line for line in LINES if line != "utility"])
def test_an_unreachable_emergency_line_is_named_with_its_short_number_then_a_call_taker(
    line: str,
) -> None:
    turn = handle(Stage.EMERGENCY_UNREACHABLE, SILENCE, state(line=line))

    sorry = turn.steps[0]
    assert isinstance(sorry, Say)
    assert sorry.prompt == "emergency_unreachable"
    assert sorry.args == {"line": LINE_NAMES[line]["zh"], "short_number": SHORT_NUMBERS[line]}
    assert turn.intent is Intent.EMERGENCY
    assert turn.queue is True
    assert the_join(turn).wait is WaitRoom.QUEUE
    assert turn.path == f"emergency:unreachable-{line}"


@pytest.mark.parametrize(
    ("line", "number"), [("fire", "119"), ("medical", "120"), ("police", "110"), ("traffic", "122")]
)
def test_the_short_numbers_are_the_national_emergency_numbers(line: str, number: str) -> None:
    assert SHORT_NUMBERS[line] == number


@pytest.mark.parametrize("line", ["", "bogus"])
def test_an_unreachable_unknown_line_is_treated_as_the_police_line(line: str) -> None:
    turn = MENU.emergency_unreachable(state(line=line))

    assert isinstance(turn.steps[0], Say)
    assert turn.steps[0].args["short_number"] == "110"
    assert turn.path == "emergency:unreachable-police"


@pytest.mark.parametrize("language", list(Language))
def test_the_apology_without_an_emergency_puts_the_caller_in_the_queue(
    language: Language,
) -> None:
    turn = MENU.apology(state(language), None)

    assert turn.steps[0] == Say("apology", language)
    assert_queued(turn, Intent.OPERATOR, language)
    assert turn.path == "apology:queue"


@pytest.mark.parametrize("line", LINES)
@pytest.mark.parametrize("language", list(Language))
def test_the_apology_during_an_emergency_still_joins_the_emergency_line(
    line: str, language: Language
) -> None:
    turn = MENU.apology(state(language), line)

    sorry = turn.steps[0]
    assert isinstance(sorry, Say)
    assert sorry.prompt == "apology_emergency"
    assert sorry.args == {"line": LINE_NAMES[line].get(language.value) or LINE_NAMES[line]["zh"]}
    assert turn.emergency_line == line
    assert turn.intent is Intent.EMERGENCY
    assert turn.queue is False
    join = the_join(turn)
    assert join.wait is WaitRoom.EMERGENCY
    assert dict(join.params) == {"line": line}
    assert turn.path == "apology:emergency"


# -- the wait room ------------------------------------------------------------------


@pytest.mark.parametrize("position", [0, 1])
def test_a_caller_first_in_line_is_told_they_are_next(position: int) -> None:
    assert queue_wait(Language.MANDARIN, position) == (
        Say("queue_next", Language.MANDARIN),
        HoldMusic(),
    )


@pytest.mark.parametrize(("position", "ahead"), [(2, "1"), (3, "2"), (10, "9")])
def test_a_caller_further_back_hears_how_many_callers_are_ahead(position: int, ahead: str) -> None:
    steps = queue_wait(Language.ENGLISH, position)

    assert steps == (Say("queue_position", Language.ENGLISH, {"position": ahead}), HoldMusic())
    assert prompt_text("queue_position", "en", {"position": ahead}).startswith(
        f"There are {ahead} callers ahead"
    )


def test_an_emergency_caller_waiting_for_the_line_hears_hold_on_not_music() -> None:
    steps = emergency_wait(Language.TIBETAN)

    assert steps[0] == Say("emergency_hold", Language.TIBETAN)
    assert isinstance(steps[1], Pause)
    assert not any(isinstance(step, HoldMusic) for step in steps)


# -- CallerInput.parse: whatever Twilio sends -------------------------------------


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        ("1", "1"),
        (" 4 ", "4"),
        ("*", "*"),
        ("*#", "*#"),
        ("0123456789*#", "0123456789*#"),
        ("1" * MAX_DIGITS, "1" * MAX_DIGITS),
    ],
)
def test_keys_twilio_can_send_are_kept(digits: str, expected: str) -> None:
    parsed = CallerInput.parse(digits, None)

    assert parsed == CallerInput(digits=expected, speech="", is_garbage=False)
    assert parsed.is_silent is False


@pytest.mark.parametrize(
    "digits",
    ["12a", "1" * 50, "1" * (MAX_DIGITS + 1), "-1", "1 2", "１２", "٣", "1\n2", "<Say>", "1;DROP"],
)
def test_anything_else_in_digits_is_garbage_not_keys(digits: str) -> None:
    parsed = CallerInput.parse(digits, None)

    assert parsed.is_garbage is True
    assert parsed.digits == ""
    assert parsed.is_silent is False


@pytest.mark.parametrize(("digits", "words"), [(None, None), ("", ""), ("  ", "   "), (None, "")])
def test_nothing_at_all_is_silence(digits: str | None, words: str | None) -> None:
    parsed = CallerInput.parse(digits, words)

    assert parsed == CallerInput()
    assert parsed.is_silent is True


def test_speech_is_trimmed_and_lower_cased() -> None:
    assert CallerInput.parse(None, "  English PLEASE ").speech == "english please"


def test_ten_kilobytes_of_speech_are_cut_to_the_maximum() -> None:
    parsed = CallerInput.parse(None, "政" * 10_240)

    assert len(parsed.speech) == speech.MAX_SPEECH_CHARS


def test_an_emergency_word_past_the_speech_limit_is_not_read() -> None:
    words = "啊" * speech.MAX_SPEECH_CHARS + "着火了"

    turn = handle(Stage.EMERGENCY, given(said=words))

    assert turn.emergency_line is None


def test_garbage_keys_do_not_hide_what_the_caller_said() -> None:
    parsed = CallerInput.parse("12a", "着火了")

    assert parsed.is_garbage is True
    assert parsed.speech == "着火了"
    assert_emergency_line(handle(Stage.EMERGENCY, parsed), "fire")


# -- properties of every turn -----------------------------------------------------

STAGES_WITH_INPUT = (
    Stage.LANGUAGE,
    Stage.MENU,
    Stage.PROGRESS,
    Stage.PROGRESS_RESULT,
    Stage.EMERGENCY,
)
INPUTS = (
    SILENCE,
    given("0"),
    given("1"),
    given("2"),
    given("3"),
    given("4"),
    given("5"),
    given("9"),
    given("*"),
    given("#"),
    given(ORDER),
    given("12a"),
    given("9" * 60),
    given(said="着火了"),
    given(said="救命"),
    given(said="政策咨询"),
    given(said="x" * 10_000),
)
LOOKUPS = (found(), Lookup(None))


def every_turn() -> Iterator[tuple[str, Turn]]:
    """Every stage x input x attempt x language x mode, plus the turns without input."""
    for door in (MENU, DIRECT):
        yield f"{door.mode}:start", door.start(CALL_SID)
        for stage in STAGES_WITH_INPUT:
            for caller_input in INPUTS:
                for attempt in (1, 2, 3):
                    for language in Language:
                        for lookup in LOOKUPS:
                            flow = state(language, attempt, order=ORDER)
                            turn = door.handle(stage, flow, caller_input, lookup)
                            label = f"{door.mode}:{stage}:{caller_input}:{attempt}:{language}"
                            yield label, turn
    for language in Language:
        yield "apology", MENU.apology(state(language), None)
        for line in LINES:
            yield f"apology:{line}", MENU.apology(state(language), line)
            yield f"unreachable:{line}", MENU.emergency_unreachable(state(language, line=line))
        yield "after", MENU.after_conference(state(language))


ALL_TURNS = list(every_turn())


def test_every_turn_ends_by_listening_joining_a_room_or_hanging_up() -> None:
    for label, turn in ALL_TURNS:
        assert turn.steps, label
        assert isinstance(turn.steps[-1], Gather | JoinConference | Hangup), label
        assert (
            sum(isinstance(step, Gather | JoinConference | Hangup) for step in turn.steps) == 1
        ), label


def test_every_gather_posts_to_a_stage_with_the_language_and_the_try() -> None:
    gathers = [(label, s) for label, t in ALL_TURNS for s in t.steps if isinstance(s, Gather)]
    assert len(gathers) > 100
    for label, gather in gathers:
        action = gather.action
        assert isinstance(action.stage, Stage), label
        assert action.stage not in (Stage.AFTER_CONFERENCE, Stage.EMERGENCY_UNREACHABLE), label
        assert {"lang", "try"} <= set(action.params), label
        assert action.params["lang"] in {language.value for language in Language}, label
        assert action.params["try"].isdigit(), label
        assert 1 <= int(action.params["try"]) <= 3, label
        assert all(isinstance(value, str) for value in action.params.values()), label


def test_every_conference_returns_to_the_after_conference_stage_in_the_callers_language() -> None:
    for label, turn in ALL_TURNS:
        for step in turn.steps:
            if isinstance(step, JoinConference):
                assert step.room == CALL_SID, label
                assert step.after.stage is Stage.AFTER_CONFERENCE, label
                assert step.after.params["lang"] == step.language.value, label
                assert step.after.params["try"] == "1", label


def test_every_emergency_turn_joins_the_emergency_room_and_never_the_queue() -> None:
    for label, turn in ALL_TURNS:
        if turn.emergency_line is None:
            continue
        assert turn.emergency_line in LINE_NAMES, label
        assert turn.queue is False, label
        join = the_join(turn)
        assert join.wait is WaitRoom.EMERGENCY, label
        assert join.params["line"] == turn.emergency_line, label


def test_every_queued_turn_joins_the_queue_room() -> None:
    for label, turn in ALL_TURNS:
        if turn.queue:
            assert the_join(turn).wait is WaitRoom.QUEUE, label


def test_every_prompt_said_exists_and_fills_its_placeholders() -> None:
    for label, turn in ALL_TURNS:
        says = [s for s in turn.steps if isinstance(s, Say)]
        for gather in (s for s in turn.steps if isinstance(s, Gather)):
            says.extend(p for p in gather.prompts if isinstance(p, Say))
        for say in says:
            assert say.prompt in PROMPTS, label
            text = prompt_text(say.prompt, say.language.value, say.args)
            assert "{" not in text, (label, text)


def test_a_garbage_or_silent_input_at_any_stage_never_ends_the_call_on_the_first_try() -> None:
    for stage in STAGES_WITH_INPUT:
        for caller_input in (SILENCE, given("12a"), given("1" * 50)):
            turn = handle(stage, caller_input, state(order=ORDER))
            assert not any(isinstance(step, Hangup) for step in turn.steps), stage
            assert said(turn)[0] == "invalid_input", stage


def test_an_unreachable_utility_line_offers_a_call_taker_not_the_hotlines_own_number() -> None:
    turn = handle(Stage.EMERGENCY_UNREACHABLE, SILENCE, state(line="utility"))

    sorry = turn.steps[0]
    assert isinstance(sorry, Say)
    assert sorry.prompt == "utility_unreachable"
    assert "short_number" not in sorry.args
    assert the_join(turn).wait is WaitRoom.QUEUE
