"""An agent with tools on the embedded small model (smollm2-135m), in a few seconds.

Run: .venv/bin/python examples/agent_tools.py
"""

from __future__ import annotations

from typing import Literal

import anyio

from agents import Agent
from orchestrator import LocalEngine
from orchestrator.agent_runner import AgentEvent, run_agent
from orchestrator.backends import LocalBackend
from tools import tool
from tools.builtin import calculator

ORDERS = {"u-17": {1041: "open", 1042: "shipped"}}


@tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Current weather in a city.

    Args:
        city: City name, e.g. "Paris".
        unit: Temperature unit.
    """
    return f"{city}: 18 degrees {unit}, light rain"


@tool(injected=("user_id",), needs_approval=True, idempotent=False)
def cancel_order(order: int, user_id: str) -> str:
    """Cancel one of the user's orders.

    Args:
        order: Order number.
        user_id: Whose order (set by the app, never by the model).
    """
    if order not in ORDERS[user_id]:
        raise LookupError(f"no order {order}")
    ORDERS[user_id][order] = "cancelled"
    return f"order {order} cancelled"


def calls(name: str, **arguments: object) -> dict:
    return {"calls": [{"name": name, "arguments": arguments}]}


AGENT = Agent(
    "assistant",
    "You are a helpful assistant.",
    tools=(get_weather, calculator, cancel_order),
    ground_arguments=True,
    examples=(  # a small model leans on the last examples most: the risky tool's goes first
        ("Please cancel order 77.", calls("cancel_order", order=77)),
        ("Cancel my order 5120.", calls("cancel_order", order=5120)),
        ("Is it cold in Oslo?", calls("get_weather", city="Oslo")),
        ("Weather in Rome in fahrenheit?", calls("get_weather", city="Rome", unit="fahrenheit")),
        ("What is 6 * 7?", calls("calculator", expression="6 * 7")),
        ("How much is 15 + 27?", calls("calculator", expression="15 + 27")),
    ),
    max_tokens=96,  # short turns: a text answer is held to 80 characters
)


def show(event: AgentEvent) -> None:
    if event.kind in ("tool_started", "tool_finished", "escalated"):
        print(f"   [{event.kind}] {event.tool or event.text}" + (f": {event.error}" if event.error else ""))


def ask_user(call: object) -> bool:
    print(f"   approve {call.tool.name}({call.arguments})? yes")  # type: ignore[attr-defined]
    return True  # a desktop app would show a dialog here


async def main() -> None:
    with LocalEngine("smollm2-135m") as engine:
        backend = LocalBackend(engine)
        for task in ("What's the weather in Lisbon?", "What is 12 * 34?", "Cancel order 1041, please."):
            print(f"user: {task}")
            result = await run_agent(AGENT, task, backend, on_event=show, approve=ask_user, context={"user_id": "u-17"})
            for r in result.calls:
                print(f"   {r.call.tool.name}({r.call.arguments}) -> {r.value if r.ok else r.error!r}")
            print(f"assistant: {result.output}\n")
    print("orders now:", ORDERS["u-17"])


if __name__ == "__main__":
    anyio.run(main)
