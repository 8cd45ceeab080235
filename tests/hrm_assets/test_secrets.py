"""Secrets reach assets through resources set with dg.EnvVar: what the code location sends to the UI (the
repository snapshot: asset configs and their defaults, resource configs) holds their names, never values."""

import json

import dagster as dg
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from resources.credentials import Credentials, default_credentials
from resources.swerex import SweRexSessions, default_swe_sessions

SECRET = "sk-test-7f3e9a1c0b5d"


def _ui_snapshot(defs: dg.Definitions) -> str:
    return serialize_value(RepositorySnap.from_def(defs.get_repository_def()))


def test_the_ui_never_sees_a_secret_set_in_the_environment(monkeypatch):
    from hrm_assets.definitions import build_definitions

    monkeypatch.setenv("HRM_OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("HRM_SWEREX_AUTH_TOKEN", SECRET + "-swerex")
    monkeypatch.setenv("HRM_SWEREX_DEPLOYMENT", "remote")
    monkeypatch.setenv("HRM_SWEREX_DEPLOYMENT_OPTIONS", json.dumps({"host": "http://10.0.0.5", "port": 8000}))
    snapshot = _ui_snapshot(build_definitions())
    assert SECRET not in snapshot
    assert "HRM_OPENAI_API_KEY" in snapshot and "HRM_SWEREX_AUTH_TOKEN" in snapshot  # shown by name


def test_the_snapshot_would_show_a_secret_put_in_plain_config():
    """The check above can fail: a plain resource field is in the snapshot."""
    leaky = dg.Definitions(resources={"credentials": Credentials(openai_api_key=SECRET)})
    assert SECRET in _ui_snapshot(leaky)


def test_the_runs_resolve_the_secrets_from_the_environment(monkeypatch):
    monkeypatch.setenv("HRM_OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("HRM_SWEREX_DEPLOYMENT", "remote")
    monkeypatch.setenv("HRM_SWEREX_AUTH_TOKEN", "tok")
    monkeypatch.setenv("HRM_SWEREX_DEPLOYMENT_OPTIONS", json.dumps({"host": "http://10.0.0.5", "port": 8000}))
    seen = {}

    @dg.asset
    def uses_secrets(credentials: Credentials, swe_sessions: SweRexSessions):
        seen["key"] = credentials.openai_api_key
        seen["token"] = swe_sessions.deployment_config().auth_token

    assert dg.materialize([uses_secrets], resources={"credentials": default_credentials(),
                                                     "swe_sessions": default_swe_sessions()}).success
    assert seen == {"key": SECRET, "token": "tok"}


def test_no_key_set_means_no_key(monkeypatch):
    monkeypatch.delenv("HRM_OPENAI_API_KEY", raising=False)
    assert default_credentials().openai_api_key == ""
    monkeypatch.setenv("HRM_OPENAI_API_KEY", SECRET)
    assert default_credentials().openai_api_key == dg.EnvVar("HRM_OPENAI_API_KEY")


def test_a_token_in_the_deployment_options_is_refused(monkeypatch):
    monkeypatch.setenv("HRM_SWEREX_DEPLOYMENT_OPTIONS", json.dumps({"host": "h", "auth_token": SECRET}))
    try:
        default_swe_sessions()
    except ValueError as exc:
        assert "HRM_SWEREX_AUTH_TOKEN" in str(exc) and SECRET not in str(exc)
    else:
        raise AssertionError("a token in HRM_SWEREX_DEPLOYMENT_OPTIONS was accepted")
