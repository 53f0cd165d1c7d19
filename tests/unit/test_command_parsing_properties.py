"""Properties of what users type: command words and circuit lists."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.commands import parse_command
from bot.mentions import command_text
from monitoring.retries import CIRCUIT_PATTERN, CircuitListError, parse_circuits

_PART = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

# --- parse_command --------------------------------------------------------------------

command_names = st.builds(
    str.__add__,
    st.sampled_from("abcdefghijklmnopqrstuvwxyz"),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", max_size=15),
)
# What reaches parse_command has been through command_text: single spaces, no edges.
cleaned_args = st.text(max_size=60).map(lambda text: " ".join(text.split()))


@given(st.text())
def test_parse_command_never_raises_and_names_have_no_spaces(text: str) -> None:
    parsed = parse_command(text)
    assert " " not in parsed.name
    assert parsed.args == parsed.args.strip()
    assert parsed.name == parsed.name.lower() or not parsed.name.isascii()
    if not text.strip():
        assert (parsed.name, parsed.args) == ("", "")


@given(name=command_names, args=cleaned_args, slash=st.booleans(), upper=st.booleans())
def test_parse_command_round_trips_name_and_args(
    name: str, args: str, slash: bool, upper: bool
) -> None:
    typed = ("/" if slash else "") + (name.upper() if upper else name)
    parsed = parse_command(f"{typed} {args}")
    assert (parsed.name, parsed.args) == (name, args)


@given(
    name=command_names,
    words=st.lists(st.text(alphabet=_PART + "/,", min_size=1, max_size=12), max_size=5),
    gaps=st.lists(
        st.sampled_from([" ", "  ", "\u00a0", "&nbsp;", "\n", "\t", " \r\n"]), min_size=7
    ),
)
def test_teams_text_parses_like_what_the_user_meant(
    name: str, words: list[str], gaps: list[str]
) -> None:
    # Teams adds &nbsp;, newlines and the mention; the user meant "name word word".
    raw = "<at>mlbot</at>" + gaps[0] + name
    for word, gap in zip(words, gaps[1:], strict=False):
        raw += gap + word
    raw += gaps[-1]
    parsed = parse_command(command_text(raw))
    assert (parsed.name, parsed.args) == (name, " ".join(words))


# --- parse_circuits -------------------------------------------------------------------

circuits = st.builds(
    "{}/{}".format,
    st.text(alphabet=_PART, min_size=1, max_size=10),
    st.text(alphabet=_PART, min_size=1, max_size=10),
)
separators = st.lists(
    st.sampled_from([",", " ", ", ", " ,", ",,", "\t", "\u00a0", "\n", " , "]),
    min_size=1,
    max_size=3,
).map("".join)
_SEPARATOR_CHAR = re.compile(r"[,\s]")
malformed = st.text(min_size=1, max_size=20).filter(
    lambda text: not _SEPARATOR_CHAR.search(text) and not CIRCUIT_PATTERN.fullmatch(text)
)


def joined(items: list[str], seps: list[str], edges: tuple[str, str]) -> str:
    text = items[0]
    for index, item in enumerate(items[1:]):
        text += seps[index % len(seps)] + item
    return edges[0] + text + edges[1]


edge = st.sampled_from(["", " ", ",", "\n", " , "])


@settings(max_examples=150)
@given(
    items=st.lists(circuits, min_size=1, max_size=8),
    repeats=st.lists(st.integers(0, 7), max_size=4),
    seps=st.lists(separators, min_size=1, max_size=8),
    edges=st.tuples(edge, edge),
)
def test_parse_circuits_accepts_any_mix_of_separators(
    items: list[str], repeats: list[int], seps: list[str], edges: tuple[str, str]
) -> None:
    typed = items + [items[index % len(items)] for index in repeats]
    assert parse_circuits(joined(typed, seps, edges)) == tuple(dict.fromkeys(typed))


@settings(max_examples=150)
@given(
    items=st.lists(circuits, max_size=6),
    bad=malformed,
    position=st.integers(0, 6),
    seps=st.lists(separators, min_size=1, max_size=6),
)
def test_parse_circuits_rejects_a_list_with_a_malformed_entry_naming_it(
    items: list[str], bad: str, position: int, seps: list[str]
) -> None:
    typed = list(items)
    typed.insert(min(position, len(typed)), bad)
    with pytest.raises(CircuitListError) as caught:
        parse_circuits(joined(typed, seps, ("", "")))
    assert caught.value.invalid == (bad,)
    assert f"'{bad}'" in str(caught.value)


@given(text=st.text(alphabet=st.sampled_from([",", " ", "\t", "\n", "\u00a0"]), max_size=10))
def test_parse_circuits_rejects_an_empty_list(text: str) -> None:
    with pytest.raises(CircuitListError, match="No circuits"):
        parse_circuits(text)


@given(st.text(max_size=80))
def test_parse_circuits_raises_nothing_but_circuit_list_errors(text: str) -> None:
    try:
        result = parse_circuits(text)
    except CircuitListError as error:
        assert str(error)
    else:
        assert result and all(CIRCUIT_PATTERN.fullmatch(item) for item in result)
        assert len(set(result)) == len(result)
