"""gridsvc.prepared sends hot statements prepared, with their placeholders turned into
PostgreSQL's ``$n`` once per process (issue 19: psycopg parsed long statements, such as the
case's INSERT with 107 parameters, again on every request). The same answers as psycopg's own
conversion, and the same refusals for a malformed statement or missing parameters."""

from __future__ import annotations

import pytest
from django.db import connection

from gridsvc import prepared

pytestmark = pytest.mark.django_db


def test_numbered_placeholders() -> None:
    assert prepared.numbered("SELECT %(a)s, %(b)s, %(a)s, '100%%'") == (
        "SELECT $1, $2, $1, '100%'",
        ("a", "b"),
    )
    assert prepared.numbered("SELECT %s, %s") == ("SELECT $1, $2", 2)
    assert prepared.numbered("SELECT 1") == ("SELECT 1", 0)


@pytest.mark.parametrize("sql", ["SELECT %(a)s, %s", "SELECT '5%'", "SELECT %d", "SELECT %(a)d"])
def test_malformed_statements_are_refused(sql: str) -> None:
    with pytest.raises(ValueError):
        prepared.numbered(sql)


def test_rows_as_psycopg_would_answer() -> None:
    sql = "SELECT %(a)s::int + %(b)s::int, %(a)s::int, '100%%', %(t)s::text"
    assert prepared.fetchone(sql, {"a": 1, "b": 2, "t": "x", "unused": 9}) == (3, 1, "100%", "x")
    assert prepared.fetchone("SELECT 7", {"unused": 1}) == (7,)
    assert prepared.fetchall("SELECT %s::int UNION ALL SELECT %s::int ORDER BY 1", [2, 1]) == [
        (1,),
        (2,),
    ]
    names, rows = prepared.fetchall_named("SELECT %(v)s::text AS v", {"v": "中文"})
    assert (names, rows) == (["v"], [("中文",)])
    assert prepared.fetchall_pipelined(
        [("SELECT %(x)s::int", {"x": 5}), ("SELECT %s::int * 2", [4])]
    ) == [[(5,)], [(8,)]]


def test_missing_or_extra_parameters_are_refused() -> None:
    with pytest.raises(TypeError, match="'b' missing"):
        prepared.fetchone("SELECT %(a)s::int, %(b)s::int", {"a": 1})
    with pytest.raises(TypeError, match="2 placeholders, 1 parameters"):
        prepared.fetchone("SELECT %s::int, %s::int", [1])
    with pytest.raises(TypeError, match="dict"):
        prepared.fetchone("SELECT %(a)s::int", [1])


def test_a_long_statement_is_converted_once() -> None:
    """A statement past psycopg's own cache (over 4 kB, over 50 parameters) is converted once
    and then found again; it still runs prepared on the server."""
    names = [f"p{i}" for i in range(120)]
    sql = "SELECT " + " + ".join(f"%({n})s::int" for n in names) + " -- " + "x" * 4200
    params = {n: 1 for n in names}
    before = prepared.numbered.cache_info()
    assert prepared.fetchone(sql, params) == (120,)
    assert prepared.fetchone(sql, params) == (120,)
    after = prepared.numbered.cache_info()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits >= 1
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            ["SELECT $1::int + $2::int%"],
        )
        assert cur.fetchone()[0] >= 1
