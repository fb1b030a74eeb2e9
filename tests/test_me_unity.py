"""/me/ names the caller's own team memberships (``unity_memberships``): the field app shows
the 五员一日一报 only to a 五员 member and names a membership when it records service hours."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from gridsvc.accounts.models import Member
from gridsvc.community.models import TeamMembership

pytestmark = pytest.mark.django_db


def test_a_five_member_sees_their_memberships(demo, member_client):
    me = member_client("cadre1").get("/api/v1/me/").json()
    held = TeamMembership.objects.get(member__username="cadre1", team="five_members")
    (five,) = [m for m in me["unity_memberships"] if m["five_members"]]
    others = TeamMembership.objects.filter(member__username="cadre1").exclude(pk=held.pk)
    assert {m["id"] for m in me["unity_memberships"]} - {held.pk} == set(
        others.filter(valid_to__isnull=True).values_list("pk", flat=True)
    )
    assert five["id"] == held.pk
    assert (five["team"], five["five_members"], five["role"], five["role_name"]) == (
        "five_members",
        True,
        "publicity",
        "宣传员",
    )
    assert five["community"] == demo.community.pk
    assert five["community_name"] == demo.community.name
    assert five["on_leave"] is False and five["valid_to"] is None


def test_a_member_of_no_team_sees_an_empty_list(demo, member_client):
    me = member_client("bh-001").get("/api/v1/me/").json()
    assert me["username"] == "bh-001" and me["unity_memberships"] == []
    # grid1 is one of the 一格十员, not a 五员: listed, and no 五员一日一报 for them
    grid1 = member_client("grid1").get("/api/v1/me/").json()["unity_memberships"]
    assert [(m["team"], m["five_members"]) for m in grid1] == [("grid_ten", False)]


def test_only_the_callers_own_memberships_running_today(demo, member_client):
    """Another member's membership is not listed; an ended one neither; a volunteer team's is,
    and is not a 五员 one."""
    grid1 = Member.objects.get(username="grid1")
    today = timezone.localdate()
    where = {"street": demo.street, "community": demo.community, "recorded_by": grid1}
    ended = TeamMembership.objects.create(
        team="five_members",
        role="information",
        member=grid1,
        valid_from=today - timedelta(days=30),
        valid_to=today - timedelta(days=1),
        **where,
    )
    volunteer = TeamMembership.objects.create(
        team="volunteers", role="敲门员", member=grid1, valid_from=today, **where
    )
    me = member_client("grid1").get("/api/v1/me/").json()
    listed = {
        (m["id"], m["team"], m["five_members"], m["role_name"]) for m in me["unity_memberships"]
    }
    assert (volunteer.pk, "volunteers", False, "敲门员") in listed
    assert {m[1] for m in listed} == {"grid_ten", "volunteers"}
    assert ended.pk not in {m["id"] for m in me["unity_memberships"]}
    cadre1 = member_client("cadre1").get("/api/v1/me/").json()
    assert volunteer.pk not in {m["id"] for m in cadre1["unity_memberships"]}
