from __future__ import annotations

from sekisho.cli.main import main

raise SystemExit(main())
