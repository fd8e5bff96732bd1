# The two commands of the README: `make demo` (install + run the S2 pipeline locally) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install demo test compile bench images ai4eu-images clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c requirements.lock -e '.[eo,s1,osm,ml,ai4eu,kfp,dev]'
	touch $@

demo: install
	$(PY) -m pipelines.demo

test: install
	$(PY) -m pytest -n 2 --dist loadgroup -q

compile: install
	$(PY) -m pipelines.compile

VERSION = $(shell $(PYTHON) -c "import re;print(re.search(r'__version__ = \"(.+)\"', open('components/__init__.py').read())[1])")
REGISTRY ?= ghcr.io/eo-kfp-services

images:
	for name in eo ml snap; do docker build -f images/$$name/Dockerfile -t $(REGISTRY)/$$name:$(VERSION) . || exit 1; done

# One AI4EU Experiments image per service, on top of the eo or ml image (build those first).
ai4eu-images: install
	$(PY) -m components.common.ai4eu list | while read -r service base name; do \
	  docker build -f images/ai4eu/Dockerfile --build-arg BASE_IMAGE=$(REGISTRY)/$$base:$(VERSION) \
	    --build-arg SERVICE=$$service -t $(REGISTRY)/$$name:$(VERSION) . || exit 1; done

bench: install
	$(PY) bench/s2_preprocess.py

clean:
	rm -rf $(VENV) local_outputs demo_outputs
