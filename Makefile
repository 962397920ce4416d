# virtplane developer entry points. The README's quick start:
#   make demo   - install everything (system packages included) and run the demo
#   make test   - install everything, start libvirtd, run lint, types, docs and tests

VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup setup-dev daemons demo demo-qemu demo-check test lint typecheck unit unit-postgresql bench docs clean

setup:
	bash tools/setup-system.sh
	bash tools/dev-install.sh

setup-dev:
	bash tools/setup-system.sh
	bash tools/dev-install.sh --dev

daemons:
	bash tools/start-daemons.sh
	bash tools/start-second-host.sh
	bash tools/start-gluster.sh
	bash tools/start-postgres.sh

demo: setup
	$(VENV)/bin/virtplane demo

demo-qemu: setup daemons
	$(VENV)/bin/virtplane demo --uri qemu:///system

lint:
	$(VENV)/bin/ruff check core plugins arch_x86_64 arch_ppc64 storage_gluster storage_libsm hypervisor_ovm3 tests tools
	$(VENV)/bin/lint-imports --no-cache

typecheck:
	$(VENV)/bin/mypy

unit:
	$(VENV)/bin/python tools/gen_hook_docs.py --check
	$(PY) -m pytest tests -q -ra
	$(MAKE) unit-postgresql

# the storage, VM, REST API and permission suites again, each test's store a fresh
# PostgreSQL schema (issue 20; tools/start-postgres.sh), the API's users and permissions in
# that database. The kill-mid-create drill is left out: its child process is handed the
# SQLite file's path by the test itself.
unit-postgresql:
	VIRTPLANE_TEST_STATE_BACKEND=postgresql $(PY) -m pytest -q -ra tests/storage tests/kvm \
		tests/core/test_services.py tests/core/test_cli.py tests/api tests/authz \
		--deselect tests/storage/test_faults.py::test_kill_mid_create_leaves_a_recorded_illegal_volume

bench:
	$(PY) tests/perf/run_all.py

# the documentation site; every Sphinx warning fails the build
docs:
	rm -rf docs/_build
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

test: setup-dev daemons lint typecheck docs bench demo-check unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

demo-check:
	$(VENV)/bin/virtplane demo
