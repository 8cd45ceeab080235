"""Alerts that reach people: a POST of each alert to a webhook, Slack-compatible or generic JSON.

The webhook URL is a secret (a Slack incoming-webhook URL carries its token in the path): the resource reads it
through `dg.EnvVar`, so the UI shows only the variable's name, and a delivery reports only the URL's host.
Sending never raises: it returns how the delivery went, for the alert history to keep.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import dagster as dg

from resources.settings import env_float, env_str

FORMATS = ("slack", "json")
SLACK_TEXT_LIMIT = 3000  # Slack truncates long section text; the history keeps the whole message
BACKOFF_SECONDS = (0.5, 1.0)  # one sleep before each retry


def run_link(ui_url: str, run_id: str | None) -> str | None:
    return f"{ui_url.rstrip('/')}/runs/{run_id}" if run_id else None


def _slack_escape(text: str) -> str:
    # Slack reads <...> as links and mentions: a failure message must not ping @channel or fake a link.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(fmt: str, kind: str, message: str, details: dict, run_id: str | None, run_url: str | None,
            when: dt.datetime) -> dict:
    if fmt == "slack":
        text = f"*HRM {kind}*: {_slack_escape(message)}"
        if len(text) > SLACK_TEXT_LIMIT:
            text = text[:SLACK_TEXT_LIMIT - 1] + "…"
        if run_url:
            text += f"\n<{run_url}|run {run_id}>"
        return {"text": text}
    if fmt == "json":
        return {"kind": kind, "message": message, "details": details, "run_id": run_id, "run_url": run_url,
                "time": when.isoformat()}
    raise ValueError(f"alert format {fmt!r}: expected one of {', '.join(FORMATS)}")


def _retryable(error: Exception) -> bool:
    # A refused connection or a 5xx answers at once, so retrying is cheap; a timeout is not retried: a hanging
    # webhook would hold up the sensor tick (a run-failure tick may send up to five alerts).
    if isinstance(error, urllib.error.HTTPError):
        return error.code >= 500
    if isinstance(error, urllib.error.URLError):
        return not isinstance(error.reason, TimeoutError)
    return not isinstance(error, TimeoutError)


def _reason(error: Exception, url: str) -> str:
    if isinstance(error, urllib.error.HTTPError):
        text = f"HTTP {error.code} {error.reason}"
    elif isinstance(error, urllib.error.URLError):
        text = f"{type(error.reason).__name__}: {error.reason}"
    else:
        text = f"{type(error).__name__}: {error}"
    return text.replace(url, "<webhook>")


def post(url: str, body: dict, timeout: float, attempts: int = 3) -> dict:
    """POST `body` as JSON; {"status": "sent"|"failed", "attempts", "reason"?}. Never raises on network errors."""
    data = json.dumps(body, default=str, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8",
                                              "User-Agent": "hrm-code-alerts"})
    reason = ""
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read(1024)
            return {"status": "sent", "attempts": attempt}
        # HTTPError is a URLError; a server that answers garbage raises http.client's own errors.
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as error:
            reason = _reason(error, url)
            if not _retryable(error) or attempt == attempts:
                break
            time.sleep(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1])
    return {"status": "failed", "attempts": attempt, "reason": reason}


def send_alert(url: str | None, fmt: str, kind: str, message: str, details: dict, run_id: str | None,
               run_url: str | None, timeout: float, attempts: int = 3) -> dict:
    """Deliver one alert; the returned record names the target by host only."""
    if not url:
        return {"status": "not_configured"}
    try:
        parts = urlsplit(url)
        target = parts.hostname if parts.scheme in ("http", "https") else None
    except ValueError:
        target = None
    if not target:
        # The reason must not quote the URL: it is the secret.
        return {"status": "failed", "target": "configured", "format": fmt, "attempts": 0,
                "reason": "the webhook URL is not an http(s) URL with a host"}
    try:
        body = payload(fmt, kind, message, details, run_id, run_url, dt.datetime.now(dt.timezone.utc))
    except ValueError as error:
        return {"status": "failed", "target": target, "format": fmt, "attempts": 0, "reason": str(error)}
    return {**post(url, body, timeout, attempts), "target": target, "format": fmt}


class AlertSink(dg.ConfigurableResource):
    """Where alerts go. `webhook_url` should be bound to `dg.EnvVar(...)`: a literal value would be shown in the
    UI's resource page. None or empty: alerts are only recorded."""

    webhook_url: str | None = None
    format: str = "slack"
    ui_url: str = "http://127.0.0.1:3000"
    timeout_seconds: float = 3.0
    attempts: int = 3

    def run_url(self, run_id: str | None) -> str | None:
        return run_link(self.ui_url, run_id)

    def send(self, kind: str, message: str, details: dict, run_id: str | None = None) -> dict:
        return send_alert(self.webhook_url, self.format, kind, message, details, run_id, self.run_url(run_id),
                          self.timeout_seconds, self.attempts)


def default_alert_sink() -> AlertSink:
    # Bound to the variable only when it is set: an EnvVar of an unset variable fails every sensor that uses
    # the resource, and "no webhook" must mean "record only".
    configured = env_str("HRM_ALERT_WEBHOOK_URL") != ""
    return AlertSink(webhook_url=dg.EnvVar("HRM_ALERT_WEBHOOK_URL") if configured else None,
                     format=env_str("HRM_ALERT_FORMAT"), ui_url=env_str("HRM_DAGSTER_UI_URL"),
                     timeout_seconds=env_float("HRM_ALERT_TIMEOUT"))
