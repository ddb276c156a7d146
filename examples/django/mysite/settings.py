"""Settings of the netreload Django example: one app, templates, no database.

Edit GREETING (or anything here) and ping: settings are read when a worker
sets Django up, so a `workers` reload is enough (see README.md).
"""
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "netreload-example-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

GREETING = "Hello from settings.py"

INSTALLED_APPS = [
    "hello",
]

MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "mysite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    },
]

WSGI_APPLICATION = "mysite.wsgi.application"

# No database: the example needs none, and nothing is written at runtime.
DATABASES = {}

USE_I18N = False
USE_TZ = True
TIME_ZONE = "UTC"
