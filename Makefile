# Two commands do all the set-up: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Leaflet, Leaflet.VectorGrid and protomaps-leaflet (the basemap) for /map and /embed,
# Swagger UI and ReDoc for /docs and /redoc, served by Cuadra itself (no CDN): fetched
# from the npm registry with npm, pinned here.
LEAFLET    := 1.9.4
VECTORGRID := 1.3.0
PROTOMAPS  := 5.1.0
SWAGGER    := 5.29.0
REDOC      := 2.5.0
# Drawing a circle or polygon on /map (an area's figures).
GEOMAN     := 2.20.2
VENDOR     := api/static/vendor
ASSETS     := $(VENDOR)/.installed-$(LEAFLET)-$(VECTORGRID)-$(PROTOMAPS)-$(SWAGGER)-$(REDOC)-$(GEOMAN)
# The browser tests drive Debian's Chromium through its ChromeDriver; the shared rate
# limit test starts Debian's redis-server.
BROWSER    := /usr/bin/chromedriver
REDIS      := /usr/bin/redis-server

.PHONY: demo test lint test-slow bench fuzz clean-store assets

$(ASSETS):
	rm -rf $(VENDOR) .cache/npm && mkdir -p .cache/npm \
		$(VENDOR)/leaflet $(VENDOR)/vectorgrid $(VENDOR)/protomaps $(VENDOR)/swagger $(VENDOR)/redoc $(VENDOR)/geoman
	cd .cache/npm && npm pack --silent leaflet@$(LEAFLET) leaflet.vectorgrid@$(VECTORGRID) \
		protomaps-leaflet@$(PROTOMAPS) swagger-ui-dist@$(SWAGGER) redoc@$(REDOC) \
		@geoman-io/leaflet-geoman-free@$(GEOMAN) >/dev/null
	tar -xzf .cache/npm/leaflet-$(LEAFLET).tgz -C $(VENDOR)/leaflet --strip-components=2 \
		package/dist/leaflet.js package/dist/leaflet.css package/dist/images
	tar -xzf .cache/npm/leaflet-$(LEAFLET).tgz -C $(VENDOR)/leaflet --strip-components=1 package/LICENSE
	tar -xzf .cache/npm/leaflet.vectorgrid-$(VECTORGRID).tgz -C $(VENDOR)/vectorgrid \
		--strip-components=2 package/dist/Leaflet.VectorGrid.bundled.min.js
	tar -xzf .cache/npm/leaflet.vectorgrid-$(VECTORGRID).tgz -C $(VENDOR)/vectorgrid \
		--strip-components=1 package/package.json
	tar -xzf .cache/npm/protomaps-leaflet-$(PROTOMAPS).tgz -C $(VENDOR)/protomaps \
		--strip-components=2 package/dist/protomaps-leaflet.js
	tar -xzf .cache/npm/protomaps-leaflet-$(PROTOMAPS).tgz -C $(VENDOR)/protomaps \
		--strip-components=1 package/LICENSE
	tar -xzf .cache/npm/swagger-ui-dist-$(SWAGGER).tgz -C $(VENDOR)/swagger --strip-components=1 \
		package/swagger-ui-bundle.js package/swagger-ui.css package/favicon-32x32.png package/LICENSE
	tar -xzf .cache/npm/redoc-$(REDOC).tgz -C $(VENDOR)/redoc --strip-components=2 \
		package/bundles/redoc.standalone.js
	tar -xzf .cache/npm/redoc-$(REDOC).tgz -C $(VENDOR)/redoc --strip-components=1 package/LICENSE
	tar -xzf .cache/npm/geoman-io-leaflet-geoman-free-$(GEOMAN).tgz -C $(VENDOR)/geoman \
		--strip-components=2 package/dist/leaflet-geoman.min.js package/dist/leaflet-geoman.css
	tar -xzf .cache/npm/geoman-io-leaflet-geoman-free-$(GEOMAN).tgz -C $(VENDOR)/geoman \
		--strip-components=1 package/LICENSE
	# ReDoc's sidebar logo is fetched from its CDN, which /redoc must not ask: no image instead.
	sed -i 's#https://cdn.redoc.ly/redoc/logo-mini.svg#data:,#' $(VENDOR)/redoc/redoc.standalone.js
	touch $@

assets: $(ASSETS)

$(BROWSER):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver

$(REDIS):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server

# An install interrupted (Ctrl-C) leaves .installing behind, and perhaps a truncated tool
# that pip would call installed: the next run starts from a new environment.
$(STAMP): pyproject.toml
	@if [ -e $(VENV)/.installing ]; then \
		echo "an earlier install of $(VENV) did not finish: installing afresh"; rm -rf $(VENV); fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	touch $(VENV)/.installing
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/ruff --version >/dev/null && $(BIN)/mypy --version >/dev/null && $(BIN)/pytest --version >/dev/null
	rm -f $(VENV)/.installing
	touch $(STAMP)

# The port: `make demo CUADRA_PORT=8001` (every CUADRA_ setting is read from the environment).
demo: $(STAMP) $(ASSETS)
	$(BIN)/cuadra demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint $(ASSETS) $(BROWSER) $(REDIS)
	$(BIN)/pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/aggregates.py
	$(BIN)/python benchmarks/load.py
	$(BIN)/python benchmarks/hotspots.py
	$(BIN)/python benchmarks/tiles.py
	$(BIN)/python benchmarks/scale.py

# The schema fuzz at length (make test runs 40 examples a route and role).
fuzz: $(STAMP)
	CUADRA_FUZZ_EXAMPLES=400 CUADRA_FUZZ_RANDOM=1 $(BIN)/pytest -q tests/api/test_schema_fuzz.py

clean-store:
	rm -rf data/store
