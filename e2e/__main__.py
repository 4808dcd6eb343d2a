"""`python -m e2e`: deploy, run and check the whole stack; exit 0 only when everything passed."""

import sys

from e2e.runner import main

sys.exit(main())
