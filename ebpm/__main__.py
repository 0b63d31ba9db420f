"""`python -m ebpm` runs the CLI."""

import sys

from ebpm.cli import main

sys.exit(main())
