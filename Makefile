# img2pose_mm — the commands a user needs.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: setup test demo lint clean-demo

## setup: create .venv with torch, mmengine, mmdet and mmcv (ops built from source, cached)
setup:
	PYTHON=$(PYTHON) VENV=$(VENV) bash tools/install/setup_env.sh

$(VENV)/.setup-ok:
	$(MAKE) setup

## test: run the test suite (sets up .venv first if needed)
test: $(VENV)/.setup-ok
	$(PY) -m pytest tests -q -p no:cacheprovider

## demo: the main job end to end on the embedded synthetic dataset
demo: $(VENV)/.setup-ok
	$(PY) tools/demo_pipeline.py --work-dir work_dirs/demo

## lint: ruff over the package, tools, configs and tests
lint: $(VENV)/.setup-ok
	$(PY) -m ruff check img2pose_mm tools configs tests demo setup.py
