# Two entry points: `make demo` (train + evaluate on the generated synthetic data) and
# `make test`. Both create .venv on first use and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-train-dev
# The device install (no TensorFlow): the runtime tests run there too.
RT_VENV  := .venv-runtime
RT_STAMP := $(RT_VENV)/.installed-runtime
TEST_MODELS := build/test-models
PYTEST_ARGS ?= -m "not slow"

.PHONY: demo test test-slow bench-env clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[train,dev]'
	touch $@

demo: $(STAMP)
	rm -rf runs/demo
	$(BIN)/edgeseg data synth
	$(BIN)/edgeseg train --run-dir runs/demo --alpha 0.5 --crop-size 96x128 --batch-size 8 \
	  --epochs 8 --steps-per-epoch 50 --lr 3e-3 --scale-range 0.75,1.5 --val-every 2
	$(BIN)/edgeseg export runs/demo --int8 --qat --qat-steps 200 --calib-size 100 --force
	$(BIN)/edgeseg evaluate runs/demo runs/demo/export/demo_fp32.tflite runs/demo/export/demo_int8.tflite \
	  runs/demo/export/demo_qat_int8.tflite --json runs/demo/eval.json --markdown runs/demo/drop.md \
	  --chart runs/demo/iou.png --overlays runs/demo/overlays.png

$(RT_STAMP): pyproject.toml
	$(PYTHON) -m venv $(RT_VENV)
	$(RT_VENV)/bin/python -m pip install -q --upgrade pip
	$(RT_VENV)/bin/pip install -q -e . pytest
	touch $@

test: $(STAMP) $(RT_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	$(BIN)/python tools/make_test_models.py $(TEST_MODELS)
	EDGESEG_TEST_MODELS=$(TEST_MODELS) $(RT_VENV)/bin/python -m pytest -o addopts="-ra" tests/runtime_only

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

# Peer tools for tools/bench_quant.py --peers, kept out of the TensorFlow environment.
bench-env:
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install -q torch torchvision segmentation-models-pytorch onnxruntime onnx onnxscript

clean:
	rm -rf $(VENV) $(RT_VENV) runs build .pytest_cache
