"""Customers and their contacts: names, sizes, places and who at our company looks after them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from kizuna.demo import vocab
from kizuna.demo.dates import NONE, IntArray, office_seconds, to_workday
from kizuna.demo.output import OutTable, columns_frame, labels, sql_bool, sql_id, sql_number, sql_timestamp

BoolArray = npt.NDArray[np.bool_]
OWNED_SHARE = 0.10  # the largest accounts get a named account executive
GIVEN_STRIDE = 7  # coprime with both given-name lists: up to four contacts of a customer never share one


@dataclass(frozen=True)
class Customers:
    """What later tables need to know about each customer (index i is customer number i + 1)."""

    n: int
    employees: IntArray
    foreign: BoolArray
    owner: IntArray  # index into vocab.ACCOUNT_EXECUTIVES, or NONE
    cs_owner: IntArray  # index into vocab.CS_MANAGERS, or NONE
    industry: IntArray
    country: IntArray  # index into vocab.COUNTRIES for foreign customers, else NONE


def _weights(rows: tuple[tuple[object, ...], ...], column: int = 1) -> npt.NDArray[np.float64]:
    w = np.array([float(r[column]) for r in rows])  # type: ignore[arg-type]
    return w / w.sum()


def draw_customers(n: int, rng: np.random.Generator) -> Customers:
    # log-normal: median ~45 employees, a few with tens of thousands, as in a real SMB-heavy book
    employees = np.clip(np.exp(rng.normal(np.log(45), 1.4, n)), 2, 200_000).astype(np.int64)
    foreign = rng.random(n) < vocab.FOREIGN_SHARE
    country = np.where(foreign, rng.choice(len(vocab.COUNTRIES), n, p=_weights(vocab.COUNTRIES)), NONE)
    industry = rng.choice(len(vocab.INDUSTRIES), n, p=_weights(vocab.INDUSTRIES))

    owned = np.zeros(n, dtype=bool)
    owned[np.argsort(-employees, kind="stable")[: max(1, int(n * OWNED_SHARE))]] = True
    owner = np.where(owned, rng.integers(0, len(vocab.ACCOUNT_EXECUTIVES), n), NONE)
    # small accounts are often left to tech-touch programmes without a named CSM
    unassigned = (employees < 20) & (rng.random(n) < 0.6)
    cs_owner = np.where(unassigned, NONE, rng.integers(0, len(vocab.CS_MANAGERS), n))
    return Customers(n, employees, foreign, owner, cs_owner, industry, country)


def _company_names() -> tuple[list[str], IntArray, IntArray]:
    """All composable names, and per industry the offset and count of its words."""
    words = [w for _, _, ws in vocab.INDUSTRIES for w in ws]
    counts = np.array([len(ws) for _, _, ws in vocab.INDUSTRIES])
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    names = [
        f"{prefix}{stem}{word}{suffix}"
        for prefix, suffix, _ in vocab.LEGAL_FORMS
        for stem in vocab.COMPANY_STEMS
        for word in words
    ]
    names += [
        f"{stem} {word} {suffix}"
        for _, _, suffix in vocab.COUNTRIES
        for stem in vocab.FOREIGN_STEMS
        for word in vocab.FOREIGN_WORDS
    ]
    return names, offsets, counts


def customers_table(c: Customers, first_start: IntArray, rng: np.random.Generator) -> OutTable:
    """One row per customer; created as a lead, three to six months before the first subscription."""
    names, offsets, counts = _company_names()
    n_words = int(counts.sum())
    form = rng.choice(len(vocab.LEGAL_FORMS), c.n, p=_weights(vocab.LEGAL_FORMS, 2))
    stem = rng.integers(0, len(vocab.COMPANY_STEMS), c.n)
    word = offsets[c.industry] + (rng.random(c.n) * counts[c.industry]).astype(np.int64)
    jp_code = (form * len(vocab.COMPANY_STEMS) + stem) * n_words + word
    foreign_base = len(vocab.LEGAL_FORMS) * len(vocab.COMPANY_STEMS) * n_words
    f_stem = rng.integers(0, len(vocab.FOREIGN_STEMS), c.n)
    f_word = rng.integers(0, len(vocab.FOREIGN_WORDS), c.n)
    f_code = foreign_base + (c.country * len(vocab.FOREIGN_STEMS) + f_stem) * len(vocab.FOREIGN_WORDS) + f_word
    name = np.where(c.foreign, f_code, jp_code)

    prefecture = np.where(c.foreign, NONE, rng.choice(len(vocab.PREFECTURES), c.n, p=_weights(vocab.PREFECTURES)))
    # the CRM record predates the first deal (opened 20-90 days before the first subscription)
    created_day = to_workday(first_start - rng.integers(95, 180, c.n))
    frame = columns_frame(
        {
            "customer": np.arange(1, c.n + 1),
            "name": labels(name, names),
            "industry": labels(c.industry, [i for i, _, _ in vocab.INDUSTRIES]),
            "employees": c.employees,
            "prefecture": labels(prefecture, [p for p, _ in vocab.PREFECTURES]),
            "country": labels(np.where(c.foreign, c.country + 1, 0), ["JP", *(k for k, _, _ in vocab.COUNTRIES)]),
            "created": office_seconds(created_day, rng),
            "owner": labels(c.owner, vocab.staff_emails(vocab.ACCOUNT_EXECUTIVES)),
            "cs_owner": labels(c.cs_owner, vocab.staff_emails(vocab.CS_MANAGERS)),
        }
    )
    select = {
        "customer_id": sql_id("C", "customer", 6),
        "name": "name",
        "industry": "industry",
        "employee_count": sql_number("employees"),
        "prefecture": "prefecture",
        "country": "country",
        "created_at": sql_timestamp("created"),
        "owner_email": "owner",
        "cs_owner_email": "cs_owner",
    }
    return OutTable("customers", frame, select)


def contacts_table(c: Customers, rng: np.random.Generator) -> OutTable:
    """One to four contacts per customer, the first of them the primary; e-mail only at reserved domains."""
    large = c.employees >= 300
    count = np.where(
        large,
        rng.choice([1, 2, 3, 4], c.n, p=[0.1, 0.3, 0.35, 0.25]),
        rng.choice([1, 2, 3, 4], c.n, p=[0.4, 0.35, 0.17, 0.08]),
    )
    rows = int(count.sum())
    customer = np.repeat(np.arange(c.n), count)
    slot = np.arange(rows) - np.repeat(np.cumsum(count) - count, count)
    foreign = c.foreign[customer]
    primary = slot == 0

    n_sur, n_giv = len(vocab.SURNAMES), len(vocab.GIVEN_NAMES)
    n_fsur, n_fgiv = len(vocab.FOREIGN_SURNAMES), len(vocab.FOREIGN_GIVEN_NAMES)
    first_given = rng.integers(0, n_giv * n_fgiv, c.n)[customer]
    given_jp = (first_given + slot * GIVEN_STRIDE) % n_giv
    given_en = (first_given + slot * GIVEN_STRIDE) % n_fgiv
    person = np.where(
        foreign,
        n_sur * n_giv + rng.integers(0, n_fsur, rows) * n_fgiv + given_en,
        rng.integers(0, n_sur, rows) * n_giv + given_jp,
    )
    display = [f"{s} {g}" for s, _ in vocab.SURNAMES for g, _ in vocab.GIVEN_NAMES]
    display += [f"{g} {s}" for s in vocab.FOREIGN_SURNAMES for g in vocab.FOREIGN_GIVEN_NAMES]
    local = [f"{g}.{s}" for _, s in vocab.SURNAMES for _, g in vocab.GIVEN_NAMES]
    local += [f"{g}.{s}".lower() for s in vocab.FOREIGN_SURNAMES for g in vocab.FOREIGN_GIVEN_NAMES]

    role_primary = rng.choice(len(vocab.CONTACT_ROLES), rows, p=_weights(vocab.CONTACT_ROLES, 1))
    role_other = rng.choice(len(vocab.CONTACT_ROLES), rows, p=_weights(vocab.CONTACT_ROLES, 2))
    frame = columns_frame(
        {
            "contact": np.arange(1, rows + 1),
            "customer": customer + 1,
            "local": labels(person, local),
            # the customer number keeps addresses unique across customers; both domains are reserved
            "domain": labels(foreign.astype(np.int64), ["example.co.jp", "example.com"]),
            "name": labels(person, display),
            "role": labels(np.where(primary, role_primary, role_other), [r for r, _, _ in vocab.CONTACT_ROLES]),
            "primary": primary.astype(np.int8),
            "opt_in": (rng.random(rows) < 0.7).astype(np.int8),
            "locale": labels(foreign.astype(np.int64), ["ja", "en"]),
        }
    )
    select = {
        "contact_id": sql_id("CT", "contact", 7),
        "customer_id": sql_id("C", "customer", 6),
        "email": "printf('%s.c%06d@%s', local, customer, domain)",
        "name": "name",
        "role": "role",
        "is_primary": sql_bool("primary"),
        "marketing_opt_in": sql_bool("opt_in"),
        "locale": "locale",
    }
    return OutTable("contacts", frame, select)
