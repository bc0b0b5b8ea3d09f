"""``python -m mocks.library --port 8710``."""

from mocks.library.app import main

main()
