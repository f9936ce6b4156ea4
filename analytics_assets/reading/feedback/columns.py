"""What the feedback API's fields mean: the descriptions of their columns in the Dagster UI.

From the seed (every resource keyed on `id`) and the API's public description. Keyed by resource, then
by the field's name on the wire (camelCase): the loader finds each field's column through the
warehouse's naming convention (`surveyId` -> `survey_id`). A field of a nested object is named with
dots (`meta.country`, the column `meta__country`); a list's fields likewise (`notes.text`), though they
land in a table of their own, whose columns are not described. Inside a JSON column (`attributes`,
`data`, `ttc`, `variables`) the names are the customer's own.

These are also the fields `ANALYTICS_HASHED_FIELDS` and `ANALYTICS_EXCLUDED_FIELDS` may name
(`personal_data.py`), and any name inside a JSON column (`identified_peoples.attributes.email`).
"""

from __future__ import annotations

from collections.abc import Mapping

_CREATED = {"createdAt": "When the record was created (UTC)."}
_UPDATED = {"updatedAt": "When the record last changed (UTC)."}
_ENVIRONMENT = {"environmentId": "The environment the record belongs to."}

COLUMNS: Mapping[str, Mapping[str, str]] = {
    "surveys": {
        "id": "The survey's id (the key).",
        "name": "The survey's name.",
        "type": "The survey's type.",
        "status": "draft, inProgress, paused or completed.",
        "questions": "The survey's questions (the table `surveys__questions`).",
        "questions.id": "A question's id (the keys of a response's `data` and `ttc`).",
        "questions.type": "A question's type (nps, openText, rating, multipleChoiceSingle...).",
        "questions.headline": "A question's text.",
        "questions.required": "Whether a question must be answered.",
        "questions.choices": "A multiple choice question's choices (a table of their own).",
        "questions.choices.id": "A choice's id.",
        "questions.choices.label": "A choice's label.",
        **_ENVIRONMENT,
        **_CREATED,
        **_UPDATED,
    },
    "action_classes": {
        "id": "The action class's id (the key).",
        "name": "The action's name.",
        "description": "What the action is.",
        "type": "How the action is detected: code, noCode or automatic.",
        "key": "The key the app's code sends the action with (code actions).",
        **_ENVIRONMENT,
        **_CREATED,
        **_UPDATED,
    },
    "attribute_classes": {
        "id": "The attribute class's id (the key).",
        "name": "The attribute's name.",
        "description": "What the attribute holds.",
        "type": "The attribute's type.",
        "archived": "Whether the attribute is archived.",
        "key": "The attribute's key (current servers: a contact attribute key).",
        **_ENVIRONMENT,
        **_CREATED,
        **_UPDATED,
    },
    "identified_peoples": {
        "id": "The person's id (the key; current servers: the contact's id, the same value).",
        "userId": "The person's id in the customer's own system (seed generation only).",
        "attributes": "The person's attributes by the customer's own names, as JSON.",
        "workspaceId": "The workspace of the contact (current servers only).",
        **_ENVIRONMENT,
        **_CREATED,
        **_UPDATED,
    },
    "responses": {
        "id": "The response's id (the key).",
        "surveyId": "The survey answered.",
        "finished": "Whether the respondent finished the survey.",
        "createdAt": "When the response was started (UTC); the list is newest first, the sync's cursor.",
        **_UPDATED,
        "data": "The answers by question id, as JSON (values of mixed types).",
        "ttc": "Time to complete each question, in milliseconds by question id, as JSON.",
        "variables": "The survey's variables by the customer's own names, as JSON.",
        "meta.country": "The respondent's country.",
        "meta.userAgent.browser": "The respondent's browser.",
        "meta.userAgent.os": "The respondent's operating system.",
        "meta.userAgent.device": "The respondent's kind of device.",
        "person.id": "The identified person who answered, if any (`identified_peoples.id`).",
        "person.userId": "The identified person's id in the customer's own system.",
        "tags": "The response's tags (the table `responses__tags`).",
        "notes": "Notes on the response (the table `responses__notes`).",
        "notes.id": "A note's id.",
        "notes.text": "A note's text.",
        "notes.createdAt": "When a note was written (UTC).",
    },
    "webhooks": {
        "id": "The webhook's id (the key).",
        "name": "The webhook's name.",
        "url": "Where the webhook posts.",
        "source": "What created the webhook.",
        "triggers": "What the webhook posts on (the table `webhooks__triggers`).",
        "surveyIds": "The surveys the webhook posts for (the table `webhooks__survey_ids`).",
        **_ENVIRONMENT,
        **_CREATED,
        **_UPDATED,
    },
}
