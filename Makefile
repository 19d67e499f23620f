# Earmark: `make run` starts the app on a demo project; `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# make run installs the app and its extras; make test, lint and bench add the dev group on top.
APP    := $(VENV)/.installed-app
DEV    := $(VENV)/.installed-dev
EXTRAS := postgres,demo,s3
# auto: uv when it is on PATH or PyPI has it for this machine (it installs several times faster),
# pip otherwise or if uv fails; uv or pip to choose. uv leaves bytecode to be compiled on first
# import: compiling all 8,000 files at install costs more than compiling what the app imports.
INSTALLER ?= auto

export EARMARK_DATA_DIR ?= $(CURDIR)/earmark-data

.PHONY: run test lint bench venv clean

# $(1): what is installed (said on the terminal), $(2): pip-style arguments.
define install
	@uv=; \
	if [ "$(INSTALLER)" != pip ]; then \
	  if command -v uv >/dev/null 2>&1; then uv=uv; \
	  elif [ -x $(BIN)/uv ] || $(BIN)/python -m pip install --quiet --disable-pip-version-check uv >/dev/null 2>&1; \
	  then uv=$(BIN)/uv; \
	  elif [ "$(INSTALLER)" = uv ]; then echo "uv is not on PATH and could not be installed" >&2; exit 1; fi; \
	fi; \
	if [ -n "$$uv" ]; then \
	  echo "Installing $(1) into $(VENV) with uv"; \
	  $$uv pip install --python $(BIN)/python $(2) && exit 0; \
	  [ "$(INSTALLER)" = uv ] && exit 1; \
	  echo "uv failed; installing with pip instead"; \
	fi; \
	echo "Installing $(1) into $(VENV) with pip (quietly; it takes a few minutes)"; \
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1" && \
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(2)
endef

venv: $(DEV)

$(APP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Earmark needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(call install,Earmark and its extras,-e '.[$(EXTRAS)]')
	touch $@

$(DEV): $(APP)
	$(call install,the test and lint tools,-e '.[$(EXTRAS)]' --group dev)
	touch $@

run: $(APP)
	$(BIN)/earmark db upgrade
	$(BIN)/earmark demo --if-empty
# One background worker beside the app runs training, label issues, exports…; it stops with the app.
	$(BIN)/earmark worker & worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/streamlit run app.py --server.headless true --browser.gatherUsageStats false

test: $(DEV)
	$(BIN)/python -m pytest -n 2 --dist worksteal --durations=15

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

bench: $(DEV)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
