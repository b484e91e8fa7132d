"""Keyword matching cannot be evaded with invisible characters, combining marks or look-alike letters.

ICU is the oracle here as in the code: its TR39 skeletons say which characters look alike, and its
Default_Ignorable_Code_Point set which ones are invisible.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from pathlib import Path

import icu
import pytest
from hypothesis import given
from hypothesis import strategies as st

from payguard import Action, Guard, load_rule_set
from payguard._common.text import normalize_text
from payguard._rules.model import RuleSet

from ..conftest import ROOT, make_event, rules_text

PHRASES = ["safe account", "unfreeze fee", "money laundering", "安全账户", "刷单返利"]
KEYWORDS = f"""
keyword_sets:
  scam: [{", ".join(PHRASES)}]
rules:
  - {{id: scam, description: d, when: {{memo: {{contains_any: scam}}}}, action: interrupt, reason: r}}
"""


def _code_points(pattern: str) -> list[str]:
    found = icu.UnicodeSet(pattern)
    return [
        chr(cp)
        for r in range(found.getRangeCount())
        for cp in range(ord(found.getRangeStart(r)), ord(found.getRangeEnd(r)) + 1)
    ]


IGNORABLE = _code_points("[:Default_Ignorable_Code_Point:]")


@cache
def confusables() -> dict[str, list[str]]:
    """For each lowercase letter of the phrases: the letters, digits and marks whose TR39 skeleton, case
    folded, is it (punctuation and symbols that look like letters, such as ``|``, are dropped instead)."""
    spoof = icu.SpoofChecker()
    letters = set("".join(PHRASES)) - {" "}
    found: dict[str, list[str]] = {letter: [] for letter in letters if letter.isascii()}
    for cp in range(0x20, 0x20000):
        ch = chr(cp)
        if ch in found or not unicodedata.category(ch).startswith(("L", "N", "M")):
            continue
        skeleton = spoof.getSkeleton(0, unicodedata.normalize("NFKC", ch).casefold())
        if skeleton in found:
            found[skeleton].append(ch)
    return {letter: chars for letter, chars in found.items() if chars}


def matches(ruleset: RuleSet, text: str) -> bool:
    normalized = ruleset.normalize_text(text)
    return any(phrase in normalized for phrase in ruleset.keyword_sets["scam"])


@pytest.fixture(scope="module")
def ruleset(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(rules_text(KEYWORDS), encoding="utf-8")
    return load_rule_set(path)


texts = st.builds(
    lambda before, phrase, after: before + phrase + after,
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz 安全账户转入。", max_size=12),
    st.sampled_from([*PHRASES, "safe acount", "安全帐", "unfreeze"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz 安全账户转入。", max_size=12),
)


@given(text=texts, where=st.integers(min_value=0), ignorable=st.sampled_from(IGNORABLE))
def test_inserting_a_default_ignorable_character_never_changes_whether_a_keyword_set_matches(
    ruleset: RuleSet, text: str, where: int, ignorable: str
) -> None:
    at = where % (len(text) + 1)
    assert matches(ruleset, text[:at] + ignorable + text[at:]) == matches(ruleset, text)


@given(text=texts, where=st.integers(min_value=0), pick=st.integers(min_value=0))
def test_replacing_a_letter_by_a_confusable_never_changes_whether_a_keyword_set_matches(
    ruleset: RuleSet, text: str, where: int, pick: int
) -> None:
    positions = [i for i, ch in enumerate(text) if ch in confusables()]
    if not positions:
        return
    at = positions[where % len(positions)]
    choices = confusables()[text[at]]
    spoofed = text[:at] + choices[pick % len(choices)] + text[at + 1 :]
    assert matches(ruleset, spoofed) == matches(ruleset, text)


def test_chinese_is_compared_as_written() -> None:
    # NFKC, case folding and dropping punctuation, as before: TR39 would map 士 to 土 and 丶 to a backslash
    for cp in range(0x4E00, 0xA000):
        assert normalize_text(chr(cp)) == chr(cp)
    assert normalize_text("转入 安全-账户，谢谢！") == "转入安全账户谢谢"


def test_the_shipped_chinese_phrases_normalise_as_they_did_before() -> None:
    def before(text: str) -> str:  # payguard 0.1: NFKC, case folding, punctuation and spaces dropped
        folded = unicodedata.normalize("NFKC", text).casefold()
        return "".join(ch for ch in folded if not unicodedata.category(ch).startswith(("P", "Z", "S", "C")))

    raw = [line.strip()[2:] for line in (ROOT / "rules" / "keywords.yaml").read_text().splitlines()]
    chinese = [phrase for phrase in raw if phrase and not any(ch.isascii() for ch in phrase)]
    assert len(chinese) > 50
    assert [normalize_text(phrase) for phrase in chinese] == [before(phrase) for phrase in chinese]


@pytest.mark.parametrize(
    "memo",
    [
        "转入安全\ufe0f账户",  # variation selector 16
        "转入安全\u3164账户",  # Hangul filler
        "转入安全\u200b账户",  # zero-width space
        "转入安全\u00ad账户",  # soft hyphen
        "转入安\u0301全账户",  # combining acute accent
        "move it to a s\u0430fe account",  # Cyrillic а
        "move it to a SAFE ACC0UNT",  # digit zero for O
    ],
)
def test_the_shipped_rules_interrupt_the_safe_account_phrase_however_it_is_disguised(memo: str) -> None:
    with Guard.from_path(ROOT / "rules") as guard:
        decision = guard.evaluate(make_event(memo=memo))
    assert decision.action is Action.INTERRUPT
    assert "PG03_always_fraud_phrase" in [hit.rule_id for hit in decision.hits]


def test_combining_marks_are_dropped_unless_a_phrase_carries_one(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text(rules_text(KEYWORDS), encoding="utf-8")
    marked = tmp_path / "marked.yaml"
    marked.write_text(rules_text(KEYWORDS.replace("safe account", "café account")), encoding="utf-8")
    without, with_marks = load_rule_set(plain), load_rule_set(marked)
    assert (without.keep_marks, with_marks.keep_marks) == (False, True)
    assert matches(without, "s\u0327a\u0301fe account")
    assert matches(with_marks, "cafe\u0301 account")  # decomposed or not, é is é
    assert not matches(with_marks, "cafe account")  # where phrases carry accents, accents count
