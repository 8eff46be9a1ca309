import sys

from fwsetup.cli import main

sys.exit(main())
