#!/usr/bin/env python
"""The example project's manage.py (docs/integrations.md):

python manage.py migrate --run-syncdb
REDIS_URL=redis://127.0.0.1:6379/0 python manage.py runserver
REDIS_URL=redis://127.0.0.1:6379/0 python manage.py pyresque worker --queue notes
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
