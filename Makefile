# Two commands do all the set-up on a fresh machine:
#   make demo   runs the tour of the engine on the embedded default model
#   make test   runs the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/orchestrator demo

# pytest exits 5 when it collects no test; that is not a failure of the set-up.
test: $(STAMP)
	$(PY) -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

bench: $(STAMP)
	$(VENV)/bin/orchestrator bench engine

clean:
	rm -rf $(VENV) build *.egg-info
