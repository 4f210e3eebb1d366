# mmext: `make demo` sets up .venv and runs the Flowers demo end to end;
# `make test` sets up .venv and runs the test suite (what CI runs).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# console scripts of the venv (torchrun, mim) without activating it
export PATH := $(CURDIR)/$(BIN):$(PATH)
STAMP  := $(VENV)/.mmext-installed
REQS   := requirements/runtime.txt requirements/mim.txt requirements/tests.txt requirements/optional.txt
PYTEST_ARGS ?= -q

.PHONY: setup demo demo-tiny test fuzz check format clean-demo

setup: $(STAMP)

$(STAMP): $(REQS) setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip<26"
	$(BIN)/python -m pip install -q $(addprefix -r ,$(REQS))
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	# mim finds packages at site-packages/<pkg>: link it to the checkout
	$(BIN)/python setup.py mim_link
	$(BIN)/python -m pip check
	touch $(STAMP)

demo: setup
	$(BIN)/python tools/misc/flowers_demo.py

# the foundation's smoke run: train 2 epochs, resume to 4, test
demo-tiny: setup
	$(BIN)/python tools/misc/make_tiny_data.py
	$(BIN)/python tools/train.py configs/tiny/resnet18_1xb8-scratch_tiny-64px.py --work-dir work_dirs/tiny --cfg-options train_cfg.max_epochs=2
	$(BIN)/python tools/train.py configs/tiny/resnet18_1xb8-scratch_tiny-64px.py --work-dir work_dirs/tiny --resume
	$(BIN)/python tools/test.py configs/tiny/resnet18_1xb8-scratch_tiny-64px.py work_dirs/tiny/epoch_4.pth --out work_dirs/tiny/metrics.json --out-item metrics
	@$(BIN)/python -c "import json; print('tiny test accuracy:', json.load(open('work_dirs/tiny/metrics.json'))['accuracy/top1'])"

# the suite and the docstring examples of mmext (doctests); pytest exits 5
# when it collected no test: that is a failure here (setup.cfg's
# [tool:pytest] skips the two alias modules of the old converter paths)
test: setup
	$(BIN)/python -m pip check
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest tests mmext --doctest-modules $(PYTEST_ARGS); \
	rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest ran no tests: failing"; exit 1; fi; exit $$rc

# the fuzz tests (tests/**/test_*fuzz*.py) with many more, randomised examples
# than `make test` runs (HYPOTHESIS_PROFILE, tests/conftest.py)
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz-long OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q \
		$$(find tests -name 'test_*fuzz*.py' | sort)

# lint: OpenMMLab's flake8 / isort / yapf settings (setup.cfg); CI runs it
# before the tests. `make format` applies isort and yapf.
LINT_DIRS := mmext tools tests benchmarks configs setup.py
check: setup
	$(BIN)/python -m flake8 $(LINT_DIRS)
	$(BIN)/python -m isort --check-only --diff $(LINT_DIRS)
	$(BIN)/python -m yapf --recursive --diff $(LINT_DIRS)

format: setup
	$(BIN)/python -m isort $(LINT_DIRS)
	$(BIN)/python -m yapf --recursive --in-place $(LINT_DIRS)

clean-demo:
	rm -rf data/demo work_dirs/demo* work_dirs/flowers_demo
