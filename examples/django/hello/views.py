import os

from django.conf import settings
from django.shortcuts import render

from . import greeting

VIEW_VERSION = "view v1"


def index(request):
    return render(request, "hello/index.html", {
        "greeting": settings.GREETING,
        "motto": greeting.motto(),
        "view_version": VIEW_VERSION,
        "pid": os.getpid(),
        "debug": settings.DEBUG,
    })
