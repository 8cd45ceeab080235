"""resources/alerts.py: alerts POSTed to a real local HTTP server in both formats; a webhook that is down,
fails or hangs gives a failed delivery, never an exception; the URL stays out of deliveries and the UI."""

import time

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from resources.alerts import AlertSink, default_alert_sink, send_alert


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """The retries' backoff, shortened: the tests count attempts, not seconds."""
    monkeypatch.setattr("resources.alerts.BACKOFF_SECONDS", (0.01, 0.02))

TRICKY = 'he said "stop"\nline two\ttab \\ back — ünïcødé 🚨 <!channel> & <https://evil.example|click>'


def test_slack_format_posts_text_with_the_run_link(webhook):
    sink = AlertSink(webhook_url=webhook.url, format="slack", ui_url="http://ui.example:3000/")
    delivery = sink.send("run_failure", "run abc failed", {"run_id": "abc"}, "abc")
    assert delivery == {"status": "sent", "attempts": 1, "target": "127.0.0.1", "format": "slack"}
    [request] = webhook.received
    assert request["headers"]["Content-Type"].startswith("application/json")
    [body] = webhook.bodies()
    assert set(body) == {"text"}
    assert "run abc failed" in body["text"] and "<http://ui.example:3000/runs/abc|run abc>" in body["text"]


def test_json_format_posts_every_field(webhook):
    sink = AlertSink(webhook_url=webhook.url, format="json")
    sink.send("regression", "report r2 regressed", {"report_id": "r2", "n": 3}, "run-1")
    [body] = webhook.bodies()
    assert set(body) == {"kind", "message", "details", "run_id", "run_url", "time"}
    assert body["kind"] == "regression" and body["details"] == {"report_id": "r2", "n": 3}
    assert body["run_id"] == "run-1" and body["run_url"] == "http://127.0.0.1:3000/runs/run-1"
    assert body["time"].endswith("+00:00")


def test_quotes_newlines_and_unicode_arrive_as_valid_json(webhook):
    AlertSink(webhook_url=webhook.url, format="json").send("run_failure", TRICKY, {"error": TRICKY})
    AlertSink(webhook_url=webhook.url, format="slack").send("run_failure", TRICKY, {"error": TRICKY})
    as_json, as_slack = webhook.bodies()
    assert as_json["message"] == TRICKY and as_json["details"] == {"error": TRICKY} and as_json["run_url"] is None
    # Slack control sequences in a message are escaped: no @channel ping, no disguised link.
    assert "<!channel>" not in as_slack["text"] and "&lt;!channel&gt;" in as_slack["text"]
    assert "<https://evil" not in as_slack["text"] and 'he said "stop"\nline two' in as_slack["text"]


def test_a_long_message_is_cut_for_slack_but_keeps_the_link(webhook):
    AlertSink(webhook_url=webhook.url).send("regression", "x" * 10_000, {}, "r1")
    [body] = webhook.bodies()
    assert len(body["text"]) < 3200 and body["text"].endswith("/runs/r1|run r1>")


def test_a_500_is_retried_then_reported_failed(webhook):
    webhook.status = 500
    delivery = AlertSink(webhook_url=webhook.url, format="json").send("run_failure", "m", {})
    assert delivery["status"] == "failed" and delivery["attempts"] == 3 and len(webhook.received) == 3
    assert delivery["reason"].startswith("HTTP 500")


def test_a_404_is_not_retried(webhook):
    webhook.status = 404
    delivery = AlertSink(webhook_url=webhook.url).send("run_failure", "m", {})
    assert (delivery["status"], delivery["attempts"], len(webhook.received)) == ("failed", 1, 1)


def test_a_webhook_that_is_down_is_reported_failed(closed_port_url):
    delivery = AlertSink(webhook_url=closed_port_url).send("run_failure", "m", {})
    assert delivery["status"] == "failed" and delivery["attempts"] == 3
    assert "ConnectionRefused" in delivery["reason"]
    assert "T0KEN" not in repr(delivery)


def test_a_hanging_webhook_times_out_once(webhook):
    webhook.hang_s = 3
    started = time.monotonic()
    delivery = AlertSink(webhook_url=webhook.url, timeout_seconds=0.3).send("run_failure", "m", {})
    assert time.monotonic() - started < 2
    assert delivery["status"] == "failed" and delivery["attempts"] == 1 and "timed out" in delivery["reason"]


def test_a_server_that_answers_garbage_is_reported_failed():
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))

    def answer_garbage():
        for _ in range(3):
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"this is not HTTP\r\n\r\n")

    threading.Thread(target=answer_garbage, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hooks/T0KEN"
    try:
        delivery = AlertSink(webhook_url=url).send("run_failure", "m", {})
    finally:
        listener.close()
    assert delivery["status"] == "failed" and "BadStatusLine" in delivery["reason"]


def test_no_webhook_means_not_configured(webhook):
    assert AlertSink().send("run_failure", "m", {}) == {"status": "not_configured"}
    assert send_alert("", "slack", "k", "m", {}, None, None, 1.0) == {"status": "not_configured"}
    assert webhook.received == []


def test_an_unknown_format_fails_the_delivery_without_posting(webhook):
    delivery = AlertSink(webhook_url=webhook.url, format="xml").send("run_failure", "m", {})
    assert delivery["status"] == "failed" and "xml" in delivery["reason"] and webhook.received == []


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hook/T0KEN", "not a url T0KEN"])
def test_a_malformed_url_fails_the_delivery(url):
    delivery = AlertSink(webhook_url=url).send("run_failure", "m", {})
    assert delivery["status"] == "failed" and "T0KEN" not in repr(delivery)


def test_the_ui_shows_the_variable_name_not_the_url(monkeypatch, webhook):
    monkeypatch.setenv("HRM_ALERT_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("HRM_ALERT_FORMAT", "json")
    sink = default_alert_sink()

    @dg.sensor()
    def uses_alerts(alerts: AlertSink):
        alerts.send("run_failure", "m", {})

    defs = dg.Definitions(sensors=[uses_alerts], resources={"alerts": sink})
    # The repository snapshot is what the code server sends the webserver for the resource's page.
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert "T0KEN" not in snapshot and webhook.url.split("/hooks")[0] not in snapshot
    assert "HRM_ALERT_WEBHOOK_URL" in snapshot
    uses_alerts.evaluate_tick(dg.build_sensor_context(resources={"alerts": sink}))
    assert [b["kind"] for b in webhook.bodies()] == ["run_failure"]


def test_without_the_variable_the_sink_records_only(monkeypatch):
    monkeypatch.delenv("HRM_ALERT_WEBHOOK_URL", raising=False)
    sink = default_alert_sink()
    assert sink.webhook_url is None and sink.format == "slack" and sink.ui_url == "http://127.0.0.1:3000"
