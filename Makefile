# Tasks for the PyTorch Basics course. Each target is one plain command, so everything
# also works without make (the command is on the line below the target).
PY := .venv/bin/python
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup data lab test figures execute release bench grade bench-grading bench-validate hub gpu-check
.DEFAULT_GOAL := lab

setup:    ## create or update .venv with the pinned packages (idempotent)
	./scripts/setup

data: setup    ## prepare Fashion-MNIST in data/ and verify the data files
	$(PY) -m course data

lab: data    ## open the course in JupyterLab
	./scripts/lab

test: data    ## run every test: notebooks (nbval), release, grading, package; a worker per core (conftest.py)
	$(PY) -m pytest -n auto --dist loadscope --no-loadscope-reorder

figures: setup    ## redraw figures/*.png and embed them in the lessons
	$(PY) -m course figures

execute: setup    ## re-run the solution notebooks and store their outputs
	$(PY) -m course execute

release: setup    ## regenerate the student versions in notebooks/ from solutions/
	$(PY) -m course release

bench: data    ## time lesson 06's classic and lesson 07's fast CNN recipe side by side (not a test)
	$(PY) -m course bench

grade: data    ## autograde a class: make grade ASSIGNMENT=01-tensors SUBMISSIONS=path [GRADE_OPTIONS=--force]
	$(PY) -m course grade $(ASSIGNMENT) $(SUBMISSIONS) $(GRADE_OPTIONS)

bench-grading: data    ## time grading against plain nbgrader: per lesson, and lesson 01 for 10, 100, 500 students (not a test)
	$(PY) -m course bench-grading

bench-validate: data    ## time the Validate button's work on each lesson, 3 rounds (not a test)
	$(PY) -m course bench-validate

hub: data    ## run the class's JupyterHub, as root: make hub [ROSTER=class.csv] [HUB_ROOT=/srv/pytorch-basics] [PORT=8000]
	$(if $(ROSTER),$(PY) -m course hub $(if $(HUB_ROOT),--root $(HUB_ROOT)) users $(ROSTER) &&) $(PY) -m course hub $(if $(HUB_ROOT),--root $(HUB_ROOT)) start $(if $(PORT),--port $(PORT))

gpu-check:    ## on a machine with an NVIDIA GPU: set up, run the tests on CUDA and the benchmark; report in test-artifacts/gpu-check/
	./scripts/gpu-check
