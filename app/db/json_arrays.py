"""The elements of a JSON array column as rows, in SQL, on SQLite and PostgreSQL alike.

Predictions keep their members and tracks as JSON lists; filters and the success metric expand
them inside the statement. The two databases name that expansion differently, so it is one
construct compiled per dialect rather than a branch in every query.
"""
from __future__ import annotations

from sqlalchemy import JSON, String, cast, func
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class json_elements(FunctionElement):  # noqa: N801 - used like SQLAlchemy's func.* names
    """``json_elements(column)``: one row per element of the JSON array, as text. Use it as
    ``json_elements(col).table_valued("value", joins_implicitly=True)`` in a FROM list after
    the table that holds ``col``."""

    name = "json_elements"
    type = String()
    inherit_cache = True


@compiles(json_elements, "sqlite")
def _sqlite(element, compiler, **kw):
    return compiler.process(func.json_each(*element.clauses), **kw)


@compiles(json_elements, "postgresql")
def _postgresql(element, compiler, **kw):
    (column,) = element.clauses
    return compiler.process(func.json_array_elements_text(cast(column, JSON)), **kw)


@compiles(json_elements)
def _other(element, compiler, **kw):
    raise CompileError(f"JSON arrays are expanded on SQLite and PostgreSQL, not "
                       f"{compiler.dialect.name}")


def json_rows(column):
    """The FROM item for ``column``'s elements; its one column is ``.c.value`` (text)."""
    return json_elements(column).table_valued("value", joins_implicitly=True)
