# porter: the README's two commands are `make demo` and `make test`.
VENV     ?= .venv
PY       := $(VENV)/bin/python
PORTER   := $(VENV)/bin/porter
VERSION  ?= 2.6.32
OUT      ?= out/dde_virtio_net
RNG_OUT  ?= out/dde_virtio_rng
# Local sources for machines without kernel.org / savannah access:
#   make demo LINUX_FROM=/path/to/linux-or-git DDE_FROM=/path/to/incubator-git
LINUX_FROM ?=
DDE_FROM   ?=

.PHONY: setup deps sources demo demo-blk demo-rng test check bench contract clean

deps:
	@scripts/install-debian-deps

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: deps $(VENV)/.installed

# Linux $(VERSION) and the DDE, fetched if the cache lacks them (what every demo needs).
sources: setup
	@$(PY) -c "from porter.cache import linux_dir; import sys; sys.exit(not (linux_dir('$(VERSION)') / 'origin.json').is_file())" \
	  || $(PORTER) fetch --version $(VERSION) $(if $(LINUX_FROM),--from $(LINUX_FROM))
	@$(PY) -c "from porter.dde import current_dde; import sys; sys.exit(current_dde() is None)" \
	  || $(PORTER) fetch --dde $(if $(DDE_FROM),--from $(DDE_FROM))

# Port virtio-net, compile and link-check the tree, build the driver host and ping the
# kernel in a network namespace through it (QEMU's device).
demo: sources
	$(PORTER) demo --version $(VERSION) --out $(OUT)

# Port virtio-blk, check and build it, write a pattern onto a raw image through it
# (QEMU's virtio-blk-pci), read it back and compare both with the file.
demo-blk: sources
	$(PORTER) demo --bundle virtio-blk --version $(VERSION) --out out/dde_virtio_blk

# Port virtio-rng, check, build, and read 1 MiB from QEMU's virtio-rng-pci through it,
# compared with what went into the device.
demo-rng: sources
	$(PORTER) demo --bundle virtio-rng --version $(VERSION) --out $(RNG_OUT)

test: setup
	$(PY) -m pytest -q tests

check: demo

# Frames per second, disk MB/s and IOPS, entropy MB/s through the ported drivers and the
# harness's ring loops; porter port's cold and warm times next to spatch (figures, not tests).
bench: setup
	$(PY) benchmarks/net_throughput.py
	$(PY) benchmarks/blk_throughput.py
	$(PY) benchmarks/pipeline.py
	$(PY) benchmarks/rng_throughput.py

# Regenerate porter/harness/contract.py from the driver host's and ddekit-linux's headers.
contract: setup
	$(PY) -m porter.harness.contract_gen

clean:
	rm -rf out .pytest_cache
