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
PYTEST_ARGS ?= -m "not slow and not imx500"
# Debian packages the tests use for real: GStreamer (camera pipelines), mmdebstrap (the arm64
# root of test-arm64), Chromium (the --serve page in a browser). Installed when missing and this
# machine allows it (root with apt); then the tests that need them must not be skipped.
# apt's python3-numpy / python3-numexpr / python3-venv: the Pi OS Bookworm situation on this Debian
# (tests/boards/prove_arm64.py: a system numpy and a C extension built on it, beside our pip install).
# libvulkan1 + mesa-vulkan-drivers: Debian 12's lavapipe, a Vulkan device Dawn refuses, and gcc for a
# driver library that does not load (the GPU accelerator's failure lines, tests/boards/prove_gpu.py).
SYSTEM_PACKAGES := gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good mmdebstrap chromium \
	python3-numpy python3-numexpr python3-venv libvulkan1 mesa-vulkan-drivers gcc
CAN_APT := $(shell [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && echo 1)

.PHONY: demo test test-arm64 test-gpu test-slow system-deps bench-env imx500-env test-imx500 clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[train,onnx,dev]'
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

system-deps:
	@missing=""; for tool in gst-launch-1.0 mmdebstrap chromium gcc; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 || missing="$$missing mesa-vulkan-drivers"; \
	if grep -qs '^12' /etc/debian_version && ! /usr/bin/python3 -c 'import numpy, numexpr, ensurepip' 2>/dev/null; then \
	  missing="$$missing python3-numpy/numexpr/venv"; fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$(CAN_APT)" = 1 ]; then \
	    echo "installing Debian packages for:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; }; \
	  else echo "warning: missing$$missing (not root with apt): the tests that need them are skipped"; fi; \
	fi

test: $(STAMP) $(RT_STAMP) system-deps
	EDGESEG_REQUIRE_SYSTEM_TOOLS=$(CAN_APT) $(BIN)/python -m pytest $(PYTEST_ARGS)
	$(BIN)/python tools/maintenance/make_test_models.py $(TEST_MODELS)
	EDGESEG_TEST_MODELS=$(TEST_MODELS) $(RT_VENV)/bin/python -m pytest -o addopts="-ra" tests/runtime_only tests/test_golden.py
	$(MAKE) --no-print-directory test-arm64
	$(MAKE) --no-print-directory test-gpu
	@if [ "$(CAN_APT)" = 1 ] || java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; then \
	  $(MAKE) --no-print-directory test-imx500 IMX_VENV=$(IMX_TEST_VENV); \
	else echo "warning: no Java >= 17 and not root with apt: the IMX500 converter test is skipped"; fi

# The device install as the boards have it: Debian bookworm and trixie arm64 roots with apt's numpy under
# qemu-user as each board's CPU (Cortex-A72, A76, A53, max), the README's Pi commands, and the same on this Debian 12
# (tests/boards/prove_arm64.py says what).
test-arm64: $(RT_STAMP) system-deps
	@[ -d $(TEST_MODELS)/frames ] || { $(MAKE) --no-print-directory $(STAMP) && $(BIN)/python tools/maintenance/make_test_models.py $(TEST_MODELS); }
	$(RT_VENV)/bin/python tests/boards/prove_arm64.py $(TEST_MODELS)

# --delegate gpu on Mesa's software Vulkan in a Debian trixie root (tests/boards/prove_gpu.py says what).
test-gpu: $(RT_STAMP) system-deps
	@[ -d $(TEST_MODELS)/frames ] || { $(MAKE) --no-print-directory $(STAMP) && $(BIN)/python tools/maintenance/make_test_models.py $(TEST_MODELS); }
	EDGESEG_REQUIRE_SYSTEM_TOOLS=$(CAN_APT) $(RT_VENV)/bin/python tests/boards/prove_gpu.py $(TEST_MODELS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

# Peer tools for tools/bench/bench_quant.py --peers, kept out of the TensorFlow environment.
bench-env:
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install -q torch torchvision segmentation-models-pytorch onnxruntime onnx onnxscript ultralytics==8.4.190 'litert-torch>=0.10.0' 'ai-edge-litert>=2.3.0'

# Sony's IMX500 toolchain (the Raspberry Pi AI Camera) in its own venv: MCT refuses TensorFlow >= 2.16,
# the converter wants Python < 3.12 and Java >= 17 (docs/imx500.md). `edgeseg export --target imx500`
# finds it here (or at $$EDGESEG_IMX500_VENV). Made once; remade when the pins change.
IMX_VENV   ?= .venv-imx500
IMX_PYTHON ?= python3.11
IMX_REQS   := edgeseg/export/imx500/requirements.txt
# the stamp names the pins' hash, not their file's age: a fresh clone reuses a cached env that fits
IMX_STAMP  := $(IMX_VENV)/.installed-imx500-$(shell sha256sum $(IMX_REQS) | cut -c1-12)

$(IMX_STAMP):
	@java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])' || { \
	  if [ "$(CAN_APT)" = 1 ]; then echo "installing Java 17 (openjdk-17-jre-headless)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q --no-install-recommends openjdk-17-jre-headless >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends openjdk-17-jre-headless >/dev/null; }; \
	  else echo "the IMX500 converter needs Java >= 17: sudo apt install openjdk-17-jre-headless" >&2; exit 1; fi; }
	rm -rf $(IMX_VENV)
	$(IMX_PYTHON) -m venv $(IMX_VENV)
	$(IMX_VENV)/bin/python -m pip install -q --upgrade pip
	$(IMX_VENV)/bin/pip install -q -r $(IMX_REQS)
	$(IMX_VENV)/bin/pip check
	touch $@

imx500-env: $(IMX_STAMP)

# A tiny model through the real converter (the env is made first, once: make test keeps it in
# ~/.cache/edgeseg so that a fresh clone does not download TensorFlow 2.15 again).
IMX_TEST_VENV := $(HOME)/.cache/edgeseg/venv-imx500
test-imx500: $(STAMP) $(IMX_STAMP)
	EDGESEG_IMX500_VENV=$(abspath $(IMX_VENV)) EDGESEG_REQUIRE_IMX500=1 $(BIN)/python -m pytest -m imx500 tests/test_imx500_convert.py

clean:
	rm -rf $(VENV) $(RT_VENV) $(IMX_VENV) runs build .pytest_cache
