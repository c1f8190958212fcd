"""The service's settings (database, secret key, hosts) with no apps, no middleware and the
floor's URLs: the fastest this stack answers the same SQL."""

from waitpoints_site.settings import *  # noqa: F403

INSTALLED_APPS = []
MIDDLEWARE = []
ROOT_URLCONF = "bench.floor.urls"
TEMPLATES = []
