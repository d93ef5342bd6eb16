"""Container healthcheck of the web service: GET a URL over HTTPS, exit 0 on HTTP 200.

The served certificate is verified against TLS_CERT_FILE (the file itself is trusted, so a
self-signed one or a CA-issued leaf with its chain both work), so the check also proves that
gunicorn serves the certificate the other services trust. The probe connects to 127.0.0.1, which
a certificate for the site's own name does not cover, so the name is not checked; the request
names the first host of DJANGO_ALLOWED_HOSTS, which Django otherwise answers with 400.
"""

import os
import ssl
import sys
import urllib.request

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


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else DEFAULT_URL
    context = tls_context(os.environ.get("TLS_CERT_FILE", "/tls/server.crt"))
    request = urllib.request.Request(url)
    host = allowed_host()
    if host:
        request.add_header("Host", host)
    try:
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
