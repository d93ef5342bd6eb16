"""Container healthcheck of the web service: GET a URL over HTTPS, exit 0 on HTTP 200.

The served certificate is verified against TLS_CERT_FILE (the file itself is trusted, so a
self-signed one or a CA-issued leaf with its chain both work), so the check also proves that
gunicorn serves the certificate the other services trust. The probe connects to 127.0.0.1, which
a certificate for the site's own name does not cover, so the name is not checked; the request
names the first host of DJANGO_ALLOWED_HOSTS, which Django otherwise answers with 400. With a
chain file every certificate in it is a trust anchor (the intermediate too), so the served leaf
must also be the file's first certificate: any other leaf of the same CA fails.
"""

import os
import re
import socket
import ssl
import sys
import urllib.parse
import urllib.request

PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)

DEFAULT_URL = "https://127.0.0.1:8000/admin/login/"


def allowed_host() -> str | None:
    """A Host header Django accepts: the first concrete entry of DJANGO_ALLOWED_HOSTS."""
    for entry in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(","):
        entry = entry.strip()
        if entry and entry != "*":
            return entry.lstrip(".")  # ".example.com" also allows example.com itself
    return None


def tls_context(cafile: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile if os.path.exists(cafile) else None)
    context.check_hostname = False  # 127.0.0.1 is not the certificate's name; the chain is checked
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # trust the leaf in TLS_CERT_FILE
    return context


def configured_leaf(cafile: str) -> bytes | None:
    """The first certificate of TLS_CERT_FILE (the leaf of a chain file), DER."""
    try:
        with open(cafile) as fh:
            first = PEM_CERT.search(fh.read())
    except OSError:
        return None
    return ssl.PEM_cert_to_DER_cert(first.group()) if first else None


def served_leaf(url: str, context: ssl.SSLContext) -> bytes | None:
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with socket.create_connection((parts.hostname, port), timeout=10) as raw:
        with context.wrap_socket(raw) as tls:
            return tls.getpeercert(binary_form=True)


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else DEFAULT_URL
    cafile = os.environ.get("TLS_CERT_FILE", "/tls/server.crt")
    context = tls_context(cafile)
    request = urllib.request.Request(url)
    host = allowed_host()
    if host:
        request.add_header("Host", host)
    try:
        expected = configured_leaf(cafile) if url.startswith("https:") else None
        if expected is not None and served_leaf(url, context) != expected:
            print(f"unhealthy: {url}: serves another certificate than {cafile}", file=sys.stderr)
            return 1
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            status = response.status
    except Exception as exc:  # any failure is "unhealthy", with the reason in the log
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url}: HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
