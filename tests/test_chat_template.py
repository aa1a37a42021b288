"""Chat templates render real model templates, and untrusted ones stay in their sandbox."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

import orchestrator.engine.chat_template as chat_template_module
from orchestrator.engine.chat_template import CHATML_TEMPLATE, ChatTemplate, TemplateLimits
from orchestrator.engine.template_limits import CURRENT_RENDER
from orchestrator.errors import ChatTemplateError, ConfigError, OrchestratorError, RequestError

# SmolLM2-135M-Instruct's template, as its GGUF file carries it (used when the file is absent).
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Gemma 3 instruct's template (the gemma3-270m base GGUF ships none): the system
# message is folded into the first user turn, and roles must alternate.
GEMMA3_TEMPLATE = r"""{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""

# A Qwen2.5-style tool-calling template: tools, tool calls, tool responses, tojson, loop lookbehind.
QWEN_STYLE_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

FAST = TemplateLimits(max_seconds=0.5)
# Attacks must end long before this; it bounds the limit, it does not measure speed.
ATTACK_BOUND_S = 5.0

CHAT = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi"},
]


def _smollm2_gguf_template() -> str | None:
    """The template inside the installed smollm2 GGUF, or None when reader or file is missing."""
    try:
        from orchestrator.models.catalogue import resolve_model
        from orchestrator.models.gguf import read_gguf
    except ImportError:
        return None
    try:
        return read_gguf(resolve_model("smollm2-135m")).chat_template
    except OrchestratorError:
        return None


@pytest.fixture(scope="module")
def smollm2_template() -> ChatTemplate:
    return ChatTemplate(_smollm2_gguf_template() or SMOLLM2_TEMPLATE, eos_token="<|im_end|>")


def _render(source: str, messages: list[dict[str, Any]] | None = None, **kwargs: Any) -> str:
    return ChatTemplate(source, limits=FAST).render(CHAT if messages is None else messages, **kwargs)


def _fails(source: str, **kwargs: Any) -> ChatTemplateError:
    with pytest.raises(ChatTemplateError) as info:
        _render(source, **kwargs)
    return info.value


# --- real templates ---


def test_smollm2_gguf_carries_the_template_tested_here() -> None:
    template = _smollm2_gguf_template()
    if template is None:
        pytest.skip("smollm2 GGUF or orchestrator.models.gguf not available")
    assert template == SMOLLM2_TEMPLATE


def test_smollm2_renders_system_and_user_with_generation_prompt(smollm2_template: ChatTemplate) -> None:
    assert smollm2_template.render(CHAT) == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_smollm2_adds_its_default_system_prompt_and_can_omit_the_generation_prompt(
    smollm2_template: ChatTemplate,
) -> None:
    text = smollm2_template.render([{"role": "user", "content": "Hi"}], add_generation_prompt=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
    )


def test_gemma3_folds_the_system_message_into_the_first_user_turn() -> None:
    template = ChatTemplate(GEMMA3_TEMPLATE, bos_token="<bos>", eos_token="<eos>")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi "},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": [{"type": "text", "text": "More"}]},
    ]
    assert template.render(messages) == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello<end_of_turn>\n"
        "<start_of_turn>user\nMore<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_gemma3_rejects_non_alternating_roles_with_its_own_message() -> None:
    template = ChatTemplate(GEMMA3_TEMPLATE, bos_token="<bos>")
    with pytest.raises(ChatTemplateError, match="roles must alternate"):
        template.render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])


def test_chatml_fallback() -> None:
    messages = [
        *CHAT,
        {"role": "assistant", "content": None, "tool_calls": [{"name": "f"}]},
        {"role": "tool", "content": [{"type": "text", "text": "42"}], "tool_call_id": "1"},
    ]
    assert ChatTemplate(CHATML_TEMPLATE).render(messages) == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n<|im_end|>\n"
        "<|im_start|>tool\n42<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


# --- what transformers gives templates ---


TOOL_CHAT = [
    {"role": "system", "content": "S"},
    {"role": "user", "content": "Weather in Zürich?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}},
    ]},
    {"role": "tool", "content": '{"t": 3}', "tool_call_id": "1"},
    {"role": "tool", "content": "sunny"},
    {"role": "user", "content": "Thanks"},
]  # fmt: skip
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def _transformers_style_environment() -> ImmutableSandboxedEnvironment:
    """The environment transformers renders in, without any of our limits."""

    def raise_exception(message: str) -> None:
        raise AssertionError(message)

    def tojson(value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
               sort_keys: bool = False) -> str:  # fmt: skip
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals.update(raise_exception=raise_exception, strftime_now=lambda fmt: datetime.now().strftime(fmt))
    return env


@pytest.mark.parametrize(
    ("source", "messages"),
    [(QWEN_STYLE_TEMPLATE, TOOL_CHAT), (GEMMA3_TEMPLATE, CHAT), (SMOLLM2_TEMPLATE, CHAT), (CHATML_TEMPLATE, TOOL_CHAT)],
    ids=["qwen-style", "gemma3", "smollm2", "chatml"],
)
def test_output_matches_an_unguarded_transformers_style_environment(
    source: str, messages: list[dict[str, Any]]
) -> None:
    reference = _transformers_style_environment().from_string(source)
    for tools in (TOOLS, None):
        expected = reference.render(
            messages=messages, tools=tools, documents=None, add_generation_prompt=True, bos_token="<s>", eos_token="</s>"
        )
        assert ChatTemplate(source, bos_token="<s>", eos_token="</s>").render(messages, tools=tools) == expected


def test_qwen_style_template_renders_tools_and_tool_calls() -> None:
    text = ChatTemplate(QWEN_STYLE_TEMPLATE).render(TOOL_CHAT, tools=TOOLS)
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}\n' in text
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich"}}\n</tool_call><|im_end|>\n' in text
    assert "<tool_response>\n{\"t\": 3}\n</tool_response>\n<tool_response>\nsunny\n</tool_response><|im_end|>\n" in text
    assert text.endswith("<|im_start|>user\nThanks<|im_end|>\n<|im_start|>assistant\n")


def test_raise_exception_becomes_chat_template_error() -> None:
    error = _fails("{% if messages[0].role != 'user' %}{{ raise_exception('bad role') }}{% endif %}")
    assert "bad role" in str(error)
    assert isinstance(error, RequestError)


def test_tojson_matches_transformers() -> None:
    assert _render("{{ {'a': 'é<&>'}|tojson }}") == '{"a": "é<&>"}'  # no HTML escaping, no \\u escapes
    assert _render("{{ [1]|tojson(indent=2) }}") == "[\n  1\n]"
    assert _render("{{ {'b': 1, 'a': 2}|tojson(sort_keys=true, separators=(',', ':')) }}") == '{"a":2,"b":1}'
    assert _render("{{ 'é'|tojson(ensure_ascii=true) }}") == '"\\u00e9"'


def test_strftime_now_and_date_string() -> None:
    source = '{% if date_string is not defined %}{% set date_string = strftime_now("%Y") %}{% endif %}{{ date_string }}'
    assert _render(source) == str(datetime.now().year)
    assert _render(source, date_string="26 Jul 2024") == "26 Jul 2024"


def test_loop_controls_namespace_generation_and_block_trimming() -> None:
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]
    source = "{% for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}{{ m.content }}{% endfor %}"
    assert _render(source, messages) == "ab"
    source = (
        "{% set ns = namespace(last=-1) %}"
        "{% for m in messages %}{% if m.role == 'user' %}{% set ns.last = loop.index0 %}{% endif %}{% endfor %}"
        "{{ ns.last }}"
    )
    assert _render(source, messages) == "2"
    assert _render("{% generation %}{{ messages[1].content }}{% endgeneration %}", messages) == "b"
    assert _render("{% for m in messages %}\n  {{ m.role }}\n{% endfor %}", CHAT) == "  system\n  user\n"


def test_template_variables_tools_tokens_and_extra() -> None:
    template = ChatTemplate(
        "{{ bos_token }}|{{ eos_token }}|{{ tools|tojson }}|{{ documents is none }}|{{ enable_thinking }}|"
        "{{ add_generation_prompt }}",
        bos_token="<s>",
        eos_token="</s>",
    )
    tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
    assert template.render(CHAT, tools=tools, enable_thinking=False) == (
        '<s>|</s>|[{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]'
        "|True|False|True"
    )
    assert template.render(CHAT, add_generation_prompt=False).endswith("|null|True||False")


def test_guarded_range_still_behaves_like_range() -> None:
    assert _render("{% for i in range(3) %}{{ i }}{% if loop.last %}!{% endif %}{% endfor %}") == "012!"
    assert _render("{{ range(5)|length }} {{ range(10)[2] }} {{ range(3)|list }} {{ 2 in range(3) }}") == "5 2 [0, 1, 2] True"
    assert "range()" in str(_fails("{{ range(10**6)|length }}"))


# --- messages are the caller's data ---


def test_template_cannot_mutate_the_callers_messages() -> None:
    messages = [{"role": "user", "content": "Hi", "meta": {"tags": ["a"]}}]
    for source in (
        "{{ messages.append(1) }}",
        "{{ messages[0].update({'role': 'x'}) }}",
        "{{ messages[0].pop('role') }}",
        "{{ messages[0].meta.tags.append('b') }}",
    ):
        assert "unsafe" in str(_fails(source, messages=messages))
    assert "namespace" in str(_fails("{% set m = messages[0] %}{% set m.role = 'x' %}", messages=messages))
    assert messages == [{"role": "user", "content": "Hi", "meta": {"tags": ["a"]}}]


def test_only_json_like_data_reaches_a_template() -> None:
    template = ChatTemplate(CHATML_TEMPLATE)
    with pytest.raises(ChatTemplateError, match="Path"):
        template.render([{"role": "user", "content": Path("/etc/passwd")}])
    with pytest.raises(ChatTemplateError, match="Path"):
        template.render(CHAT, secret=Path("/"))
    with pytest.raises(ChatTemplateError, match="mapping"):
        template.render(["not a message"])  # type: ignore[list-item]
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ChatTemplateError, match="nest too deeply"):
        template.render([{"role": "user", "content": deep}])


# --- sandbox escapes ---

UNSAFE = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ self.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__['os'].system('touch PWNED') }}",
    "{{ raise_exception.__globals__['os'].system('touch PWNED') }}",
    "{{ cycler.__init__|attr('__globals__') }}",
    "{{ (cycler|attr('__init__')|attr('__globals__'))['os'].system('touch PWNED') }}",
    "{{ '{0.__class__.__mro__}'.format('') }}",
    "{{ ''.__class__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ (raise_exception|attr('__globals__'))['os'].system('touch PWNED') }}",
]


@pytest.mark.parametrize("source", UNSAFE)
def test_sandbox_escapes_fail_as_unsafe(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert "unsafe" in str(_fails(source))
    assert not (tmp_path / "PWNED").exists()


def test_lipsum_is_not_offered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert "lipsum" in str(_fails("{{ lipsum.__globals__['os'].system('touch PWNED') }}"))
    assert not (tmp_path / "PWNED").exists()


def test_flask_style_globals_are_undefined_and_leak_nothing() -> None:
    assert _render("{{ config }}|{{ request }}|{{ settings }}|{{ os }}") == "|||"
    assert isinstance(_fails("{{ config.items() }}"), ChatTemplateError)


# --- resource attacks ---

ATTACKS = {
    "string multiplication": "{{ 'a' * 10**9 }}",
    "chained multiplication": "{{ 'a' * 1000000 * 1000 }}",
    "list multiplication": "{{ [1] * 10**9 }}",
    "huge power": "{{ 10 ** (10 ** 10) }}",
    "huge power, left-associative chain": "{{ 2 ** 64 ** 64 ** 64 }}",
    "nested range loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "nested loops over a string": "{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
    "output flood": "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
    "literal flood": "{% for i in range(100000) %}" + "y" * 1000 + "{% endfor %}",
    "flood into a macro buffer": "{% macro m() %}{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}{% endmacro %}"
    "{% set y = m() %}",
    "literal flood into a set block": "{% set y %}{% for i in range(100000) %}" + "y" * 1000 + "{% endfor %}{% endset %}",
    "deep recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "exponential recursion": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
    "string doubling": "{% set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "shared-list doubling": "{% set ns = namespace(a=[1]) %}{% for i in range(64) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}"
    "{{ ns.a ~ '' }}",
    "printf width": "{{ '%999999999s' % 'a' }}",
    "format width": "{{ '{:>999999999}'.format('a') }}",
    "nested format width": "{{ '{:>{}}'.format('a', 999999999) }}",
    "str.center": "{{ 'x'.center(999999999) }}",
    "center filter, folded at compile time": "{{ 'x'|center(999999999) }}",
    "replace filter": "{{ ('x' * 1000000)|replace('x', 'yy') }}",
    "str.replace": "{{ ('x' * 100000).replace('', 'y' * 1000) }}",
    "str.join": "{{ ('y' * 100000).join(('x' * 1000)|list) }}",
    "join filter": "{{ ('x' * 1000)|list|join('y' * 100000) }}",
    "expandtabs": "{{ ('\t' * 1000).expandtabs(100000) }}",
    "indent filter": "{{ ('x\n' * 100000)|indent(1000) }}",
    "tojson indent": "{% set ns = namespace(a=1) %}{% for i in range(50) %}{% set ns.a = [ns.a] %}{% endfor %}"
    "{{ ([ns.a] * 1000)|tojson(indent=1000) }}",
    "format filter": "{{ '%999999999s'|format('a') }}",
    "quadratic list sum": "{% set ll = [[0] * 50] * 9000 %}{{ ll|sum(start=[])|length }}",
    "big range": "{{ range(10**12)|list }}",
}


@pytest.mark.parametrize("source", ATTACKS.values(), ids=ATTACKS.keys())
def test_resource_attacks_end_in_chat_template_error(source: str) -> None:
    start = time.monotonic()
    with pytest.raises(ChatTemplateError):
        _render(source)
    assert time.monotonic() - start < ATTACK_BOUND_S


def test_template_source_over_the_cap_is_refused_at_compile_time() -> None:
    with pytest.raises(ChatTemplateError, match="over the limit"):
        ChatTemplate("x" * 65_000)
    ChatTemplate("x" * 100, limits=TemplateLimits(max_template_chars=100))


def test_output_cap_is_exact() -> None:
    limits = TemplateLimits(max_output_chars=10)
    assert ChatTemplate("{% for i in range(10) %}x{% endfor %}", limits=limits).render([]) == "x" * 10
    with pytest.raises(ChatTemplateError, match="rendered prompt"):
        ChatTemplate("{% for i in range(11) %}x{% endfor %}", limits=limits).render([])


def test_a_timed_out_render_leaves_nothing_behind() -> None:
    slow = ChatTemplate(ATTACKS["nested range loops"], limits=TemplateLimits(max_seconds=0.2))
    for _ in range(2):
        with pytest.raises(ChatTemplateError, match="longer than 0.2 s"):
            slow.render([])
    assert CURRENT_RENDER.get() is None
    assert ChatTemplate(CHATML_TEMPLATE).render(CHAT).endswith("<|im_start|>assistant\n")


def test_renders_in_threads_do_not_share_deadlines() -> None:
    slow = ChatTemplate(ATTACKS["nested range loops"], limits=TemplateLimits(max_seconds=1.0))
    errors: list[Exception] = []

    def attack() -> None:
        try:
            slow.render([])
        except ChatTemplateError as exc:
            errors.append(exc)

    thread = threading.Thread(target=attack)
    thread.start()
    fine = ChatTemplate(SMOLLM2_TEMPLATE, limits=TemplateLimits(max_seconds=30.0))
    texts = [fine.render(CHAT) for _ in range(50)]
    thread.join()
    assert len(errors) == 1 and len(set(texts)) == 1


# --- every failure is a short ChatTemplateError ---


def test_failures_are_short_chat_template_errors() -> None:
    with pytest.raises(ChatTemplateError, match="syntax error, line 2"):
        ChatTemplate("ok\n{% for %}")
    with pytest.raises(ChatTemplateError, match="does not compile"):
        ChatTemplate("{{" + "(" * 5000 + "1" + ")" * 5000 + "}}")
    type_error = _fails("{{ 1 + 'a' }}")
    assert "TypeError" in str(type_error) and type_error.__cause__ is not None
    assert "undefined" in str(_fails("{{ missing.attribute }}"))
    assert "recursed too deeply" in str(_fails(ATTACKS["deep recursion"]))
    for error in (type_error, _fails("{{ messages[99].content.strip() }}")):
        assert "Traceback" not in str(error) and len(str(error)) < 300


def test_limits_are_validated() -> None:
    assert TemplateLimits() == TemplateLimits(max_template_chars=64_000, max_output_chars=1_000_000, max_seconds=1.0)
    for bad in ({"max_seconds": 0}, {"max_output_chars": -1}, {"max_template_chars": 0}):
        with pytest.raises(ConfigError):
            TemplateLimits(**bad)


def test_exports() -> None:
    assert sorted(chat_template_module.__all__) == ["CHATML_TEMPLATE", "ChatTemplate", "TemplateLimits"]
    assert all(hasattr(chat_template_module, name) for name in chat_template_module.__all__)
