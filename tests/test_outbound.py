"""Outbound requests (webhooks): JSON posted to the address checked, never to this machine or a
private network unless allowed, no redirects followed, TLS checked against the host name."""
from __future__ import annotations

import datetime
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine.web.outbound import OutboundRefused, check_url, post_json, resolve


class Receiver(BaseHTTPRequestHandler):
    """Records each request; answers with the server's `status` (and a Location for 3xx)."""

    def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        self.server.seen.append((self.path, dict(self.headers), self.rfile.read(length)))
        self.send_response(self.server.status)
        if 300 <= self.server.status < 400:
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
        body = b"x" * 1_000_000
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:  # the client read what it wanted and left
            pass

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving(context: ssl.SSLContext | None = None) -> Iterator[ThreadingHTTPServer]:
    """A local HTTP server (HTTPS with `context`) in a thread, recording what it receives."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.seen, server.status = [], 200
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    with serving() as server:
        yield server


@pytest.fixture
def intranet(make_app):
    return make_app(OUTBOUND_ALLOW_PRIVATE=True, OUTBOUND_ALLOW_HTTP=True)


def test_json_is_posted_under_the_host_name_to_the_address_checked(intranet, receiver):
    port = receiver.server_address[1]
    with intranet.app_context():
        status = post_json(f"http://localhost:{port}/hooks/crm?k=1", {"name": "Ada", "n": 1})
    assert status == 200
    [(path, headers, body)] = receiver.seen
    assert path == "/hooks/crm?k=1"
    assert headers["Host"] == f"localhost:{port}"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"name": "Ada", "n": 1}


def test_redirects_are_not_followed(intranet, receiver):
    receiver.status = 302
    with intranet.app_context():
        assert post_json(f"http://127.0.0.1:{receiver.server_address[1]}/", {}) == 302
    assert len(receiver.seen) == 1


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hook", "https://10.1.2.3/hook", "https://192.168.0.10/",
    "https://169.254.169.254/latest/meta-data/", "https://[::1]/hook",
    "https://[::ffff:127.0.0.1]/hook", "https://0.0.0.0/", "https://localhost/hook",
    "https://localhost./hook",
])
def test_this_machine_and_private_networks_are_refused_by_default(app, url):
    with app.app_context(), pytest.raises(OutboundRefused):
        post_json(url, {"x": 1})


def test_a_name_resolving_to_this_machine_is_refused(app):
    """Checked on every address the name resolves to, at the time of the request."""
    with app.app_context(), pytest.raises(OutboundRefused, match="resolves to"):
        resolve("localhost", 443)


@pytest.mark.parametrize("url", [
    "http://example.com/hook", "https://user:secret@example.com/hook", "https:///hook",
    "ftp://example.com/", "https://example.com:99999/", "https://exa mple.com/",
    "https://bücher.example/", "",
])
def test_urls_that_are_not_plain_https_are_refused(app, url):
    with app.app_context(), pytest.raises(OutboundRefused):
        check_url(url)


def test_plain_http_to_loopback_needs_both_settings(make_app, receiver):
    url = f"http://127.0.0.1:{receiver.server_address[1]}/"
    app = make_app(OUTBOUND_ALLOW_HTTP=True)
    with app.app_context():
        assert check_url("https://crm.example.com/in") == "https://crm.example.com/in"
        with pytest.raises(OutboundRefused):
            post_json(url, {})
    assert receiver.seen == []


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_tls_sends_the_host_name_and_checks_the_certificate(intranet, tmp_path):
    """A certificate no authority signed is refused; the handshake named the host (SNI),
    though the connection went to the address it resolved to."""
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed(tmp_path))
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    with serving(context) as server, intranet.app_context():
        with pytest.raises(ssl.SSLCertVerificationError):
            post_json(f"https://localhost:{server.server_address[1]}/", {})
        assert server.seen == []
    assert names == ["localhost"]
