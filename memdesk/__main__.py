"""`python -m memdesk`: the same as the `memdesk` command."""
from memdesk.app.cli import main

raise SystemExit(main())
