# h2t: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test unit nbval lab notebooks bench gpu-run gpu-check screenshots realism realism-env clean help

# bench, gpu-run and gpu-check also run on a machine that has its own torch and no .venv (an offline GPU
# machine; README, "Real data and a GPU"): PY=python3 (or any interpreter) runs them with that Python
# as it is, installing nothing; without .venv a $(PYTHON) that has torch is taken the same way. Else
# they use .venv, built first if needed. `python -m h2t_lib env` then checks torch and the device.
ifeq ($(origin PY),command line)
HOST_PY := $(PY)
else ifeq ($(wildcard $(PY)),)
HOST_PY := $(shell $(PYTHON) -c "import importlib.util as u, sys; print(sys.executable if u.find_spec('torch') else '')" 2>/dev/null)
endif
RUN_PY    := $(or $(HOST_PY),$(PY))
RUN_DEPS  := $(if $(HOST_PY),,$(STAMP))
HOST_NOTE := $(if $(HOST_PY),@echo "make: using $(HOST_PY) as it is (no .venv, nothing installed)")

help:
	@echo "make demo   set up .venv, render synthetic data, evaluate + fine-tune, print results"
	@echo "make test   set up .venv, run unit tests and nbval over notebooks/"
	@echo "make lab    open the notebook course in JupyterLab"
	@echo "make notebooks  re-execute the notebooks in place (fast run, outputs kept; NB=05_*.ipynb for one)"
	@echo "make screenshots  JupyterLab in headless Chromium: docs/screenshots/*.png"
	@echo "make bench  run the speed/size benchmark (DEVICE=cpu|cuda) -> docs/bench_DEVICE.json"
	@echo "make gpu-run  train PRESET (paper) on samples rendered on the fly for MINUTES (10), then evaluate"
	@echo "make gpu-check  the prepared GPU check (tools/gpu_check.sh): versions, step and loader speeds, a 3-min gpu-run"
	@echo "   (bench, gpu-run, gpu-check: PY=python3 uses that Python's own torch, no .venv, no install)"
	@echo "make realism DATA=DIR  MediaPipe Hands on a rendered split (SPLIT=test): detection rate, 2D error (docs/realism.md)"

# Idempotent: re-installs only when pyproject.toml changed.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[notebooks,dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m h2t_lib demo

test: $(STAMP)
	H2T_FAST=1 $(PY) -m pytest -n 2 --dist loadscope --timeout 900 tests notebooks \
		--nbval-lax --nbval-current-env --nbval-cell-timeout 300 -p no:cacheprovider

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

DEVICE ?= cpu
bench: $(RUN_DEPS)
	$(HOST_NOTE)
	@$(RUN_PY) -m h2t_lib env --device $(DEVICE)
	$(RUN_PY) -m h2t_lib bench --device $(DEVICE) --json docs/bench_$(DEVICE).json

# One command for a GPU you have for a few minutes (README, "Real data and a GPU"; docs/scale.md):
# validation images rendered on this machine's CPUs, training samples rendered on the fly in the
# loader's workers (no image folder), mixed precision on CUDA, a wall-clock budget that stops with a
# checkpoint and its validation, then the evaluation table. MINUTES is the training's budget; the
# validation images and the evaluation come on top (seconds on a 16-core machine).
# On CPU, as tested: make gpu-run PRESET=tiny SIZE=64 MINUTES=1 EPOCHS=100000 TRAIN_DEVICE=cpu RUN=/tmp/gpu_run
# (SET="key=value ..." passes --set overrides; EPOCHS overrides the preset's number of epochs;
# a RUN that holds an earlier run is refused: another RUN, or OVERWRITE=1 to replace it.)
# TRAIN_DEVICE=auto (the default) wants the GPU: without a usable one it stops at once, one line, exit 2.
PRESET       ?= paper
MINUTES      ?= 10
SIZE         ?= 256
VAL_NUM      ?= 500
TRAIN_DEVICE ?= auto
RUN          ?= runs/gpu_$(PRESET)
REUSE        ?= 4
# REUSE: training samples (augmentations) cut from each render (render_reuse; 4 feeds a GPU 3x what 1 does, docs/scale.md)
gpu-run: $(RUN_DEPS)
	$(HOST_NOTE)
	@$(RUN_PY) -m h2t_lib env --device $(if $(filter auto,$(TRAIN_DEVICE)),gpu,$(TRAIN_DEVICE))
	$(RUN_PY) -m h2t_lib synth --out $(RUN)_val --split test --num $(VAL_NUM) --size $(SIZE) --seed 7 \
		--workers $(shell env -u OMP_NUM_THREADS nproc) --no-progress
	$(RUN_PY) -m h2t_lib train --preset $(PRESET) --render --data $(RUN)_val --out $(RUN) --device $(TRAIN_DEVICE) \
		--time-budget $(MINUTES) $(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(OVERWRITE),--overwrite) \
		--set render_reuse=$(REUSE) $(SET)
	$(RUN_PY) -m h2t_lib eval --ckpt $(RUN)/last.pt --data $(RUN)_val --split test --device $(TRAIN_DEVICE) \
		--json $(RUN)/eval.json --quiet

# The prepared device check (tools/gpu_check.sh): OUT=FOLDER for its JSON (default: $$OUT, else runs/).
gpu-check: $(RUN_DEPS)
	$(HOST_NOTE)
	PY=$(RUN_PY) bash tools/gpu_check.sh $(OUT)

# Re-execute every notebook in place with the outputs of a fast run (what is committed).
notebooks: $(STAMP)
# nbconvert now and then waits forever for a reply the kernel already sent (seen here with
# nbclient 0.11, under load): each run is capped at 5 minutes and tried a second time.
	cd notebooks && for nb in $(or $(NB),[0-9][0-9]_*.ipynb); do \
		for try in 1 2; do \
		H2T_FAST=1 H2T_STATIC_FIGURES=1 timeout 300 ../$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace $$nb \
		--ExecutePreprocessor.timeout=240 --ExecutePreprocessor.shutdown_kernel=immediate && break; \
		[ $$try = 2 ] && exit 1; echo "retrying $$nb"; done; done

# JupyterLab checked for real: run notebook 00 in headless Chromium, screenshot a 3D view and a widget.
# Needs Debian's chromium (apt-get install chromium); playwright drives it (no browser download).
screenshots: $(STAMP)
	$(PY) -m pip install --quiet -e ".[lab-check]"
	$(PY) tools/lab_screenshots.py notebooks/00_introduction.ipynb --out docs/screenshots --fast --nth-plot 1

# Realism report (issue 13, docs/realism.md): MediaPipe Hands wants numpy < 2, so it gets its own
# environment, .venv-mp; `python -m h2t_lib realism` runs tools/mediapipe_hands.py in it.
MP_VENV  := .venv-mp
MP_STAMP := $(MP_VENV)/.installed
SPLIT    ?= test
$(MP_STAMP):
	test -x $(MP_VENV)/bin/python || $(PYTHON) -m venv $(MP_VENV)
	$(MP_VENV)/bin/python -m pip install --quiet "mediapipe==0.10.21"
	touch $(MP_STAMP)

realism-env: $(MP_STAMP)

realism: $(STAMP) $(MP_STAMP)
	@test -n "$(DATA)" || { echo "usage: make realism DATA=DIR [SPLIT=test] [OUT=FOLDER]"; exit 2; }
	$(PY) -m h2t_lib realism --data $(DATA) --split $(SPLIT) --mp-python $(MP_VENV)/bin/python $(if $(OUT),--out $(OUT))

clean:
	rm -rf $(VENV) $(MP_VENV) build *.egg-info
