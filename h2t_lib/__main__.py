import sys

from h2t_lib.apps.cli import main

sys.exit(main())
