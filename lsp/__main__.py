"""`python -m lsp --model SPEC ...`: the same server as `hrm lsp`."""

import sys

from lsp.server import main

sys.exit(main())
