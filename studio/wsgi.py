import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
application = get_wsgi_application()

# Import what the first request would (the URLconf imports every view,
# serializer and the API's schema classes), then freeze it all: the cyclic
# garbage collector stops scanning these long-lived objects (about 170,000)
# in every full collection. On a 100-photo list page that was ~0.4 ms of
# CPU a request, amortised (bench/gallery_list.py). Collected first, so no
# garbage is frozen; objects made later are collected as usual.
get_resolver().url_patterns  # noqa: B018 - evaluated for its imports
gc.collect()
gc.freeze()
