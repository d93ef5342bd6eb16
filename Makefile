# servicedesk: the two newcomer commands are `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-data
DEMO_SCALE ?= 1
MANAGE := $(BIN)/python manage.py

.PHONY: demo test install env db migrate lint format certs bench clean-demo up

$(BIN)/activate: requirements.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(BIN)/activate

install: $(BIN)/activate

.env:
	$(PY) scripts/make_env.py

env: .env

db: install .env
	$(BIN)/python scripts/ensure_database.py

migrate: db
	$(MANAGE) migrate --noinput

## demo: set up, generate the demo data, load the legacy DB then the later exports, print metrics
demo: migrate
	$(MANAGE) generate_demo_data --out $(DEMO_DIR) --scale $(DEMO_SCALE) --seed 42
	$(MANAGE) migrate_legacy $(DEMO_DIR)/legacy.sqlite3
	$(MANAGE) import_file $(DEMO_DIR)/exports/tickets.xlsx
	$(MANAGE) import_file $(DEMO_DIR)/exports/comments.xlsx
	$(MANAGE) import_file $(DEMO_DIR)/exports/timesheets.xlsx
	$(MANAGE) compute_metrics

## test: the whole suite against the real PostgreSQL and Redis
test: db
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(MANAGE) makemigrations --check --dry-run
	$(BIN)/pytest --create-db

lint:
	$(BIN)/ruff format --check . && $(BIN)/ruff check .

format:
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean-demo:
	rm -rf $(DEMO_DIR)

## certs: self-signed TLS certificate for gunicorn and Grafana (certs/, git-ignored; kept if present)
certs:
	sh docker/make-certs.sh certs

## up: the whole stack (db, redis, web, worker, beat, grafana) over HTTPS with docker compose
up: .env certs
	docker compose up -d --build
