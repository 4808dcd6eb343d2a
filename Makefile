# airflow-ecs — build, test and tear down Airflow 3 on ECS Fargate.
# `make deploy` and `make test` bootstrap everything they need (.venv, the embedded emulator).

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV          := .venv
BIN           := $(VENV)/bin
LOCK          := requirements/requirements.lock
UV_VERSION    := 0.13.9
INVENTORY     ?= inventories/emulator
EMULATOR_PORT ?= 5000
export EMULATOR_PORT
PYTEST_ARGS   ?=

# The embedded emulator is used for the emulator inventory unless AWS_ENDPOINT_URL points elsewhere.
USE_EMULATOR := $(if $(AWS_ENDPOINT_URL),,$(filter inventories/emulator%,$(INVENTORY)))
PLAYBOOK_ENV := $(if $(USE_EMULATOR),AWS_ENDPOINT_URL=http://127.0.0.1:$(EMULATOR_PORT))
# On the emulator, site.yml and teardown.yml run as a deployer user holding exactly the deployer policy
# (IAM is enforced there), so a missing permission fails here as it would in a restricted account.
DEPLOYER_POLICY := .state/emulator/deployer-policy.json
AS_DEPLOYER := $(if $(USE_EMULATOR),$(PLAYBOOK_ENV) $(BIN)/ansible-playbook -i $(INVENTORY) deployer_policy.yml -e deployer_policy_file=$(abspath $(DEPLOYER_POLICY)) && eval "$$(scripts/emulator deployer-env --policy $(DEPLOYER_POLICY))" &&)

.PHONY: help venv lock image-lock deploy deploy-dags shell teardown check deployer-policy emulator-start emulator-stop emulator-status lint test e2e bench cost clean

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(BIN)/ansible-playbook: $(LOCK)
	@python="$$(scripts/find-python)" && echo "creating $(VENV) with $$python" && \
	  "$$python" -m venv --clear $(VENV) && \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION) && \
	  $(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python $(LOCK)
	@touch $@

venv: $(BIN)/ansible-playbook ## Create .venv from the lock file (only when missing or stale)

lock: ## Re-resolve requirements/requirements.in into the lock file
	$(BIN)/uv pip compile --quiet --python $(BIN)/python requirements/requirements.in -o $(LOCK)

image-lock: venv ## Pin image/requirements.txt against the stock Airflow image's packages (image/requirements.lock)
	$(BIN)/python -m embedded_aws.image_env lock

emulator-start: venv ## Start the embedded AWS emulator on 127.0.0.1:$(EMULATOR_PORT) (EMBEDDED_AWS_RUNTIME=off: API only)
	@scripts/emulator start

emulator-stop: ## Stop the emulator this checkout started
	@scripts/emulator stop

emulator-status:
	@scripts/emulator status

deploy: venv $(if $(USE_EMULATOR),emulator-start) ## Deploy the stack (emulator: it then runs here; INVENTORY=inventories/aws for AWS)
	$(AS_DEPLOYER) $(PLAYBOOK_ENV) $(BIN)/ansible-playbook -i $(INVENTORY) site.yml $(ARGS)
	$(if $(USE_EMULATOR),@scripts/emulator wait)

check: venv $(if $(USE_EMULATOR),emulator-start) ## Dry-run the deploy: --check --diff
	$(PLAYBOOK_ENV) $(BIN)/ansible-playbook -i $(INVENTORY) site.yml --check --diff $(ARGS)

shell: venv ## Shell in a running task through ECS Exec: make shell SERVICE=scheduler [COMMAND='airflow info'] (AWS)
	@test -n "$(SERVICE)" || { echo "usage: make shell SERVICE=<api-server|scheduler|dag-processor|triggerer|worker|flower> [COMMAND=...]" >&2; exit 2; }
	$(BIN)/python scripts/ecs_shell.py --inventory $(INVENTORY) $(SERVICE) $(if $(COMMAND),--command '$(COMMAND)')

deploy-dags: venv $(if $(USE_EMULATOR),emulator-start) ## Upload changed DAGs to the DAG bucket only (nothing else is changed)
	$(AS_DEPLOYER) $(PLAYBOOK_ENV) $(BIN)/ansible-playbook -i $(INVENTORY) site.yml --tags dags -e '{"preflight_live_roles": ["dags"]}' $(ARGS)

teardown: venv $(if $(USE_EMULATOR),emulator-start) ## Remove every resource of the stack (emulator: and stop it)
	$(AS_DEPLOYER) $(PLAYBOOK_ENV) $(BIN)/ansible-playbook -i $(INVENTORY) teardown.yml $(ARGS)
	$(if $(USE_EMULATOR),@scripts/emulator stop)

deployer-policy: venv $(if $(USE_EMULATOR),emulator-start) ## Write the deployer's least-privilege IAM policy for the inventory's stack to .state/
	$(PLAYBOOK_ENV) $(BIN)/ansible-playbook -i $(INVENTORY) deployer_policy.yml $(ARGS)

lint: venv ## ruff and ansible-lint (production profile)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/ansible-lint --offline

test: venv lint ## Everything that proves the project: lint, unit, DAG and integration tests
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest -n 2 --dist loadgroup --no-loadscope-reorder --durations=40 $(PYTEST_ARGS)

bench: venv ## Deploy / re-run / teardown figures, then make deploy to a running Airflow, first books_etl, Celery-vs-Local fan-out
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python scripts/bench.py $(ARGS)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m e2e.bench

cost: venv ## Monthly AWS cost estimate of the stack (INVENTORY=inventories/aws, ARGS='-e name=value')
	$(BIN)/python scripts/cost.py -i $(INVENTORY) $(ARGS)

clean: emulator-stop ## Remove the venv and local state
	rm -rf $(VENV) .state .pytest_cache .ruff_cache

e2e: venv ## Only the end-to-end run: make deploy on the local runtime, books_etl through the UI URL, teardown (~3 min)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest tests/e2e -s $(PYTEST_ARGS)
