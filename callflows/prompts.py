"""The prompt catalogue: every sentence the hotline speaks, per language.

Mandarin and English are spoken by Twilio's text-to-speech. Twilio has no Tibetan voice,
so Tibetan prompts are recordings that the hotline provides (see the README, "Adding
Tibetan recordings"); ``ivr`` falls back to the Mandarin text where one is missing.
Texts with ``{placeholders}`` are filled from ``Say.args``.
"""

from __future__ import annotations

from collections.abc import Mapping

PROMPTS: Mapping[str, Mapping[str, str]] = {
    "welcome": {
        "zh": "您好，欢迎致电12345政务服务便民热线。如遇火警、急救、报警或交通事故，请按9。"
        "普通话服务请按1。",
        "en": "Welcome to the 12345 citizen service hotline. For fire, medical, police or "
        "traffic emergencies, press 9.",
    },
    "choose_tibetan": {"zh": "藏语服务请按2。", "en": "For Tibetan, press 2."},
    "choose_english": {"zh": "For English, press 3.", "en": "For English, press 3."},
    "main_menu": {
        "zh": "政策咨询请按1，投诉举报请按2，求助建议请按3，查询工单进度请按4，"
        "人工服务请按0，紧急情况请按9，重听请按星号键。",
        "en": "For policy questions press 1. For a complaint or report press 2. For a "
        "request for help or a suggestion press 3. To check a work order press 4. "
        "For a call-taker press 0. For emergencies press 9. To hear this again press star.",
    },
    "invalid_input": {
        "zh": "对不起，没有听清您的选择。",
        "en": "Sorry, I did not get that.",
    },
    "to_call_taker": {
        "zh": "正在为您转接人工服务，请稍候。",
        "en": "Connecting you to a call-taker. Please hold.",
    },
    "queue_position": {
        "zh": "您前面还有{position}位来电，请耐心等候，我们将尽快为您服务。",
        "en": "There are {position} callers ahead of you. Please stay on the line.",
    },
    "queue_next": {
        "zh": "您是下一位，请稍候。",
        "en": "You are next in line. Please stay on the line.",
    },
    "progress_enter_number": {
        "zh": "请输入您的工单编号，以井号键结束。",
        "en": "Please key in your work order number, then press the hash key.",
    },
    "progress_status": {
        "zh": "您的工单{number}，当前状态：{state}，承办单位：{department}，办理期限：{due}。",
        "en": "Work order {number}. Status: {state}. Handled by: {department}. Due: {due}.",
    },
    "progress_not_found": {
        "zh": "没有查到与您来电号码相符的这张工单，正在为您转接人工服务。",
        "en": "We could not find this work order for the number you are calling from. "
        "Connecting you to a call-taker.",
    },
    "progress_options": {
        "zh": "重听请按1，人工服务请按0。",
        "en": "To hear this again press 1. For a call-taker press 0.",
    },
    "callback_offer": {
        "zh": "如需留下回电请求、不再等候，请按1，我们将按您现在的排队顺序给您回电；"
        "如需继续等候，请不要挂机，您的排队位置不变。",
        "en": "To leave a callback request instead of waiting, press 1: we will call you back "
        "in your place in line. To keep your place, stay on the line.",
    },
    "callback_confirmed": {
        "zh": "您的回电请求已登记，我们将按排队顺序尽快给您回电。感谢您的来电，再见。",
        "en": "Your callback request is recorded. We will call you back in your turn. "
        "Thank you for calling. Goodbye.",
    },
    "callback_keep_place": {
        "zh": "好的，您的排队位置不变。",
        "en": "You keep your place in line.",
    },
    "goodbye": {
        "zh": "感谢您的来电，再见。",
        "en": "Thank you for calling. Goodbye.",
    },
    "emergency_menu": {
        "zh": "紧急服务：火警请按1，急救请按2，报警请按3，交通事故请按4，"
        "停水停电、燃气或供暖故障请按5。您也可以直接说出发生了什么。",
        "en": "Emergency service. Fire press 1. Medical emergency press 2. Police press 3. "
        "Traffic accident press 4. Water, power, gas or heating outage press 5. "
        "You can also say what happened.",
    },
    "emergency_connecting": {
        "zh": "正在为您紧急接通{line}，请不要挂机。",
        "en": "Connecting you now to the {line}. Please stay on the line.",
    },
    "emergency_hold": {
        "zh": "正在接通，请不要挂机。",
        "en": "Still connecting you. Please stay on the line.",
    },
    "emergency_unreachable": {
        "zh": "对不起，暂时无法接通{line}。请挂机后直接拨打{short_number}。现在为您转接人工服务。",
        "en": "Sorry, we cannot reach the {line} right now. Please hang up and dial "
        "{short_number} directly. Connecting you to a call-taker now.",
    },
    "utility_unreachable": {
        "zh": "对不起，暂时无法接通{line}。现在为您转接人工服务，请稍候。",
        "en": "Sorry, we cannot reach the {line} right now. Connecting you to a call-taker.",
    },
    "apology": {
        "zh": "对不起，系统暂时出现故障，正在为您转接人工服务，请稍候。",
        "en": "Sorry, something went wrong on our side. Connecting you to a call-taker.",
    },
    "apology_emergency": {
        "zh": "对不起，系统暂时出现故障，正在为您紧急接通{line}，请不要挂机。",
        "en": "Sorry, something went wrong on our side. Connecting you to the {line} now.",
    },
    # -- the satisfaction survey (callflows/survey.py); the key 9 is OPT_OUT_KEY there --
    "survey_intro": {  # a confidential order, or one without a topic: the number only
        "zh": "您好，这里是12345政务服务便民热线，现对您反映的工单进行回访。"
        "工单编号{number}。耽误您一分钟，请回答三个问题。",
        "en": "Hello, this is the 12345 citizen service hotline, calling about your work "
        "order {number}. We would like to ask you three short questions.",
    },
    "survey_intro_topic": {
        "zh": "您好，这里是12345政务服务便民热线，现对您反映的工单进行回访。"
        "工单编号{number}，事项：{topic}。耽误您一分钟，请回答三个问题。",
        "en": "Hello, this is the 12345 citizen service hotline, calling about your work "
        "order {number}: {topic}. We would like to ask you three short questions.",
    },
    "survey_opt_out_hint": {
        "zh": "如您今后不希望再接到回访电话，可随时按9。",
        "en": "If you do not want us to call you again, press 9 at any time.",
    },
    "survey_q_responded": {
        "zh": "请问承办单位是否已与您联系、回应您的诉求？是请按1，否请按2。",
        "en": "Did the department contact you about your request? For yes press 1. For no press 2.",
    },
    "survey_q_solved": {
        "zh": "请问您反映的问题是否已经解决？已解决请按1，部分解决请按2，未解决请按3。",
        "en": "Is your problem solved? If it is solved press 1. If it is partly solved "
        "press 2. If it is not solved press 3.",
    },
    "survey_q_satisfied": {
        "zh": "请问您对办理结果是否满意？满意请按1，基本满意请按2，不满意请按3。",
        "en": "Are you satisfied with how your request was handled? Satisfied press 1. "
        "Basically satisfied press 2. Dissatisfied press 3.",
    },
    "survey_thanks": {
        "zh": "感谢您对我们工作的支持，再见。",
        "en": "Thank you for your answers. Goodbye.",
    },
    "survey_opted_out": {
        "zh": "好的，今后我们不再给您拨打回访电话。感谢您的配合，再见。",
        "en": "We will not call you again for surveys. Thank you. Goodbye.",
    },
    "survey_apology": {
        "zh": "对不起，系统暂时出现故障。感谢您的耐心，再见。",
        "en": "Sorry, something went wrong on our side. Thank you for your time. Goodbye.",
    },
}

# Spoken names of the emergency lines, used in the {line} placeholders.
LINE_NAMES: Mapping[str, Mapping[str, str]] = {
    "fire": {"zh": "119火警", "en": "fire service, 119"},
    "medical": {"zh": "120急救", "en": "ambulance service, 120"},
    "police": {"zh": "110报警服务台", "en": "police, 110"},
    "traffic": {"zh": "122交通事故报警台", "en": "traffic police, 122"},
    "utility": {"zh": "水电气暖抢修热线", "en": "utility repair line"},
}

# Spoken names of work-order states, for the progress prompt.
STATE_NAMES: Mapping[str, Mapping[str, str]] = {
    "received": {"zh": "已受理", "en": "received"},
    "dispatched": {"zh": "已派单", "en": "dispatched"},
    "accepted": {"zh": "承办单位已签收", "en": "accepted by the department"},
    "in_progress": {"zh": "办理中", "en": "in progress"},
    "answered": {"zh": "承办单位已反馈", "en": "answered by the department"},
    "callback": {"zh": "回访中", "en": "in the satisfaction callback"},
    "closed": {"zh": "已办结", "en": "closed"},
}


def prompt_text(key: str, language: str, args: Mapping[str, str] | None = None) -> str:
    """The text of a prompt in ``language``, or in Mandarin when it has none."""
    texts = PROMPTS[key]
    text = texts.get(language) or texts["zh"]
    return text.format(**args) if args else text
