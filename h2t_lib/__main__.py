import sys

from h2t_lib.cli import main

sys.exit(main())
