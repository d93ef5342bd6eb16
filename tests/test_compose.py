"""docker-compose.yml validated statically, and the commands its services run exercised for real.

No Docker in CI: the compose file is checked as data (services, healthchecks, depends_on, volumes,
secrets only through ${VAR}); then the environment the app containers get (compose environment
over a `.env` rendered by scripts/make_env.py) is used to run `check --deploy`, gunicorn over TLS
with a certificate from docker/make-certs.sh, a Celery worker on the real Redis, and beat.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = ("web", "worker", "beat")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(?<!CERT_)KEY$|DATABASE_URL")
BIN = Path(sys.executable).parent


# --- compose semantics needed here: ${VAR}, ${VAR:-default}, ${VAR:?error}, $$ ---------------

_VAR = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3)
        current = env.get(name)
        if op in (":-", "-") and not current:
            return arg
        if op in (":?", "?") and not current:
            raise KeyError(f"{name}: {arg}")
        return current or ""

    return _VAR.sub(sub, value)


def rendered_env() -> dict[str, str]:
    """The `.env` that `make env` would write (fresh random secrets), as a dict."""
    render = runpy.run_path(str(ROOT / "scripts" / "make_env.py"))["render"]
    pairs = (line.split("=", 1) for line in render().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.startswith("#")}


def container_env(service: str, dotenv: dict[str, str]) -> dict[str, str]:
    """What a service's process sees: env_file (.env) overridden by `environment`."""
    spec = SERVICES[service]
    env = dict(dotenv) if spec.get("env_file") else {}
    for key, value in (spec.get("environment") or {}).items():
        env[key] = interpolate(str(value), dotenv)
    return env


def process_env(extra: dict[str, str]) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(extra)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env["DJANGO_READ_DOT_ENV"] = "false"  # only what compose gives the container
    return env


# --- static checks ----------------------------------------------------------------------------


def test_services_images_and_one_app_image() -> None:
    assert {"db", "redis", "web", "worker", "beat", "grafana"} <= set(SERVICES)
    for name, spec in SERVICES.items():
        assert spec.get("image") or spec.get("build"), name
    images = {SERVICES[s]["image"] for s in (*APP_SERVICES, "init", "certs")}
    assert len(images) == 1 and all(SERVICES[s].get("build") for s in APP_SERVICES)
    pg = re.match(r"postgres:(\d+)", SERVICES["db"]["image"])
    assert pg and int(pg.group(1)) >= 15
    gf = re.match(r"grafana/grafana(?:-oss)?:(\d+)", SERVICES["grafana"]["image"])
    assert gf and int(gf.group(1)) >= 10
    assert re.match(r"redis:(\d+)", SERVICES["redis"]["image"]).group(1) >= "7"
    commands = {s: SERVICES[s]["command"] for s in (*APP_SERVICES, "init")}
    assert commands == {"web": ["web"], "worker": ["worker"], "beat": ["beat"], "init": ["init"]}
    entrypoint = (ROOT / "docker" / "entrypoint.sh").read_text()
    for role in commands.values():
        assert f"\n  {role[0]})\n" in entrypoint, role


def test_healthchecks_and_depends_on_conditions() -> None:
    for name in ("db", "redis", "web", "worker", "beat", "grafana"):
        test = SERVICES[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name
    one_shot = {n for n, s in SERVICES.items() if s.get("restart") == "no"}
    assert one_shot == {"certs", "init"}
    for name, spec in SERVICES.items():
        depends = spec.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, rule in depends.items():
            assert target in SERVICES, (name, target)
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], (name, target)
            elif condition == "service_completed_successfully":
                assert target in one_shot, (name, target)
            else:
                assert condition == "service_started", (name, condition)
    for name in (*APP_SERVICES, "grafana"):
        assert SERVICES[name]["depends_on"]["init"]["condition"] == (
            "service_completed_successfully"
        )
    assert SERVICES["web"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert SERVICES["grafana"]["depends_on"]["certs"]["condition"] == (
        "service_completed_successfully"
    )


def test_named_volumes_for_data_uploads_backups_and_tls() -> None:
    declared = set(COMPOSE["volumes"])
    used = set()
    for spec in SERVICES.values():
        for mount in spec.get("volumes") or []:
            source = mount.split(":")[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared
    web = SERVICES["web"]
    env = web["environment"]
    mounts = dict(m.split(":")[:2] for m in web["volumes"])
    assert mounts["uploads"] == env["IMPORT_ARCHIVE_DIR"]
    assert mounts["backups"] == env["BACKUP_DIR"]
    assert any(m.startswith("pgdata:/var/lib/postgresql/data") for m in SERVICES["db"]["volumes"])
    assert "./docker/db-init:/docker-entrypoint-initdb.d:ro" in SERVICES["db"]["volumes"]
    assert (ROOT / "docker" / "db-init" / "10-readonly-role.sh").exists()


def test_no_secret_literals_and_every_variable_comes_from_make_env() -> None:
    dotenv = rendered_env()
    for name, spec in SERVICES.items():
        for key, value in (spec.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert "${" in str(value), f"{name}.{key} must come from the environment"
    text = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required and required <= set(dotenv), required - set(dotenv)
    assert SERVICES["web"]["env_file"] == ".env"
    assert str(SERVICES["web"]["environment"]["DJANGO_DEBUG"]).lower() == "false"
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert "certs/" in (ROOT / ".gitignore").read_text().split()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", "certs/", ".git"} <= set(ignored)


def test_env_example_names_every_variable_the_settings_read() -> None:
    read = set(
        re.findall(r'env(?:\.\w+)?\(\s*"(\w+)"', (ROOT / "servicedesk/settings.py").read_text())
    )
    example = (ROOT / ".env.example").read_text()
    named = set(re.findall(r"^#? ?(\w+)=", example, flags=re.MULTILINE))
    assert read and read - named == set()


def test_grafana_serves_https_with_the_shared_certificate() -> None:
    grafana = SERVICES["grafana"]
    env = grafana["environment"]
    assert env["GF_SERVER_PROTOCOL"] == "https"
    # Without it Grafana encrypts the datasource password with its published default key.
    assert env["GF_SECURITY_SECRET_KEY"].startswith("${") and ":?" in env["GF_SECURITY_SECRET_KEY"]
    assert "tls:/tls:ro" in grafana["volumes"] and "tls:/tls:ro" in SERVICES["web"]["volumes"]
    assert env["GF_SERVER_CERT_FILE"] == SERVICES["web"]["environment"]["TLS_CERT_FILE"]
    assert env["GF_SERVER_CERT_KEY"] == SERVICES["web"]["environment"]["TLS_KEY_FILE"]
    assert any(p.endswith(":3000") for p in grafana["ports"])
    assert "https://" in " ".join(grafana["healthcheck"]["test"])
    # The datasource reads these from Grafana's environment.
    source = yaml.safe_load((ROOT / "grafana/provisioning/datasources/servicedesk.yml").read_text())
    for var in set(re.findall(r"\$\{(\w+)\}", json.dumps(source))):
        assert var in env, var


# --- the commands the services run ------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    subprocess.run(["sh", str(ROOT / "docker/make-certs.sh"), str(out)], check=True)
    assert oct((out / "server.key").stat().st_mode & 0o777) == "0o600"
    again = subprocess.run(
        ["sh", str(ROOT / "docker/make-certs.sh"), str(out)], check=True, capture_output=True
    )
    assert b"left unchanged" in again.stdout
    return out


def run_here(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A service's command run in the project directory with that service's environment."""
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_passes_with_the_compose_environment() -> None:
    env = process_env(container_env("web", rendered_env()))
    result = run_here(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Without the secret key, production settings refuse to start.
    env.pop("DJANGO_SECRET_KEY")
    failed = run_here([sys.executable, "manage.py", "check"], env)
    assert failed.returncode != 0 and "DJANGO_SECRET_KEY" in failed.stderr


def test_init_builds_the_dashboards_for_the_deployed_time_zone_where_grafana_reads(
    tmp_path: Path,
) -> None:
    """The committed dashboards are built for UTC; a deployment with another TIME_ZONE cuts its
    months and periods there, so `init` rebuilds them into the volume Grafana provisions."""
    entrypoint = (ROOT / "docker" / "entrypoint.sh").read_text()
    init = entrypoint.split("\n  init)\n", 1)[1].split(";;", 1)[0]
    command = (
        'python manage.py build_dashboards --out "${GRAFANA_DASHBOARDS_DIR:-/data/dashboards}"'
    )
    assert command in init and init.index("migrate") < init.index(command)
    dockerfile = (ROOT / "Dockerfile").read_text()
    out_dir = re.search(r"GRAFANA_DASHBOARDS_DIR=(\S+)", dockerfile).group(1)
    assert out_dir in dockerfile.split("mkdir -p", 1)[1].split("&&", 1)[0]  # owned by app
    app_mounts = dict(m.split(":")[:2] for m in SERVICES["init"]["volumes"])
    grafana_mounts = dict(m.split(":")[:2] for m in SERVICES["grafana"]["volumes"])
    provider = yaml.safe_load(
        (ROOT / "grafana/provisioning/dashboards/servicedesk.yml").read_text()
    )
    assert app_mounts["dashboards"] == out_dir
    assert grafana_mounts["dashboards"] == provider["providers"][0]["options"]["path"]

    # The same command, with the environment compose gives init and another TIME_ZONE.
    env = container_env("init", {**rendered_env(), "TIME_ZONE": "Australia/Perth"})
    env = process_env({**env, "GRAFANA_DASHBOARDS_DIR": str(tmp_path)})
    result = run_here(["sh", "-c", command.replace("python", sys.executable, 1)], env)
    assert result.returncode == 0, result.stdout + result.stderr
    built = sorted(tmp_path.glob("*.json"))
    assert [p.name for p in built] == sorted(
        p.name for p in (ROOT / "grafana/dashboards").glob("*.json")
    )
    assert {json.loads(p.read_text())["timezone"] for p in built} == {"Australia/Perth"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def local_service_env(service: str, **extra: str) -> dict[str, str]:
    """A service's compose environment, with db/redis pointed at the test machine's servers."""
    env = container_env(service, rendered_env())
    env["DATABASE_URL"] = os.environ.get("DATABASE_URL", settings_database_url())
    env["REDIS_URL"] = settings.REDIS_URL
    env["CELERY_BROKER_URL"] = settings.REDIS_URL
    env.update(extra)
    return process_env(env)


def settings_database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts; each is stopped by its own pid (its session) afterwards."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def spawn(started: list, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("wb")
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )
    started.append(proc)
    return proc


def wait_for(predicate, timeout: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"process exited {proc.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(0.3)
    pytest.fail(f"timed out:\n{log.read_text(errors='replace')[-3000:]}")


def test_gunicorn_serves_the_admin_over_tls(certs: Path, started, tmp_path: Path) -> None:
    port = free_port()
    env = local_service_env(
        "web",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
        TLS_CERT_FILE=str(certs / "server.crt"),
        TLS_KEY_FILE=str(certs / "server.key"),
    )
    log = tmp_path / "gunicorn.log"
    proc = spawn(
        started,
        [
            str(BIN / "gunicorn"),
            "--config",
            "docker/gunicorn.conf.py",
            "servicedesk.wsgi:application",
        ],
        env,
        log,
    )
    url = f"https://127.0.0.1:{port}/admin/login/"
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE

    wait_for(lambda: listening(port), 60, proc, log)
    with urllib.request.urlopen(url, context=unverified, timeout=30) as response:
        body = response.read().decode()
        assert response.status == 200
        assert "Strict-Transport-Security" in response.headers  # production settings
    assert 'name="csrfmiddlewaretoken"' in body and 'name="password"' in body
    # The compose healthcheck verifies the certificate itself (SAN 127.0.0.1).
    check = subprocess.run(
        [sys.executable, str(ROOT / "docker/healthcheck.py"), url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    # Plain HTTP is not served.
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=10).read()


def own_certificate(out: Path, name: str) -> Path:
    """A CA-issued certificate for `name` only (no 127.0.0.1), as a site brings its own."""
    out.mkdir()
    (out / "ext").write_text(f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n")
    steps = [
        "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=TestCA -keyout ca.key -out ca.crt",
        f"req -newkey rsa:2048 -nodes -subj /CN={name} -keyout server.key -out server.csr",
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 "
        "-extfile ext -out leaf.crt",
    ]
    for step in steps:
        subprocess.run(["openssl", *step.split()], cwd=out, check=True, capture_output=True)
    chain = out / "server.crt"
    chain.write_text((out / "leaf.crt").read_text() + (out / "ca.crt").read_text())
    return chain


def test_web_healthcheck_passes_with_the_sites_own_host_and_certificate(
    certs: Path, started, tmp_path: Path
) -> None:
    """README: to expose the stack set DJANGO_ALLOWED_HOSTS, and bring your own certificate.
    The probe still calls 127.0.0.1: it must send an allowed Host (else Django says 400) and
    accept a certificate that does not name 127.0.0.1 -- but still only the configured one."""
    chain = own_certificate(tmp_path / "own", "sd.example.com")
    port = free_port()
    env = local_service_env(
        "web",
        DJANGO_ALLOWED_HOSTS="sd.example.com",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://sd.example.com",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
        TLS_CERT_FILE=str(chain),
        TLS_KEY_FILE=str(chain.parent / "server.key"),
    )
    log = tmp_path / "gunicorn.log"
    gunicorn = [str(BIN / "gunicorn"), "--config", "docker/gunicorn.conf.py"]
    proc = spawn(started, [*gunicorn, "servicedesk.wsgi:application"], env, log)

    def check(cert: Path) -> subprocess.CompletedProcess[str]:
        url = f"https://127.0.0.1:{port}/admin/login/"
        return subprocess.run(
            [sys.executable, str(ROOT / "docker/healthcheck.py"), url],
            env={**env, "TLS_CERT_FILE": str(cert)},
            capture_output=True,
            text=True,
            timeout=60,
        )

    wait_for(lambda: listening(port), 60, proc, log)
    result = check(chain)
    assert result.returncode == 0, result.stderr
    assert check(chain.parent / "leaf.crt").returncode == 0  # the leaf alone is trusted too
    assert check(certs / "server.crt").returncode == 1  # another certificate is not


def test_worker_consumes_a_task(started, tmp_path: Path) -> None:
    from servicedesk.celery import app

    name = f"sdtest-{os.getpid()}@localhost"
    env = local_service_env("worker")
    log = tmp_path / "worker.log"
    proc = spawn(
        started,
        [
            str(BIN / "celery"),
            "-A",
            "servicedesk",
            "worker",
            "--loglevel",
            "info",
            "--pool",
            "solo",
            "--hostname",
            name,
            "--without-gossip",
            "--without-mingle",
        ],
        env,
        log,
    )
    wait_for(lambda: any(name in r for r in app.control.ping(timeout=0.5)), 90, proc, log)
    result = app.send_task("celery.accumulate", args=(20, 22))
    wait_for(lambda: f"[{result.id}] succeeded" in log.read_text(errors="replace"), 60, proc, log)
    assert "(20, 22)" in log.read_text(errors="replace")


def test_beat_schedule_names_registered_tasks_and_beat_starts(started, tmp_path: Path) -> None:
    from servicedesk.celery import app

    app.loader.import_default_modules()  # runs autodiscovery like the worker does
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule
    missing = sorted(e["task"] for e in schedule.values() if e["task"] not in app.tasks)
    assert missing == [], f"beat schedules tasks no module defines: {missing}"

    env = local_service_env("beat")
    log = tmp_path / "beat.log"
    schedule_file = tmp_path / "celerybeat-schedule"
    proc = spawn(
        started,
        [
            str(BIN / "celery"),
            "-A",
            "servicedesk",
            "beat",
            "--loglevel",
            "info",
            "--schedule",
            str(schedule_file),
            "--pidfile=",
        ],
        env,
        log,
    )
    wait_for(
        lambda: (
            "beat: Starting" in log.read_text(errors="replace")
            and any(tmp_path.glob("celerybeat-schedule*"))
        ),
        60,
        proc,
        log,
    )
    time.sleep(1)
    assert proc.poll() is None, log.read_text(errors="replace")


def sibling_certificates(out: Path) -> dict[str, Path]:
    """Two sites' chain files (leaf + intermediate) issued by the same intermediate CA, as a
    public CA's fullchain.pem comes."""
    out.mkdir()
    (out / "int.ext").write_text(
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
    )
    steps = [
        "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=Root -keyout root.key -out root.crt",
        "req -newkey rsa:2048 -nodes -subj /CN=Inter -keyout int.key -out int.csr",
        "x509 -req -in int.csr -CA root.crt -CAkey root.key -CAcreateserial -days 2 "
        "-extfile int.ext -out int.crt",
    ]
    for name in ("a", "b"):
        (out / f"{name}.ext").write_text(
            f"subjectAltName=DNS:{name}.example.com\nextendedKeyUsage=serverAuth\n"
        )
        steps += [
            f"req -newkey rsa:2048 -nodes -subj /CN={name}.example.com -keyout {name}.key "
            f"-out {name}.csr",
            f"x509 -req -in {name}.csr -CA int.crt -CAkey int.key -CAcreateserial -days 2 "
            f"-extfile {name}.ext -out {name}.crt",
        ]
    for step in steps:
        subprocess.run(["openssl", *step.split()], cwd=out, check=True, capture_output=True)
    chains = {}
    for name in ("a", "b"):
        chains[name] = out / f"{name}.chain"
        chains[name].write_text((out / f"{name}.crt").read_text() + (out / "int.crt").read_text())
    return chains


def test_web_healthcheck_refuses_another_leaf_of_the_same_ca(tmp_path: Path) -> None:
    """With a chain file every certificate in it is trusted, the intermediate too: a server
    presenting another site's certificate from the same CA passed the check."""
    import http.server
    import threading

    chains = sibling_certificates(tmp_path / "pki")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chains["b"], tmp_path / "pki" / "b.key")

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/admin/login/"

    def check(cert: Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "TLS_CERT_FILE": str(cert), "DJANGO_ALLOWED_HOSTS": "a.example.com"}
        return subprocess.run(
            [sys.executable, str(ROOT / "docker/healthcheck.py"), url],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    try:
        assert check(chains["b"]).returncode == 0  # the certificate it serves
        assert check(tmp_path / "pki" / "b.crt").returncode == 0  # its leaf alone
        result = check(chains["a"])  # another site's chain from the same intermediate
        assert result.returncode == 1 and "another certificate" in result.stderr, result.stderr
    finally:
        server.shutdown()
        server.server_close()
