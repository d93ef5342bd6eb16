"""Shared fixtures. Tests run against the real PostgreSQL and Redis named by the environment."""

import pytest


@pytest.fixture
def broker_down():
    """Point the Celery app at a port where no Redis listens (a real failed connection)."""
    from servicedesk.celery import app

    def reconnect(url: str) -> None:  # drop every cached connection and producer
        from kombu import pools

        app.pool.force_close_all()
        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None
        app.conf.broker_url = url

    saved = app.conf.broker_url
    reconnect("redis://127.0.0.1:6399/0")
    try:
        yield
    finally:
        reconnect(saved)
