"""``python -m browsergrid`` is the ``browsergrid`` command."""

from browsergrid.cli import main

raise SystemExit(main())
