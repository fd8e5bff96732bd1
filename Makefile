# The two commands of the README: `make demo` (install + run the S2 pipeline locally) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install demo test compile bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c requirements.lock -e '.[eo,s1,osm,ml,kfp,dev]'
	touch $@

demo: install
	$(PY) -m pipelines.demo

test: install
	$(PY) -m pytest -n 2 --dist loadgroup -q

compile: install
	$(PY) -m pipelines.compile

bench: install
	$(PY) bench/s2_preprocess.py

clean:
	rm -rf $(VENV) local_outputs demo_outputs
