# gridsvc — two commands do all the set-up (safe to run twice):
#   make demo   set up, load the demo street, serve on http://127.0.0.1:8000 (+ the worker)
#   make test   set up, then the whole pytest suite
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
PORT  ?= 8000
SIZE  ?= small
SECRETS ?= var/secrets.env
export DJANGO_SETTINGS_MODULE := gridsvc.settings
# The demo's own random keys (scripts/demo_secrets.sh makes them once, mode 600), exported to
# the commands that read or write the local database; never the keys published in settings.py.
WITH_SECRETS = set -a && . ./$(SECRETS) && set +a &&
# The running demo connects as the application role made by scripts/setup.sh (not the owner,
# not a superuser: it cannot disable the audit triggers or truncate); migrations and load_demo
# use the owner role of DATABASE_URL's default. An explicit DATABASE_URL is used as it is.
APP_DATABASE_URL ?= postgis://gridsvc_app:gridsvc_app@127.0.0.1:$(or $(GRIDSVC_PG_PORT),5439)/gridsvc
AS_APP = $(if $(DATABASE_URL),,DATABASE_URL=$(APP_DATABASE_URL))

.PHONY: setup demo test lint format bench serve worker migrate static cluster cluster-stop cluster-status cluster-faults

setup:
	bash scripts/setup.sh

migrate: setup
	DJANGO_DEBUG=1 $(PY) manage.py migrate --no-input -v 0

static:
	bash scripts/build_web.sh
	DJANGO_DEBUG=1 $(PY) manage.py collectstatic --no-input -v 0  # hashed names, .gz/.br (settings STORAGES)

# First run: new secrets, so a demo street loaded earlier with the published development keys
# is reloaded (load_demo --reset) under the new ones; later runs keep the data.
demo: migrate static
	@new=$$(bash scripts/demo_secrets.sh $(SECRETS)); \
	if [ "$$new" = new ]; then echo "made $(SECRETS): the demo's own secret keys (keep it)"; fi; \
	$(WITH_SECRETS) DJANGO_DEBUG=1 $(PY) manage.py load_demo $$([ "$$new" = new ] && echo --reset)
	$(WITH_SECRETS) DJANGO_DEBUG=1 $(AS_APP) bash scripts/serve.sh $(PORT)

# The production-shaped topology on this host (docs/scaling.md): nginx :8080, two gunicorn app
# servers, PgBouncer (transaction mode), a streaming standby of the primary, two workers.
cluster: migrate static
	@new=$$(bash scripts/demo_secrets.sh $(SECRETS)); \
	if [ "$$new" = new ]; then echo "made $(SECRETS): the demo's own secret keys (keep it)"; fi; \
	$(WITH_SECRETS) DJANGO_DEBUG=1 $(PY) manage.py load_demo $$([ "$$new" = new ] && echo --reset)
	$(WITH_SECRETS) bash scripts/cluster.sh start

cluster-stop:
	bash scripts/cluster.sh stop

cluster-status:
	bash scripts/cluster.sh status

# the faults of issue 23 under load (scripts/cluster_faults.py) on a throwaway cluster: 2-5 min
cluster-faults: setup static
	GRIDSVC_TESTING=1 GRIDSVC_CLUSTER_FAULTS=1 $(PY) -m pytest tests/test_cluster.py -k fault_script -q -rP

test: setup static
	bash scripts/test.sh

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

bench: migrate
	@bash scripts/demo_secrets.sh $(SECRETS) >/dev/null
	$(WITH_SECRETS) bash scripts/bench.sh $(SIZE)
