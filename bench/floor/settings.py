"""The service's settings (database, secret key, hosts) with no apps, no middleware and the
floor's URLs: the fastest this stack answers the same SQL."""

from waitpoints_site.settings import *  # noqa: F403

# The service's models load (the ASGI entry point imports the wait view), but no app adds work
# to a request: that is the middleware's doing, and there is none.
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "tokens"]
MIDDLEWARE = []
ROOT_URLCONF = "bench.floor.urls"
TEMPLATES = []
