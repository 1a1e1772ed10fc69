"""Business logic speaks SQL through SQLAlchemy Core, never through strings it assembles: no
module under app/ passes an f-string, a concatenation or a ``.format`` to ``text()`` or an
``execute``, writes SQL in an f-string, or imports ``sqlalchemy.text``, except the few listed
below with their reason. Migrations (outside app/) are left alone. And the admin's arm weights
are read from the form in one place."""
from __future__ import annotations

import ast
import re

from tests.support.paths import ROOT

SQL_CALLS = {"text", "execute", "executemany", "executescript", "exec_driver_sql"}
SQL_WORDS = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|WHERE|JOIN|PRAGMA|CREATE|DROP)\b")

# path -> {rule: why}
ALLOWED = {
    "app/__init__.py": {
        "dynamic-sql": "PRAGMA busy_timeout on each new SQLite connection: a PRAGMA takes no "
                       "bound parameter, and the value is an int() of the setting",
        "sql-fstring": "the same PRAGMA",
    },
    "app/data/importer/write.py": {
        "dynamic-sql": "PRAGMA cache_size around a bulk import: no bound parameter for a "
                       "PRAGMA; the values are an int() and a module constant",
        "sql-fstring": "the same PRAGMA",
    },
    "app/db/experiments.py": {
        "sqlalchemy-text": "the partial unique index's predicate (active) in the table "
                           "definition",
    },
}


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str))


def _assembled(node: ast.AST) -> bool:
    """A string built at run time: an f-string, ``+``/``%`` with a string, ``"...".format``."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return any(_is_str(n) or _assembled(n) for n in (node.left, node.right))
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format" and _is_str(node.func.value))


def _name(func: ast.AST) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def violations(source: str) -> list[tuple[str, int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _name(node.func) in SQL_CALLS and node.args \
                and _assembled(node.args[0]):
            found.append(("dynamic-sql", node.lineno, f"{_name(node.func)}() of a built string"))
        elif isinstance(node, ast.JoinedStr):
            literal = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            if SQL_WORDS.search(literal):
                found.append(("sql-fstring", node.lineno, literal.strip()[:60]))
        elif isinstance(node, ast.ImportFrom) and node.module == "sqlalchemy" \
                and any(a.name == "text" for a in node.names):
            found.append(("sqlalchemy-text", node.lineno, "from sqlalchemy import text"))
    return found


def test_no_sql_is_assembled_from_strings_under_app():
    bad = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for rule, line, what in violations(path.read_text(encoding="utf-8")):
            if rule not in ALLOWED.get(rel, {}):
                bad.append(f"{rel}:{line} {rule}: {what}")
    assert not bad, "\n".join(bad)


def test_the_check_sees_the_forms_it_forbids():
    """Each form of assembled SQL is caught (the check itself can fail)."""
    samples = {
        'db.session.execute(text(f"SELECT * FROM t WHERE {w}"))': "dynamic-sql",
        'conn.execute(text(head + " WHERE x = 1"))': "dynamic-sql",
        'conn.execute("DELETE FROM t WHERE id = %s" % key)': "dynamic-sql",
        'cur.execute("UPDATE t SET a = {}".format(v))': "dynamic-sql",
        'sql = f"WITH a AS (SELECT 1) SELECT * FROM a WHERE {where}"': "sql-fstring",
        "from sqlalchemy import select, text": "sqlalchemy-text",
    }
    for source, rule in samples.items():
        assert rule in {r for r, _, _ in violations(source)}, source
    clean = ['db.session.execute(select(t).where(t.c.id == 1))',
             'cur.execute(stmt.sql, params)', 'log.info(f"served {n} playlists")']
    assert not [v for s in clean for v in violations(s)]


def test_the_allowed_exceptions_are_still_needed():
    """An exception whose code is gone is struck from the list, so it cannot hide a new one."""
    for rel, rules in ALLOWED.items():
        seen = {rule for rule, _, _ in violations((ROOT / rel).read_text(encoding="utf-8"))}
        assert set(rules) <= seen, (rel, set(rules) - seen)


def test_arm_weights_are_read_by_the_form_only():
    """``weight-<arm>`` fields are parsed by ``WeightsForm.weights`` and nowhere else."""
    readers = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            parts = [node] if isinstance(node, ast.Constant) else \
                list(node.values) if isinstance(node, ast.JoinedStr) else []
            if any(isinstance(p, ast.Constant) and isinstance(p.value, str)
                   and p.value.startswith("weight-") for p in parts):
                readers.append(path.relative_to(ROOT).as_posix())
    assert set(readers) == {"app/admin/forms.py"}, readers
