# onnx-search: `make demo` runs the whole job, `make test` the test suite. Everything installs itself.
VENV   ?= .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/onnx-search
STAMP  := $(VENV)/.installed
MODELS ?= resnet50 vgg16 efficientnet-lite0 dinov2-vits14
WEIGHTS ?= auto
PYTEST_ARGS ?=
# bench results go to a tracked folder per machine: bench/results/<CPU model>-<cores>c-<best INT8 ISA>[-<GPU>]
MACHINE ?= $(shell $(PY) -m onnx_search.provenance --slug)
RESULTS ?= bench/results/$(MACHINE)

.PHONY: bench-test-run setup redis convert test test-steps test-server test-ray lint format bench bench-int8 bench-int8-emulated bench-convert bench-families bench-arena bench-maps bench-projections bench-evidence bench-embed bench-camera demo serve keras-vs-torch docs clean

# The environment takes about 9 GB (TensorFlow, PyTorch with its CUDA libraries, onnxruntime); the tests' models
# about 1 GB more: a full disk is said in one line before anything is installed
NEED_GB ?= 11
$(STAMP): pyproject.toml
	@free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); if [ "$$free" -lt $(NEED_GB) ]; then \
	  echo "only $$free GB free on the disk of $$(pwd); installing and testing needs about $(NEED_GB) GB: free some space and run make again" >&2; \
	  exit 1; fi
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

setup: $(STAMP) redis

# System packages from Debian, installed when missing: a real Redis server (the embedded default and the
# tests), iproute2 (`ip`, to bring up loopback in the Milvus server tests' network namespace) and Chromium
# (the report.html test renders the page in a real headless browser).
redis:
	@missing=""; command -v redis-server >/dev/null 2>&1 || missing="redis-server"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null; fi
	@redis-server --version

convert: setup
	$(CLI) convert $(addprefix --model ,$(MODELS)) --weights $(WEIGHTS)

lint: setup
	$(PY) -m ruff check onnx_search tests
	$(PY) -m ruff format --check onnx_search tests

format: setup
	$(PY) -m ruff format onnx_search tests
	$(PY) -m ruff check --fix onnx_search tests

# The whole test run under tests/peak_rss.py, which prints its process tree's peak memory at the end (CI shows the
# line "make test peak RSS: N MB"; the figures also go to .cache/test-peak-rss.json).
test: setup
	$(PY) tests/peak_rss.py --json .cache/test-peak-rss.json "make test" $(MAKE) --no-print-directory test-steps

test-steps:
	$(PY) -m ruff check onnx_search tests
	$(PY) -m onnx_search.cli.docsgen --check
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -q -d build/site
	@if unshare -n true 2>/dev/null; then $(MAKE) --no-print-directory test-server test-ray PYTEST_ARGS=; else \
	  echo "NOTE: Milvus server and Ray tests not run: 'unshare -n' is not permitted here (needs root); run make test-server test-ray as root"; fi
	$(PY) -m pytest --durations=10 $(PYTEST_ARGS)

# A real standalone Milvus server inside a loopback-only network namespace (it listens on every interface).
test-server: setup
	unshare -n bash tests/run_server_tests.sh $(PY) $(PYTEST_ARGS)

# A real local Ray cluster (2 worker processes) inside a loopback-only network namespace.
test-ray: setup
	unshare -n bash tests/run_ray_tests.sh $(PY) $(PYTEST_ARGS)

bench: setup convert
	$(PY) -m onnx_search.bench --models-dir models --out $(RESULTS) --agreement-images demo/images \
	  --matrix-models resnet50,vgg16,efficientnet-lite0,dinov2-vits14
	# Ray vs local engine: a Ray cluster opens ports, so it runs in a loopback-only namespace
	unshare -n bash -c "ip link set lo up && RAY_USAGE_STATS_ENABLED=0 $(PY) -m onnx_search.bench.ray_speed models $(RESULTS)"
	# the explorer: query latency p50/p99 per model through its HTTP API at 1k and 10k images (serve.json)
	$(PY) -m onnx_search.bench.serve --models-dir models --out $(RESULTS)
	$(MAKE) --no-print-directory bench-evidence bench-int8 bench-convert bench-families bench-arena bench-maps \
	  bench-projections bench-camera

# The README's INT8-per-family table: static QDQ vs dynamic INT8 per family, speed and top-10 agreement
# (int8_methods.json; the demo's images, so after `make demo`)
bench-int8: setup convert
	$(PY) -m onnx_search.bench.int8_methods --models-dir models --images demo/images --out $(RESULTS) \
	  --models efficientnet-lite0,dinov2-vits14

# The AVX2 recipes' agreement on a CPU with VNNI: the same bench under an emulated Haswell (Debian's qemu-user),
# trained EfficientNet-Lite0 only; agreement only, since an emulated CPU's speed means nothing
# (int8_methods_emulated.json). Slow: every instruction is emulated.
# The result goes to the folder of the CPU that ran it, as its record names it (CPUID: AVX2, no VNNI).
bench-int8-emulated: setup convert
	qemu-x86_64 -cpu Haswell $(PY) -m onnx_search.bench.int8_methods --models-dir models --images demo/images \
	  --out bench/results/$$(qemu-x86_64 -cpu Haswell $(PY) -m onnx_search.provenance --slug) \
	  --models efficientnet-lite0 --emulated "qemu-x86_64 -cpu Haswell"

# Peak memory of converting each registry model, one child process at a time (convert_memory.json), with
# ResNet50/VGG16 again under protobuf's upb backend (the setting before the fix) for the comparison
bench-convert: setup
	$(PY) -m onnx_search.bench.convert_memory --out $(RESULTS) --baseline resnet50,vgg16

# The README's model-families table: the five family lines converted with random weights, one child at a time,
# into bench/work, each with dim, family, file size, export seconds, parity and img/s (families.json)
bench-families: setup
	$(PY) -m onnx_search.bench.convert_memory --out $(RESULTS) --work bench/work --json families.json \
	  --models dinov2-vits14,dinov2-vits14-avg,clip-vitb16,siglip-vitb16,convnext-tiny

# onnxruntime's CPU memory arena on and off: the peak of one process holding the converted models ($(MODELS)),
# one batch of 32 each per round (arena.json; the README's arena figures)
bench-arena: setup convert
	$(PY) -m onnx_search.bench.arena --models-dir models --out $(RESULTS) --models "$$(echo $(MODELS) | tr " " ",")"

# The explorer's map times: PCA and t-SNE of 1,000 and 2,000 vectors (maps.json; a few minutes)
bench-maps: setup
	$(PY) -m onnx_search.bench.maps --out $(RESULTS)

# PCA, t-SNE and UMAP on the same collection, each in a fresh process (projections.json: why the explorer
# offers no UMAP here)
bench-projections: setup
	$(PY) -m onnx_search.bench.projections --out $(RESULTS) --sizes 1000

# What one `make test` cost on this machine (bench/results/<machine>/make_test.json): run
# `make test 2>&1 | tee .cache/make-test.log` first; CI_SECONDS=N adds a fresh clone's whole `bash .ci/run`
TEST_LOG ?= .cache/make-test.log
bench-test-run: setup
	$(PY) -m onnx_search.bench.test_run --peak .cache/test-peak-rss.json --log $(TEST_LOG) --out $(RESULTS) \
	  $(if $(CI_SECONDS),--ci-seconds $(CI_SECONDS))

# Calibration of the evidence statistics by simulation: size, power and interval coverage of the paired tests and
# verdict calibration by simulation: 11 models, copies, 4-6 queries, two models (evidence_calibration.json; 3 min on 2 cores)
bench-evidence: setup
	$(PY) -m onnx_search.bench.evidence_calibration --out $(RESULTS) --experiments 1000 --many-experiments 400 --coverage-experiments 400

# End to end embedding against the shared bound 1/(1/R_model + 1/R_decode), INT8 Lite0 and ResNet50 on 640x480 and
# 4000x3000 JPEGs, with the per-stage decode profile before/after (embed.json; a few minutes)
bench-embed: setup
	$(CLI) convert --model resnet50 --model efficientnet-lite0 --weights $(WEIGHTS)
	$(PY) -m onnx_search.bench.embed --models-dir models --out $(RESULTS)

# Peak RSS of the whole process tree of `onnx-search run` on 320 generated camera JPEGs (4000x3000 and 3024x4032,
# some EXIF-rotated): Lite0 FP32 + INT8, 50 originals x 8 copies, cost phase (camera_roll.json; ~15 min)
bench-camera: setup
	$(PY) -m onnx_search.bench.camera_roll --models-dir models --out $(RESULTS) --work bench/work

demo: setup
	$(CLI) demo

# The explorer over the demo's collections and run (after `make demo`): http://127.0.0.1:8765/
SERVE_RUNS ?= demo/runs/demo
SERVE_ARGS ?=
serve: setup
	$(CLI) serve $(SERVE_RUNS) $(SERVE_ARGS)

# Keras vs torchvision ResNet50/VGG16 on the demo images (or on $$PHOTOS when set)
keras-vs-torch: setup
	$(CLI) demo --config configs/keras_vs_torch.yaml

# The documentation site: the generated reference pages rewritten from the code, then the site built offline
# into build/site (open build/site/index.html). `make test` checks both.
docs: setup
	$(PY) -m onnx_search.cli.docsgen
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -d build/site

clean:
	rm -rf $(VENV) .cache .pytest_cache data runs demo
