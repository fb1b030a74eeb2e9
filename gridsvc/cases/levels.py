"""Chain levels the case rules name by role, for whoever must speak of them without the case
services: the level a 五员 调处员 handles a dispute at (:data:`MEDIATOR_LEVEL`) is read by the
routing and the workflow (gridsvc.cases.services) and counted by the community's figures
(:func:`gridsvc.community.services.disputes_to_mediator`)."""

from __future__ import annotations

from gridsvc.chain.models import PositionType

#: the chain level a 调处员 handles a dispute at (社区调委会)
MEDIATOR_LEVEL: str = PositionType.MEDIATION_COMMITTEE.value
