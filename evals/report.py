"""Benchmark report rows, the append-only DuckDB history tables, trends and the regression check.

A report row: report_id, created_at, model (name, checkpoint hash, quantization), benchmark, metric,
value, n, code_version, and the 95 % interval (ci_low, ci_high; empty for throughput). Every report is
appended to `benchmark_history` in Warehouse.history_db(), and the per-problem results of its pass-rate rows
(a result dict's "problems", see evals/stats.py) to `benchmark_results` in the same transaction. The
regression check compares one report with the one before it: problem by problem where both have per-problem
results (a paired exact test at level alpha), with absolute thresholds elsewhere.
"""

from __future__ import annotations

import datetime as _dt
import json
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from resources.settings import named_numbers

HISTORY_TABLE = "benchmark_history"
_COLUMNS = (("report_id", "VARCHAR"), ("created_at", "TIMESTAMP"), ("model", "VARCHAR"),
            ("checkpoint_hash", "VARCHAR"), ("quantization", "VARCHAR"), ("benchmark", "VARCHAR"),
            ("metric", "VARCHAR"), ("value", "DOUBLE"), ("n", "INTEGER"), ("code_version", "VARCHAR"),
            ("ci_low", "DOUBLE"), ("ci_high", "DOUBLE"))  # columns added later come last (ALTER TABLE appends)
RESULTS_TABLE = "benchmark_results"
_RESULT_COLUMNS = (("report_id", "VARCHAR"), ("model", "VARCHAR"), ("benchmark", "VARCHAR"), ("metric", "VARCHAR"),
                   ("problem", "VARCHAR"), ("sample", "INTEGER"), ("passed", "BOOLEAN"), ("error_kind", "VARCHAR"))
# metrics where a smaller number is better; every other metric is higher-is-better
LOWER_IS_BETTER = ("loss", "bytes", "wall_s", "latency_s", "bits_per_byte")
Z95 = 1.959963984540054


@dataclass
class ReportRow:
    report_id: str
    created_at: _dt.datetime
    model: str
    checkpoint_hash: str
    quantization: str  # "none", "int8", "nf4"
    benchmark: str
    metric: str
    value: float
    n: int
    code_version: str
    ci_low: float | None = None  # 95 % interval
    ci_high: float | None = None

    def key(self) -> tuple[str, str, str]:
        return (self.model, self.benchmark, self.metric)

    def to_dict(self) -> dict:
        return asdict(self)


def new_report_id() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def code_version(repo_root: str | Path | None = None) -> str:
    """The git commit of the code that produced a report (with "+dirty" for uncommitted changes)."""
    root = str(repo_root or Path(__file__).resolve().parent.parent)
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a rate (95 % by default); (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return max(0.0, min(p, center - half)), min(1.0, max(p, center + half))  # min/max: rounding at p = 0 or 1


def rate_result(benchmark: str, metric: str, value: float, n: int) -> dict:
    """A result row for a rate over n items, with its Wilson interval (value x n successes)."""
    low, high = wilson_interval(value * n, n)
    return {"benchmark": benchmark, "metric": metric, "value": value, "n": n, "ci_low": low, "ci_high": high}


def _optional(value) -> float | None:
    return None if value is None else float(value)


def make_rows(report_id: str, created_at: _dt.datetime, model: str, checkpoint_hash: str, quantization: str,
              results: Iterable[dict], version: str) -> list[ReportRow]:
    """results: [{"benchmark", "metric", "value", "n", "ci_low"?, "ci_high"?, "problems"?}] for one model
    (the per-problem results go to `problem_rows`)."""
    rows = []
    for r in results:
        value = float(r["value"])
        low, high = _optional(r.get("ci_low")), _optional(r.get("ci_high"))
        if value != value or low != low or high != high:  # NaN is no measurement
            raise ValueError(f"{model}/{r['benchmark']}/{r['metric']}: value or interval is NaN")
        if (low is None) != (high is None) or (low is not None and not low <= value <= high):
            raise ValueError(f"{model}/{r['benchmark']}/{r['metric']}: interval [{low}, {high}] does not hold {value}")
        if r.get("problems") and len({p["problem"] for p in r["problems"]}) != int(r["n"]):
            raise ValueError(f"{model}/{r['benchmark']}/{r['metric']}: n = {r['n']} but "
                             f"{len({p['problem'] for p in r['problems']})} problems have results")
        rows.append(ReportRow(report_id, created_at, model, checkpoint_hash, quantization, r["benchmark"],
                              r["metric"], value, int(r["n"]), version, low, high))
    return rows


# --- the DuckDB history ----------------------------------------------------------------------------------
def open_db(db_path: str | Path, wait_s: float = 60.0):
    """A DuckDB connection; DuckDB lets one process hold the file, so a sensor reading while a report is
    being appended (or the reverse) waits for the lock instead of failing."""
    import duckdb

    deadline = time.monotonic() + wait_s
    while True:
        try:
            return duckdb.connect(str(db_path))
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _connect(db_path: str | Path):
    con = open_db(db_path)
    cols = ", ".join(f"{name} {kind}" for name, kind in _COLUMNS)
    con.execute(f"CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} ({cols})")
    for name, kind in _COLUMNS:  # a history written before a column existed gains it (empty for old rows)
        con.execute(f"ALTER TABLE {HISTORY_TABLE} ADD COLUMN IF NOT EXISTS {name} {kind}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {RESULTS_TABLE} ({', '.join(f'{n} {k}' for n, k in _RESULT_COLUMNS)})")
    return con


def problem_rows(report_id: str, model: str, results: Iterable[dict]) -> list[dict]:
    """The `benchmark_results` rows of one model's results: one per entry of each result's "problems"."""
    out = []
    for r in results:
        for p in r.get("problems") or ():
            out.append({"report_id": report_id, "model": model, "benchmark": r["benchmark"], "metric": r["metric"],
                        "problem": str(p["problem"]), "sample": int(p["sample"]), "passed": bool(p["passed"]),
                        "error_kind": "" if p["passed"] else str(p.get("error_kind") or "failed")})
    return out


def append_history(db_path: str | Path, rows: list[ReportRow], problems: list[dict] = ()) -> int:
    """Append one report's rows, and its per-problem results (`problem_rows`) to `benchmark_results`, in a
    single transaction; a report id is never appended twice."""
    if not rows:
        return 0
    ids = {r.report_id for r in rows}
    stray = {p["report_id"] for p in problems} - ids
    if stray:
        raise ValueError(f"per-problem results of reports {sorted(stray)} come without their report rows")
    with _connect(db_path) as con:
        for rid in ids:
            if con.execute(f"SELECT count(*) FROM {HISTORY_TABLE} WHERE report_id = ?", [rid]).fetchone()[0]:
                raise ValueError(f"report {rid} is already in {db_path}")
        con.execute("BEGIN")
        con.executemany(f"INSERT INTO {HISTORY_TABLE} ({', '.join(c for c, _ in _COLUMNS)}) "
                        f"VALUES ({', '.join('?' * len(_COLUMNS))})",
                        [[getattr(r, c) for c, _ in _COLUMNS] for r in rows])
        if problems:
            con.executemany(f"INSERT INTO {RESULTS_TABLE} VALUES ({', '.join('?' * len(_RESULT_COLUMNS))})",
                            [[p[c] for c, _ in _RESULT_COLUMNS] for p in problems])
        con.execute("COMMIT")
    return len(rows)


def load_problems(db_path: str | Path, report_id: str) -> dict[tuple[str, str, str], list[dict]]:
    """(model, benchmark, metric) -> that row's per-problem results in report_id (absent: none stored)."""
    out: dict[tuple[str, str, str], list[dict]] = {}
    with _connect(db_path) as con:
        cur = con.execute(f"SELECT model, benchmark, metric, problem, sample, passed, error_kind FROM {RESULTS_TABLE} "
                          "WHERE report_id = ? ORDER BY model, benchmark, metric, problem, sample", [report_id])
        for model, benchmark, metric, problem, sample, passed, kind in cur.fetchall():
            out.setdefault((model, benchmark, metric), []).append(
                {"problem": problem, "sample": sample, "passed": passed, "error_kind": kind})
    return out


def report_ids(db_path: str | Path) -> list[str]:
    """Report ids, oldest first."""
    with _connect(db_path) as con:
        return [r[0] for r in con.execute(
            f"SELECT report_id FROM {HISTORY_TABLE} GROUP BY report_id ORDER BY min(created_at), report_id").fetchall()]


def reported_checkpoints(db_path: str | Path) -> set[tuple[str, str]]:
    """(model, checkpoint_hash) of every model some report has scored (none when there is no history yet)."""
    if not Path(db_path).exists():
        return set()
    with _connect(db_path) as con:
        rows = con.execute(f"SELECT DISTINCT model, checkpoint_hash FROM {HISTORY_TABLE}").fetchall()
    return {(model, weights) for model, weights in rows}


def load_report(db_path: str | Path, report_id: str) -> list[ReportRow]:
    with _connect(db_path) as con:
        cur = con.execute(f"SELECT {', '.join(c for c, _ in _COLUMNS)} FROM {HISTORY_TABLE} WHERE report_id = ? "
                          "ORDER BY model, benchmark, metric", [report_id])
        return [ReportRow(*row) for row in cur.fetchall()]


def previous_report(db_path: str | Path, report_id: str) -> list[ReportRow]:
    """The rows of the report just before report_id (empty when it is the first)."""
    ids = report_ids(db_path)
    if report_id not in ids or ids.index(report_id) == 0:
        return []
    return load_report(db_path, ids[ids.index(report_id) - 1])


# --- trend and regressions -------------------------------------------------------------------------------
def trend(current: list[ReportRow], previous: list[ReportRow]) -> list[dict]:
    before = {r.key(): r for r in previous}
    out = []
    for r in current:
        p = before.get(r.key())
        out.append({"model": r.model, "benchmark": r.benchmark, "metric": r.metric, "value": r.value, "n": r.n,
                    "previous": None if p is None else p.value,
                    "delta": None if p is None else round(r.value - p.value, 6)})
    return out


def parse_thresholds(spec: str) -> dict[str, float]:
    """"default=0.05,pass@1=0.03,exec_exact_match=0.05" -> {metric: largest allowed worsening}."""
    return {"default": 0.05, **named_numbers(spec, "regression threshold", "metric")}


def _lower_is_better(metric: str) -> bool:
    return any(token in metric for token in LOWER_IS_BETTER)


def is_breakdown(benchmark: str) -> bool:
    """Rows `<benchmark>/<group>` (by language, by difficulty) split a main row's problems."""
    return "/" in benchmark


def regressions(current: list[ReportRow], previous: list[ReportRow], thresholds: dict[str, float],
                ignore_metrics: Iterable[str] = ("tokens_per_s",), *, problems_now: dict | None = None,
                problems_before: dict | None = None, alpha: float = 0.05) -> list[dict]:
    """Metrics significantly worse than in the previous report.

    A row with per-problem results in both reports (problems_now / problems_before, as `load_problems`
    returns them) is compared problem by problem (evals.stats.paired_drop_test): a regression when the
    one-sided p-value is below alpha; the finding names the problems that got worse. Any other row (bits per
    byte, throughput, rows of reports from before per-problem results, rows whose two problem sets do not
    overlap) is a regression when it got worse by more than its absolute threshold. Breakdown rows are left
    to their main row, `ignore_metrics` to no one."""
    from evals.stats import paired_drop_test

    ignored, now, before_problems = set(ignore_metrics), problems_now or {}, problems_before or {}
    before = {r.key(): r for r in previous}
    found = []
    for r in current:
        p = before.get(r.key())
        if p is None or r.metric in ignored or is_breakdown(r.benchmark):
            continue
        base = {"model": r.model, "benchmark": r.benchmark, "metric": r.metric, "previous": p.value, "value": r.value}
        unpaired = False
        if now.get(r.key()) and before_problems.get(r.key()):
            t = paired_drop_test(before_problems[r.key()], now[r.key()])
            if t["paired"]:
                if t["p_value"] < alpha:
                    found.append({**base, "test": "paired", "p_value": t["p_value"], "alpha": alpha,
                                  "paired_problems": t["paired"], "worse": len(t["worse"]),
                                  "better": len(t["better"]), "worse_problems": t["worse"]})
                continue
            unpaired = True  # no problem in common (e.g. another preset): only the threshold can compare
        limit = thresholds.get(r.metric, thresholds.get("default", 0.05))
        worse = (r.value - p.value) if _lower_is_better(r.metric) else (p.value - r.value)
        if worse > limit:
            found.append({**base, "test": "threshold", "worsened_by": round(worse, 6), "threshold": limit,
                          **({"note": "the two reports share no problem"} if unpaired else {})})
    return found


def describe(finding: dict) -> str:
    """One line per regression finding, for check descriptions and alerts."""
    head = (f"{finding['model']}/{finding['benchmark']}/{finding['metric']} "
            f"{finding['previous']:.4g} -> {finding['value']:.4g}")
    if finding.get("test") != "paired":
        return head
    shown = ", ".join(finding["worse_problems"][:10]) + (" ..." if len(finding["worse_problems"]) > 10 else "")
    return (f"{head} (p = {finding['p_value']:.2g} < {finding['alpha']}; {finding['worse']} problems worse: {shown}; "
            f"{finding['better']} better)")


# --- presentation ----------------------------------------------------------------------------------------
def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown_table(records: list[dict], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n| " + " | ".join("---" for _ in columns) + " |\n"
    return head + "".join("| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |\n" for r in records)


def with_interval(value: float, low: float | None, high: float | None) -> str:
    return _fmt(value) if low is None else f"{_fmt(value)} [{_fmt(low)}, {_fmt(high)}]"


def side_by_side(rows: list[ReportRow], models: list[str]) -> list[dict]:
    """One record per (benchmark, metric) with a column per model: the value and its 95 % interval."""
    table: dict[tuple[str, str], dict] = {}
    for r in rows:
        rec = table.setdefault((r.benchmark, r.metric), {"benchmark": r.benchmark, "metric": r.metric, "n": r.n})
        rec[r.model] = with_interval(r.value, r.ci_low, r.ci_high)
    return [table[k] for k in sorted(table)]


def report_markdown(current: list[ReportRow], previous: list[ReportRow], models: list[str]) -> str:
    parts = ["### Side by side (value [95 % interval])\n",
             markdown_table(side_by_side(current, models), ["benchmark", "metric", "n"] + models),
             "\n### Trend vs the previous report\n",
             markdown_table(trend(current, previous), ["model", "benchmark", "metric", "value", "previous", "delta"])]
    return "".join(parts)


def rows_json(rows: list[ReportRow]) -> str:
    return json.dumps([{**r.to_dict(), "created_at": r.created_at.isoformat()} for r in rows])


# --- alerts ----------------------------------------------------------------------------------------------
ALERTS_TABLE = "alerts"


def record_alert(db_path: str | Path, kind: str, message: str, details: dict | None = None,
                 delivery: dict | None = None) -> None:
    """Append an alert (run failure, failed check, regression) to the `alerts` table next to the report history,
    with how its delivery to the webhook went (None: not attempted)."""
    with open_db(db_path) as con:
        con.execute(f"CREATE TABLE IF NOT EXISTS {ALERTS_TABLE} (created_at TIMESTAMP, kind VARCHAR, "
                    "message VARCHAR, details VARCHAR)")
        con.execute(f"ALTER TABLE {ALERTS_TABLE} ADD COLUMN IF NOT EXISTS delivery VARCHAR")  # tables from before
        con.execute(f"INSERT INTO {ALERTS_TABLE} (created_at, kind, message, details, delivery) VALUES (?, ?, ?, ?, ?)",
                    [_dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None), kind, message,
                     json.dumps(details or {}, default=str), None if delivery is None else json.dumps(delivery)])


def list_alerts(db_path: str | Path) -> list[dict]:
    if not Path(db_path).exists():
        return []
    with open_db(db_path) as con:
        columns = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                                             [ALERTS_TABLE]).fetchall()}
        if not columns:
            return []
        delivery = "delivery" if "delivery" in columns else "NULL"
        cur = con.execute(f"SELECT created_at, kind, message, details, {delivery} FROM {ALERTS_TABLE} "
                          "ORDER BY created_at")
        return [{"created_at": r[0], "kind": r[1], "message": r[2], "details": json.loads(r[3]),
                 "delivery": json.loads(r[4]) if r[4] is not None else None} for r in cur.fetchall()]
