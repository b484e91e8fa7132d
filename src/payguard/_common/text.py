"""Text normalisation for keyword matching, the same for Chinese and English.

Unicode NFKC (which also turns full-width letters and digits into half-width ones), case folding, then
every space, punctuation mark, symbol and control character removed, so that ``安 全-账 户`` and
``SAFE  Account!`` match the phrases ``安全账户`` and ``safe account``. Traditional-to-simplified conversion
and pinyin initials are not handled; list both forms in the keyword set where it matters.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from .cache import remember

__all__ = ["account_key", "normalize_account", "normalize_text"]

_DROP_CATEGORIES: Final = ("P", "Z", "S", "C")


# Results remembered for the texts and accounts seen most recently (``cache.remember``)
_TEXTS: Final[dict[str, str]] = {}
_ACCOUNTS: Final[dict[str, str]] = {}


def normalize_text(text: str) -> str:
    """``text`` reduced to the characters that carry meaning for keyword matching."""
    found = _TEXTS.get(text)
    if found is None:
        folded = unicodedata.normalize("NFKC", text).casefold()
        kept = "".join(ch for ch in folded if not unicodedata.category(ch).startswith(_DROP_CATEGORIES))
        found = remember(_TEXTS, text, kept)
    return found


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
