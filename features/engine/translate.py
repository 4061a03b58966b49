"""The one place where the builders' SQL (DuckDB dialect) becomes another engine's SQL.

SQLGlot transpiles each statement (`read="duckdb"`); on top of that, constructs that
translate without an error but break or change results are rewritten here, each measured
on a snapshot build (issue #15):

- `EXTRACT(EPOCH FROM a - b)` (fractional seconds between two timestamps): Spark has no
  EPOCH field (INVALID_EXTRACT_FIELD) -> `UNIX_MICROS(a) - UNIX_MICROS(b)` over 1e6;
  Snowflake cannot subtract timestamps -> `DATEDIFF(MICROSECOND, b, a)` over 1e6.
- `PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY x)`: SQLGlot writes Spark's
  PERCENTILE_APPROX (resolution hours off by up to 54 h) -> the exact `PERCENTILE(x, q)`,
  which interpolates linearly like PERCENTILE_CONT.
- Decimal literals (`30.0`, `86400.0`): DuckDB folds them into DOUBLE arithmetic, Spark
  and Snowflake keep DECIMAL and round intermediate results (ratios off by up to 6e-5)
  -> `CAST(30.0 AS DOUBLE)` everywhere.
- `TIMESTAMP 'infinity'` (validation's open-ended periods): no such value in Spark ->
  the largest timestamp Spark holds.
- `isfinite(x)` (validation's number parsing): not a Spark function -> `NOT ISNAN(x) AND
  ABS(x) <> Infinity`.

`KNOWN_BAD` lists, per dialect, the constructs that must not survive a translation;
`problems` finds them in translated SQL, and tests/test_engine_translate.py fails on any
of them for every statement of a snapshot build.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import sqlglot
from sqlglot import exp

SOURCE_DIALECT = "duckdb"
SPARK_DIALECTS = ("spark", "databricks")
DIALECTS = ("spark", "databricks", "snowflake", "postgres")
# Spark's TIMESTAMP range ends here; DuckDB's 'infinity' only means "never ends".
_SPARK_MAX_TIMESTAMP = "9999-12-31 23:59:59.999999"


def translate(sql: str, dialect: str = "spark") -> str:
    """One DuckDB-dialect statement in `dialect`, with the rewrites above applied."""
    return _translate(sql, dialect)


@lru_cache(maxsize=4096)
def _translate(sql: str, dialect: str) -> str:
    # The builders issue the same statements for every partition: translate each once.
    tree = sqlglot.parse_one(sql, read=SOURCE_DIALECT)
    # One pass per rewrite: a replaced node is not visited again within its pass, so a
    # percentile over an epoch difference needs the epoch rewritten first.
    for rewrite in (_rewrite_functions, _rewrite_percentile, _rewrite_literals):
        tree = tree.transform(lambda node, rewrite=rewrite: rewrite(node, dialect))
    return tree.sql(dialect=dialect)


def _rewrite_percentile(node: exp.Expression, dialect: str) -> exp.Expression:
    if isinstance(node, exp.WithinGroup) and isinstance(node.this, exp.PercentileCont):
        if dialect in SPARK_DIALECTS:
            order = node.expression
            value = order.expressions[0].this if isinstance(order, exp.Order) else order
            return exp.Anonymous(
                this="PERCENTILE", expressions=[value.copy(), _double(node.this.this.copy())]
            )
    return node


def _rewrite_literals(node: exp.Expression, dialect: str) -> exp.Expression:
    if _is_decimal_literal(node) and not _is_double_cast(node.parent):
        return _double(node.copy())
    return node


def _rewrite_functions(node: exp.Expression, dialect: str) -> exp.Expression:
    if isinstance(node, exp.Extract) and _is_epoch(node):
        return _epoch_seconds(node.expression, dialect) or node
    if dialect in SPARK_DIALECTS and isinstance(node, exp.Cast) and _is_infinity(node):
        return exp.cast(exp.Literal.string(_SPARK_MAX_TIMESTAMP), exp.DataType.build("TIMESTAMP"))
    if (
        dialect in SPARK_DIALECTS
        and isinstance(node, exp.Anonymous)
        and node.name.lower() == "isfinite"
    ):
        x = node.expressions[0]
        infinity = exp.cast(exp.Literal.string("Infinity"), exp.DataType.build("DOUBLE"))
        return exp.paren(
            exp.and_(
                exp.not_(exp.Anonymous(this="ISNAN", expressions=[x.copy()])),
                exp.NEQ(this=exp.Abs(this=x.copy()), expression=infinity),
            )
        )
    return node


def _is_epoch(node: exp.Extract) -> bool:
    return node.this.name.upper() == "EPOCH"


def _epoch_seconds(interval: exp.Expression, dialect: str) -> exp.Expression | None:
    """Seconds of `a - b` (two timestamps) without EXTRACT(EPOCH ...), or None to keep it."""
    inner = interval.unnest()
    if not isinstance(inner, exp.Sub) or dialect not in (*SPARK_DIALECTS, "snowflake"):
        return None
    later, earlier = inner.this.copy(), inner.expression.copy()
    if dialect == "snowflake":
        micros: exp.Expression = exp.Anonymous(
            this="DATEDIFF", expressions=[exp.var("MICROSECOND"), earlier, later]
        )
    else:
        micros = exp.Sub(
            this=exp.Anonymous(this="UNIX_MICROS", expressions=[later]),
            expression=exp.Anonymous(this="UNIX_MICROS", expressions=[earlier]),
        )
    return exp.paren(exp.Div(this=_double(micros), expression=_double(exp.Literal.number(1e6))))


def _double(value: exp.Expression) -> exp.Expression:
    return exp.Cast(this=value, to=exp.DataType.build("DOUBLE"))


def _is_decimal_literal(node: exp.Expression) -> bool:
    if not isinstance(node, exp.Literal) or node.is_string:
        return False
    text = str(node.this).lower()
    return "." in text or "e" in text


def _is_double_cast(node: object) -> bool:
    return isinstance(node, exp.Cast) and node.to.this in (
        exp.DataType.Type.DOUBLE,
        exp.DataType.Type.FLOAT,
    )


def _is_infinity(node: exp.Cast) -> bool:
    return (
        isinstance(node.this, exp.Literal)
        and node.this.is_string
        and str(node.this.this).lower() == "infinity"
        and node.to.is_type("timestamp", "timestampntz", "timestamptz")
    )


@dataclass(frozen=True)
class BadConstruct:
    """A construct that translates without error but breaks or changes results."""

    name: str
    dialects: tuple[str, ...]
    found: Callable[[exp.Expression], bool]
    why: str


def _extract_epoch(node: exp.Expression) -> bool:
    return isinstance(node, exp.Extract) and _is_epoch(node)


def _epoch_of_difference(node: exp.Expression) -> bool:
    return _extract_epoch(node) and isinstance(node.expression.unnest(), exp.Sub)


def _approx_percentile(node: exp.Expression) -> bool:
    return isinstance(node, exp.ApproxQuantile | exp.PercentileDisc) or (
        isinstance(node, exp.Anonymous) and node.name.lower() == "percentile_approx"
    )


def _bare_decimal(node: exp.Expression) -> bool:
    return _is_decimal_literal(node) and not _is_double_cast(node.parent)


def _infinity(node: exp.Expression) -> bool:
    return isinstance(node, exp.Cast) and _is_infinity(node)


def _greatest_with_nulls(node: exp.Expression) -> bool:
    # Snowflake's GREATEST/LEAST return NULL when any argument is NULL (DuckDB skips NULLs)
    return isinstance(node, exp.Greatest | exp.Least) and not node.args.get("ignore_nulls")


def _named(name: str) -> Callable[[exp.Expression], bool]:
    return lambda node: isinstance(node, exp.Anonymous) and node.name.lower() == name


KNOWN_BAD: tuple[BadConstruct, ...] = (
    BadConstruct(
        "EXTRACT(EPOCH ...)",
        SPARK_DIALECTS,
        _extract_epoch,
        "Spark has no EPOCH field (INVALID_EXTRACT_FIELD)",
    ),
    BadConstruct(
        "EXTRACT(EPOCH FROM timestamp - timestamp)",
        ("snowflake",),
        _epoch_of_difference,
        "Snowflake cannot subtract two timestamps",
    ),
    BadConstruct(
        "approximate percentile",
        DIALECTS,
        _approx_percentile,
        "an approximate or discrete median instead of PERCENTILE_CONT's exact one",
    ),
    BadConstruct(
        "decimal literal",
        (*SPARK_DIALECTS, "snowflake"),
        _bare_decimal,
        "DECIMAL arithmetic rounds intermediate results where DuckDB computes in DOUBLE",
    ),
    BadConstruct(
        "TIMESTAMP 'infinity'", SPARK_DIALECTS, _infinity, "Spark has no infinite timestamp"
    ),
    BadConstruct(
        "GREATEST/LEAST with NULLs",
        ("snowflake",),
        _greatest_with_nulls,
        "NULL when any argument is NULL; DuckDB ignores NULL arguments",
    ),
    BadConstruct("isfinite", SPARK_DIALECTS, _named("isfinite"), "not a Spark function"),
)


def problems(translated: str, dialect: str) -> list[str]:
    """Known-bad constructs found in a statement already translated to `dialect`."""
    tree = sqlglot.parse_one(translated, read=dialect)
    found = []
    for bad in KNOWN_BAD:
        if dialect in bad.dialects and any(bad.found(node) for node in tree.walk()):  # type: ignore[arg-type]
            found.append(f"{bad.name}: {bad.why}")
    return found
