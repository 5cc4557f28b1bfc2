# The two commands of the README. Both create/refresh .venv first (quick when nothing changed).
.PHONY: setup demo test
setup:
	@bash .ci/setup
demo: setup
	.venv/bin/mds demo
test: setup
	.venv/bin/python -m pytest
