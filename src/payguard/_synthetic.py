"""Synthetic traffic: ordinary banking for thousands of customers, and scam stories woven into it.

Used to measure false positives (``payguard generate benign``) and to build the demo file
(``payguard generate demo``). Everything is drawn from one seeded ``random.Random``, so the same seed
gives the same file. Customers have regular payees (landlord, utilities, shops, family), a salary,
bills paid in one sitting, occasional new friends, large purchases from businesses, savings moved to their
own account, and some are shops paying their suppliers and staff. ``benign_traffic`` adds the life events
that look alarming one payment at a time (``_life_events``): moving home, a wedding, tuition, a hospital
bill after breaking a deposit, a used car from a private seller, remittances, night shifts, a new phone, an
elderly customer's carer paid while on the phone with her daughter, settling a group trip.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["benign_traffic", "demo_day", "write_jsonl"]

# Times are drawn as wall-clock times in China Standard Time and written with its offset.
TZ = "+08:00"


@dataclass
class _Customer:
    account: str
    age: int
    balance: Decimal
    shop: bool
    employer: str
    landlord: str | None
    rent: Decimal
    utilities: list[str]
    family: list[str]
    merchants: list[str]
    suppliers: list[str]
    savings: str
    friends_made: int = 0
    # life: the customer works nights, pays a carer, sends money home, employs staff (shops)
    night_shift: bool = False
    carer: str | None = None
    remits_to: str | None = None
    staff: list[str] | None = None


def _money(value: float) -> Decimal:
    return Decimal(str(round(max(value, 1.0), 2))).quantize(Decimal("0.01"))


def _customer(rng: random.Random, index: int) -> _Customer:
    shop = rng.random() < 0.05
    account = f"6222{index:012d}"
    renter = not shop and rng.random() < 0.5
    return _Customer(
        account=account,
        age=rng.choice([rng.randint(18, 64)] * 6 + [rng.randint(65, 88)]),
        balance=_money(rng.lognormvariate(10.5, 0.9) * (5 if shop else 1)),
        shop=shop,
        employer=f"EMPLOYER-{rng.randint(1, 60):03d}",
        landlord=f"LANDLORD-{index:06d}" if renter else None,
        rent=_money(rng.uniform(1800, 8000)),
        utilities=[f"UTILITY-{u}" for u in rng.sample(range(1, 12), rng.randint(3, 6))],
        family=[f"6217{index:06d}{n:02d}" for n in range(rng.randint(1, 6))],
        merchants=[f"MERCHANT-{m:04d}" for m in rng.sample(range(1, 400), rng.randint(5, 15))],
        suppliers=[f"SUPPLIER-{s:04d}" for s in rng.sample(range(1, 200), rng.randint(3, 8))] if shop else [],
        savings=f"{account}-SAV",
    )


def _give_a_life(rng: random.Random, customer: _Customer, index: int) -> None:
    """The standing arrangements of ``_life_events``, at rates of ordinary life (drawn once a customer)."""
    customer.night_shift = rng.random() < 0.05  # nurses, drivers, factory shifts
    if customer.age >= 75 and rng.random() < 0.3:
        customer.carer = f"CARER-{index:06d}"
    if rng.random() < 0.04:
        customer.remits_to = f"FAMILY-ABROAD-{index:06d}"
    if customer.shop:
        customer.staff = [f"STAFF-{index:06d}-{n}" for n in range(rng.randint(3, 12))]


def _life_events(
    rng: random.Random, writer: _Writer, customer: _Customer, day_of: list[datetime]
) -> Iterator[dict[str, Any]]:
    """One month of the customer's standing arrangements and, now and then, a life event."""
    tag = customer.account[-6:]
    if customer.staff:  # payroll, with a new hire now and then
        if rng.random() < 0.1:
            customer.staff.append(f"STAFF-{tag}-{len(customer.staff)}")
        payroll = _at(rng, day_of[min(len(day_of) - 1, 9)], 9, 11)
        for n, employee in enumerate(customer.staff):
            amount = _money(rng.uniform(4000, 9000))
            customer.balance = max(customer.balance, amount * 3)
            yield writer.event(
                customer, payroll + timedelta(minutes=n), amount, employee, "personal", memo="工资"
            )
    if customer.carer is not None:  # weekly, on the phone with her daughter
        for week in range(0, len(day_of), 7):
            yield writer.event(
                customer,
                _at(rng, day_of[week], 9, 12),
                _money(rng.uniform(800, 1500)),
                customer.carer,
                "personal",
                memo="护工费",
                session={"on_call": True, "caller_in_contacts": True},
            )
    if customer.remits_to is not None:
        amount = _money(rng.uniform(1000, 5000) * (3 if rng.random() < 0.1 else 1))
        customer.balance = max(customer.balance, amount * 2)
        yield writer.event(customer, _at(rng, rng.choice(day_of)), amount, customer.remits_to, "personal")
    if customer.night_shift:
        for _ in range(rng.randint(3, 10)):
            yield writer.event(
                customer,
                _at(rng, rng.choice(day_of), 0, 5),
                _money(rng.lognormvariate(4.5, 0.9)),
                rng.choice(customer.merchants),
                "merchant",
            )
    event = rng.random()
    day = rng.choice(day_of)
    if event < 0.01:  # moving home: a new landlord's deposit and a dozen services in one evening
        evening = _at(rng, day, 18, 21)
        landlord = f"NEW-LANDLORD-{tag}-{rng.randint(1, 99)}"
        deposit = customer.rent * 2
        customer.balance = max(customer.balance, deposit * 3)
        yield writer.event(customer, evening, deposit, landlord, "personal", memo="押金+房租")
        services = ["POWER", "WATER", "GAS", "BROADBAND", "PROPERTY", "MOVER", "CLEANER", "LOCKSMITH"]
        for n, service in enumerate(rng.sample(services, rng.randint(4, len(services)))):
            yield writer.event(
                customer,
                evening + timedelta(minutes=10 + 6 * n),
                _money(rng.uniform(100, 2500)),
                f"{service}-{rng.randint(1, 300):03d}",
                "business",
            )
    elif event < 0.013:  # a wedding: gifts in, the venue and photographer paid, family helped
        for n in range(rng.randint(10, 30)):
            yield writer.income(customer, _at(rng, day), _money(rng.uniform(200, 2000)), f"GUEST-{tag}-{n}")
        for payee, low, high in (("VENUE", 20000, 80000), ("PHOTO", 3000, 12000)):
            amount = _money(rng.uniform(low, high))
            customer.balance = max(customer.balance, amount * 2)
            yield writer.event(customer, _at(rng, day), amount, f"{payee}-{rng.randint(1, 99)}", "business")
    elif event < 0.023:  # tuition and a dormitory for a child
        amount = _money(rng.uniform(5000, 30000))
        customer.balance = max(customer.balance, amount * 2)
        yield writer.event(
            customer, _at(rng, day), amount, f"UNIVERSITY-{rng.randint(1, 80):02d}", "business", memo="学费"
        )
    elif event < 0.028:  # a hospital bill paid from a deposit broken early the same day
        amount = _money(rng.uniform(20000, 100000))
        broken = writer.income(customer, _at(rng, day, 8, 10), amount, f"{customer.account}-TD")
        yield {**broken, "type": "deposit_redemption"}
        yield writer.event(
            customer,
            _at(rng, day, 10, 16),
            amount,
            f"HOSPITAL-{rng.randint(1, 50):02d}",
            "business",
            memo="住院费",
        )
    elif event < 0.030:  # a used car from a private seller, the name confirmed
        amount = _money(rng.uniform(30000, 120000))
        customer.balance = max(customer.balance, amount * 2)
        yield writer.event(
            customer, _at(rng, day), amount, f"SELLER-{tag}", "personal", memo="二手车", cop_result="match"
        )
    elif event < 0.060:  # a new phone: bound in the evening, then the usual payments from it
        bound = _at(rng, day, 18, 21)
        yield writer.device(customer, bound)
        for n in range(rng.randint(1, 4)):
            yield writer.event(
                customer,
                bound + timedelta(minutes=20 * (n + 1)),
                _money(rng.lognormvariate(4.5, 0.9)),
                rng.choice(customer.merchants),
                "merchant",
            )
    elif event < 0.090:  # settling a group trip: the friends who paid the hotel and the car are paid back
        evening = _at(rng, day, 19, 23)
        for n in range(rng.randint(2, 4)):
            customer.friends_made += 1
            yield writer.event(
                customer,
                evening + timedelta(minutes=5 * n),
                _money(rng.uniform(300, 2500)),
                f"FRIEND-{tag}-{customer.friends_made}",
                "personal",
                memo="AA 旅行",
            )


class _Writer:
    """Builds canonical events for one customer and keeps the balance roughly right."""

    def __init__(self, rng: random.Random, prefix: str) -> None:
        self.rng = rng
        self.prefix = prefix
        self.count = 0

    def event(
        self, customer: _Customer, when: datetime, amount: Decimal, payee: str, payee_type: str, **extra: Any
    ) -> dict[str, Any]:
        self.count += 1
        own = extra.pop("own_account", False)
        event: dict[str, Any] = {
            "id": f"{self.prefix}-{self.count:07d}",
            "type": "transfer_out",
            "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S") + TZ,
            "amount": str(amount),
            "currency": "CNY",
            "channel": extra.pop("channel", "mobile_app"),
            "payer": {
                "account": customer.account,
                "age": customer.age,
                "balance_before": str(customer.balance),
                "type": "business" if customer.shop else "personal",
            },
            "payee": {"account": payee, "type": payee_type, **({"own_account": True} if own else {})},
            "label": {"is_fraud": False},
        }
        if self.rng.random() < 0.02:
            event["session"] = {"on_call": True, "caller_in_contacts": self.rng.random() < 0.9}
        event.update(extra)
        customer.balance = max(customer.balance - amount, Decimal("0.00"))
        return event

    def device(self, customer: _Customer, when: datetime) -> dict[str, Any]:
        """A new phone bound to the customer's app."""
        self.count += 1
        return {
            "id": f"{self.prefix}-{self.count:07d}",
            "type": "device_bound",
            "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S") + TZ,
            "channel": "mobile_app",
            "payer": {"account": customer.account, "age": customer.age},
            "label": {"is_fraud": False},
        }

    def income(self, customer: _Customer, when: datetime, amount: Decimal, payer: str) -> dict[str, Any]:
        self.count += 1
        customer.balance += amount
        return {
            "id": f"{self.prefix}-{self.count:07d}",
            "type": "transfer_in",
            "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S") + TZ,
            "amount": str(amount),
            "currency": "CNY",
            "payer": {"account": payer, "type": "business"},
            "payee": {"account": customer.account, "type": "personal"},
            "label": {"is_fraud": False},
        }


def _at(rng: random.Random, day: datetime, start: int = 8, end: int = 22) -> datetime:
    return day + timedelta(
        hours=rng.randint(start, end - 1), minutes=rng.randint(0, 59), seconds=rng.randint(0, 59)
    )


def _month(  # noqa: PLR0917 (the month's parts, as benign_traffic has them)
    rng: random.Random, writer: _Writer, customer: _Customer, first: datetime, days: int, life: bool = False
) -> Iterator[dict[str, Any]]:
    """One customer's ordinary days from ``first`` (with ``life``: and the life events)."""
    day_of = [first + timedelta(days=d) for d in range(days)]
    if life:
        yield from _life_events(rng, writer, customer, day_of)
    payday = rng.randint(0, days - 1)
    yield writer.income(
        customer,
        _at(rng, day_of[payday], 6, 9),
        _money(rng.uniform(6000, 30000) * (4 if customer.shop else 1)),
        customer.employer,
    )
    if customer.landlord is not None:
        rent_day = day_of[min(days - 1, rng.randint(0, 4))]
        year = rng.random() < 0.01
        amount = customer.rent * (12 if year else 1)
        customer.balance = max(customer.balance, amount * 2)
        yield writer.event(customer, _at(rng, rent_day), amount, customer.landlord, "personal", memo="房租")
    bills = rng.choice(day_of)
    sitting = _at(rng, bills, 19, 22)
    for n, utility in enumerate(customer.utilities):
        yield writer.event(
            customer, sitting + timedelta(minutes=3 * n), _money(rng.uniform(30, 400)), utility, "business"
        )
    for _ in range(rng.randint(10, 40)):
        night = rng.random() < 0.03
        when = _at(rng, rng.choice(day_of), 0, 5) if night else _at(rng, rng.choice(day_of))
        yield writer.event(
            customer, when, _money(rng.lognormvariate(4.5, 0.9)), rng.choice(customer.merchants), "merchant"
        )
    for _ in range(rng.randint(0, 6)):
        yield writer.event(
            customer,
            _at(rng, rng.choice(day_of)),
            _money(rng.uniform(50, 2000)),
            rng.choice(customer.family),
            "personal",
            memo=rng.choice(["生活费", "dinner", "红包", "AA"]),
        )
    if rng.random() < 0.3:
        customer.friends_made += 1
        friend = f"FRIEND-{customer.account[-6:]}-{customer.friends_made}"
        yield writer.event(
            customer,
            _at(rng, rng.choice(day_of)),
            _money(rng.uniform(20, 500)),
            friend,
            "personal",
            memo="dinner AA",
        )
    if rng.random() < 0.05:
        amount = _money(rng.uniform(10000, 150000))
        customer.balance = max(customer.balance, amount * 3)
        yield writer.event(
            customer,
            _at(rng, rng.choice(day_of)),
            amount,
            f"DEALER-{rng.randint(1, 999):03d}",
            "business",
            memo=rng.choice(["car down payment", "家电", "装修款", "tuition"]),
        )
    if rng.random() < 0.3:
        amount = _money(min(float(customer.balance) * rng.uniform(0.1, 0.6), 50000))
        yield writer.event(
            customer, _at(rng, rng.choice(day_of)), amount, customer.savings, "personal", own_account=True
        )
    for supplier in customer.suppliers:
        amount = _money(rng.uniform(10000, 80000))
        customer.balance = max(customer.balance, amount * 4)
        yield writer.event(
            customer, _at(rng, rng.choice(day_of), 9, 17), amount, supplier, "business", memo="货款"
        )


def benign_traffic(  # noqa: PLR0917 (the generator's settings)
    customers: int,
    seed: int,
    start: datetime,
    history_days: int = 60,
    days: int = 30,
    life_events: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(history, month): ``history_days`` of ordinary traffic to warm the store, then ``days`` to measure.
    Each list is in time order. ``life_events=False`` leaves out the life events (the demo day does)."""
    rng = random.Random(seed)
    population = [_customer(rng, index) for index in range(customers)]
    if life_events:
        for index, customer in enumerate(population):
            _give_a_life(rng, customer, index)
    history_writer, month_writer = _Writer(rng, "h"), _Writer(rng, "m")
    history: list[dict[str, Any]] = []
    month: list[dict[str, Any]] = []
    for customer in population:
        for block in range(0, history_days, 30):
            history += _month(
                rng,
                history_writer,
                customer,
                start - timedelta(days=history_days - block),
                min(30, history_days - block),
                life_events,
            )
        month += _month(rng, month_writer, customer, start, days, life_events)
    history.sort(key=lambda e: e["timestamp"])
    month.sort(key=lambda e: e["timestamp"])
    return history, month


def _story(  # noqa: PLR0917 (story rows read best as positional columns)
    typology: str,
    event_id: str,
    when: str,
    amount: str,
    payer: dict[str, Any],
    payee: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """One labelled event of a scam story (CNY; ``extra`` holds type, channel, memo, session...)."""
    return {
        "id": event_id,
        "timestamp": when,
        "amount": amount,
        "currency": "CNY",
        "payer": payer,
        "payee": payee,
        **extra,
        "label": {"is_fraud": True, "typology": typology},
    }


def _scams(day: datetime) -> list[dict[str, Any]]:
    """Three scam stories of the domain brief on one day, labelled."""

    def at(hour: int, minute: int) -> str:
        return (day + timedelta(hours=hour, minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S") + TZ

    elderly = {"account": "6222000000900001", "age": 72, "vulnerability": ["elderly"]}
    student = {"account": "6222000000900002", "age": 21}
    mule = {"account": "6222000000900003", "account_opened": "2026-03-07"}
    app = {"channel": "mobile_app"}
    coached = {**app, "session": {"on_call": True, "caller_in_contacts": False}}

    def person(account: str) -> dict[str, Any]:
        return {"account": account, "type": "personal"}

    t1, t6 = "T1_safe_account", "T6_brushing"
    return [
        # T1: a "police officer" on the phone walks a 72-year-old through breaking a deposit and moving it.
        _story(
            t1,
            "scam-t1-1",
            at(9, 5),
            "200000.00",
            {"account": "6222000000900001-TD"},
            {"account": elderly["account"]},
            type="deposit_redemption",
            **app,
        ),
        _story(
            t1,
            "scam-t1-2",
            at(9, 25),
            "150000.00",
            {**elderly, "balance_before": "230000.00"},
            person("6217555500001111"),
            memo="还款",
            **coached,
        ),
        _story(
            t1,
            "scam-t1-3",
            at(9, 50),
            "50000.00",
            {**elderly, "balance_before": "230000.00"},
            person("6217555500002222"),
            memo="资金核查 安全账户",
            **coached,
        ),
        # T6: a student is paid a "commission" for tasks, then asked for ever larger "combined orders".
        _story(
            t6,
            "scam-t6-1",
            at(10, 0),
            "100.00",
            {**student, "balance_before": "8000.00"},
            person("6217666600001111"),
            memo="做任务 刷单",
            **app,
        ),
        _story(
            t6,
            "scam-t6-2",
            at(10, 20),
            "130.00",
            person("6217666600009999"),
            {"account": student["account"]},
            type="transfer_in",
            memo="佣金",
        ),
        _story(
            t6,
            "scam-t6-3",
            at(10, 40),
            "600.00",
            {**student, "balance_before": "7900.00"},
            person("6217666600002222"),
            memo="连单 垫付",
            **app,
        ),
        _story(
            t6,
            "scam-t6-4",
            at(11, 10),
            "3000.00",
            {**student, "balance_before": "7300.00"},
            person("6217666600003333"),
            memo="卡单 充值",
            **app,
        ),
        # A money mule: a nine-day-old account collects from six people and passes it on to a crypto OTC desk.
        *(
            _story(
                "mule",
                f"scam-mule-in-{n}",
                at(12, 10 * n),
                f"{3000 + 500 * n}.00",
                person(f"62170000777{n:05d}"),
                dict(mule),
                type="transfer_in",
            )
            for n in range(6)
        ),
        _story(
            "mule",
            "scam-mule-out",
            at(14, 30),
            "24000.00",
            {**mule, "balance_before": "25600.00"},
            person("6217888800001111"),
            memo="USDT",
            **app,
        ),
    ]


def demo_day(seed: int = 20260316, customers: int = 400) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(history, day): two months of ordinary traffic, then one ordinary day with three scam stories."""
    day = datetime(2026, 3, 16, tzinfo=UTC)
    first = day - timedelta(days=29)
    history, month = benign_traffic(customers, seed, first, history_days=30, days=30, life_events=False)
    stamp = day.strftime("%Y-%m-%d")
    history += [e for e in month if e["timestamp"][:10] < stamp]
    traffic = [e for e in month if e["timestamp"][:10] == stamp]
    return history, sorted([*traffic, *_scams(day)], key=lambda e: e["timestamp"])


def write_jsonl(path: Path, events: list[dict[str, Any]]) -> None:
    """Write ``events`` as JSON Lines, gzip-compressed when the name ends in ``.gz`` (reproducibly: no
    time stamp in the gzip header)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n" for event in events)
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
