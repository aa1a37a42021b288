"""orchestrator bench tools: tool calls on smollm2-135m, our agent against llama-cpp-python's handler.

48 requests over 8 tools with typed arguments (strings with length caps, bounded ints, floats,
Literal enums, optional and nullable arguments, a nested pydantic model), each with the one call
it needs. For each request, in one run, alternating (the order flips from request to request):

- ``ours``: the first turn of ``agents.loop.agent_loop`` (grammar-constrained JSON, the prompt
  of ``agents.prompting``) on a ``LocalEngine``, the agent given ``EXAMPLES``: two developer
  examples per tool, none of them a benchmark request. All 16 are shown in a fixed order (the
  default), so every prompt starts the same and the engine's prefix cache holds all but the
  request;
- ``ours-closest``: the same agent with ``max_examples=3``: the 3 examples closest to the
  request, the closest last (shorter prompts, but each one differs, so they are prefilled);
- ``ours-auto``: the agent without developer examples (one made from each tool's schema);
  these two run on the baseline's requests only, to keep the default run near 5 minutes;
- ``baseline``: llama-cpp-python's own ``chatml-function-calling`` chat handler
  (``Llama(chat_format="chatml-function-calling")``, ``create_chat_completion(messages,
  tools=[t.as_openai_tool() ...], tool_choice="auto")``) in a subprocess, so the two llama
  contexts never share a process. By default it runs on the 12 requests of ``--quick``
  (every tool at least once; ``--baseline-every K``: every K-th instead); ratios compare ours with it on those same requests.

Both are greedy (the handler's ``temperature`` set to 0), get the same system message, the same
tool schemas and ``max_tokens=256``, one thread each by default (``--threads``: on this shared
2-core machine two spinning llama.cpp threads per process collapse when another job runs).
The engine's prefix cache and llama-cpp-python's reuse of the previous prompt both keep the
common start of the prompts (system message; for the baseline also the tools), so each side
pays for its prompt the way a long-lived app would.

Measured per request: whether the reply holds calls that parse and validate against the tool
schemas (``tools.validation``), whether it is exactly the one expected call (right tool, and
arguments equal after filling in defaults on both sides: strings ignoring case, whitespace and
a final full stop; numbers within 1e-6; calculator expressions by their value), and the wall
time of the turn. ``--runs`` also runs ``ours`` to the end with ``run_agent`` (tools return
canned results): steps, tool runs, how many runs end in an answer, and the time of a whole run.
Prints a table, then one JSON line.

    orchestrator bench tools [--quick] [--limit N] [--baseline-every K | --no-baseline] [--runs]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

if __name__ == "__main__" and sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # `python bench/tools.py`: import our `tools`, not this file

from pydantic import BaseModel, Field

from orchestrator.errors import ToolCallError
from tools.builtin import calculator
from tools.tool import Tool, tool

# ---------------------------------------------------------------------------------------------
# The tools: typed arguments (str, int with bounds, float, Literal enums, optional and nullable
# arguments, a nested model). Their bodies return canned results, for whole runs.
# ---------------------------------------------------------------------------------------------

Currency = Literal["USD", "EUR", "GBP", "JPY", "CHF", "CAD"]
Room = Literal["living room", "bedroom", "kitchen", "office"]


class Booking(BaseModel):
    people: Annotated[int, Field(ge=1, le=20, description="Number of people.")]
    time: Annotated[str, Field(max_length=5, description='Time of day, 24-hour "HH:MM".')]


@tool
def get_weather(city: Annotated[str, Field(max_length=40)], unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Current weather in a city.

    Args:
        city: City name, e.g. "Paris".
        unit: Temperature unit.
    """
    return f"{city}: 18 degrees {unit}, light rain"


@tool
def convert_currency(amount: float, source: Currency, target: Currency) -> str:
    """Convert an amount of money from one currency to another.

    Args:
        amount: How much money.
        source: Currency the amount is in.
        target: Currency to convert to.
    """
    return f"{amount} {source} = {round(amount * 1.08, 2)} {target}"


@tool
def set_timer(minutes: Annotated[int, Field(ge=1, le=1440)], label: Annotated[str, Field(max_length=40)] | None = None) -> str:
    """Start a countdown timer.

    Args:
        minutes: Length of the timer in minutes.
        label: Name of the timer.
    """
    return f"timer set for {minutes} minutes" + (f" ({label})" if label else "")


@tool
def send_email(to: Annotated[str, Field(max_length=60)], subject: Annotated[str, Field(max_length=60)],
               body: Annotated[str, Field(max_length=200)] = "") -> str:
    """Send an email.

    Args:
        to: Email address of the recipient.
        subject: Subject line.
        body: Text of the email.
    """
    return f"email to {to} sent"


@tool
def search_flights(origin: Annotated[str, Field(max_length=40)], destination: Annotated[str, Field(max_length=40)],
                   passengers: Annotated[int, Field(ge=1, le=9)] = 1,
                   cabin: Literal["economy", "business", "first"] = "economy") -> str:
    """Search flights between two cities.

    Args:
        origin: City to fly from.
        destination: City to fly to.
        passengers: Number of travellers.
        cabin: Travel class.
    """
    return f"3 flights {origin} -> {destination} for {passengers} ({cabin}); cheapest 129 EUR at 09:40"


@tool
def set_thermostat(room: Room, temperature: Annotated[float, Field(ge=5, le=35)]) -> str:
    """Set the target temperature of a room, in degrees Celsius.

    Args:
        room: Which room.
        temperature: Target temperature in degrees Celsius.
    """
    return f"{room} set to {temperature} degrees"


@tool
def book_table(restaurant: Annotated[str, Field(max_length=40)], booking: Booking) -> str:
    """Book a table at a restaurant.

    Args:
        restaurant: Name of the restaurant.
        booking: How many people and when.
    """
    return f"table for {booking.people} at {restaurant}, {booking.time}: confirmed"


TOOLS: tuple[Tool, ...] = (get_weather, convert_currency, set_timer, send_email, search_flights, calculator, set_thermostat, book_table)


# ---------------------------------------------------------------------------------------------
# The tasks: what a user says, the call it needs. Arguments not given take their defaults.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    text: str
    tool: str
    arguments: dict[str, Any]


def _t(text: str, tool_name: str, **arguments: Any) -> Task:
    return Task(text, tool_name, arguments)


TASKS: tuple[Task, ...] = (
    _t("What's the weather in Paris?", "get_weather", city="Paris"),
    _t("Convert 100 USD to EUR.", "convert_currency", amount=100, source="USD", target="EUR"),
    _t("Set a timer for 10 minutes.", "set_timer", minutes=10),
    _t('Send an email to anna@example.com with the subject "Lunch".', "send_email", to="anna@example.com", subject="Lunch"),
    _t("Find flights from Paris to Rome.", "search_flights", origin="Paris", destination="Rome"),
    _t("What is 17 * 23?", "calculator", expression="17 * 23"),
    _t("Set the bedroom to 21 degrees.", "set_thermostat", room="bedroom", temperature=21),
    _t("Book a table for 2 at Luigi's at 19:30.", "book_table", restaurant="Luigi's", booking={"people": 2, "time": "19:30"}),

    _t("Is it raining in London right now?", "get_weather", city="London"),
    _t("How many yen is 50 euros?", "convert_currency", amount=50, source="EUR", target="JPY"),
    _t('Start a 25 minute timer called "pasta".', "set_timer", minutes=25, label="pasta"),
    _t('Email bob@work.org with subject "Report" and body "The report is ready."', "send_email",
       to="bob@work.org", subject="Report", body="The report is ready."),
    _t("Search for business class flights from London to New York.", "search_flights",
       origin="London", destination="New York", cabin="business"),
    _t("Calculate 2 to the power of 10.", "calculator", expression="2 ** 10"),
    _t("Make the kitchen 19.5 degrees.", "set_thermostat", room="kitchen", temperature=19.5),
    _t("Reserve a table at Sakura for 4 people at 20:00.", "book_table", restaurant="Sakura", booking={"people": 4, "time": "20:00"}),

    _t("Tell me the temperature in Tokyo in fahrenheit.", "get_weather", city="Tokyo", unit="fahrenheit"),
    _t("What is 20 GBP in USD?", "convert_currency", amount=20, source="GBP", target="USD"),
    _t('Set a 3 minute timer labelled "eggs".', "set_timer", minutes=3, label="eggs"),
    _t('Write to carol@mail.com with the subject "Holiday plans".', "send_email", to="carol@mail.com", subject="Holiday plans"),
    _t("I need 3 tickets from Berlin to Madrid.", "search_flights", origin="Berlin", destination="Madrid", passengers=3),
    _t("How much is 1250 divided by 5?", "calculator", expression="1250 / 5"),
    _t("Heat the living room to 23 degrees.", "set_thermostat", room="living room", temperature=23),
    _t("Table for 3 at Chez Marie at 12:30, please.", "book_table", restaurant="Chez Marie", booking={"people": 3, "time": "12:30"}),

    _t("How hot is it in Cairo today?", "get_weather", city="Cairo"),
    _t("Change 75.5 CHF into EUR.", "convert_currency", amount=75.5, source="CHF", target="EUR"),
    _t("Count down 45 minutes.", "set_timer", minutes=45),
    _t('Send dave@site.net an email titled "Invoice 42" saying "Please pay by Friday."', "send_email",
       to="dave@site.net", subject="Invoice 42", body="Please pay by Friday."),
    _t("Flights from Tokyo to Sydney for 2 people in first class.", "search_flights",
       origin="Tokyo", destination="Sydney", passengers=2, cabin="first"),
    _t("What's the square root of 144?", "calculator", expression="sqrt(144)"),
    _t("Turn the office thermostat down to 18 degrees.", "set_thermostat", room="office", temperature=18),
    _t("Book Bella Napoli for 8 people at 21:00.", "book_table", restaurant="Bella Napoli", booking={"people": 8, "time": "21:00"}),

    _t("Weather for New York in Fahrenheit, please.", "get_weather", city="New York", unit="fahrenheit"),
    _t("I have 1200 CAD; how much is that in USD?", "convert_currency", amount=1200, source="CAD", target="USD"),
    _t("I need a timer for 90 minutes.", "set_timer", minutes=90),
    _t('Mail eve@home.io with the subject "Hello".', "send_email", to="eve@home.io", subject="Hello"),
    _t("Are there flights from Boston to Chicago?", "search_flights", origin="Boston", destination="Chicago"),
    _t("Add 345 and 678.", "calculator", expression="345 + 678"),
    _t("I'm cold: set the living room to 24 degrees.", "set_thermostat", room="living room", temperature=24),
    _t("I'd like a reservation at Golden Dragon for 2 at 19:00.", "book_table", restaurant="Golden Dragon", booking={"people": 2, "time": "19:00"}),

    _t("Do I need a coat in Oslo today?", "get_weather", city="Oslo"),
    _t("Exchange 9.99 EUR to GBP.", "convert_currency", amount=9.99, source="EUR", target="GBP"),
    _t("Set a timer for 5 minutes.", "set_timer", minutes=5),
    _t('Let frank@corp.com know by email, subject "Meeting moved".', "send_email", to="frank@corp.com", subject="Meeting moved"),
    _t("Look up flights from Lisbon to Dublin for 4 passengers.", "search_flights", origin="Lisbon", destination="Dublin", passengers=4),
    _t("What is 15% of 80?", "calculator", expression="0.15 * 80"),
    _t("Bedroom temperature 20 degrees, please.", "set_thermostat", room="bedroom", temperature=20),
    _t("Get us a table at The Green House for 6 at 18:45.", "book_table", restaurant="The Green House", booking={"people": 6, "time": "18:45"}),
)


# ---------------------------------------------------------------------------------------------
# Scoring: a call is correct when it names the expected tool and its arguments, with defaults
# filled in on both sides, match: strings ignoring case, whitespace and a final full stop;
# numbers within 1e-6 (relative); calculator expressions by their value.
# ---------------------------------------------------------------------------------------------

_TOOL_BY_NAME = {t.name: t for t in TOOLS}


def _with_defaults(tool_obj: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
    props = tool_obj.parameters["properties"]
    out = {k: v.get("default") for k, v in props.items() if k not in tool_obj.parameters["required"]}
    out.update(arguments)
    return out


def _norm_text(value: str) -> str:
    return re.sub(r"\s+", "", value.casefold()).rstrip(".")


def same_value(expected: Any, got: Any) -> bool:
    """Whether a model-written JSON value matches the expected one (see above)."""
    if isinstance(expected, bool) or isinstance(got, bool):
        return expected is got
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)):
        return math.isclose(expected, got, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(expected, str) and isinstance(got, str):
        return _norm_text(expected) == _norm_text(got)
    if isinstance(expected, dict) and isinstance(got, dict):
        return expected.keys() == got.keys() and all(same_value(expected[k], got[k]) for k in expected)
    if isinstance(expected, list) and isinstance(got, list):
        return len(expected) == len(got) and all(same_value(a, b) for a, b in zip(expected, got))
    return expected is None and got is None


def call_is_correct(task: Task, name: str, arguments: dict[str, Any]) -> bool:
    if name != task.tool:
        return False
    tool_obj = _TOOL_BY_NAME[name]
    want, got = _with_defaults(tool_obj, task.arguments), _with_defaults(tool_obj, arguments)
    if name == "calculator":
        try:
            return want.keys() == got.keys() and same_value(calculator(want["expression"]), calculator(got["expression"]))
        except ToolCallError:  # the model's expression does not compute
            return False
    return same_value(want, got)


def same_arguments(tool_obj: Tool, expected: dict[str, Any], got: dict[str, Any]) -> bool:
    """Whether two calls of ``tool_obj`` have the same arguments, defaults filled in on both sides."""
    return same_value(_with_defaults(tool_obj, expected), _with_defaults(tool_obj, got))


# ---------------------------------------------------------------------------------------------
# What a developer gives the agent: two examples per tool, with different values, one of them
# using optional arguments where the tool has some. None is a benchmark request.
# ---------------------------------------------------------------------------------------------


def _calls(name: str, **arguments: Any) -> str:
    return json.dumps({"calls": [{"name": name, "arguments": arguments}]})


EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Will it be sunny in Madrid?", _calls("get_weather", city="Madrid")),
    ("What's the forecast for Chicago in fahrenheit?", _calls("get_weather", city="Chicago", unit="fahrenheit")),
    ("How much is 30 GBP in EUR?", _calls("convert_currency", amount=30, source="GBP", target="EUR")),
    ("250 JPY in CHF?", _calls("convert_currency", amount=250, source="JPY", target="CHF")),
    ('Set a 15 minute timer called "tea".', _calls("set_timer", minutes=15, label="tea")),
    ("Timer, 30 minutes.", _calls("set_timer", minutes=30)),
    ('Email lena@mail.org with the subject "Dinner" and the text "Are you free tonight?"',
     _calls("send_email", to="lena@mail.org", subject="Dinner", body="Are you free tonight?")),
    ('Send an email to tom@firm.com, subject "Budget".', _calls("send_email", to="tom@firm.com", subject="Budget")),
    ("Find flights from Vienna to Athens for 2 people.", _calls("search_flights", origin="Vienna", destination="Athens", passengers=2)),
    ("First class flights from Prague to Warsaw?", _calls("search_flights", origin="Prague", destination="Warsaw", cabin="first")),
    ("What is 12 times 7?", _calls("calculator", expression="12 * 7")),
    ("Compute (3 + 5) / 2.", _calls("calculator", expression="(3 + 5) / 2")),
    ("Set the office to 22.5 degrees.", _calls("set_thermostat", room="office", temperature=22.5)),
    ("Warm the kitchen up to 21 degrees.", _calls("set_thermostat", room="kitchen", temperature=21)),
    ("Book a table for 5 at Casa Pepe at 20:15.", _calls("book_table", restaurant="Casa Pepe", booking={"people": 5, "time": "20:15"})),
    ("Reserve Blue Moon for 2 people at 13:00.", _calls("book_table", restaurant="Blue Moon", booking={"people": 2, "time": "13:00"})),
)
INSTRUCTIONS = "You are a helpful assistant."
MAX_TOKENS = 256


# ---------------------------------------------------------------------------------------------
# Measuring one turn
# ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str  # "calls" (all parse and validate), "answer" (no call), "invalid", "error"
    seconds: float
    calls: list[tuple[str, dict[str, Any]]]
    text: str = ""

    def correct(self, task: Task) -> bool:
        return self.kind == "calls" and len(self.calls) == 1 and call_is_correct(task, *self.calls[0])

    def right_tool(self, task: Task) -> bool:
        return self.kind == "calls" and self.calls[0][0] == task.tool


def ours_first_turn(engine: Any, agent: Any, text: str) -> Outcome:
    import anyio

    from agents.loop import ModelTurn, RunTools, agent_loop
    from orchestrator.backends.base import complete
    from orchestrator.backends.local import LocalBackend

    start = time.perf_counter()
    loop = agent_loop(agent, text)
    need = next(loop)
    assert isinstance(need, ModelTurn)
    completion = anyio.run(complete, LocalBackend(engine), need.request)  # the backend compiles the grammar, reads the calls back
    seconds = time.perf_counter() - start
    reply = completion.choices[0].text
    try:
        after = loop.send(completion)
    except StopIteration:
        return Outcome("answer", seconds, [], reply)
    finally:
        loop.close()
    if isinstance(after, RunTools):
        return Outcome("calls", seconds, [(c.tool.name, dict(c.arguments)) for c in after.calls], reply)
    return Outcome("invalid", seconds, [], reply)  # the loop sent the reply back to the model


def ours_whole_run(engine: Any, agent: Any, text: str) -> dict[str, Any]:
    import anyio

    from orchestrator.agent_runner import run_agent
    from orchestrator.backends.local import LocalBackend
    from orchestrator.errors import AgentError

    start = time.perf_counter()
    try:
        result = anyio.run(lambda: run_agent(agent, text, LocalBackend(engine)))
    except AgentError as exc:
        return {"seconds": time.perf_counter() - start, "answered": False, "steps": agent.max_steps, "tool_runs": 0, "error": str(exc)[:120]}
    return {"seconds": time.perf_counter() - start, "answered": isinstance(result.output, str) and bool(result.output.strip()),
            "steps": result.steps, "tool_runs": len(result.calls), "answer": str(result.output)[:120]}


_BASELINE_WORKER = r"""
import json, sys, time
from llama_cpp import Llama
config = json.loads(sys.stdin.readline())
llm = Llama(model_path=config["path"], chat_format="chatml-function-calling", n_ctx=config["n_ctx"],
            n_threads=config["threads"], n_threads_batch=config["threads"], verbose=False)
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    messages = json.loads(line)
    start = time.perf_counter()
    out = {"calls": [], "content": None, "error": None}
    try:
        reply = llm.create_chat_completion(messages=messages, tools=config["tools"], tool_choice="auto",
                                           temperature=0.0, max_tokens=config["max_tokens"])
        message = reply["choices"][0]["message"]
        out["calls"] = [[c["function"]["name"], c["function"]["arguments"]] for c in message.get("tool_calls") or []]
        out["content"] = message.get("content")
    except Exception as exc:  # e.g. the prompt and reply overflow the context
        out["error"] = f"{type(exc).__name__}: {exc}"[:200]
    out["seconds"] = time.perf_counter() - start
    print(json.dumps(out), flush=True)
"""


class Baseline:
    """llama-cpp-python's ``chatml-function-calling`` handler in its own process."""

    def __init__(self, path: str, threads: int, n_ctx: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _BASELINE_WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        config = {"path": path, "threads": threads, "n_ctx": n_ctx, "max_tokens": MAX_TOKENS, "tools": [t.as_openai_tool() for t in TOOLS]}
        self._send(config)

    def _send(self, data: Any) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(data) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the chatml-function-calling baseline process died")
        return json.loads(line)

    def turn(self, text: str) -> Outcome:
        from orchestrator.errors import ToolCallError
        from tools.validation import validate_arguments

        out = self._send([{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": text}])
        if out["error"]:
            return Outcome("error", out["seconds"], [], out["error"])
        if not out["calls"]:
            return Outcome("answer", out["seconds"], [], out["content"] or "")
        calls = []
        for name, arguments in out["calls"]:
            try:
                tool_obj = _TOOL_BY_NAME.get(name)
                if tool_obj is None:
                    raise ToolCallError(f"unknown tool {name!r}")
                validate_arguments(tool_obj, arguments)  # parses the JSON text strictly, then checks it
                calls.append((name, json.loads(arguments)))
            except ToolCallError:
                return Outcome("invalid", out["seconds"], [], f"{name}: {arguments}"[:200])
        return Outcome("calls", out["seconds"], calls, json.dumps(out["calls"])[:200])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def summary(tasks: list[Task], outcomes: list[Outcome]) -> dict[str, Any]:
    n = len(outcomes)
    if not n:
        return {"tasks": 0}
    times = [o.seconds for o in outcomes]
    kinds = [o.kind for o in outcomes]
    return {
        "tasks": n,
        "valid_calls": round(kinds.count("calls") / n, 3),
        "correct": round(sum(o.correct(t) for t, o in zip(tasks, outcomes)) / n, 3),
        "right_tool": round(sum(o.right_tool(t) for t, o in zip(tasks, outcomes)) / n, 3),
        "several_calls": sum(o.kind == "calls" and len(o.calls) > 1 for o in outcomes),
        "no_call": kinds.count("answer"),
        "invalid": kinds.count("invalid"),
        "errors": kinds.count("error"),
        "s_per_task_mean": round(statistics.mean(times), 3),
        "s_per_task_median": round(statistics.median(times), 3),
    }


def quick_tasks() -> list[Task]:
    """12 requests, every tool at least once: from each round of 8 (one per tool), two tools, rotating."""
    return [t for i, t in enumerate(TASKS) if i % 4 == (i // 8) % 4]


def main() -> None:
    ap = argparse.ArgumentParser(prog="orchestrator bench tools")
    ap.add_argument("--quick", action="store_true", help="12 requests (every tool), the baseline on 6 of them")
    ap.add_argument("--limit", type=int, default=None, help="only the first N requests (after --quick)")
    ap.add_argument("--baseline-every", type=int, default=None, help="run the baseline on every K-th request (default: on the 12 --quick requests; with --quick every 2nd)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--runs", action="store_true", help="also run `ours` to the end on every request")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--verbose", "-v", action="store_true", help="print each reply")
    ap.add_argument("--free", action="store_true", help="do not ground arguments (Agent(ground_arguments=False))")
    args = ap.parse_args()

    from agents.agent import Agent
    from orchestrator.engine import EngineConfig, LocalEngine
    from orchestrator.models.catalogue import resolve_model

    tasks = list(quick_tasks() if args.quick else TASKS)[: args.limit]
    if args.no_baseline:
        on_baseline: set[int] = set()
    elif args.baseline_every or args.quick:
        on_baseline = set(range(0, len(tasks), args.baseline_every or 2))
    else:  # the 12 quick requests: every tool at least once
        quick = {t.text for t in quick_tasks()}
        on_baseline = {i for i, t in enumerate(tasks) if t.text in quick}
    path = resolve_model(args.model)
    agents = {
        "ours": Agent("tools-bench", INSTRUCTIONS, tools=TOOLS, examples=EXAMPLES, max_tokens=MAX_TOKENS, ground_arguments=not args.free),
        "ours-closest": Agent("tools-bench", INSTRUCTIONS, tools=TOOLS, examples=EXAMPLES, max_examples=3, max_tokens=MAX_TOKENS),
        "ours-auto": Agent("tools-bench", INSTRUCTIONS, tools=TOOLS, max_tokens=MAX_TOKENS),
    }
    results: dict[str, list[Outcome]] = {m: [] for m in [*agents, "baseline"]}
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    with LocalEngine(path, EngineConfig(n_ctx=8192, max_sequences=2, n_threads=args.threads), name=args.model) as engine:
        baseline = None if not on_baseline else Baseline(str(path), args.threads, n_ctx=4096)
        # Warm-up, not measured: each side reads its shared prompt start once, as a running app would have.
        for agent in agents.values():
            ours_first_turn(engine, agent, "Hello!")
        if baseline:
            baseline.turn("Hello!")
        for i, task in enumerate(tasks):
            modes = ["ours"] + (["ours-closest", "ours-auto", "baseline"] if i in on_baseline else [])
            for mode in modes if i % 2 == 0 else modes[::-1]:
                outcome = baseline.turn(task.text) if mode == "baseline" else ours_first_turn(engine, agents[mode], task.text)  # type: ignore[union-attr]
                results[mode].append(outcome)
                if args.verbose:
                    mark = "OK" if outcome.correct(task) else "--"
                    print(f"  {mark} {mode:<9} {outcome.seconds:5.1f}s {task.text[:40]:<40} {outcome.text[:110]!r}", file=sys.stderr)
            if args.runs:
                runs.append(ours_whole_run(engine, agents["ours"], task.text))
            print(f"  {i + 1}/{len(tasks)} done, {time.perf_counter() - started:.0f} s", file=sys.stderr)
        if baseline:
            baseline.close()

    base_tasks = [t for i, t in enumerate(tasks) if i in on_baseline]
    report = {"ours": summary(tasks, results["ours"])}
    report["ours-closest"] = summary(base_tasks, results["ours-closest"])
    report["ours-auto"] = summary(base_tasks, results["ours-auto"])
    if base_tasks:
        report["baseline"] = summary(base_tasks, results["baseline"])
        report["ours_on_baseline_tasks"] = summary(base_tasks, [o for i, o in enumerate(results["ours"]) if i in on_baseline])
    ratios: dict[str, Any] = {}
    if base_tasks:
        b, o = report["baseline"], report["ours_on_baseline_tasks"]
        oa = report["ours-closest"]
        ratios = {
            "time_baseline_over_ours_mean": round(b["s_per_task_mean"] / o["s_per_task_mean"], 2),
            "time_baseline_over_ours_median": round(b["s_per_task_median"] / o["s_per_task_median"], 2),
            "correct_ours_minus_baseline": round(o["correct"] - b["correct"], 3),
            "time_baseline_over_ours_closest_mean": round(b["s_per_task_mean"] / oa["s_per_task_mean"], 2),
            "correct_ours_closest_minus_baseline": round(oa["correct"] - b["correct"], 3),
            "time_baseline_over_ours_auto_mean": round(b["s_per_task_mean"] / report["ours-auto"]["s_per_task_mean"], 2),
            "correct_ours_auto_minus_baseline": round(report["ours-auto"]["correct"] - b["correct"], 3),
        }
    per_tool = {t.name: f"{sum(o.correct(k) for k, o in zip(tasks, results['ours']) if k.tool == t.name)}/"
                        f"{sum(k.tool == t.name for k in tasks)}" for t in TOOLS}
    whole = {}
    if runs:
        whole = {"runs": len(runs), "answered": sum(r["answered"] for r in runs), "steps_mean": round(statistics.mean(r["steps"] for r in runs), 2),
                 "tool_runs_mean": round(statistics.mean(r["tool_runs"] for r in runs), 2),
                 "s_per_run_mean": round(statistics.mean(r["seconds"] for r in runs), 3)}

    print(f"\n{'mode':<28} {'tasks':>5} {'valid':>6} {'correct':>8} {'tool':>6} {'no call':>8} {'s/task':>7} {'median':>7}")
    rows = [("ours (all 16 examples)", report["ours"])]
    if base_tasks:
        rows += [("-- baseline's tasks:", None), ("ours", report["ours_on_baseline_tasks"]), ("ours-closest (3 closest)", report["ours-closest"]),
                 ("ours-auto (no dev examples)", report["ours-auto"]), ("chatml-function-calling", report["baseline"])]
    for name, r in rows:
        if r is None:
            print(name)
            continue
        print(f"{name:<28} {r['tasks']:>5} {r['valid_calls']:>6.0%} {r['correct']:>8.0%} {r['right_tool']:>6.0%} {r['no_call'] + r['errors']:>8} "
              f"{r['s_per_task_mean']:>7.2f} {r['s_per_task_median']:>7.2f}")
    if ratios:
        print(f"time per task, baseline / ours (same {len(base_tasks)} tasks): mean {ratios['time_baseline_over_ours_mean']:.2f}x, "
              f"median {ratios['time_baseline_over_ours_median']:.2f}x; correct, ours - baseline: {ratios['correct_ours_minus_baseline']:+.0%}")
        print(f"  ours-closest: time baseline / ours-closest {ratios['time_baseline_over_ours_closest_mean']:.2f}x, correct {ratios['correct_ours_closest_minus_baseline']:+.0%}; "
              f"ours-auto: {ratios['time_baseline_over_ours_auto_mean']:.2f}x, correct {ratios['correct_ours_auto_minus_baseline']:+.0%}")
    print("ours, correct per tool: " + ", ".join(f"{k} {v}" for k, v in per_tool.items()))
    if whole:
        print(f"whole runs (ours): {whole['answered']}/{whole['runs']} answered, {whole['steps_mean']} steps and "
              f"{whole['tool_runs_mean']} tool runs on average, {whole['s_per_run_mean']:.2f} s per run")
    print(json.dumps({"bench": "tools", "model": args.model, "threads": args.threads, "quick": args.quick, "tools": len(TOOLS),
                      "results": report, "ratios": ratios, "ours_correct_per_tool": per_tool, "whole_runs": whole,
                      "wall_s": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
