"""A tuning set of app-style tool-calling requests (``orchestrator bench bfcl --app``).

Requests people write to a phone assistant, over tools written the way an app developer writes
them with ``@tool``. They are for fitting the scored decisions' relevance, confidence and
recalibration alongside BFCL's tuning half (records ``half="tune"``, categories ``app`` and
``app_none``). The set is written apart from the project's held-out own set (``bench/tools.py``'s
``TASKS``, ``bench/_own_decisions.py``'s ``NO_TOOL``, ``bench/_own_more.py``): different tools
on different topics (no weather, currency, timers, email, flights, arithmetic, thermostats or
restaurant booking) and different requests, so that fitting on it leaves the own set held out.

- ``TOOLS``: 8 tools (play_music, add_calendar_event, create_reminder, translate_text,
  get_stock_price, order_taxi, add_to_shopping_list, set_alarm): strings with length caps,
  bounded ints, two ``Literal`` enums, a bool, optional and nullable arguments; their bodies
  return canned results;
- ``TASKS``: 96 requests, 12 per tool, each ``(text, tool_name, arguments)`` with the one call it
  needs; arguments not given take their defaults (no optional argument is set to its default);
- ``NO_TOOL``: 32 requests that none of the tools can serve (general knowledge, writing, advice,
  chit-chat), 12 of them close to a tool's topic but not something it can do (reading the
  calendar, cancelling a taxi, skipping a song, removing from the list, ...);
- ``call_is_correct``: the scorer, like ``bench/tools.py``'s: the expected tool, and arguments
  equal after filling in defaults on both sides (strings ignoring case, whitespace and a final
  full stop; numbers within 1e-6).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from pydantic import Field

from tools.tool import Tool, tool

__all__ = ["NO_TOOL", "TASKS", "TOOLS", "call_is_correct"]

# ---------------------------------------------------------------------------------------------
# The tools. Their bodies return canned results, for whole runs.
# ---------------------------------------------------------------------------------------------

Language = Literal["English", "Spanish", "French", "German", "Italian", "Portuguese", "Japanese", "Chinese"]
Car = Literal["standard", "premium", "van"]
Clock = Annotated[str, Field(min_length=5, max_length=5, description='Time of day, 24-hour "HH:MM".')]


@tool
def play_music(query: Annotated[str, Field(max_length=60)], shuffle: bool = False) -> str:
    """Play a song, artist, album, playlist or genre.

    Args:
        query: What to play, e.g. "Abbey Road" or "jazz".
        shuffle: Play in random order.
    """
    return f"now playing: {query}" + (" (shuffled)" if shuffle else "")


@tool
def add_calendar_event(title: Annotated[str, Field(max_length=60)],
                       date: Annotated[str, Field(min_length=10, max_length=10)],
                       time: Clock | None = None) -> str:
    """Add an event to the user's calendar.

    Args:
        title: Name of the event.
        date: Day of the event, "YYYY-MM-DD".
        time: Start time, 24-hour "HH:MM"; leave out for an all-day event.
    """
    return f'"{title}" added on {date}' + (f" at {time}" if time else " (all day)")


@tool
def create_reminder(text: Annotated[str, Field(max_length=100)], minutes_from_now: Annotated[int, Field(ge=1, le=10080)]) -> str:
    """Create a reminder that notifies the user later.

    Args:
        text: What to remind the user of.
        minutes_from_now: When to remind, in minutes from now (at most one week).
    """
    return f'reminder "{text}" in {minutes_from_now} minutes'


@tool
def translate_text(text: Annotated[str, Field(max_length=200)], target_language: Language) -> str:
    """Translate text into another language.

    Args:
        text: The text to translate.
        target_language: Language to translate into.
    """
    return f"[{target_language}] {text}"


@tool
def get_stock_price(symbol: Annotated[str, Field(max_length=5)]) -> str:
    """Latest price of a stock.

    Args:
        symbol: Ticker symbol, e.g. "AAPL".
    """
    return f"{symbol.upper()}: 187.42 (+1.3% today)"


@tool
def order_taxi(pickup: Annotated[str, Field(max_length=60)], dropoff: Annotated[str, Field(max_length=60)],
               passengers: Annotated[int, Field(ge=1, le=6)] = 1, car: Car = "standard") -> str:
    """Order a taxi now.

    Args:
        pickup: Where to be picked up.
        dropoff: Where to go.
        passengers: Number of riders.
        car: Kind of car: "van" for big groups or luggage.
    """
    return f"{car} taxi for {passengers} from {pickup} to {dropoff}: arriving in 6 minutes"


@tool
def add_to_shopping_list(item: Annotated[str, Field(max_length=40)], quantity: Annotated[int, Field(ge=1, le=99)] = 1) -> str:
    """Add an item to the shopping list.

    Args:
        item: What to buy.
        quantity: How many.
    """
    return f"added {quantity} x {item}"


@tool
def set_alarm(time: Clock, label: Annotated[str, Field(max_length=40)] | None = None) -> str:
    """Set an alarm for the next time the clock shows the given time.

    Args:
        time: Time of day, 24-hour "HH:MM".
        label: Name of the alarm.
    """
    return f"alarm set for {time}" + (f" ({label})" if label else "")


TOOLS: tuple[Tool, ...] = (play_music, add_calendar_event, create_reminder, translate_text, get_stock_price, order_taxi,
                           add_to_shopping_list, set_alarm)


# ---------------------------------------------------------------------------------------------
# The tasks: what a user says, the call it needs. Arguments not given take their defaults.
# ---------------------------------------------------------------------------------------------

TASKS: tuple[tuple[str, str, dict], ...] = (
    # play_music
    ("Play Bohemian Rhapsody.", "play_music", {"query": "Bohemian Rhapsody"}),
    ("put on some jazz", "play_music", {"query": "jazz"}),
    ("Could you play my playlist called Sunday Morning on shuffle?", "play_music", {"query": "Sunday Morning", "shuffle": True}),
    ("I'd love to hear some Fleetwood Mac right now.", "play_music", {"query": "Fleetwood Mac"}),
    ("Shuffle Taylor Swift.", "play_music", {"query": "Taylor Swift", "shuffle": True}),
    ('Play the album "Kind of Blue".', "play_music", {"query": "Kind of Blue"}),
    ("Music please: lo-fi beats, shuffled.", "play_music", {"query": "lo-fi beats", "shuffle": True}),
    ("Can you play Clair de Lune for me?", "play_music", {"query": "Clair de Lune"}),
    ("Start playing classical piano.", "play_music", {"query": "classical piano"}),
    ("Hey, throw on some 80s rock and mix up the order.", "play_music", {"query": "80s rock", "shuffle": True}),
    ("play Despacito", "play_music", {"query": "Despacito"}),
    ("I'm cooking dinner. Could you play something by Norah Jones?", "play_music", {"query": "Norah Jones"}),

    # add_calendar_event
    ('Add "Dentist appointment" to my calendar on 2026-03-12 at 14:30.', "add_calendar_event",
     {"title": "Dentist appointment", "date": "2026-03-12", "time": "14:30"}),
    ("Put Team offsite in my calendar for June 4, 2026.", "add_calendar_event", {"title": "Team offsite", "date": "2026-06-04"}),
    ("Calendar: Mum's birthday party, 15 August 2026, 18:00.", "add_calendar_event",
     {"title": "Mum's birthday party", "date": "2026-08-15", "time": "18:00"}),
    ('Can you schedule "Parent-teacher meeting" on October 2nd, 2025 at 4:15 pm?', "add_calendar_event",
     {"title": "Parent-teacher meeting", "date": "2025-10-02", "time": "16:15"}),
    ("New event: Yoga class, 2026-01-20, 07:00", "add_calendar_event", {"title": "Yoga class", "date": "2026-01-20", "time": "07:00"}),
    ("Add Sarah's wedding to the calendar: Saturday, 19 September 2026.", "add_calendar_event",
     {"title": "Sarah's wedding", "date": "2026-09-19"}),
    ('Create a calendar event called "Car service" on 3 November 2025 at 8:30 in the morning.', "add_calendar_event",
     {"title": "Car service", "date": "2025-11-03", "time": "08:30"}),
    ('Block out "Quarterly review" on April 7, 2026 from 10:00.', "add_calendar_event",
     {"title": "Quarterly review", "date": "2026-04-07", "time": "10:00"}),
    ("Please add Book club to my calendar on the 28th of February 2026 at half past seven in the evening.", "add_calendar_event",
     {"title": "Book club", "date": "2026-02-28", "time": "19:30"}),
    ("calendar event 'Flu shot' on 2025-12-01", "add_calendar_event", {"title": "Flu shot", "date": "2025-12-01"}),
    ("Mark the 1st of May 2026 in my calendar as Moving day.", "add_calendar_event", {"title": "Moving day", "date": "2026-05-01"}),
    ('Schedule "Call with the landlord" for March 3, 2026 at noon.', "add_calendar_event",
     {"title": "Call with the landlord", "date": "2026-03-03", "time": "12:00"}),

    # create_reminder
    ("Remind me to take out the trash in 20 minutes.", "create_reminder", {"text": "take out the trash", "minutes_from_now": 20}),
    ('Reminder in 2 hours: "check the oven"', "create_reminder", {"text": "check the oven", "minutes_from_now": 120}),
    ("In forty-five minutes, remind me to call the pharmacy.", "create_reminder",
     {"text": "call the pharmacy", "minutes_from_now": 45}),
    ('Set a reminder for 3 days from now that says "renew passport".', "create_reminder",
     {"text": "renew passport", "minutes_from_now": 4320}),
    ("remind me to water the plants in an hour", "create_reminder", {"text": "water the plants", "minutes_from_now": 60}),
    ("Could you remind me in 10 minutes to move the car?", "create_reminder", {"text": "move the car", "minutes_from_now": 10}),
    ('Create a reminder, "pay the electricity bill", one week from now.', "create_reminder",
     {"text": "pay the electricity bill", "minutes_from_now": 10080}),
    ("Remind me to stretch in 90 minutes, please.", "create_reminder", {"text": "stretch", "minutes_from_now": 90}),
    ("In 24 hours, remind me to pick up the dry cleaning.", "create_reminder",
     {"text": "pick up the dry cleaning", "minutes_from_now": 1440}),
    ('I need a reminder in 5 minutes: "join the standup call".', "create_reminder",
     {"text": "join the standup call", "minutes_from_now": 5}),
    ("Remind me in half an hour to text Jamie back.", "create_reminder", {"text": "text Jamie back", "minutes_from_now": 30}),
    ('Reminder "book the vet" in 3 hours.', "create_reminder", {"text": "book the vet", "minutes_from_now": 180}),

    # translate_text
    ("Translate 'where is the train station' into German.", "translate_text",
     {"text": "where is the train station", "target_language": "German"}),
    ('How do I say "thank you very much" in Japanese?', "translate_text", {"text": "thank you very much", "target_language": "Japanese"}),
    ('What is "the bill, please" in Italian?', "translate_text", {"text": "the bill, please", "target_language": "Italian"}),
    ("translate 'I am allergic to peanuts' to French", "translate_text",
     {"text": "I am allergic to peanuts", "target_language": "French"}),
    ('Can you put "Happy anniversary, my love" into Portuguese?', "translate_text",
     {"text": "Happy anniversary, my love", "target_language": "Portuguese"}),
    ('What does "Ich habe Hunger" mean in English?', "translate_text", {"text": "Ich habe Hunger", "target_language": "English"}),
    ('In Spanish, how would you say "the museum opens at nine"?', "translate_text",
     {"text": "the museum opens at nine", "target_language": "Spanish"}),
    ('Translate this to Chinese: "Nice to meet you."', "translate_text", {"text": "Nice to meet you.", "target_language": "Chinese"}),
    ("Could you translate 'Où est la pharmacie?' into English for me?", "translate_text",
     {"text": "Où est la pharmacie?", "target_language": "English"}),
    ('Spanish translation of "Can I pay by card?" please.', "translate_text", {"text": "Can I pay by card?", "target_language": "Spanish"}),
    ('Say "good luck with your exam" in Italian.', "translate_text", {"text": "good luck with your exam", "target_language": "Italian"}),
    ("How do you say 'see you tomorrow' in German?", "translate_text", {"text": "see you tomorrow", "target_language": "German"}),

    # get_stock_price
    ("What's AAPL trading at?", "get_stock_price", {"symbol": "AAPL"}),
    ("Stock price of TSLA, please.", "get_stock_price", {"symbol": "TSLA"}),
    ("How is MSFT doing today?", "get_stock_price", {"symbol": "MSFT"}),
    ("Check the share price for NVDA.", "get_stock_price", {"symbol": "NVDA"}),
    ("Quote for AMZN?", "get_stock_price", {"symbol": "AMZN"}),
    ("Can you look up where GOOGL is right now?", "get_stock_price", {"symbol": "GOOGL"}),
    ("I own some shares of KO. What's one worth today?", "get_stock_price", {"symbol": "KO"}),
    ("nflx price", "get_stock_price", {"symbol": "nflx"}),
    ("What's the current price of IBM stock?", "get_stock_price", {"symbol": "IBM"}),
    ("Give me the latest on DIS shares.", "get_stock_price", {"symbol": "DIS"}),
    ("Has JPM gone up today? Show me the price.", "get_stock_price", {"symbol": "JPM"}),
    ("Look up the ticker SHOP for me.", "get_stock_price", {"symbol": "SHOP"}),

    # order_taxi
    ("Get me a taxi from 12 Oak Street to Central Station.", "order_taxi", {"pickup": "12 Oak Street", "dropoff": "Central Station"}),
    ("I need a cab from Hotel Metropole to Terminal 2 for three people.", "order_taxi",
     {"pickup": "Hotel Metropole", "dropoff": "Terminal 2", "passengers": 3}),
    ("Order a premium car from 45 King Road to City Hall.", "order_taxi",
     {"pickup": "45 King Road", "dropoff": "City Hall", "car": "premium"}),
    ("Taxi, Union Square to Pier 39, 2 passengers.", "order_taxi", {"pickup": "Union Square", "dropoff": "Pier 39", "passengers": 2}),
    ("We're six people with luggage at Riverside Park; book us a van to Westfield Mall.", "order_taxi",
     {"pickup": "Riverside Park", "dropoff": "Westfield Mall", "passengers": 6, "car": "van"}),
    ("Can you call a taxi to pick me up at 8 Elm Avenue and take me to St. Mary's Hospital?", "order_taxi",
     {"pickup": "8 Elm Avenue", "dropoff": "St. Mary's Hospital"}),
    ("taxi from Oxford Circus to Paddington Station", "order_taxi", {"pickup": "Oxford Circus", "dropoff": "Paddington Station"}),
    ("Book a taxi for four from Maple Court to Sydney Opera House.", "order_taxi",
     {"pickup": "Maple Court", "dropoff": "Sydney Opera House", "passengers": 4}),
    ("Please send a van to 221 Baker Street; we're going to Kings Cross.", "order_taxi",
     {"pickup": "221 Baker Street", "dropoff": "Kings Cross", "car": "van"}),
    ("Premium cab for two, from Plaza Mayor to Retiro Park.", "order_taxi",
     {"pickup": "Plaza Mayor", "dropoff": "Retiro Park", "passengers": 2, "car": "premium"}),
    ("I'm at Lakeside Mall and need to get home to 7 Birch Lane. Can you order me a taxi?", "order_taxi",
     {"pickup": "Lakeside Mall", "dropoff": "7 Birch Lane"}),
    ("Taxi from Harbour View Apartments to Stadium Road, five of us, a standard car is fine.", "order_taxi",
     {"pickup": "Harbour View Apartments", "dropoff": "Stadium Road", "passengers": 5}),

    # add_to_shopping_list
    ("Add milk to my shopping list.", "add_to_shopping_list", {"item": "milk"}),
    ("Put 6 bananas on the shopping list.", "add_to_shopping_list", {"item": "bananas", "quantity": 6}),
    ("shopping list: toothpaste", "add_to_shopping_list", {"item": "toothpaste"}),
    ("We're out of olive oil, add it to the list please.", "add_to_shopping_list", {"item": "olive oil"}),
    ("Add two avocados to the shopping list.", "add_to_shopping_list", {"item": "avocados", "quantity": 2}),
    ("Can you add a dozen eggs to my list?", "add_to_shopping_list", {"item": "eggs", "quantity": 12}),
    ("I need 4 lemons, put them on the shopping list.", "add_to_shopping_list", {"item": "lemons", "quantity": 4}),
    ("Add dish soap to the groceries list.", "add_to_shopping_list", {"item": "dish soap"}),
    ("Shopping list, ten apples.", "add_to_shopping_list", {"item": "apples", "quantity": 10}),
    ("Please add coffee beans to my shopping list.", "add_to_shopping_list", {"item": "coffee beans"}),
    ("Three cucumbers on the shopping list, thanks!", "add_to_shopping_list", {"item": "cucumbers", "quantity": 3}),
    ("Add batteries to my shopping list, 8 of them.", "add_to_shopping_list", {"item": "batteries", "quantity": 8}),

    # set_alarm
    ("Set an alarm for 06:30.", "set_alarm", {"time": "06:30"}),
    ("Wake me up at 7 am.", "set_alarm", {"time": "07:00"}),
    ('Alarm at 5:45 in the morning labelled "gym".', "set_alarm", {"time": "05:45", "label": "gym"}),
    ("alarm 22:15", "set_alarm", {"time": "22:15"}),
    ('Could you set an alarm called "Take medicine" for 9 pm?', "set_alarm", {"time": "21:00", "label": "Take medicine"}),
    ("I have to get up at quarter to eight tomorrow morning, set an alarm.", "set_alarm", {"time": "07:45"}),
    ("Alarm for 13:00, label it lunch break.", "set_alarm", {"time": "13:00", "label": "lunch break"}),
    ("Please wake me at half past six in the morning.", "set_alarm", {"time": "06:30"}),
    ('New alarm: 04:50, "early shift"', "set_alarm", {"time": "04:50", "label": "early shift"}),
    ("Set my alarm to 8:10 am.", "set_alarm", {"time": "08:10"}),
    ('Set an alarm for noon named "Call grandma".', "set_alarm", {"time": "12:00", "label": "Call grandma"}),
    ("I need to leave by 17:30, so set an alarm at 17:00.", "set_alarm", {"time": "17:00"}),
)

NO_TOOL: tuple[str, ...] = (
    # close to a tool's topic, but no tool reads, changes, cancels or answers it
    "Who wrote the song Yesterday?",
    "Skip to the next song.",
    "What's on my calendar tomorrow?",
    "Move my haircut to Friday.",
    "Cancel the taxi I ordered.",
    "How much does a taxi from the city centre usually cost?",
    "Delete the reminder about the oven.",
    "What time is my alarm set for?",
    "Turn off my alarm.",
    "Take milk off my shopping list.",
    "Should I invest in index funds or individual stocks?",
    "Which languages are spoken in Switzerland?",
    # general knowledge, writing, advice, chit-chat
    "Write a limerick about a lazy dog.",
    "Who discovered penicillin?",
    "How far is the Moon from Earth?",
    "What's the difference between a virus and a bacterium?",
    "Give me some ideas for a ten-year-old's birthday party.",
    "Good night!",
    "Draft a short toast for my brother's wedding.",
    "How do I get red wine out of a carpet?",
    "What is the largest ocean on Earth?",
    "Explain how vaccines work.",
    "What are some good stretches for lower back pain?",
    "Tell me a riddle.",
    "Who was the first woman to win a Nobel Prize?",
    "How many bones are in the human body?",
    "I'm feeling a bit stressed today.",
    "What's your favourite colour?",
    "Summarize the causes of World War One in two sentences.",
    "How long should I steep green tea?",
    "Suggest a name for my new puppy.",
    "What rhymes with orange?",
)


# ---------------------------------------------------------------------------------------------
# Scoring, like bench/tools.py's: the expected tool, and arguments equal after filling in the
# defaults on both sides: strings ignoring case, whitespace and a final full stop; numbers
# within 1e-6 (relative).
# ---------------------------------------------------------------------------------------------

_TOOL_BY_NAME = {t.name: t for t in TOOLS}


@functools.cache
def _held_out_bench() -> Any:
    from _own_decisions import load_tools_bench

    return load_tools_bench()


def call_is_correct(tool_name_expected: str, arguments_expected: dict, name: str, arguments: dict) -> bool:
    """Whether the call ``name(arguments)`` is the expected one (see above; ``bench/tools.py``'s rules)."""
    if name != tool_name_expected or name not in _TOOL_BY_NAME or not isinstance(arguments, dict):
        return False
    return _held_out_bench().same_arguments(_TOOL_BY_NAME[name], arguments_expected, arguments)
