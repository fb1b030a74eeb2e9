"""The field app (0.7.1) follows the server on the two community gaps closed with
tests/test_community_attacks.py: a 五员 调处员 on leave is offered no 调处 card (the server's
``may_mediate`` refuses them, as routing passes them over), and a sync no longer downloads
``community/campaigns/`` (each campaign return names its campaign and period): a phone whose
stored copy is from 0.7.0 (returns without names, the campaigns it kept then) still names its
returns until its next sync, which drops the old campaigns."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.browser import ARTIFACTS
from tests.test_field_app import field_phone, grid1_post, sync_now  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser]


def _meta(page, key: str):  # type: ignore[no-untyped-def]
    return page.evaluate("(key) => window.gridsvcField.db.get('meta', key)", key)


def test_field_app_hides_mediation_from_a_mediator_on_leave(field_phone):  # noqa: F811
    """grid1, given a 五员 调处员 membership, sees the 调处 card; on leave (请假) and synced,
    the card is gone; back (销假) and synced, it is there again."""
    from gridsvc.community.models import TeamMembership
    from gridsvc.visits.services import local_today

    post = grid1_post()
    grid = post.grid
    context, page, errors = field_phone.open()
    try:
        membership = TeamMembership.objects.create(
            team="five_members",
            role="mediator",
            member=post.member,
            recorded_by=post.member,
            street_id=grid.community.street_id,
            community=grid.community,
            grid=grid,
            valid_from=local_today() - timedelta(days=10),
        )
        field_phone.sign_in(page)
        page.locator("#mediation-card").wait_for()
        membership.on_leave = True
        membership.save(update_fields=["on_leave"])
        sync_now(page)
        assert page.locator("#mediation-card").is_hidden()
        kept = {m["id"]: m for m in _meta(page, "me")["unity_memberships"]}
        assert kept[membership.pk]["on_leave"] is True
        membership.on_leave = False
        membership.save(update_fields=["on_leave"])
        sync_now(page)
        page.locator("#mediation-card").wait_for()
        assert errors == []
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "field-mediator-leave-failure.png"))
        raise


def test_field_app_syncs_without_the_campaigns_list(field_phone):  # noqa: F811
    """No sync asks for community/campaigns/; the return is named from its own fields. A
    copy kept by 0.7.0 (a return without campaign_name, the campaigns kept beside it) names
    the return from those campaigns until the next sync replaces the returns and drops them."""
    from gridsvc.accounts.models import Member
    from gridsvc.community import services
    from gridsvc.community.models import CampaignReturn
    from gridsvc.visits.services import local_today

    post = grid1_post()
    today = local_today()
    campaign, _ = services.start_campaign(
        Member.objects.get(username="street"),
        {
            "kind": "disputes",
            "name": "冬季矛盾纠纷排查化解月",
            "start": today,
            "end": today + timedelta(days=30),
            "community": post.grid.community_id,
        },
    )
    ret = CampaignReturn.objects.get(campaign=campaign, grid=post.grid)
    context, page, errors = field_phone.open()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/community/campaigns/" in r.url else None)
    try:
        field_phone.sign_in(page)
        page.locator("#campaign-card").wait_for()
        assert asked == []
        assert _meta(page, "campaigns") is None
        label = page.locator(f"#campaign-return option[value='{ret.pk}']").text_content()
        assert campaign.name in label

        # what 0.7.0 kept: returns without their campaign's name, and campaigns/ beside them
        page.evaluate(
            """async ([id, name, start, end]) => {
                const db = window.gridsvcField.db;
                const rows = (await db.get('meta', 'campaignReturns')).map((r) => {
                    const old = { ...r };
                    delete old.campaign_name; delete old.campaign_start; delete old.campaign_end;
                    return old;
                });
                await db.put('meta', rows, 'campaignReturns');
                await db.put('meta', [{ id, name: name + '(旧)', start, end }], 'campaigns');
            }""",
            [campaign.pk, campaign.name, str(campaign.start), str(campaign.end)],
        )
        context.set_offline(True)
        page.wait_for_function("() => document.querySelector('#net').textContent === '离线'")
        page.reload()
        page.locator("#campaign-card").wait_for()
        label = page.locator(f"#campaign-return option[value='{ret.pk}']").text_content()
        assert f"{campaign.name}(旧)" in label

        context.set_offline(False)
        sync_now(page)
        label = page.locator(f"#campaign-return option[value='{ret.pk}']").text_content()
        assert campaign.name in label and "(旧)" not in label
        assert _meta(page, "campaigns") is None
        assert asked == []
        assert errors == []
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "field-campaigns-list-failure.png"))
        raise
