"""WSGI entry point: uwsgi.ini loads `module = mysite.wsgi:application`.

With lazy-apps every worker imports this module after the fork, so settings.py
and the project's apps load in the worker, and a `workers` reload picks up
their edits.
"""
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = get_wsgi_application()

# Import the URLconf, and with it every view, now rather than at the first
# request. A broken views.py then fails the reload (`netreload ping` exits 1
# and quotes the exception) instead of the next page load, and "live" means
# the new code has really been imported.
get_resolver().url_patterns
