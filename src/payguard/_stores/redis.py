"""A store shared by any number of payguard processes: histories, decisions and stops in one Redis.

Isolation comes from leases, not from optimistic transactions: an event's transaction takes a lease
(``SET key token PX lease``) on each account it touches and on its event id, all or none in one server-side
function, and its commit writes only while every lease still holds its token (fencing), then releases them.
An optimistic WATCH/MULTI would retry, and a retry re-runs the decision and its audit record (written before
the commit), leaving two records for one event; hot accounts would livelock. A guard names the event's
accounts up front (``transaction_for``): acquiring them and reading their histories is one round trip, the
commit a second. A transaction that reaches an account it did not name (``transaction()``, resolutions)
takes its lease when it first reads it; such a transaction can wait on another that waits on it, and then
fails with ``StoreError`` after ``wait`` seconds rather than hanging.

The Lua side is in ``redis_lua``. Keys, under ``prefix``: ``h:ACCOUNT`` (a history, ``codec``), ``d:EVENT``
(a decision and its event's digest, JSON), ``i:DECISION`` (its event id), ``s:DECISION`` (a stopped
payment), ``L:NAME``/``Ln``/``Lv`` (accounts resolutions listed, their list names, their version),
``lists``/``epoch`` (lists published by ``set_list``), and leases ``k:ACCOUNT``, ``e:EVENT``, ``t:DECISION``.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from .._decision import Decision
from .._errors import StoreError
from .codec import decode, encode
from .history import HORIZON, AccountHistory
from .interface import Store, StoreTransaction
from .redis_lua import FUNCTIONS, LIBRARY, NAMES, SCRIPTS

if TYPE_CHECKING:
    import redis

__all__ = ["RedisStore"]

INSTALL_HINT = "pip install 'payguard[redis]'"

_pack: Callable[[tuple[Any, ...]], bytes] | None
_reader: Callable[..., Any] | None
try:
    from hiredis import Reader as _HiredisReader
    from hiredis import pack_command as _hiredis_pack

    _pack, _reader = _hiredis_pack, _HiredisReader
except ImportError:  # pragma: no cover (the extra installs it)
    _pack = _reader = None

# backing off a busy lease: from half a millisecond, doubling, to 20 ms between tries
_FIRST_BACKOFF = 0.0005
_MAX_BACKOFF = 0.02


def redis_client() -> ModuleType:
    """redis-py, imported on first use so that payguard's core install does not need it."""
    try:
        import redis
        import redis.backoff
        import redis.retry
    except ImportError as exc:
        raise StoreError(f"the Redis store needs redis-py: {INSTALL_HINT}") from exc
    return redis


def _seconds(value: float | timedelta, name: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise StoreError(f"RedisStore: {name} must be more than 0 seconds, not {value!r}")
    return seconds


def _shown(key: str) -> str:
    """An account key as the audit trail masks it (a failure's message lands there as a hold's reason)."""
    return f"…{key[-4:]}" if len(key) > 8 else "#"


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc}"))


class RedisStore(Store):
    """A store in one Redis (≥ 6.2) or Valkey server, shared by every process and thread that opens it.

    ``lease`` (seconds) is how long an event may hold its accounts: a replica stalled or killed past it loses
    them, its commit is refused (an audited hold) and others go on. ``wait`` is how long an event waits for
    accounts another holds before it fails with ``StoreError`` (the guard's audited hold); keep it above
    ``lease`` so that a killed replica's leases expire within it. ``decision_ttl`` is how long the decision of
    an event id is kept for idempotency; ``history_ttl`` how long an account with no event is kept (default:
    ``history.HORIZON``, past every window the features read). Stopped payments and listed accounts have no
    TTL. ``timeout`` bounds one round trip. ``functions``: use Redis Functions (True), EVALSHA scripts
    (False), or Functions where the server has them (None). ``journal``: keep the event ids of the last
    ``journal`` commits, in commit order, in the stream ``PREFIX journal`` (0: none): the serial order in
    which the replicas' decisions were made, to replay or audit them.

    Opening the store does not need the server up: until it answers, every event is an audited hold.
    """

    # events per transaction in ``Guard.record``: two round trips load 5,000 (their accounts leased ~0.3 s)
    record_batch = 5000

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "pg:",
        lease: float | timedelta = 2.0,
        wait: float | timedelta = 5.0,
        decision_ttl: float | timedelta = timedelta(days=7),
        history_ttl: float | timedelta = HORIZON,
        timeout: float = 2.0,
        functions: bool | None = None,
        journal: int = 0,
    ) -> None:
        self.url = url
        self.shown_url = _without_password(url)
        self.prefix = prefix
        self.lease = _seconds(lease, "lease")
        self.wait = _seconds(wait, "wait")
        self._lease_ms = str(max(1, round(self.lease * 1000)))
        self._decision_ms = str(round(_seconds(decision_ttl, "decision_ttl") * 1000))
        self._history_ms = str(round(_seconds(history_ttl, "history_ttl") * 1000))
        self._redis = module = redis_client()
        try:
            self.client: redis.Redis = module.Redis.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                # a retried commit could apply twice; a failed one is an audited hold instead
                retry=module.retry.Retry(module.backoff.NoBackoff(), 0),
                # replies only, no pushed frames (_Wire reads them itself); a URL's ?protocol=3 wins
                protocol=2,
            )
        except ValueError as exc:
            raise StoreError(f"Redis store URL {self.shown_url!r}: {exc}") from exc
        self._local = threading.local()  # each thread's own connection for the functions (``call``)
        self._tokens = itertools.count(1)
        self._token_prefix = os.urandom(8).hex() + ":"
        self._stats_lock = threading.Lock()
        self.lease_waits = 0  # tries that found an account leased by another event
        self.round_trips = 0
        self.journal = journal
        self._scripts: dict[str, Any] = {}
        self.functions = False
        self._wanted = functions
        self._loaded = False
        with suppress(StoreError):  # unreachable now: loaded by the first call that reaches it
            self._load(functions)

    # -- the server-side functions --------------------------------------------------------------------
    def _load(self, functions: bool | None) -> None:
        if functions is not False:
            try:
                self._execute("FUNCTION", "LOAD", "REPLACE", FUNCTIONS)
            except self._redis.ResponseError as exc:  # Redis 6, or FUNCTION forbidden (ACL, managed service)
                if functions:
                    raise StoreError(f"Redis store {self.shown_url}: cannot load Functions: {exc}") from exc
            except self._redis.RedisError as exc:
                raise self._error(exc) from exc
            else:
                self.functions = self._loaded = True
                return
        self._scripts = {name: self.client.register_script(SCRIPTS[name]) for name in NAMES}
        self._loaded = True

    def call(self, name: str, keys: Sequence[str], args: Sequence[str | bytes]) -> Any:
        """Run the server-side function ``name``; one round trip. ``StoreError`` when Redis fails."""
        with self._stats_lock:
            self.round_trips += 1
        if not self._loaded:
            self._load(self._wanted)
        try:
            if not self.functions:
                script = self._scripts[name]
                try:
                    return self._send("EVALSHA", script.sha, len(keys), *keys, *args)
                except self._redis.exceptions.NoScriptError:
                    return script(keys=keys, args=args)  # loads it, a server restarted without it
            try:
                return self._send("FCALL", f"{LIBRARY}_{name}", len(keys), *keys, *args)
            except self._redis.ResponseError as exc:
                if "Function not found" not in str(exc):
                    raise
                self._load(True)  # a server restarted without persistence forgot them
                return self._send("FCALL", f"{LIBRARY}_{name}", len(keys), *keys, *args)
        except self._redis.RedisError as exc:
            raise self._error(exc) from exc

    def _send(self, *args: Any) -> Any:
        """One command on this thread's own connection, kept between calls, its reply read by hiredis from
        the connection's socket: redis-py's per-command layers (pool checkout, retry wrapper, health check,
        its parser's buffer) cost as much as the rest of a decision's work with Redis on loopback. The
        connection itself (address, TLS, AUTH, SELECT) is redis-py's."""
        local = self._local
        wire: _Wire | None = getattr(local, "wire", None)
        if wire is None or wire.pid != os.getpid():
            wire = local.wire = _Wire(self.client.connection_pool, self._redis)
        return wire.send(args)

    def command(self, *args: Any) -> Any:
        """One plain Redis command; ``StoreError`` when Redis fails."""
        with self._stats_lock:
            self.round_trips += 1
        try:
            return self._execute(*args)
        except self._redis.RedisError as exc:
            raise self._error(exc) from exc

    def _execute(self, *args: Any) -> Any:
        return self.client.execute_command(*args)  # type: ignore[no-untyped-call]

    def _error(self, exc: Exception) -> StoreError:
        if isinstance(exc, (self._redis.ConnectionError, self._redis.TimeoutError)):
            return StoreError(f"Redis store {self.shown_url} is unreachable ({type(exc).__name__}: {exc})")
        return StoreError(f"Redis store {self.shown_url}: {type(exc).__name__}: {exc}")

    def waited(self) -> None:
        with self._stats_lock:
            self.lease_waits += 1

    def token(self) -> str:
        # the process id in it: a forked child counts from where its parent was, and must not take leases
        # under its parent's tokens (each would think it held what the other leased)
        return f"{self._token_prefix}{os.getpid()}:{next(self._tokens)}"

    # -- transactions ---------------------------------------------------------------------------------
    def transaction(self) -> AbstractContextManager[StoreTransaction]:
        return self.transaction_for(())

    @contextmanager
    def transaction_for(
        self, accounts: Sequence[str], *, event_id: str | None = None
    ) -> Iterator[StoreTransaction]:
        """A transaction that leases ``accounts`` (and ``event_id``) and reads their histories, the decision
        of ``event_id`` and the lists' versions in one round trip; it reaches other keys as well, leasing
        each when first read."""
        txn = _RedisTransaction(self, self.token())
        txn.begin(accounts, event_id)
        try:
            yield txn
        except BaseException:
            txn.rollback()
            raise
        txn.commit()

    # -- lists set at run time (``Guard.set_list``) -----------------------------------------------------
    def publish_list(self, name: str, entries: Iterable[str]) -> int:
        """Make ``entries`` the named list for every transaction that starts from now on; its version."""
        data = orjson.dumps(sorted(entries))
        return int(self.call("publish", [self.prefix + "epoch", self.prefix + "lists"], [name, data]))

    def publish_ruleset(self, digest: str, path: str) -> None:
        """Make the rule set of ``digest`` (loaded from ``path``) the one every process should run."""
        self.command("SET", self.prefix + "ruleset", f"{digest}\n{path}")

    def published_lists(self) -> dict[str, tuple[int, frozenset[str]]]:
        """The lists ``publish_list`` stored, by name: (version, entries)."""
        found: dict[str, tuple[int, frozenset[str]]] = {}
        for name, value in self.command("HGETALL", self.prefix + "lists").items():
            version, _, data = value.partition(b":")
            found[name.decode()] = (int(version), frozenset(orjson.loads(data)))
        return found

    def close(self) -> None:
        self.client.close()


class _Wire:
    """A connection checked out of the pool for good (the pool still closes it in ``close``), and the reader
    of its replies.

    The store asks for RESP2 (``RedisStore``): its replies are only replies. Over RESP3 (``?protocol=3`` in
    the URL) the server may also push frames (client-side caching, maintenance notifications) that only
    redis-py knows what to do with, so such a connection is read by redis-py.
    """

    def __init__(self, pool: Any, module: ModuleType) -> None:
        try:
            self.connection = pool.get_connection()
        except TypeError:  # redis-py before 5.3 names the command
            self.connection = pool.get_connection("FCALL")
        # compared on every call: a child forked by any means (uWSGI, a C extension) opens its own
        self.pid = os.getpid()
        self._redis = module
        self._reader: Any = None
        resp2 = str(getattr(self.connection, "protocol", 2) or 2) == "2"
        self._raw = resp2 and _pack is not None and _reader is not None

    def send(self, args: tuple[Any, ...]) -> Any:
        connection = self.connection
        if not self._raw:
            try:
                connection.send_command(*args)
                return connection.read_response()
            except self._redis.ResponseError:
                raise  # an error reply: the connection is in step
            except BaseException:
                connection.disconnect()  # a reply may be half read: the next call reconnects
                raise
        assert _pack is not None
        assert _reader is not None
        try:
            sock = connection._sock  # redis-py's socket, connected and set up (TLS, AUTH, SELECT)
            if sock is None:  # disconnected after a failure
                connection.connect()
                sock = connection._sock
            reader = self._reader
            if reader is None:
                reader = self._reader = _reader(
                    replyError=self._redis.ResponseError, protocolError=self._redis.InvalidResponse
                )
            sock.sendall(_pack(args))
            reply = reader.gets()
            while reply is False:
                reader.feed(self._received(sock))
                reply = reader.gets()
        except BaseException as exc:
            connection.disconnect()  # a reply may be half read: the next call reconnects
            self._reader = None
            if isinstance(exc, TimeoutError):
                raise self._redis.TimeoutError("Timeout reading from the server") from exc
            if isinstance(exc, OSError):
                raise self._redis.ConnectionError(f"{type(exc).__name__}: {exc}") from exc
            raise
        if isinstance(reply, self._redis.ResponseError):  # an error reply: the connection is in step
            # redis-py's classes for it (NoScriptError, BusyLoadingError, AuthenticationError...)
            raise connection._parser.parse_error(str(reply))
        return reply

    def _received(self, sock: Any) -> bytes:
        data: bytes = sock.recv(65536)
        if not data:
            raise self._redis.ConnectionError("Connection closed by server.")
        return data


class _RedisTransaction(StoreTransaction):
    """Reads through the leases it holds; buffers the writes, which ``commit`` applies in one function."""

    def __init__(self, store: RedisStore, token: str) -> None:
        self._store = store
        self._token = token
        self._p = store.prefix
        self._leases: list[str] = []
        self._leased: set[str] = set()
        self._accounts: dict[str, AccountHistory] = {}
        self._saved: dict[str, AccountHistory] = {}
        self._decisions: dict[str, tuple[Decision, bytes | None] | None] = {}
        self._put: dict[str, tuple[Decision, bytes]] = {}
        self._held: dict[str, dict[str, Any] | None] = {}
        self._put_held: dict[str, dict[str, Any] | None] = {}
        self._listed_version: int | None = None
        self._epoch: int | None = None
        self._ruleset: bytes | None = None
        self._added: list[tuple[str, str]] = []

    # -- leases ---------------------------------------------------------------------------------------
    def _acquire(self, leases: list[str], reads: list[str], decision_first: bool) -> list[Any]:
        """Take ``leases`` (all or none, waiting while another holds one) and read ``reads``."""
        store = self._store
        fresh = [key for key in leases if key not in self._leased]
        args = [self._token, store._lease_ms, str(len(fresh)), "1" if decision_first else "0"]
        delay, deadline = _FIRST_BACKOFF, 0.0
        while True:
            reply = store.call("acquire", [*fresh, *reads], args)
            if reply[0] != 0:
                break
            store.waited()
            now = time.monotonic()
            deadline = deadline or now + store.wait
            if now >= deadline:
                busy = fresh[int(reply[2]) - 1].removeprefix(self._p)
                raise StoreError(
                    f"Redis store {store.shown_url}: {self._describe(busy)} stayed leased by another "
                    f"event for {store.wait:g} s (a stalled or stuck replica?)"
                )
            time.sleep(min(delay, deadline - now))
            delay = min(delay * 2, _MAX_BACKOFF)
        if reply[0] == 1:
            self._leases.extend(fresh)
            self._leased.update(fresh)
        return list(reply)

    @staticmethod
    def _describe(key: str) -> str:
        kind, _, name = key.partition(":")
        return {"k": "account", "e": "event id", "t": "stopped payment"}.get(kind, kind) + (
            f" {_shown(name)}" if kind == "k" else f" {name!r}"
        )

    def begin(self, accounts: Sequence[str], event_id: str | None) -> None:
        p = self._p
        keys = list(dict.fromkeys(accounts))
        if not keys and event_id is None:
            return
        leases = [f"{p}k:{key}" for key in keys]
        reads = [f"{p}h:{key}" for key in keys] + [f"{p}Lv", f"{p}epoch", f"{p}ruleset"]
        if event_id is not None:
            leases.append(f"{p}e:{event_id}")
            reads.insert(0, f"{p}d:{event_id}")
        reply = self._acquire(leases, reads, event_id is not None)
        if reply[0] == 2:  # decided before: that decision, and no lease taken
            assert event_id is not None
            self._decisions[event_id] = self._decision_of(reply[1])
            return
        values = reply[1:]
        if event_id is not None:
            found = values.pop(0)
            self._decisions[event_id] = None if found is None else self._decision_of(found)
        for key, data in zip(keys, values, strict=False):
            self._accounts[key] = self._history(key, data)
        self._listed_version = int(values[-3] or 0)
        self._epoch = int(values[-2] or 0)
        self._ruleset = values[-1] or b""

    def _lease(self, lease: str, read: str | None = None) -> Any:
        """Lease one more key (if this transaction does not hold it yet) and read ``read``."""
        if lease in self._leased and read is None:
            return None
        reply = self._acquire([lease], [] if read is None else [read], decision_first=False)
        return reply[1] if read is not None else None

    def _history(self, key: str, data: bytes | None) -> AccountHistory:
        if data is None:
            return AccountHistory()
        try:
            return decode(data)
        except StoreError as exc:
            raise StoreError(
                f"Redis store {self._store.shown_url}: the history of account {_shown(key)} cannot be read: "
                f"{exc}"
            ) from exc

    @staticmethod
    def _decision_of(data: bytes) -> tuple[Decision, bytes | None]:
        stored = orjson.loads(data)
        digest = stored.get("digest")
        return Decision.from_dict(stored["decision"]), None if digest is None else bytes.fromhex(digest)

    # -- the contract ---------------------------------------------------------------------------------
    def account(self, key: str) -> AccountHistory:
        found = self._accounts.get(key)
        if found is None:
            found = self._history(key, self._lease(f"{self._p}k:{key}", f"{self._p}h:{key}"))
            self._accounts[key] = found
        return found

    def save(self, key: str, history: AccountHistory) -> None:
        self._lease(f"{self._p}k:{key}")
        self._accounts[key] = self._saved[key] = history

    def _stored_decision(self, event_id: str) -> tuple[Decision, bytes | None] | None:
        if event_id in self._put:
            return self._put[event_id]
        if event_id not in self._decisions:
            found = self._lease(f"{self._p}e:{event_id}", f"{self._p}d:{event_id}")
            self._decisions[event_id] = None if found is None else self._decision_of(found)
        return self._decisions[event_id]

    def decision(self, event_id: str) -> Decision | None:
        found = self._stored_decision(event_id)
        return None if found is None else found[0]

    def event_digest(self, event_id: str) -> bytes | None:
        found = self._stored_decision(event_id)
        return None if found is None else found[1]

    def put_decision(self, event_id: str, decision: Decision, digest: bytes) -> None:
        # a blind write needs no lease: the commit applies it atomically (the guard read it, under one)
        self._put[event_id] = (decision, digest)

    def decision_by_id(self, decision_id: str) -> Decision | None:
        for decision, _ in self._put.values():
            if decision.decision_id == decision_id:
                return decision
        event_id = self._store.command("GET", f"{self._p}i:{decision_id}")
        if event_id is None:
            return None
        found = self._store.command("GET", f"{self._p}d:{event_id.decode()}")
        return None if found is None else self._decision_of(found)[0]

    def held(self, decision_id: str) -> dict[str, Any] | None:
        if decision_id in self._put_held:
            return self._put_held[decision_id]
        if decision_id not in self._held:
            found = self._lease(f"{self._p}t:{decision_id}", f"{self._p}s:{decision_id}")
            self._held[decision_id] = None if found is None else orjson.loads(found)
        return self._held[decision_id]

    def put_held(self, decision_id: str, record: dict[str, Any] | None) -> None:
        # no lease either: a new stop's id is known to no one else yet, and a resolution read it first
        self._put_held[decision_id] = record

    def listed_version(self) -> int:
        if self._listed_version is None:
            self._listed_version = int(self._store.command("GET", f"{self._p}Lv") or 0)
        return self._listed_version + len(self._added)

    def listed(self) -> dict[str, frozenset[str]]:
        found: dict[str, set[str]] = {}
        for raw in self._store.command("SMEMBERS", f"{self._p}Ln"):
            name = raw.decode()
            found[name] = {entry.decode() for entry in self._store.command("SMEMBERS", f"{self._p}L:{name}")}
        for name, entry in self._added:
            found.setdefault(name, set()).add(entry)
        return {name: frozenset(entries) for name, entries in found.items()}

    def add_listed(self, name: str, entry: str) -> None:
        self._added.append((name, entry))

    def lists_epoch(self) -> int:
        """The version of the lists ``set_list`` published, as this transaction began."""
        if self._epoch is None:
            self._epoch = int(self._store.command("GET", f"{self._p}epoch") or 0)
        return self._epoch

    def ruleset_in_force(self) -> tuple[str, str] | None:
        """The digest and path of the rule set the last ``reload`` published, as this transaction began."""
        if self._ruleset is None:
            self._ruleset = self._store.command("GET", f"{self._p}ruleset") or b""
        if not self._ruleset:
            return None
        digest, _, path = self._ruleset.decode().partition("\n")
        return digest, path

    # -- the end --------------------------------------------------------------------------------------
    def commit(self) -> None:
        store, p = self._store, self._p
        keys: list[str] = list(self._leases)
        ops: list[str | bytes] = []
        for key, history in self._saved.items():
            keys.append(f"{p}h:{key}")
            ops += ["S", store._history_ms, encode(history)]
        for event_id, (decision, digest) in self._put.items():
            data = orjson.dumps({"decision": decision.to_dict(), "digest": digest.hex()})
            keys += [f"{p}d:{event_id}", f"{p}i:{decision.decision_id}"]
            ops += ["S", store._decision_ms, data, "S", store._decision_ms, event_id]
            if store.journal:
                keys.append(f"{p}journal")
                ops += ["X", str(store.journal), event_id]
        for decision_id, record in self._put_held.items():
            keys.append(f"{p}s:{decision_id}")
            ops += ["D"] if record is None else ["S", "0", orjson.dumps(record)]
        for name, entry in self._added:
            keys += [f"{p}L:{name}", f"{p}Ln", f"{p}Lv"]
            ops += ["A", entry, "A", name, "I"]
        if len(keys) == len(self._leases):  # nothing written: release what was leased, if anything
            if self._leases:
                store.call("release", self._leases, [self._token])
            return
        reply = store.call("commit", keys, [self._token, str(len(self._leases)), *ops])
        if reply[0] != 1:
            self.rollback()  # the leases it still holds: others need not wait for them to expire
            lost = self._leases[int(reply[1]) - 1].removeprefix(p)
            raise StoreError(
                f"Redis store {store.shown_url}: the lease on {self._describe(lost)} expired before the "
                f"commit (held past lease={store.lease:g} s): nothing was written"
            )

    def rollback(self) -> None:
        if self._leases:
            # a failed release is harmless: the leases expire on their own
            with suppress(StoreError):
                self._store.call("release", self._leases, [self._token])
