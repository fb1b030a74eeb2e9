"""Case rules 案件规则, one module per concern:

- :mod:`.routing` — where a report goes (locate the place, starting level from the category
  and flag rules, walk the 五位一体 chain to the first active holder, the reason);
- :mod:`.reporting` — :func:`report_case` stores and routes a report, with nearby duplicates;
- :mod:`.actions` — the workflow table: each action's allowed states, who may take it and its
  handler; :mod:`.workflow` — :func:`act` applies one (row lock, version check → 412, 409
  with the allowed actions, one event);
- :mod:`.permissions` — managers, the levels above, the handler;
- :mod:`.deadlines` — time limits on the working-time clock, the follow-up 回访;
- :mod:`.clock` — the worker's yellow/red cards, escalation and recomputed deadlines;
- :mod:`.requests` — extension 延时, hold 挂账, void 作废 decided by the level above;
- :mod:`.events` — the timeline and the inbox; :mod:`.queue` — the street's dispatch queue;
- :mod:`.errors` — what the API answers 400/403/409/412.

This package exports only the names other modules use (the API, the worker tasks, the visit
ingest, the demo fixtures, benchmarks and tests); anything else is imported from its module.
"""

from __future__ import annotations

from gridsvc.cases.models import OPEN_STATUSES

from .actions import ACTIONS, Action
from .clock import apply_clock, due_for_clock, recompute_open_deadlines
from .deadlines import compute_deadline, time_limit
from .errors import CaseError, IllegalTransition, NotAllowed, StaleVersion
from .events import inbox, level_above_members, record
from .permissions import can_handle, can_manage, is_above
from .queue import dispatch_queue
from .reporting import FLAGS, Report, find_duplicates, report_case
from .requests import decide_request, request_exception
from .routing import Routing, route
from .workflow import act, allowed_actions

__all__ = [
    "ACTIONS",
    "FLAGS",
    "OPEN_STATUSES",
    "Action",
    "CaseError",
    "IllegalTransition",
    "NotAllowed",
    "Report",
    "Routing",
    "StaleVersion",
    "act",
    "allowed_actions",
    "apply_clock",
    "can_handle",
    "can_manage",
    "compute_deadline",
    "decide_request",
    "dispatch_queue",
    "due_for_clock",
    "find_duplicates",
    "inbox",
    "is_above",
    "level_above_members",
    "recompute_open_deadlines",
    "record",
    "report_case",
    "request_exception",
    "route",
    "time_limit",
]
