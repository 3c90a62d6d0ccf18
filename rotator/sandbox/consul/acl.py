"""The emulator's ACL model: one management token, plus the agent's own tokens.

With ACLs on, the configured token is the bootstrap (management) token; any other token is
refused with 403. ``PUT /v1/agent/token/<type>`` sets the agent's tokens as in hashicorp/consul
``agent/agent_endpoint.go`` (AgentToken): the ``default`` token is used for requests that
carry none, and the ``agent_recovery`` token is honoured on the agent's own endpoints.
With ACLs off, token updates are refused with 401 ``ACL support disabled``.
"""

from __future__ import annotations

from rotator.sandbox.consul.model import ConsulError

# Path segment accepted by /v1/agent/token/ -> the token it sets (legacy names included).
TOKEN_TARGETS = {
    "acl_token": "default", "default": "default",
    "acl_agent_token": "agent", "agent": "agent",
    "acl_agent_master_token": "agent_recovery", "agent_master": "agent_recovery",
    "agent_recovery": "agent_recovery",
    "acl_replication_token": "replication", "replication": "replication",
    "config_file_service_registration": "config_file_service_registration",
    "dns_token": "dns", "dns": "dns",
}


class AgentTokens:
    def __init__(self, management: str | None):
        self.management = management
        self.tokens: dict[str, str] = {}

    @property
    def enabled(self) -> bool:
        return self.management is not None

    def effective(self, presented: str | None) -> str:
        """The token a request runs with: its own, else the agent's default token."""
        return presented or self.tokens.get("default", "")

    def check(self, presented: str | None, path: str) -> None:
        if not self.enabled:
            return
        token = self.effective(presented)
        if token and token == self.management:
            return
        recovery = self.tokens.get("agent_recovery")
        if recovery and token == recovery and path.startswith("/v1/agent/"):
            return
        raise ConsulError(403, "Permission denied: anonymous token lacks permission"
                          if not token else "ACL not found")

    def update(self, target: str, secret: str) -> str:
        if not self.enabled:
            raise ConsulError(401, "ACL support disabled")
        name = TOKEN_TARGETS.get(target)
        if name is None:
            raise ConsulError(404, f'Token "{target}" is unknown')
        self.tokens[name] = secret
        return name
