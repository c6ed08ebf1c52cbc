# Valhalla Ops. `make run` and `make test` do all the set-up they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# Counters of every gunicorn worker and of the worker, for /metrics; emptied at each start.
METRICS_DIR := $(CURDIR)/.run/prometheus
# The port check runs before the virtualenv exists on a fresh clone: any Python 3 will do.
PYTHON_FOR_CHECKS := $(shell test -x $(BIN)/python && echo $(BIN)/python || echo $(PYTHON))

.PHONY: run port-free test install migrate superuser browser lint typecheck format check clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(BIN)/python manage.py migrate --noinput

superuser: migrate
	@$(BIN)/python manage.py ensure_superuser

# First of all: a second `make run` on a busy port would empty the first server's metrics.
port-free:
	@$(PYTHON_FOR_CHECKS) -c 'import socket, sys; host, port = sys.argv[1], int(sys.argv[2]); family = socket.AF_INET6 if ":" in host else socket.AF_INET; s = socket.socket(family); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((host, port))' "$(HOST)" "$(PORT)" 2>/dev/null \
	  || { echo "port $(PORT) is busy, use \`make run PORT=$$(( $(PORT) + 1 ))\`" >&2; exit 1; }

# gunicorn.conf.py: without REDIS_URL one process with threads (exact rate limits and
# maintenance switches in one process); with REDIS_URL two processes sharing Redis.
run: port-free migrate superuser
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	rm -rf "$(METRICS_DIR)" && mkdir -p "$(METRICS_DIR)"
	@echo "Valhalla Ops: admin at http://$(HOST):$(PORT)/admin/, API docs at http://$(HOST):$(PORT)/api/docs/"
	@export PROMETHEUS_MULTIPROC_DIR="$(METRICS_DIR)"; \
	$(BIN)/python manage.py run_worker & worker=$$!; \
	trap 'kill -TERM $$worker $$server 2>/dev/null; wait' INT TERM EXIT; \
	BIND=$(HOST):$(PORT) $(BIN)/gunicorn --config gunicorn.conf.py valhalla_ops.wsgi & server=$$!; \
	wait $$server

# Debian's Chromium drives the admin's browser tests (Playwright's own download is not used).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing and cannot be installed here: browser tests will skip"; fi; }

test: install browser
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy valhalla_ops clients maintenance ratelimits notify exports retention

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: install
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

clean:
	rm -rf $(VENV) staticfiles .run .pytest_cache .ruff_cache .mypy_cache
