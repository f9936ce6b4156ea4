"""What the audience API's fields mean: the descriptions of their columns in the Dagster UI.

From the seed's documented schemas (people: id, email, first and last name, created and updated at;
accounts: account id, name, created at) and the API's public description. Keyed by resource, then by
the field's name on the wire (camelCase): the loader finds each field's column through the
warehouse's naming convention (`firstName` -> `first_name`). A field of a nested object is named with
dots (`companyInfo.domain`, the column `company_info__domain`); a list's fields likewise (`fields.name`),
though they land in a table of their own, whose columns are not described.

These are also the fields `ANALYTICS_HASHED_FIELDS` and `ANALYTICS_EXCLUDED_FIELDS` may name
(`personal_data.py`): a field the API serves that is missing here cannot be hashed or excluded until
it is described.
"""

from __future__ import annotations

from collections.abc import Mapping

_PERSON: Mapping[str, str] = {
    "id": "The person's id, a UUID (the key).",
    "email": "The person's email address.",
    "firstName": "The person's first name.",
    "lastName": "The person's last name.",
    "name": "The person's full name.",
    "userId": "The person's id in the customer's own system.",
    "createdAt": "When the person was created (UTC).",
    "updatedAt": "When the person last changed (UTC); the sync's cursor: unchanged people are not rewritten.",
    "lastActivity": "When the person was last active (UTC).",
    "leadScore": "The person's lead score (a number).",
    "isEmailDisposable": "Whether the email address is a disposable one.",
    "tags": "The person's tags, comma-separated (`trial,vip`); an empty string when none.",
    "plan": "The person's plan (a custom people field, listed by `fields`).",
    "company": "The person's company (a custom people field, listed by `fields`).",
}

COLUMNS: Mapping[str, Mapping[str, str]] = {
    "schemas": {
        "name": "The custom object schema's name (the key).",
        "displayNameSingular": "What one object of the schema is called in the app.",
        "displayNamePlural": "What several objects of the schema are called in the app.",
        "fields": "The schema's fields (the table `schemas__fields`).",
        "fields.name": "A field's name.",
        "fields.type": "A field's type.",
        "fields.title": "A field's title in the app.",
        "associations": "The schema's associations with other objects (the table `schemas__associations`).",
        "associations.name": "An association's name.",
        "associations.objectName": "The object an association links to.",
        "associations.type": "An association's kind (manyToMany, manyToOne...).",
    },
    "peoples": _PERSON,
    "accounts": {
        "accountId": "The account's id, a number (the key).",
        "name": "The account's name.",
        "createdAt": "When the account was created (UTC).",
        "status": "The account's status.",
        "timezone": "The account's time zone.",
        "peopleCount": "How many people the account holds.",
        "site": "The account's website.",
        "industry": "The account's industry.",
        "hasStripeAPIKey": "Whether the account connected Stripe (a flag: the key itself is never loaded).",
        "companyInfo.domain": "The account's company domain.",
        "companyInfo.crm.provider": "The CRM the account connected.",
        "integrations": "The account's integrations (the table `accounts__integrations`).",
        "integrations.provider": "An integration's provider.",
        "integrations.connected": "Whether an integration is connected.",
    },
    "account_tags": {
        "tag": "The tag's name (the key).",
        "createdAt": "When the tag was created (UTC).",
        "color": "The tag's color in the app.",
        "description": "What the tag is for.",
        "count": "How many people carry the tag.",
    },
    "segments": {
        "id": "The segment's id, a number (the key).",
        "name": "The segment's name.",
        "objectName": "The kind of object the segment selects.",
        "accountId": "The account the segment belongs to.",
        "version": "The segment definition's version.",
        "readOnly": "Whether the segment can be edited in the app.",
        "autoSegment": "Whether the app made the segment itself.",
        "conditions": "The segment's condition tree, as JSON (arbitrarily deep).",
    },
    "fields": {
        "name": "The people field's name (the key).",
        "title": "The field's title in the app.",
        "type": "The field's type: string, number, boolean, integer or any.",
        "format": "The field's format, if any.",
        "readOnly": "Whether the field can be edited.",
        "array": "Whether the field holds a list of values.",
        "enum": "The values the field allows, if it lists them (the table `fields__enum`).",
    },
    "segment_people": {
        "segment_id": "The segment's id (part of the key, with `id`): one row per membership.",
        **_PERSON,
        "id": "The person's id, a UUID (part of the key, with `segment_id`).",
    },
}
