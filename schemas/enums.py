"""The enumerations of the event contract (docs/contract.md), defined once.

The wire models (``schemas.events``), the fast decode path (``worker.decode.fast``),
the ORM and its PostgreSQL enum types (``worker.db.models``: ``action_type_enum``
and ``action_status_enum``) and the demo data all take their values from here.
Only the standard library is imported: a producer that installs ``schemas`` gets
no database layer with it.

The class docstrings are exported as the enums' descriptions in the JSON Schema
files: changing one changes the files (``log-ingest schemas export schemas/``).
"""

from __future__ import annotations

import enum


class ActionType(enum.StrEnum):
    """What an adapter service did; values and order are part of the contract."""

    CRM_CREATE = "crm_create"
    CRM_UPDATE = "crm_update"
    CRM_DELETE = "crm_delete"
    CRM_GET = "crm_get"
    CRM_LIST = "crm_list"
    CRM_SEARCH = "crm_search"
    HELPDESK_CREATE_TICKET = "helpdesk_create_ticket"
    HELPDESK_UPDATE_TICKET = "helpdesk_update_ticket"
    HELPDESK_GET_TICKET = "helpdesk_get_ticket"
    HELPDESK_LIST_TICKETS = "helpdesk_list_tickets"
    HELPDESK_ADD_COMMENT = "helpdesk_add_comment"
    CALENDAR_CREATE_EVENT = "calendar_create_event"
    CALENDAR_UPDATE_EVENT = "calendar_update_event"
    CALENDAR_DELETE_EVENT = "calendar_delete_event"
    CALENDAR_GET_EVENT = "calendar_get_event"
    CALENDAR_LIST_EVENTS = "calendar_list_events"
    EMAIL_SEND = "email_send"
    EMAIL_GET = "email_get"
    EMAIL_LIST = "email_list"
    EMAIL_SEARCH = "email_search"
    KNOWLEDGE_STORE = "knowledge_store"
    KNOWLEDGE_SEARCH = "knowledge_search"
    KNOWLEDGE_GET = "knowledge_get"
    KNOWLEDGE_DELETE = "knowledge_delete"


class ActionStatus(enum.StrEnum):
    """Where an action is in its lifecycle."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    RETRY = "retry"
