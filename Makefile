# The two commands of the README: `make demo` and `make test`. Each sets up .venv by itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test check lint bench venv clean e2e browser

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m wfkit demo --output build/report.html

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Debian's Chromium: static figure export, the HTML report check and the browser tests use it.
# Installed when absent (as root, or through sudo); without it those checks skip and say why.
browser:
	@test -x /usr/bin/chromium || $(if $(filter 0,$(shell id -u)),,sudo) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null' || echo "chromium could not be installed: browser checks will be skipped"

# The notebooks' sources are checked by pytest (tests/notebooks/test_notebooks_stored.py runs
# `notebooks/src/build.py --check`), in both tiers.
test: lint browser
	$(PY) -m pytest -q -p no:cacheprovider
	$(PY) -m pytest -q -p no:cacheprovider --nbval-lax notebooks/

# The inner loop: ruff, mypy, the notebooks' sources and every test not marked slow, on two
# workers (pytest-xdist; at most a minute on a quiet machine). CHECK_WORKERS=0 runs them in
# one process, as `make test` does.
CHECK_WORKERS ?= 2
check: lint
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow" $(if $(filter 0,$(CHECK_WORKERS)),,-n $(CHECK_WORKERS))

# What a person sees: JupyterLab in Debian's Chromium, driven by Playwright; screenshots in
# build/e2e/. Installs the browser when it is absent (as root, or through sudo).
e2e: $(STAMP) browser
	test -x /usr/bin/chromium
	WFKIT_E2E=1 $(PY) -m pytest -q -p no:cacheprovider tests/e2e

bench: $(STAMP)
	$(PY) benchmarks/engine.py
	$(PY) benchmarks/executors.py
	$(PY) benchmarks/coordination.py
	$(PY) benchmarks/integration.py
	$(PY) benchmarks/redaction.py
	$(PY) benchmarks/simulation.py
	$(PY) benchmarks/stg.py
	$(PY) benchmarks/dashboard.py
	$(PY) benchmarks/cache.py

clean:
	rm -rf $(VENV) build .pytest_cache
