"""One event's view of the store: the histories it reads and what several features share.

Which account the features describe (the *subject*): for outgoing events (``transfer_out``,
``cash_withdrawal``) and for ``login``, ``device_bound`` and ``credential_change`` it is the payer; for
incoming ones (``transfer_in``, ``loan_disbursement``, ``deposit_redemption``) it is the payee, the bank's
customer being credited.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from .._common.time import DAY, local_hour
from .._errors import PayguardError
from .._event import Admitted, Event, EventType, Party, PartyType
from .._stores.history import (
    FIRST,
    INBOUND_PAYER,
    OUT_AMOUNT,
    OUT_BALANCE,
    OUT_NEW_PAYEE,
    OUT_PAYEE,
    OUT_PERSONAL,
    OUT_STOPPED,
    AccountHistory,
    PayeeStats,
    Rows,
    party,
)
from .._stores.interface import StoreTransaction

__all__ = ["INCOMING", "OUTGOING", "Context", "accounts", "is_personal"]

OUTGOING: Final = frozenset({EventType.TRANSFER_OUT, EventType.CASH_WITHDRAWAL})
INCOMING: Final = frozenset(
    {EventType.TRANSFER_IN, EventType.LOAN_DISBURSEMENT, EventType.DEPOSIT_REDEMPTION}
)
_PERSONAL: Final = frozenset({None, PartyType.PERSONAL, PartyType.UNKNOWN})
# Legal forms dropped from the end of a payee's normalised name, so that "Brennan Timber Supplies Ltd" and
# "Brennan Timber Supplies Limited" are one name (longest first; at most two are dropped: "Pty Ltd")
_LEGAL_FORMS: Final = (
    "股份有限公司",
    "有限责任公司",
    "corporation",
    "有限公司",
    "limited",
    "company",
    "gmbh",
    "corp",
    "公司",
    "ltd",
    "plc",
    "llc",
    "llp",
    "inc",
    "pty",
)
_MIN_NAME: Final = 3  # shorter names (after the legal forms) are too common to tell payees apart


def legal_forms(normalize: Callable[[str], str]) -> tuple[str, ...]:
    """The legal forms as a rule set's normalisation writes them (its confusable skeleton turns "m" into
    "rn"), longest first: computed once per rule set by its feature engine."""
    return tuple(sorted({normalize(form) for form in _LEGAL_FORMS}, key=len, reverse=True))


# Enum members as module constants: compiled code reads these directly, where ``EventType.TRANSFER_OUT``
# would go through the enum class's attribute hook on every event.
_TRANSFER_OUT: Final = EventType.TRANSFER_OUT


def is_personal(kind: PartyType | None) -> bool:
    """Whether a counterparty is a person (or not known to be an institution)."""
    return kind in _PERSONAL


def accounts(event: Event) -> tuple[str, str | None]:
    """The store keys of the histories ``event`` touches: its subject's, and the payee's that an executed
    transfer to another account credits and the payee-side features read (None: no other account)."""
    payer_key = party(event.payer.account)[0]
    payee = event.payee
    payee_key = party(payee.account)[0] if payee is not None else None
    if event.type in INCOMING and payee_key is not None:
        return payee_key, None
    if event.type is _TRANSFER_OUT and payee_key is not None and payee_key != payer_key:
        return payer_key, payee_key
    return payer_key, None


class Context:
    """One event's view of the store, with the intermediate results several features share.

    Each shared piece (the account's history, the known payee, a 24-hour window) is computed on first use
    and kept for the other features of the same event and for ``commit``.

    ``payee_side`` (not None) is the subject-only mode of a partitioned replay: the payee-side features'
    values are given (computed where the payee's history lives), and the payee's history is neither read
    nor credited.
    """

    def __init__(
        self,
        admitted: Admitted,
        txn: StoreTransaction,
        timezone: str,
        keyword_sets: Mapping[str, tuple[str, ...]],
        normalize: Callable[[str], str],
        *,
        forms: tuple[str, ...] = (),
        payee_side: Mapping[str, Any] | None = None,
    ) -> None:
        self.event: Event = admitted.event
        self.payee_side = payee_side
        self.txn = txn
        self.timezone = timezone
        self.keyword_sets = keyword_sets
        self.normalize = normalize  # the rule set's text normalisation (``RuleSet.normalize_text``)
        self.forms = forms  # the legal forms under that normalisation (``legal_forms``)
        # computed once, at validation
        self.time: int = admitted.time
        self.amount: int | None = admitted.amount
        self.balance_before: int | None = admitted.balance
        event = self.event
        self.currency = event.currency
        # the event's fields that features read most, read once (a pydantic model's attribute is slow)
        self.kind = kind = event.type
        self.outgoing = kind in OUTGOING
        self.payee = payee = event.payee
        self.payer = payer = event.payer
        # normalised account numbers (the store's keys) and hashes (the histories' counterparties)
        payer_key, self.payer_hash = party(payer.account)
        payee_key, payee_hash = party(payee.account) if payee else (None, None)
        self.payee_hash = payee_hash
        if kind in INCOMING and payee is not None and payee_key is not None:
            subject, subject_key = payee, payee_key
        else:
            subject, subject_key = payer, payer_key
        self.subject_party: Party = subject
        self.subject_key: str = subject_key
        self._payee_key = payee_key
        self._history: AccountHistory | None = None
        self._payee_history: AccountHistory | None = None
        self._day: list[Rows | None] = [None, None, None, None]  # out, inbound, loans, deposits
        self._known: PayeeStats | None = None
        self._known_done = False
        # the payee's row among the known payees (-1: not among them), once looked up
        self.known_payee_row: int | None = None
        self._new: bool | None = None
        self._new_done = False
        self._hour = -1  # not computed yet
        self._balance_start: int | None = None
        self._balance_start_done = False
        self._executed_out = -1  # executed_out_24h, once read (-1: not yet)
        self._new_persons: set[int] | None = None  # new_personal_payees_24h, once read
        self._strangers: set[int] | None = None  # new_strangers_24h, once read
        self._name: int | None = None  # payee_name_hash, once computed
        self._name_done = False
        # the amount and money features in integer minor units (decisions show them as text); the fact
        # reads them from here
        amount = self.amount
        self.minor: dict[str, int] = {} if amount is None else {"amount": amount}

    @property
    def history(self) -> AccountHistory:
        """The subject account's history, read once per event."""
        if self._history is None:
            self._history = self.txn.account(self.subject_key)
        return self._history

    # -- the last 24 hours, found once per event ---------------------------------------------------------
    def _window(self, slot: int) -> Rows:
        rows = self._day[slot]
        if rows is None:
            history, start, end = self.history, self.time - DAY, self.time
            if slot == 0:
                rows = history.out_rows(start, end)
            elif slot == 1:
                rows = history.inbound_rows(start, end)
            elif slot == 2:
                rows = history.loan_rows(start, end)
            else:
                rows = history.deposit_rows(start, end)
            self._day[slot] = rows
        return rows

    def out_24h(self) -> Rows:
        return self._window(0)

    def inbound_24h(self) -> Rows:
        return self._window(1)

    def loans_24h(self) -> Rows:
        return self._window(2)

    def deposits_24h(self) -> Rows:
        return self._window(3)

    # -- the payee ------------------------------------------------------------------------------------
    def payee_key(self) -> str:
        """The payee's normalised account number (an outgoing payment's payee is required)."""
        assert self._payee_key is not None
        return self._payee_key

    def other_payee(self) -> bool:
        """Whether this outgoing transfer's payee is another account than its subject (whose history the
        payee-side features read and the credit writes)."""
        return self._payee_key is not None and self._payee_key != self.subject_key

    def payee_history(self) -> AccountHistory:
        """The payee account's history, read once per event (features and the credit both use it)."""
        if self._payee_history is None:
            if self.payee_side is not None and self.other_payee():
                raise PayguardError(
                    "a feature read the payee's history in subject-only mode: declare it in "
                    "_features.catalogue.PAYEE_SIDE so that its value is supplied"
                )
            self._payee_history = self.txn.account(self.payee_key())
        return self._payee_history

    def known_payee(self) -> PayeeStats | None:
        """What is known of executed payments to this outgoing payment's payee before now, if anything."""
        if not self._known_done:
            found = None
            if self.outgoing and self.payee_hash is not None:
                self.known_payee_row = row = self.history.payee_row(self.payee_hash)
                found = self.history.payee_at(row)
                if found is not None and found[FIRST] > self.time:
                    found = None
            self._known, self._known_done = found, True
        return self._known

    def is_new_payee(self) -> bool | None:
        if not self._new_done:
            if self.kind is _TRANSFER_OUT and self.payee_hash is not None:
                self._new = self.known_payee() is None
            self._new_done = True
        return self._new

    def payee_name_hash(self) -> int | None:
        """The hash of the payee's name as the customer typed it, normalised as the rule set's texts are and
        without its legal form (None: no name, or one too short to tell payees apart)."""
        if not self._name_done:
            payee, found = self.payee, None
            if payee is not None and payee.name:
                key, forms = self.normalize(payee.name), self.forms
                for _ in range(2):
                    form = next((form for form in forms if form and key.endswith(form)), None)
                    if form is None:
                        break
                    key = key[: len(key) - len(form)]
                if len(key) >= _MIN_NAME:
                    found = party(key)[1]
            self._name, self._name_done = found, True
        return self._name

    # -- shared by several features ----------------------------------------------------------------------
    def local_hour(self) -> int:
        if self._hour < 0:
            self._hour = local_hour(self.time, self.payer.timezone or self.timezone)
        return self._hour

    def out_sum_24h(self) -> int:
        """Outgoing attempts in 24 hours, this one included, in minor units."""
        return self.out_24h().total(OUT_AMOUNT) + (self.amount or 0 if self.outgoing else 0)

    def executed_out_24h(self) -> int:
        """Outgoing payments executed in 24 hours, this one included (a stopped attempt is not money that
        left), in minor units; read by the drain and loan features both, so summed once."""
        if self._executed_out < 0:
            sent = sum(self.out_24h().flagged_all(OUT_AMOUNT, (), unflagged=OUT_STOPPED))
            self._executed_out = sent + (self.amount or 0 if self.outgoing else 0)
        return self._executed_out

    def new_personal_payees_24h(self) -> set[int]:
        """The new payees that are persons (or of unknown type) paid in 24 hours, this one included."""
        if self._new_persons is None:
            payees = set(self.out_24h().flagged_all(OUT_PAYEE, (OUT_NEW_PAYEE, OUT_PERSONAL)))
            payee = self.payee
            if self.is_new_payee() and payee is not None and is_personal(payee.type):
                payees.add(self.payee_hash or 0)
            self._new_persons = payees
        return self._new_persons

    def new_strangers_24h(self) -> set[int]:
        """Those of ``new_personal_payees_24h`` who sent this account no money in 7 days: returning money
        to whoever just sent it (a mother's contribution, a wrong transfer) is not paying a stranger; read by
        the stranger count and share both, so found once."""
        if self._strangers is None:
            strangers = self.new_personal_payees_24h()
            if strangers:
                payers = self.history.inbound_rows(self.time - 7 * DAY, self.time).distinct(INBOUND_PAYER)
                strangers = strangers - payers
            self._strangers = strangers
        return self._strangers

    def balance_start_24h(self) -> int | None:
        """The balance before the first outgoing attempt in 24 hours (this one if it is the first)."""
        if not self._balance_start_done:
            found = self.out_24h().first_known(OUT_BALANCE)
            self._balance_start = self.balance_before if found is None else found
            self._balance_start_done = True
        return self._balance_start
