"""The commands of ``python -m h2t_lib COMMAND``: one module per command (argument parsing and printing).

:mod:`.cli` dispatches; each command module defines ``add_arguments(parser)`` and ``run(args) -> int``
and calls the library (``engine``, ``data``, ``model``) for the work.
"""
