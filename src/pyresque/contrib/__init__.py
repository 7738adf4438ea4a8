"""Layer 11, integrations with web frameworks: Django (``contrib.django``), Flask
(``contrib.flask``) and FastAPI/Starlette (``contrib.starlette``, ``contrib.fastapi``),
each an optional extra (``pyresque[django]``, ``[flask]``, ``[fastapi]``).

Each one configures a producer from the framework's settings, runs the ``pyresque``
commands from the framework's command line, and mounts the dashboard behind the
framework's own login. What they share: the settings (``config.py``), the dashboard
as a WSGI app under a path (``wsgi.py``) and the command line (``commands.py``).
See docs/integrations.md.

May import: ``cli`` and below. Nothing below imports it, and it is never loaded
unless a framework's application imports it.
"""
