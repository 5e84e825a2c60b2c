# Two commands a newcomer needs: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test install static services browser clean

$(BIN)/activate: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(BIN)/activate

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch node_modules/.package-lock.json

install: $(BIN)/activate node_modules/.package-lock.json

static: install
	$(PY) manage.py collectstatic --noinput -v0

# Embedded default: SQLite and in-process tasks, with demo data, on http://127.0.0.1:8000
run: static
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo
	$(PY) manage.py runserver 127.0.0.1:8000

# Debian's Chromium for the browser tests (Playwright's own browser download is not used).
browser:
	@test -x $(CHROMIUM) || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null)

test: static browser
	$(PY) manage.py makemigrations --check --dry-run >/dev/null
	$(BIN)/pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) node_modules staticfiles var db.sqlite3
