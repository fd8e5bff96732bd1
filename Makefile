# The two commands of the README: `make demo` (install + run the S2 pipeline locally) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install demo test compile bench images e2e ai4eu-images clean

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

# eo and ml (and snap when SNAP_INSTALLER names ESA's installer in images/snap/), with Podman or
# Docker; PYTHON_BASE=debian (default) builds the base from Debian's packages (images/build.sh).
images:
	REGISTRY=$(REGISTRY) VERSION=$(VERSION) images/build.sh eo ml $(if $(SNAP_INSTALLER),snap)

# Every compiled pipeline run in its images (kfp.local.DockerRunner) against SeaweedFS. Needs
# root for Podman; starts Podman's Docker API service (images/podman-setup.sh) and builds the images.
e2e: install
	DOCKER_HOST=$$(images/podman-setup.sh) && $(MAKE) images && \
	  DOCKER_HOST=$$DOCKER_HOST EO_E2E_REQUIRED=1 $(PY) -m pytest tests/e2e -p no:xdist -q --durations=0

# One AI4EU Experiments image per model of `eo-ai4eu list` (the services and the data broker
# product-broker), on top of the eo or ml image (build those first).
ai4eu-images: install
	$(PY) -m components.common.ai4eu list | while read -r service base name; do \
	  docker build -f images/ai4eu/Dockerfile --build-arg BASE_IMAGE=$(REGISTRY)/$$base:$(VERSION) \
	    --build-arg SERVICE=$$service -t $(REGISTRY)/$$name:$(VERSION) . || exit 1; done

bench: install
	$(PY) bench/s2_preprocess.py

clean:
	rm -rf $(VENV) local_outputs demo_outputs
