"""WSGI entry point (gunicorn gridsvc.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gridsvc.settings")
application = get_wsgi_application()
