# The two set-up commands of README.md: `make demo` and `make test`.
.PHONY: setup demo test bench lint clean

setup:
	@scripts/bootstrap.sh

demo: setup
	@scripts/demo.sh

# a worker per core, at most 4 (every test is independent of the others, kernel ones included:
# their names, ports, pins and namespaces are their own), a file's tests in one worker (a docs
# page's blocks run in order in one session); PYTEST_ARGS="-n0 ..." for one process
test: setup
	@.venv/bin/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile $(PYTEST_ARGS)

bench: setup
	@.venv/bin/python -m bench $(BENCH_ARGS)

lint: setup
	@.venv/bin/ruff check ebpm tests bench
	@.venv/bin/mypy ebpm bench

clean:
	rm -rf .venv build dist *.egg-info .pytest_cache
