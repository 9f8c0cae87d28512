# `make demo` and `make test` set themselves up: they create .venv and install into it when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch is installed first and pinned to the CPU/CUDA build that this machine's pip cache holds;
# override on another machine, e.g. `make test TORCH_SPEC="torch torchvision"`. Every other package comes at the
# version in constraints.txt, the one CI tests (`CONSTRAINTS=` lets pip choose, e.g. for another torch).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
CONSTRAINTS ?= -c constraints.txt

.PHONY: demo test lint install clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q $(CONSTRAINTS) -e '.[test,offline]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/robustad bench

test: $(VENV)/.installed
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(PY) -m ruff check robustad plugins tests benchmarks results

clean:
	rm -rf $(VENV) build *.egg-info
