"""Container healthcheck of the web service: GET a URL over HTTPS, exit 0 on HTTP 200.

The certificate is verified against TLS_CERT_FILE (self-signed, SAN 127.0.0.1), so the check
also proves that gunicorn serves the certificate the other services trust.
"""

import os
import ssl
import sys
import urllib.request

DEFAULT_URL = "https://127.0.0.1:8000/admin/login/"


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else DEFAULT_URL
    cafile = os.environ.get("TLS_CERT_FILE", "/tls/server.crt")
    context = ssl.create_default_context(cafile=cafile if os.path.exists(cafile) else None)
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
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
