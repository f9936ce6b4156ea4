"""Configuration of the sandbox: sizes of every generated resource, seed and keys."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# Generations of the feedback API a sandbox can serve (see `Sandbox.set_feedback_generation`).
FEEDBACK_GENERATIONS = ("seed", "current")

# One person every 2 ms at least keeps createdAt strictly increasing over the base time span.
MAX_PEOPLE = 10_000_000


@dataclass(frozen=True)
class SandboxConfig:
    """Sizes and identity of the generated data.

    Everything the sandbox serves is a pure function of this config (plus the mutations applied
    afterwards): the same config gives byte-identical pages.

    Attributes:
        seed: Seed of every generated value.
        people: Number of generated people (`/people/all`); records are computed on demand, so
            this may reach millions.
        segments: Number of generated segments.
        members_per_segment: People in each generated segment (capped at `people`).
        surveys: Number of generated surveys (responses need at least one).
        responses: Number of generated survey responses (computed on demand too).
        schemas: Number of custom object schemas.
        accounts: Number of accounts.
        account_tags: Number of account tags.
        fields: Number of people fields.
        action_classes: Number of action classes.
        attribute_classes: Number of attribute classes.
        identified_peoples: Number of identified people of the feedback API.
        webhooks: Number of webhooks.
        audience_key: The key the audience API accepts in its `api_key` header.
        feedback_key: The key the feedback API accepts in its `X-API-Key` header.
        request_log_size: How many requests the log keeps (older ones are dropped; the counters of
            `stats()` keep counting).
        feedback_generation: Which generation of the feedback API is served at start: `seed` (the
            seed's `/v1/management/people` and `/attribute-classes`) or `current` (those two answer
            an HTML 404 page; `/v1/management/contacts` and `/contact-attribute-keys` serve the
            same records in their new shapes). Changeable at run time.
        feedback_licensed: On the current generation, whether the server has the Enterprise licence
            the contacts endpoints need (without it they answer 403). Changeable at run time.
        odd_records: Serve a few people and responses whose fields hold what people really type: a
            cut emoji (a lone surrogate), NUL, an integer beyond 64 bits, custom fields whose names meet
            the API's own in snake_case (`odd_records.py`, which lists them). Off: every record as generated.
    """

    seed: int = 42
    people: int = 5000
    segments: int = 8
    members_per_segment: int = 300
    surveys: int = 6
    responses: int = 2000
    schemas: int = 3
    accounts: int = 5
    account_tags: int = 6
    fields: int = 10
    action_classes: int = 8
    attribute_classes: int = 6
    identified_peoples: int = 40
    webhooks: int = 4
    audience_key: str = "sandbox-audience-key"
    feedback_key: str = "sandbox-feedback-key"
    request_log_size: int = 100_000
    feedback_generation: str = "seed"
    feedback_licensed: bool = True
    odd_records: bool = False

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "int" and (not isinstance(value, int) or value < 0):
                raise ValueError(f"SandboxConfig.{field.name} must be a non-negative int, got {value!r}")
        if self.people > MAX_PEOPLE:
            raise ValueError(f"SandboxConfig.people must be at most {MAX_PEOPLE}")
        if self.responses > MAX_PEOPLE:
            raise ValueError(f"SandboxConfig.responses must be at most {MAX_PEOPLE}")
        if self.responses and not self.surveys:
            raise ValueError("SandboxConfig.responses needs at least one survey")
        if self.feedback_generation not in FEEDBACK_GENERATIONS:
            raise ValueError(
                f"SandboxConfig.feedback_generation must be one of {FEEDBACK_GENERATIONS}, "
                f"got {self.feedback_generation!r}"
            )
        if not isinstance(self.feedback_licensed, bool):
            raise ValueError(
                f"SandboxConfig.feedback_licensed must be a bool, got {self.feedback_licensed!r}"
            )
        if not isinstance(self.odd_records, bool):
            raise ValueError(f"SandboxConfig.odd_records must be a bool, got {self.odd_records!r}")
        if self.accounts < 1:
            raise ValueError("SandboxConfig.accounts must be at least 1 (segments belong to an account)")

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict."""
        return dataclasses.asdict(self)
