"""Text normalisation for keyword matching, the same for Chinese and English, and hard to evade.

A text and the phrases it is matched against go through the same steps:

1. Unicode NFKC (full-width letters and digits become half-width ones) and case folding;
2. canonical decomposition (NFD), so that an accent is a letter plus a combining mark;
3. per character: default-ignorable code points and fillers (U+200B, U+00AD, U+FE0F, U+3164 ...)
   dropped, every space, punctuation mark, symbol and control character dropped, every other character
   replaced by its Unicode TR39 confusable skeleton (Cyrillic ``а`` becomes Latin ``a``, ``0`` becomes
   ``o``), case folded again, and the combining marks left dropped (unless the rule set's phrases carry
   some: ``keep_marks``).

So ``安 全-账 户``, ``SAFE  Account!``, ``转入安全\u200b账户`` and ``s\u0430fe account`` match the phrases
``安全账户`` and ``safe account``. The skeletons and the default-ignorable property come from ICU (PyICU),
the reference implementation of TR39, whose confusables data follows each Unicode release. Chinese,
Japanese and Korean characters are compared as written: TR39 maps some ideographs to others or to
punctuation (``士`` to ``土``, ``丶`` to ``\\``), which would change what Chinese phrases match.
Traditional-to-simplified conversion and pinyin initials are not handled; list both forms where it matters.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Final

import icu

from .cache import remember

__all__ = [
    "account_key",
    "has_marks",
    "normalize_account",
    "normalize_text",
    "normalize_text_keeping_marks",
    "text_normalizer",
]

_DROP_CATEGORIES: Final = ("P", "Z", "S", "C")
_SPOOF: Final = icu.SpoofChecker()
_IGNORABLE: Final = icu.UnicodeSet("[:Default_Ignorable_Code_Point:]")
# scripts compared as written (see the module docstring)
_AS_WRITTEN: Final = icu.UnicodeSet("[[:Han:][:Hiragana:][:Katakana:][:Hangul:][:Bopomofo:]]")

# Results remembered for the texts, characters and accounts seen most recently (``cache.remember``)
_TEXTS: Final[dict[str, str]] = {}
_MARKED_TEXTS: Final[dict[str, str]] = {}
_CHARS: Final[dict[int, str]] = {}
_MARKED_CHARS: Final[dict[int, str]] = {}
_CHARS_SIZE: Final = 1 << 14
_ACCOUNTS: Final[dict[str, str]] = {}


def _kept(ch: str, keep_marks: bool) -> bool:
    """Whether a character of a skeleton carries meaning for matching."""
    category = unicodedata.category(ch)
    if category.startswith(_DROP_CATEGORIES) or _IGNORABLE.contains(ch):
        return False
    return keep_marks or not category.startswith("M")


def _fold(ch: str, keep_marks: bool) -> str:
    """What one character of a decomposed, case-folded text becomes: its kept skeleton, maybe empty.

    Punctuation and symbols are dropped before folding, even those that look like a letter (``|``,
    ``⍺``): inserted anywhere, they must never split a phrase. A mark is folded first, since some look
    like letters (the Telugu anusvara ``ం`` like ``o``); one that folds to a mark is then dropped."""
    if unicodedata.category(ch).startswith(_DROP_CATEGORIES) or _IGNORABLE.contains(ch):
        return ""
    if _AS_WRITTEN.contains(ch):
        return ch
    skeleton = unicodedata.normalize("NFD", str(_SPOOF.getSkeleton(0, ch)).casefold())
    return "".join(part for part in skeleton if _kept(part, keep_marks))


def _normalize(text: str, keep_marks: bool, chars: dict[int, str]) -> str:
    decomposed = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", text).casefold())
    # each distinct character folded once, then the whole text translated in one C call
    for ch in set(decomposed):
        if ord(ch) not in chars:
            remember(chars, ord(ch), _fold(ch, keep_marks), _CHARS_SIZE)
    if len(chars) >= _CHARS_SIZE:  # emptied while filling: the text's characters may be missing
        chars.update({ord(ch): _fold(ch, keep_marks) for ch in set(decomposed)})
    return decomposed.translate(chars)


def normalize_text(text: str) -> str:
    """``text`` reduced to the characters that carry meaning for keyword matching, combining marks
    dropped (for rule sets whose phrases carry none)."""
    found = _TEXTS.get(text)
    if found is None:
        found = remember(_TEXTS, text, _normalize(text, False, _CHARS))
    return found


def normalize_text_keeping_marks(text: str) -> str:
    """As ``normalize_text``, combining marks kept (for rule sets whose phrases carry some)."""
    found = _MARKED_TEXTS.get(text)
    if found is None:
        found = remember(_MARKED_TEXTS, text, _normalize(text, True, _MARKED_CHARS))
    return found


def text_normalizer(keep_marks: bool) -> Callable[[str], str]:
    """The normalisation of a rule set: ``normalize_text``, or ``normalize_text_keeping_marks``."""
    return normalize_text_keeping_marks if keep_marks else normalize_text


def has_marks(phrase: str) -> bool:
    """Whether ``phrase`` keeps a combining mark through normalisation (``é`` in ``café`` does)."""
    return any(unicodedata.category(ch).startswith("M") for ch in normalize_text_keeping_marks(phrase))


_ACCOUNT_NOISE: Final = str.maketrans("", "", " -\t")


def account_key(value: str) -> str:
    """An account number as lists compare it: spaces and dashes removed, case folded (not cached)."""
    if value.isascii():
        return value.translate(_ACCOUNT_NOISE).lower()
    return "".join(ch for ch in unicodedata.normalize("NFKC", value) if ch not in " -\t\u00a0").casefold()


def normalize_account(value: str) -> str:
    """``account_key``, remembered for the accounts seen most recently."""
    found = _ACCOUNTS.get(value)
    if found is None:
        found = remember(_ACCOUNTS, value, account_key(value))
    return found
