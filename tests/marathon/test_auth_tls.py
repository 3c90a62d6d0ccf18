"""Marathon behind token auth and TLS: the token goes on every call, the event stream too
(the `marathon` client adds it to API calls only), and TLS trusts exactly the configured CA."""

from __future__ import annotations

import datetime
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from rotator.apps.marathon import MarathonDeployer
from rotator.errors import TransientError
from rotator.tls import TlsSettings


class Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    def do_GET(self):  # noqa: N802
        Recorder.seen.append((self.path.split("?")[0], self.headers.get("Authorization")))
        if self.path.startswith("/v2/events"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b"event: deployment_success\ndata: {\"id\": \"d-1\"}\n\n")
            self.wfile.flush()
            return
        body = json.dumps([] if self.path.startswith("/v2/deployments") else {"apps": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _serve(context: ssl.SSLContext | None = None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    scheme = "https" if context else "http"
    return server, f"{scheme}://127.0.0.1:{server.server_address[1]}"


def test_the_token_goes_on_api_calls_and_on_the_event_stream():
    Recorder.seen = []
    server, url = _serve()
    try:
        deployer = MarathonDeployer(token="s3cret", attempts=1)
        assert deployer.pending(url, ["d-1"], wait=1.0) == []
    finally:
        server.shutdown()
    paths = {p for p, _ in Recorder.seen}
    assert {"/v2/deployments", "/v2/events"} <= paths
    assert {auth for _, auth in Recorder.seen} == {"token=s3cret"}
    assert "s3cret" not in repr(deployer)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "marathon.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    (folder / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return folder


def test_tls_trusts_the_configured_ca_and_nothing_else(certificate):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate / "ca.pem", certificate / "key.pem")
    server, url = _serve(context)
    try:
        trusted = MarathonDeployer(tls=TlsSettings(ca_bundle=str(certificate / "ca.pem")),
                                   attempts=1)
        assert trusted.health(url, []) == []
        stranger = MarathonDeployer(attempts=1)
        with pytest.raises((TransientError, requests.exceptions.SSLError)):
            stranger.health(url, ["/prd/web"])
    finally:
        server.shutdown()


def test_response_bodies_never_reach_the_logs(caplog):
    """An app's env (secrets too) comes back in /v2/apps bodies; the client logs bodies."""
    import logging

    from rotator.apps.marathon_compat import marathon

    class Secretive(Recorder):
        def do_GET(self):  # noqa: N802
            body = json.dumps({"apps": [{"id": "/prd/api", "env": {"DB_PASSWORD": "hunter22"},
                                         "instances": 1}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Secretive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with caplog.at_level(logging.DEBUG, logger=marathon.log.name):
            MarathonDeployer(attempts=1).health(
                f"http://127.0.0.1:{server.server_address[1]}", ["/prd/api"])
    finally:
        server.shutdown()
    assert any("Got HTTP 200 (body not logged)" in r.getMessage() for r in caplog.records)
    assert "hunter22" not in caplog.text
