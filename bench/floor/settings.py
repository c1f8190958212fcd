"""The service's settings (database, secret key, hosts) with no apps, no middleware and the
floor's URLs: the fastest this stack answers the same SQL."""

from waitpoints_site.settings import *  # noqa: F403

# The service's models load (the ASGI entry point imports the wait view; tokens' ready()
# registers its admin, so the admin app must be there), but no app adds work to a request:
# that is the middleware's doing, and there is none.
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "tokens",
]
MIDDLEWARE = []
ROOT_URLCONF = "bench.floor.urls"
TEMPLATES = []
