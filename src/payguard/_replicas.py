"""What a guard does on a store that many processes share: it names an event's accounts up front
(``RedisStore``) or computes it unlocked (``SQLiteStore``), records history in batches, reads the lists
another process set (``Guard.set_list``) and loads the rule set another process's ``Guard.reload``
published."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from ._decision import Action
from ._errors import InvalidEventError, PayguardError
from ._event import Admitted, Event
from ._rules.loader import load_rule_set
from ._rules.model import RuleSet
from ._stores.history import party
from ._stores.interface import StoreTransaction

__all__ = [
    "NOTHING_READ",
    "Published",
    "accounts_of",
    "in_force",
    "load_published",
    "record_batched",
    "record_each",
    "transactions_for",
    "with_published",
]

# what a guard last read of the published lists: (epoch, the lists it merged them into, merged, versions)
Published = tuple[int, Any, Mapping[str, frozenset[str]], Mapping[str, int]]
NOTHING_READ: Published = (0, None, {}, {})


def with_published(
    store: Any,
    epoch: int,
    lists: Mapping[str, frozenset[str]],
    versions: Mapping[str, int],
    last: Published,
) -> Published:
    """``lists`` (and their ``versions``) with the lists published in ``store`` as of ``epoch``; read from
    the store again only when the epoch moved (``last``: what the previous call returned)."""
    seen, base, _merged, _versions = last
    if seen == epoch and base is lists:
        return last
    return (epoch, lists, *in_force(store, lists, versions))


def in_force(
    store: Any, lists: Mapping[str, frozenset[str]], versions: Mapping[str, int]
) -> tuple[dict[str, frozenset[str]], dict[str, int]]:
    """``lists`` (and their ``versions``) with the lists published in ``store`` now (one read of it)."""
    merged = dict(lists)
    merged_versions = dict(versions)
    for name, (version, entries) in store.published_lists().items():
        if name in lists:  # a list the rule set in force does not declare is not read
            merged[name] = entries
            merged_versions[name] = version
    return merged, merged_versions


def load_published(published: tuple[str, str], running: str) -> RuleSet:
    """The rule set another process published (digest, path), loaded from that path; ``PayguardError`` if
    the files there are not that rule set (another version on this host). Files there that changed since to
    the rule set this process runs (``running``: its digest; it was started on them) are the newer truth:
    they are loaded, and the publication they outdate is not followed."""
    digest, path = published
    ruleset = load_rule_set(path)
    if ruleset.digest not in (digest, running):
        raise PayguardError(
            f"the rule files at {path} on this host have digest {ruleset.digest[:12]}, not {digest[:12]}"
        )
    return ruleset


def accounts_of(event: Event) -> tuple[str, ...]:
    """The store keys of the accounts an event reads and writes: its payer's and its payee's."""
    payer = party(event.payer.account)[0]
    return (payer,) if event.payee is None else (payer, party(event.payee.account)[0])


def transactions_for(
    store: Any, event: Event
) -> Iterator[tuple[bool, AbstractContextManager[StoreTransaction]]]:
    """The transactions to decide ``event`` in, in turn, each with whether it is optimistic: the caller
    goes on to the next only when an optimistic one found what it read changed (``StaleReadError``)."""
    optimistic = getattr(store, "optimistic", None)
    if optimistic is not None:
        yield True, optimistic()
    open_accounts = getattr(store, "transaction_for", None)
    if open_accounts is None:
        yield False, store.transaction()
    else:
        yield False, open_accounts(accounts_of(event), event_id=event.id)


def record_each(store: Any, events: Iterable[Any], pipeline: Any, side: str) -> int:
    """``Guard.record`` one event a transaction: ``side`` ``"payee"`` credits only the payee,
    ``"subject"`` writes only the subject account's history, ``"both"`` both."""
    count = 0
    features = pipeline.features
    only_subject: dict[str, Any] | None = {} if side == "subject" else None
    for item in events:
        admitted = pipeline.validate(item)
        with store.transaction() as txn:
            if side == "payee":
                features.credit(admitted, txn)
            else:
                features.commit(features.context(admitted, txn, only_subject), Action.ALLOW, None)
        count += 1
    return count


def record_batched(
    open_accounts: Callable[..., Any], events: Iterable[Any], pipeline: Any, batch: int
) -> int:
    """``Guard.record`` on a network store: ``batch`` events a transaction, their accounts leased and read in
    one round trip (``open_accounts``, the store's ``transaction_for``) and written in a second (one
    transaction per event would cost two each). ``pipeline`` validates and commits them."""
    count = 0
    pending: list[Admitted] = []
    for item in events:
        try:
            pending.append(pipeline.validate(item))
        except InvalidEventError:
            _record_all(open_accounts, pending, pipeline)  # the events before it are kept
            raise
        if len(pending) == batch:
            count += _record_all(open_accounts, pending, pipeline)
            pending = []
    return count + _record_all(open_accounts, pending, pipeline)


def _record_all(open_accounts: Callable[..., Any], pending: list[Admitted], pipeline: Any) -> int:
    if pending:
        keys = [key for admitted in pending for key in accounts_of(admitted.event)]
        with open_accounts(keys) as txn:
            features = pipeline.features
            for admitted in pending:
                features.commit(features.context(admitted, txn), Action.ALLOW, None)
    return len(pending)
