"""Resources every asset may ask for by parameter name; settings come from HRM_* environment variables."""

from __future__ import annotations

from resources.alerts import default_alert_sink
from resources.credentials import default_credentials
from resources.sandbox import default_sandbox
from resources.swerex import default_swe_sessions
from resources.warehouse import Warehouse


def default_resources() -> dict:
    return {"sandbox": default_sandbox(), "warehouse": Warehouse(), "swe_sessions": default_swe_sessions(),
            "credentials": default_credentials(), "alerts": default_alert_sink()}
