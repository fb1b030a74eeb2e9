# gridsvc — two commands do all the set-up (safe to run twice):
#   make demo   set up, load the demo street, serve on http://127.0.0.1:8000 (+ the worker)
#   make test   set up, then the whole pytest suite
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
PORT  ?= 8000
SIZE  ?= small
export DJANGO_SETTINGS_MODULE := gridsvc.settings

.PHONY: setup demo test lint format bench serve worker migrate static

setup:
	bash scripts/setup.sh

migrate: setup
	DJANGO_DEBUG=1 $(PY) manage.py migrate --no-input -v 0

static:
	bash scripts/build_web.sh

demo: migrate static
	DJANGO_DEBUG=1 $(PY) manage.py load_demo
	DJANGO_DEBUG=1 bash scripts/serve.sh $(PORT)

test: setup static
	bash scripts/test.sh

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

bench: migrate
	bash scripts/bench.sh $(SIZE)
