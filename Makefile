# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5000
CONSOLE_PORT ?= 5001

.PHONY: run test lint prism install migrate seed bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,postgres,redis]'
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(BIN)/hotline migrate

seed: migrate
	$(BIN)/hotline seed

## make run: install, migrate, seed demo data, serve the webhooks on 127.0.0.1:$(PORT) and the
## staff console on 127.0.0.1:$(CONSOLE_PORT), with the worker
run: seed
	@echo
	@echo "The hotline answers on http://127.0.0.1:$(PORT)/voice/incoming"
	@echo "Staff log in on        http://127.0.0.1:$(CONSOLE_PORT)/console   (demo logins: README.md)"
	@echo "Place a simulated call from another terminal:"
	@echo "    $(BIN)/hotline call --url http://127.0.0.1:$(PORT) --press 1,2"
	@echo "    $(BIN)/hotline call --url http://127.0.0.1:$(PORT) --press 9,1        # emergency: fire"
	@echo "    $(BIN)/hotline call --url http://127.0.0.1:$(PORT) --press 1,4,20261120000001#"
	@echo
	PATH="$(abspath $(BIN)):$$PATH" CONSOLE_PORT=$(CONSOLE_PORT) \
	  $(BIN)/honcho start --port $(PORT) -f Procfile web worker console

## make test: the whole suite (DATABASE_URL and REDIS_URL choose the backends)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

prism:
	bin/install-prism

bench: $(STAMP)
	$(BIN)/python bench/webhooks.py

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
