"""A write's Idempotency-Key answer travels with its transaction's COMMIT (issue 19: one
round trip fewer for every write; gridsvc.prepared.fetchone_then_commit). Transactional tests:
the request's atomic block is the connection's only one, as when served. What a client sees
is unchanged — the work and its stored answer commit together or not at all, a retry replays
the first answer — and a COMMIT that fails leaves nothing behind, so the retry runs again."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from gridsvc import prepared
from gridsvc.cases.models import Case
from gridsvc.sync.models import IdempotencyRecord
from gridsvc.visits.models import VisitTask

pytestmark = pytest.mark.django_db(transaction=True)


def _body(title: str) -> str:
    task = VisitTask.objects.filter(assigned_member__username="grid1").order_by("id").first()
    return json.dumps({"category": "hazard.fire", "title": title, "household": task.household_id})


def _other_connection() -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        dbname=db["NAME"], user=db["USER"], password=db["PASSWORD"], host=db["HOST"],
        port=db["PORT"], autocommit=True,
    )  # fmt: skip


def test_the_answer_is_committed_with_the_work_and_replayed(committed_demo, token_client) -> None:
    client, key = token_client("grid1"), str(uuid.uuid4())
    body = _body("提交时一并保存")
    with CaptureQueriesContext(connection) as ctx:
        first = client.post(
            "/api/v1/cases/", body, content_type="application/json",
            headers={"Idempotency-Key": key},
        )  # fmt: skip
    assert first.status_code == 201, first.content
    labels = [
        q["sql"].split("*/")[0] for q in ctx.captured_queries if "idempotencyrecord" in q["sql"]
    ]
    assert labels[-1] == "/* prepared, with COMMIT "
    # committed: another session sees the case and the stored answer
    with _other_connection() as other:
        (cases,) = other.execute(
            "SELECT count(*) FROM cases_case WHERE title = %s", ["提交时一并保存"]
        ).fetchone()
        (status,) = other.execute(
            "SELECT status FROM sync_idempotencyrecord WHERE key = %s", [key]
        ).fetchone()
    assert (cases, status) == (1, 201)
    again = client.post(
        "/api/v1/cases/", body, content_type="application/json", headers={"Idempotency-Key": key}
    )
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert Case.objects.filter(title="提交时一并保存").count() == 1


def test_a_commit_that_fails_leaves_neither_the_work_nor_the_answer(
    committed_demo, token_client
) -> None:
    """A deferred constraint fails at COMMIT: the request fails, no case and no stored answer
    remain, and the retry with the same key runs (it is not replayed, not held at 409)."""
    client, key = token_client("grid1"), str(uuid.uuid4())
    body = _body("提交失败")
    with connection.cursor() as cur:
        cur.execute(
            """CREATE FUNCTION test_refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'refused at commit'; END $$;
            CREATE CONSTRAINT TRIGGER test_refuse_at_commit AFTER INSERT ON cases_case
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
            WHEN (NEW.title = '提交失败') EXECUTE FUNCTION test_refuse_at_commit()"""
        )
    try:
        client.raise_request_exception = False
        failed = client.post(
            "/api/v1/cases/", body, content_type="application/json",
            headers={"Idempotency-Key": key},
        )  # fmt: skip
        assert failed.status_code >= 500
        assert not Case.objects.filter(title="提交失败").exists()
        assert not IdempotencyRecord.objects.filter(key=key).exists()
    finally:
        with connection.cursor() as cur:
            cur.execute(
                "DROP TRIGGER test_refuse_at_commit ON cases_case;"
                " DROP FUNCTION test_refuse_at_commit()"
            )
    retried = client.post(
        "/api/v1/cases/", body, content_type="application/json", headers={"Idempotency-Key": key}
    )
    assert retried.status_code == 201, retried.content
    assert "Idempotent-Replayed" not in retried
    assert Case.objects.filter(title="提交失败").count() == 1


def test_only_the_outermost_block_commits_and_its_hooks_run_once(committed_demo) -> None:
    sql = "UPDATE sync_idempotencyrecord SET status = status WHERE id = %(id)s RETURNING %(id)s"
    ran: list[str] = []
    # nested in another block: the statement runs, nothing is committed
    with pytest.raises(RuntimeError), transaction.atomic():
        with transaction.atomic():
            with connection.cursor() as cur:
                cur.execute("CREATE TABLE test_commit_marks (x int)")
            assert prepared.fetchone_then_commit(sql, {"id": -1}) is None
        raise RuntimeError("the outer block rolls back")
    with connection.cursor() as cur:
        cur.execute("SELECT to_regclass('test_commit_marks')")
        assert cur.fetchone() == (None,)
    # the only block: committed with the statement, its on-commit hook runs once after
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute(
                "CREATE TABLE test_commit_marks (x int); INSERT INTO test_commit_marks VALUES (1)"
            )
        transaction.on_commit(lambda: ran.append("hook"))
        with CaptureQueriesContext(connection) as ctx:
            assert prepared.fetchone_then_commit(sql, {"id": -1}) is None
        assert ctx.captured_queries[-1]["sql"].startswith("/* prepared, with COMMIT */")
        with _other_connection() as other:  # committed already, before the block ends
            assert other.execute("SELECT x FROM test_commit_marks").fetchall() == [(1,)]
        assert ran == []
    assert ran == ["hook"]
    with connection.cursor() as cur:
        cur.execute("DROP TABLE test_commit_marks")
