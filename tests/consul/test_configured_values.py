"""A group's Consul token and address are its own: the operator's shell cannot replace them.

py-consul (consul/base.py) reads CONSUL_HTTP_ADDR, CONSUL_HTTP_SSL and CONSUL_HTTP_SSL_VERIFY
when nothing is passed, and CONSUL_HTTP_TOKEN *in preference to* the token it is given
(``os.getenv("CONSUL_HTTP_TOKEN", token)``). Consul answers 403 "ACL not found" to an
unknown token (Consul API docs, "Authentication").
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rotator.health.consul import ConsulHealthSource
from rotator.ports import ServiceRequirement
from rotator.sandbox.consul import ConsulCore, ConsulServer
from rotator.state.consul_store import ConsulRecordStore

from .conftest import DC, free_port

GROUP_TOKEN = "group-prd-cn-token"


@pytest.fixture
def acl_server() -> Iterator[ConsulServer]:
    core = ConsulCore([DC], acl_token=GROUP_TOKEN)
    core.dc(DC).register_node("agent-1", "10.20.10.5")
    core.dc(DC).register_service({"ID": "web-1", "Name": "web", "Tags": ["prd-cn-blue"],
                                  "Port": 31000}, node="agent-1")
    with ConsulServer(core) as srv:
        yield srv
    core.close()


@pytest.fixture
def hostile_shell(monkeypatch) -> None:
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "someone-elses-token")
    monkeypatch.setenv("CONSUL_HTTP_ADDR", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("CONSUL_HTTP_SSL", "true")
    monkeypatch.setenv("CONSUL_HTTP_SSL_VERIFY", "false")


def test_the_health_gate_uses_the_groups_token_and_address(acl_server, hostile_shell):
    source = ConsulHealthSource(acl_server.address, DC, GROUP_TOKEN)
    assert source.passing_now([ServiceRequirement("web", 1, "prd-cn-blue")]) == [1]
    client = source.client()
    assert client.token == GROUP_TOKEN and client.scheme == "http"


def test_the_record_store_uses_its_configured_token(acl_server, hostile_shell):
    store = ConsulRecordStore(acl_server.address, DC, GROUP_TOKEN)
    store.save({"id": "prd-cn-1", "group": "prd-cn", "status": "running", "created_at": 1.0})
    assert store.load("prd-cn")["id"] == "prd-cn-1"


def test_without_a_configured_token_the_shell_token_is_not_used_either(acl_server, hostile_shell):
    source = ConsulHealthSource(acl_server.address, DC)
    assert source.client().token is None
    assert source.passing_now([ServiceRequirement("web", 1, "prd-cn-blue")]) is None  # 403
