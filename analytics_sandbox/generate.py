"""Pure generation of every record from (seed, index).

Nothing here holds state beyond per-seed lookup tables: record `i` of any resource is computed when
a page needs it, which is what lets `/people/all` serve a million people from a few megabytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from math import gcd
from typing import Any

from .clock import DAY_MS, HOUR_MS, epoch_ms, iso, iso_tables
from .config import SandboxConfig
from .ids import (
    HASH_MULTIPLIER,
    M48,
    M64,
    SCRAMBLE_A,
    SCRAMBLE_B,
    SECOND_HASH,
    IdCodec,
    derive,
    mix64,
    uuid_prefixes,
)
from .odd_records import odd_person, odd_response

Record = dict[str, Any]

# Base timelines. Everything generated sits before `GENERATED_UNTIL_MS`, so that a mutation stamped
# with the wall clock (or just past this floor) is always the newest record.
PEOPLE_START_MS = epoch_ms(2024, 1, 1)
PEOPLE_END_MS = epoch_ms(2025, 12, 1)
RESPONSES_START_MS = epoch_ms(2024, 3, 1)
RESPONSES_END_MS = epoch_ms(2025, 12, 1)
SMALL_START_MS = epoch_ms(2023, 6, 1)
GENERATED_UNTIL_MS = epoch_ms(2026, 1, 1)
# updatedAt of a generated person trails its createdAt by this plus a jitter.
UPDATE_DELAY_MS = 6 * HOUR_MS

# Power-of-two table sizes let the generator pick with shifts and masks.
# fmt: off
FIRST_NAMES = (
    "Ada", "Alan", "Alice", "Amara", "Ana", "Andre", "Anika", "Arjun", "Ben", "Bianca", "Carlos", "Chen",
    "Chloe", "Dana", "David", "Elena", "Emil", "Eva", "Farah", "Felix", "Grace", "Hana", "Hugo", "Ines",
    "Ivan", "Jade", "Jonas", "Julia", "Kai", "Kemal", "Lara", "Leo", "Lina", "Luca", "Maya", "Mei", "Mila",
    "Nadia", "Nico", "Noah", "Olga", "Omar", "Paula", "Pedro", "Priya", "Rafael", "Rosa", "Sam", "Sara",
    "Sofia", "Tariq", "Theo", "Uma", "Victor", "Wei", "Yara", "Yusuf", "Zoe", "Aiko", "Bruno", "Cyrus",
    "Dario", "Esme", "Finn",
)
LAST_NAMES = (
    "Abara", "Becker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito", "Jensen",
    "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov", "Quinn", "Rossi", "Schmidt", "Tanaka",
    "Ueda", "Varga", "Weber", "Xu", "Yilmaz", "Zhang", "Alvarez", "Bauer", "Chen", "Dimitrov", "Evans",
    "Fontaine", "Gomez", "Horvat", "Ibrahim", "Jovanovic", "Kim", "Larsen", "Meyer", "Novak", "Olsen",
    "Park", "Rahman", "Silva", "Torres", "Usman", "Vasquez", "Wagner", "Young", "Ziegler", "Andersen",
    "Brown", "Cruz", "Diaz", "Egger", "Ferrari", "Gupta", "Hoffmann", "Ivanova", "Jung", "Khan",
    "Lindqvist", "Mendes", "Nguyen",
)
DOMAINS = ("example.com", "example.org", "example.net", "mail.test", "corp.test", "inbox.test",
           "mailinator.test", "tempmail.test")  # the last two are the disposable ones
PEOPLE_TAGS = ("", "trial", "vip", "trial,vip", "newsletter", "beta", "newsletter,beta", "", "churn-risk",
               "vip,newsletter", "enterprise", "trial,beta", "", "enterprise,vip", "newsletter,trial,beta", "")
PLANS = ("free", "starter", "pro", "enterprise")
COMPANIES = (
    "Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises", "Soylent",
    "Cyberdyne", "Tyrell", "Wonka", "Vandelay", "Massive Dynamic", "Aperture", "Oscorp", "Gringotts", "Monarch",
    "Pied Piper", "Dunder Mifflin", "Bluth Company", "Sterling Cooper", "Prestige Worldwide", "Nakatomi",
    "Virtucon", "Duff", "Krusty Krab", "Los Pollos", "Gekko & Co", "Ollivanders", "Spacely Sprockets",
    "Cogswell Cogs", "Wernham Hogg",
)
SCHEMA_NAMES = (("companies", "company"), ("deals", "deal"), ("subscriptions", "subscription"),
                ("tickets", "ticket"), ("invoices", "invoice"), ("projects", "project"))
ACCOUNT_NAMES = ("Northwind", "Contoso", "Fabrikam", "Tailspin", "Woodgrove", "Litware", "Adatum")
TIMEZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC", "America/Sao_Paulo")
ACCOUNT_TAGS = ("trial", "vip", "newsletter", "beta", "churn-risk", "enterprise", "partner", "internal")
COLORS = ("#e11d48", "#2563eb", "#16a34a", "#f59e0b", "#7c3aed", "#0891b2", "#db2777", "#65a30d")
FIELDS = (  # name, title, type, format
    ("email", "Email", "string", "email"), ("firstName", "First name", "string", None),
    ("lastName", "Last name", "string", None), ("leadScore", "Lead score", "number", None),
    ("isEmailDisposable", "Disposable email", "boolean", None), ("tags", "Tags", "string", None),
    ("plan", "Plan", "string", None), ("company", "Company", "string", None),
    ("seats", "Seats", "integer", None), ("lastActivity", "Last activity", "string", "date-time"),
    ("metadata", "Metadata", "any", None), ("signupSource", "Signup source", "string", None),
)
SEGMENT_NAMES = ("Active trials", "VIP customers", "Newsletter readers", "Churn risk", "Enterprise leads",
                 "Beta testers", "Dormant users", "High lead score")
SURVEY_NAMES = ("Onboarding NPS", "Pricing feedback", "Churn survey", "Feature request", "Support CSAT",
                "Product-market fit", "Exit intent", "Beta feedback")
SURVEY_TYPES = ("link", "app", "website")
SURVEY_STATUSES = ("inProgress", "completed", "paused", "draft")
QUESTION_TYPES = ("nps", "openText", "rating", "multipleChoiceSingle", "multipleChoiceMulti")
CHOICES = ("Price", "Features", "Support", "Speed", "Docs", "Integrations")
OPEN_TEXTS = ("Love it", "Too expensive for us", "Please add dark mode", "Setup was confusing",
              "Works great with our stack", "", "Support answered fast", "Missing an export to CSV")
COUNTRIES = ("DE", "US", "FR", "BR", "JP", "IN", "GB", "ES")
BROWSERS = ("Chrome", "Firefox", "Safari", "Edge")
OSES = ("Windows", "macOS", "Linux", "iOS", "Android")
DEVICES = ("desktop", "phone", "tablet")
ACTION_CLASSES = (  # name, type, description
    ("New Session", "automatic", "Fires on every new session"),
    ("Exit Intent", "automatic", "Mouse leaves the window"),
    ("50% Scroll", "automatic", "Visitor scrolled half of the page"),
    ("Clicked Upgrade", "code", "Upgrade button clicked"),
    ("Viewed Pricing", "noCode", "Visited /pricing"),
    ("Signed Up", "code", "Account created"),
    ("Invited Teammate", "code", "A teammate was invited"),
    ("Exported Report", "noCode", "Export button clicked"),
)
ATTRIBUTE_CLASSES = (("userId", "automatic"), ("email", "default"), ("plan", "custom"), ("language", "custom"),
                     ("company", "custom"), ("role", "custom"), ("seats", "custom"))
LANGUAGES = ("en", "de", "fr", "es", "pt", "ja")
WEBHOOK_SOURCES = ("user", "zapier", "make", "n8n")
WEBHOOK_TRIGGERS = ("responseCreated", "responseUpdated", "responseFinished")
# fmt: on
assert len(FIRST_NAMES) == 64 and len(LAST_NAMES) == 64 and len(COMPANIES) == 32
# Tables the people generator picks from with bit masks: (first, last, name, email head) by
# (last << 6 | first); (email domain, disposable?); lead scores 0.0-100.0.
_NAMES = [
    (f, last, f"{f} {last}", f"{f.lower()}.{last.lower()}.") for last in LAST_NAMES for f in FIRST_NAMES
]
_DOMAINS = [(f"@{d}", k >= 6) for k, d in enumerate(DOMAINS)]
_SCORES = [(k % 1001) / 10 for k in range(1024)]

# The key field of every resource (dlt resource names).
KEY_FIELDS = {
    "schemas": "name",
    "peoples": "id",
    "accounts": "accountId",
    "account_tags": "tag",
    "segments": "id",
    "fields": "name",
    "segment_people": "id",
    "surveys": "id",
    "action_classes": "id",
    "attribute_classes": "id",
    "identified_peoples": "id",
    "responses": "id",
    "webhooks": "id",
}
# Resources held as small in-memory lists (the big ones are computed on demand).
SMALL_RESOURCES = ("schemas", "accounts", "account_tags", "segments", "fields", "surveys", "action_classes",
                   "attribute_classes", "identified_peoples", "webhooks")  # fmt: skip
CUID_RESOURCES = ("surveys", "action_classes", "attribute_classes", "identified_peoples", "webhooks")
FIRST_SEGMENT_ID = 1001
FIRST_ACCOUNT_ID = 48_201


def _cycle(names: tuple[str, ...], k: int) -> str:
    """names[k], with a number suffix once the table is exhausted so that names stay unique."""
    base = names[k % len(names)]
    return base if k < len(names) else f"{base} {k // len(names) + 1}"


class Generator:
    """Computes the pristine records of one config.

    Args:
        config: Sizes and seed.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        seed = config.seed
        self.people_ids = IdCodec(seed, "people")
        self.response_ids = IdCodec(seed, "responses")
        self.codecs = {name: IdCodec(seed, name) for name in CUID_RESOURCES}
        self._notes = IdCodec(seed, "notes")
        self._questions = IdCodec(seed, "questions")
        self.environment_id = IdCodec(seed, "environments").cuid(0)
        self._people_key = derive(seed, "people-fields")
        self._response_key = derive(seed, "response-fields")
        self._small_key = derive(seed, "small-fields")
        self._segment_key = derive(seed, "segment-members")
        self._people_step = (PEOPLE_END_MS - PEOPLE_START_MS) // max(config.people, 1)
        self._people_half = max(1, self._people_step // 2)
        self._response_step = (RESPONSES_END_MS - RESPONSES_START_MS) // max(config.responses, 1)
        self._response_half = max(1, self._response_step // 2)
        # Responses refer to the pristine surveys and identified people, whatever happens to them later.
        self.base_surveys: list[Record] = []  # (webhooks refer to them too)
        self.base_surveys = [self.small("surveys", k) for k in range(config.surveys)]
        self._identified = [self.small("identified_peoples", k) for k in range(config.identified_peoples)]

    # -- people ------------------------------------------------------------------------------

    def person(self, i: int, stamp_ms: int | None = None) -> Record:
        """Person `i`; `stamp_ms` overrides the timestamps (a person added by a mutation)."""
        record = self.people((i,))[0]
        if stamp_ms is not None:
            record["createdAt"] = record["updatedAt"] = iso(stamp_ms)
            record["lastActivity"] = None
        return record

    def people(self, indices: Iterable[int]) -> list[Record]:
        """The generated people at `indices` (the hot path of `/people/all`).

        This inlines `IdCodec.hashes`, `IdCodec.uuid` and `iso`, and draws names, emails and scores
        from tables: a page of 100 people costs well under half a millisecond. `test_sandbox`
        checks the ids against `IdCodec.uuid`.
        """
        if self.config.odd_records:
            indices = list(indices)
        out: list[Record] = []
        append = out.append
        offset, key = self.people_ids.offset, self.people_ids.key
        step, half, start = self._people_step, self._people_half, PEOPLE_START_MS
        d0, days, minutes, seconds, millis = iso_tables()
        heads, names, domains, scores = uuid_prefixes(), _NAMES, _DOMAINS, _SCORES
        tags, plans, companies = PEOPLE_TAGS, PLANS, COMPANIES
        m48, m64, sa, sb, mult, second = M48, M64, SCRAMBLE_A, SCRAMBLE_B, HASH_MULTIPLIER, SECOND_HASH
        for i in indices:
            x = ((i + offset) * sa) & m48
            x ^= x >> 24
            x = (x * sb) & m48
            x ^= x >> 24
            z = ((key ^ x) * mult) & m64
            h = z ^ (z >> 29)
            g = (h * second) & m64
            base = start + i * step
            created = base + h % half
            updated = base + half + UPDATE_DELAY_MS + (h >> 24) % half
            # Timestamps inline `iso` (floor division and modulo beat divmod calls here).
            rest = created % DAY_MS
            milli = rest % 60_000
            created_at = f"{days[created // DAY_MS - d0]}T{minutes[rest // 60_000]}:{seconds[milli // 1000]}{millis[milli % 1000]}"
            rest = updated % DAY_MS
            milli = rest % 60_000
            updated_at = f"{days[updated // DAY_MS - d0]}T{minutes[rest // 60_000]}:{seconds[milli // 1000]}{millis[milli % 1000]}"
            if g & 7:
                active = updated - (g >> 40) % (updated - created + 1)
                rest = active % DAY_MS
                milli = rest % 60_000
                last_activity: str | None = (
                    f"{days[active // DAY_MS - d0]}T{minutes[rest // 60_000]}:{seconds[milli // 1000]}{millis[milli % 1000]}"
                )
            else:
                last_activity = None
            number = str(i)
            first, last, name, email = names[(g >> 3) & 4095]
            domain, disposable = domains[(g >> 15) & 7]
            append(
                {
                    "id": f"{heads[h >> 52]}{x:012x}",
                    "email": f"{email}{number}{domain}",
                    "firstName": first,
                    "lastName": last,
                    "name": name,
                    "userId": f"user_{number.zfill(7)}",
                    "createdAt": created_at,
                    "updatedAt": updated_at,
                    "lastActivity": last_activity,
                    "leadScore": scores[(g >> 18) & 1023],
                    "isEmailDisposable": disposable,
                    "tags": tags[(g >> 28) & 15],
                    "plan": plans[(g >> 32) & 3],
                    "company": companies[(g >> 34) & 31],
                }
            )
        if self.config.odd_records:
            return [odd_person(i, record) for i, record in zip(indices, out, strict=True)]
        return out

    def person_edit(self, i: int, n: int) -> Record:
        """Field changes of the `n`-th update of person `i` (deterministic)."""
        g = mix64(self._people_key ^ i ^ (n << 40))
        return {
            "lastName": LAST_NAMES[g & 63],
            "leadScore": (g >> 8) % 1001 / 10,
            "plan": PLANS[(g >> 20) & 3],
        }

    # -- segment memberships ---------------------------------------------------------------------

    def segment_members(self, s: int) -> tuple[int, int, int]:
        """(a, b, m) of generated segment `s`: member j (0 <= j < m) is person (a + j*b) mod people.

        `b` is coprime with the number of people, so the m members are distinct.
        """
        n = self.config.people
        m = min(self.config.members_per_segment, n)
        if n == 0:
            return 0, 1, 0
        h = mix64(self._segment_key ^ s)
        a = h % n
        b = (h >> 20) % n or 1
        while gcd(b, n) != 1:
            b = b % n + 1
        return a, b, m

    # -- responses ---------------------------------------------------------------------------

    def response(self, i: int, stamp_ms: int | None = None) -> Record:
        """Response `i`; `stamp_ms` overrides createdAt (a response added by a mutation)."""
        h = mix64(self._response_key ^ i)
        g = mix64(h)
        if stamp_ms is None:
            created = RESPONSES_START_MS + i * self._response_step + h % self._response_half
        else:
            created = stamp_ms
        survey = self.base_surveys[(g & 0xFFFF) % len(self.base_surveys)]
        questions = survey["questions"]
        finished = (g >> 16) & 3 != 0
        answered = len(questions) if finished else (g >> 18) % len(questions)
        data: dict[str, Any] = {}
        ttc: dict[str, int] = {}
        bits = g >> 21
        for q in questions[:answered]:
            qtype = q["type"]
            if qtype == "nps":
                data[q["id"]] = bits % 11
            elif qtype == "rating":
                data[q["id"]] = bits % 5 + 1
            elif qtype == "openText":
                data[q["id"]] = OPEN_TEXTS[bits & 7]
            elif qtype == "multipleChoiceSingle":
                data[q["id"]] = CHOICES[bits % 6]
            else:
                data[q["id"]] = [c for k, c in enumerate(CHOICES) if (bits >> k) & 1] or [CHOICES[0]]
            ttc[q["id"]] = 800 + (bits & 0x3FFF)
            bits = (bits >> 5) | ((bits & 31) << 38)
        person = None
        if self._identified and (h >> 8) & 3 != 0:
            ip = self._identified[(h >> 10) % len(self._identified)]
            person = {"id": ip["id"], "userId": ip["userId"]}
        record = {
            "id": self.response_ids.cuid(i),
            "createdAt": iso(created),
            "updatedAt": iso(created + sum(ttc.values()) + 1000),
            "surveyId": survey["id"],
            "finished": finished,
            "data": data,
            "ttc": ttc,
            "meta": {
                "country": COUNTRIES[(h >> 20) & 7],
                "userAgent": {
                    "browser": BROWSERS[(h >> 23) & 3],
                    "os": OSES[(h >> 25) % 5],
                    "device": DEVICES[(h >> 28) % 3],
                },
            },
            "person": person,
            "tags": ["follow-up"] if (h >> 31) & 7 == 0 else [],
            "notes": [{"id": self._notes.cuid(i), "text": "Called back", "createdAt": iso(created + HOUR_MS)}]
            if (h >> 34) & 15 == 0
            else [],
            "variables": {"plan": PLANS[(h >> 38) & 3]} if (h >> 40) & 1 else {},
        }
        return odd_response(i, record) if self.config.odd_records else record

    def response_edit(self, record: Record, n: int) -> Record:
        """Field changes of the `n`-th update of a response: it gets finished and one answer changes."""
        data = dict(record.get("data") or {})
        survey = next((s for s in self.base_surveys if s["id"] == record.get("surveyId")), None)
        questions = survey["questions"] if survey else []
        missing = [q for q in questions if q["id"] not in data]
        target = missing[0] if missing else (questions[n % len(questions)] if questions else None)
        if target is not None:
            qtype = target["type"]
            if qtype in ("nps", "rating"):
                data[target["id"]] = n % 5 + 1
            elif qtype == "multipleChoiceMulti":
                data[target["id"]] = [CHOICES[n % 6]]
            elif qtype == "multipleChoiceSingle":
                data[target["id"]] = CHOICES[n % 6]
            else:
                data[target["id"]] = f"edited answer {n}"
        return {"finished": True, "data": data}

    # -- small resources ---------------------------------------------------------------------

    def small(self, resource: str, k: int, stamp_ms: int | None = None) -> Record:
        """Record `k` of a small resource; `stamp_ms` overrides its timestamps (a record added later)."""
        h = mix64(self._small_key ^ mix64(k) ^ derive(0, resource))
        created = SMALL_START_MS + k * 3 * DAY_MS + h % DAY_MS if stamp_ms is None else stamp_ms
        updated = created + (h >> 27) % (40 * DAY_MS) if stamp_ms is None else stamp_ms
        record: Record = getattr(self, f"_{resource}")(k, h)
        if resource != "segments":
            record["createdAt"] = iso(created)
        if resource in CUID_RESOURCES:
            record["updatedAt"] = iso(updated)
        return record

    def small_edit(self, resource: str, record: Record, n: int) -> Record:
        """Field changes of the `n`-th update of a small-resource record."""
        if resource == "identified_peoples":
            return {"attributes": {**(record.get("attributes") or {}), "plan": PLANS[n % 4]}}
        if resource == "segments":
            return {
                "name": f"{SEGMENT_NAMES[n % 8]} (edit {n})",
                "version": int(record.get("version") or 0) + 1,
            }
        if resource == "accounts":
            return {"status": ("active", "trial", "suspended")[n % 3], "peopleCount": n * 7 + 100}
        field = {
            "schemas": "displayNamePlural",
            "fields": "title",
            "surveys": "name",
            "webhooks": "name",
        }.get(resource, "description")
        base = str(record.get(field) or "").split(" (edit ")[0]
        return {field: f"{base} (edit {n})"}

    def _schemas(self, k: int, h: int) -> Record:
        plural, singular = SCHEMA_NAMES[k % len(SCHEMA_NAMES)]
        suffix = "" if k < len(SCHEMA_NAMES) else f"_{k // len(SCHEMA_NAMES) + 1}"
        return {
            "name": plural + suffix,
            "displayNameSingular": singular.title(),
            "displayNamePlural": plural.title(),
            "fields": [
                {"name": "name", "type": "string", "title": "Name"},
                {"name": "value", "type": "number", "title": "Value"},
                {"name": "active", "type": "boolean", "title": "Active"},
            ][: 2 + (h & 1)],
            "associations": [
                {"name": "people", "objectName": "people", "type": "manyToMany"},
                {"name": "owner", "objectName": "accounts", "type": "manyToOne"},
            ][: 1 + ((h >> 1) & 1)],
        }

    def _accounts(self, k: int, h: int) -> Record:
        return {
            "accountId": FIRST_ACCOUNT_ID + k * 17,
            "name": _cycle(ACCOUNT_NAMES, k),
            "status": ("active", "active", "trial", "suspended")[h & 3],
            "timezone": TIMEZONES[(h >> 2) % len(TIMEZONES)],
            "peopleCount": self.config.people // max(self.config.accounts, 1) + (h >> 8) % 50,
            # The account's own live credentials, in the real payload's shape (the public low-code
            # connector's schema): a loader must not store any of them. `hasStripeAPIKey` is a
            # harmless flag with a credential-like name, and nested ones sit in an object and a list.
            "apiKeys": [f"ak_fake_{(h >> s) & 0xFFFFFFFFFFFF:012x}" for s in (0, 8)],
            "writeKey": f"wk_fake_{(h >> 16) & 0xFFFFFFFFFFFF:012x}",
            "webhookSeed": f"ws_fake_{(h >> 4) & 0xFFFFFFFFFFFF:012x}",
            "hasStripeAPIKey": bool(h >> 63),
            "companyInfo": {
                "domain": f"{_cycle(ACCOUNT_NAMES, k).split()[0].lower()}.example",
                "crm": {"provider": "hubspot", "accessToken": f"tk_fake_{(h >> 12) & 0xFFFFFFFFFFFF:012x}"},
            },
            "integrations": [
                {
                    "provider": "stripe",
                    "connected": True,
                    "secretKey": f"sk_fake_{(h >> 2) & 0xFFFFFFFFFFFF:012x}",
                }
            ],
        }

    def _account_tags(self, k: int, h: int) -> Record:
        tag = _cycle(ACCOUNT_TAGS, k).replace(" ", "-")
        return {
            "tag": tag,
            "color": COLORS[h & 7],
            "description": f"People tagged {tag}",
            "count": (h >> 3) % 500,
        }

    def _segments(self, k: int, h: int) -> Record:
        return {
            "id": FIRST_SEGMENT_ID + k,
            "name": _cycle(SEGMENT_NAMES, k),
            "objectName": "people",
            "accountId": FIRST_ACCOUNT_ID,
            "version": 1 + h % 5,
            "readOnly": (h >> 3) & 3 == 0,
            "autoSegment": (h >> 5) & 1 == 1,
            "conditions": {
                "type": "and",
                "conditions": [
                    {"field": "plan", "operator": "eq", "value": PLANS[(h >> 6) & 3]},
                    {
                        "type": "or",
                        "conditions": [
                            {"field": "leadScore", "operator": "gte", "value": (h >> 8) % 100},
                            {"field": "tags", "operator": "contains", "value": ACCOUNT_TAGS[(h >> 15) & 7]},
                        ],
                    },
                ],
            },
        }

    def _fields(self, k: int, h: int) -> Record:
        name, title, ftype, fmt = FIELDS[k % len(FIELDS)]
        if k >= len(FIELDS):
            name, title = f"{name}{k // len(FIELDS) + 1}", f"{title} {k // len(FIELDS) + 1}"
        return {
            "name": name,
            "title": title,
            "type": ftype,
            "format": fmt,
            "readOnly": name in ("email", "lastActivity"),
            "array": name == "tags",
            "enum": list(PLANS) if name == "plan" else [],
        }

    def _surveys(self, k: int, h: int) -> Record:
        questions = []
        for j in range(3 + h % 3):
            qtype = QUESTION_TYPES[(j + k) % len(QUESTION_TYPES)]
            question: Record = {
                "id": self._questions.cuid(k * 64 + j)[13:],
                "type": qtype,
                "headline": f"Question {j + 1} of {_cycle(SURVEY_NAMES, k)}",
                "required": j == 0,
            }
            if qtype.startswith("multipleChoice"):
                question["choices"] = [{"id": c.lower(), "label": c} for c in CHOICES]
            questions.append(question)
        return {
            "id": self.codecs["surveys"].cuid(k),
            "name": _cycle(SURVEY_NAMES, k),
            "type": SURVEY_TYPES[h % 3],
            "status": SURVEY_STATUSES[k % 4],
            "environmentId": self.environment_id,
            "questions": questions,
        }

    def _action_classes(self, k: int, h: int) -> Record:
        name, atype, description = ACTION_CLASSES[k % len(ACTION_CLASSES)]
        if k >= len(ACTION_CLASSES):
            name = f"{name} {k // len(ACTION_CLASSES) + 1}"
        return {
            "id": self.codecs["action_classes"].cuid(k),
            "name": name,
            "description": description,
            "type": atype,
            "key": name.lower().replace(" ", "_") if atype == "code" else None,
            "environmentId": self.environment_id,
        }

    def _attribute_classes(self, k: int, h: int) -> Record:
        name, atype = ATTRIBUTE_CLASSES[k % len(ATTRIBUTE_CLASSES)]
        if k >= len(ATTRIBUTE_CLASSES):
            name = f"{name}{k // len(ATTRIBUTE_CLASSES) + 1}"
        return {
            "id": self.codecs["attribute_classes"].cuid(k),
            "name": name,
            "description": f"The {name} of a person",
            "type": atype,
            "archived": h % 7 == 0,
            "environmentId": self.environment_id,
        }

    def _identified_peoples(self, k: int, h: int) -> Record:
        attributes: Record = {"email": f"fb.user{k}@example.com", "plan": PLANS[h & 3]}
        if (h >> 2) & 1:
            attributes["language"] = LANGUAGES[(h >> 3) % len(LANGUAGES)]
        return {
            "id": self.codecs["identified_peoples"].cuid(k),
            "userId": f"fb_user_{k:05d}",
            "environmentId": self.environment_id,
            "attributes": attributes,
        }

    def _webhooks(self, k: int, h: int) -> Record:
        surveys = self.base_surveys
        return {
            "id": self.codecs["webhooks"].cuid(k),
            "name": f"Webhook {k + 1}",
            "url": f"https://hooks.example.test/sandbox/{k}",
            "source": WEBHOOK_SOURCES[h & 3],
            "triggers": [t for j, t in enumerate(WEBHOOK_TRIGGERS) if (h >> (2 + j)) & 1]
            or ["responseCreated"],
            "surveyIds": [s["id"] for j, s in enumerate(surveys) if (h >> (5 + j % 50)) & 1],
            "environmentId": self.environment_id,
        }
