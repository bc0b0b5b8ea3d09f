"""``python -m mocks.backoffice run --gateway URL --library URL --sender desk [--manual]``."""

from mocks.backoffice.cli import main

raise SystemExit(main())
