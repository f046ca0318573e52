import sys

from tcplinger.cli.main import main

sys.exit(main())
